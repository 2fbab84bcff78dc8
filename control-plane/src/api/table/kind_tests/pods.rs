//! `kubectl get pods` rows: Ready, Status, Restarts and the wide columns.

use super::common;

use common::{ago, assert_cells, cells, columns};
use serde_json::{json, Value};

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-7d4b9c", "namespace": "default", "creationTimestamp": ago(3 * 3600)},
        "spec": spec,
        "status": status,
    })
}

fn one_container() -> Value {
    json!({"containers": [{"name": "web", "image": "nginx:1.27"}], "nodeName": "node-a"})
}

#[test]
fn columns_and_wide_columns() {
    let (all, wide) = columns("Pod");
    assert_eq!(
        all,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
}

#[test]
fn running_pod_with_restarts_shows_last_restart_age() {
    let p = pod(
        one_container(),
        json!({
            "phase": "Running",
            "podIP": "10.244.0.7",
            "podIPs": [{"ip": "10.244.0.7"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 2, "started": true,
                "state": {"running": {"startedAt": ago(290)}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
            }]
        }),
    );
    assert_cells(
        "Pod",
        p,
        json!([
            "web-7d4b9c",
            "1/1",
            "Running",
            "2 (5m ago)",
            "3h",
            "10.244.0.7",
            "node-a",
            "<none>",
            "<none>"
        ]),
    );
}

#[test]
fn restarts_without_last_state_are_a_bare_number() {
    let p = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{
            "name": "web", "ready": true, "restartCount": 4, "state": {"running": {}}
        }]}),
    );
    assert_eq!(cells("Pod", p)[3], json!("4"));
}

#[test]
fn waiting_reasons_win() {
    for reason in [
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "ContainerCreating",
    ] {
        let p = pod(
            one_container(),
            json!({"phase": "Pending", "containerStatuses": [{
                "name": "web", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason}}
            }]}),
        );
        let c = cells("Pod", p);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!(reason));
    }
}

#[test]
fn terminated_containers() {
    let completed = pod(
        one_container(),
        json!({"phase": "Succeeded", "containerStatuses": [{
            "name": "web", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
        }]}),
    );
    let t = common::table("Pod", &[completed]);
    assert_eq!(t["rows"][0]["cells"][2], json!("Completed"));
    assert_eq!(t["rows"][0]["conditions"][0]["type"], json!("Completed"));
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], json!("Succeeded"));

    let no_reason = |terminated: Value| {
        pod(
            one_container(),
            json!({"phase": "Failed", "containerStatuses": [{
                "name": "web", "ready": false, "state": {"terminated": terminated}
            }]}),
        )
    };
    assert_eq!(
        cells("Pod", no_reason(json!({"exitCode": 137})))[2],
        json!("ExitCode:137")
    );
    assert_eq!(
        cells("Pod", no_reason(json!({"exitCode": 137, "signal": 9})))[2],
        json!("Signal:9")
    );
    assert_eq!(
        cells("Pod", no_reason(json!({"exitCode": 1, "reason": "Error"})))[2],
        json!("Error")
    );
}

#[test]
fn completed_container_beside_a_running_one() {
    let spec = json!({"containers": [{"name": "app"}, {"name": "job"}]});
    let statuses = json!([
        {"name": "app", "ready": true, "state": {"running": {}}},
        {"name": "job", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    ]);
    let ready = pod(
        spec.clone(),
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": statuses}),
    );
    let c = cells("Pod", ready);
    assert_eq!(
        (c[1].clone(), c[2].clone()),
        (json!("1/2"), json!("Running"))
    );
    let not_ready = pod(
        spec,
        json!({"phase": "Running", "containerStatuses": statuses}),
    );
    assert_eq!(cells("Pod", not_ready)[2], json!("NotReady"));
}

#[test]
fn init_containers() {
    let spec = json!({
        "initContainers": [{"name": "migrate"}, {"name": "seed"}],
        "containers": [{"name": "web"}]
    });
    let init = |first: Value, second: Value| {
        pod(
            spec.clone(),
            json!({
                "phase": "Pending",
                "initContainerStatuses": [first, second],
                "containerStatuses": [{"name": "web", "state": {"waiting": {"reason": "PodInitializing"}}}]
            }),
        )
    };
    let running = json!({"name": "migrate", "state": {"running": {}}});
    let waiting = json!({"name": "seed", "state": {"waiting": {"reason": "PodInitializing"}}});
    assert_eq!(
        cells("Pod", init(running, waiting.clone()))[2],
        json!("Init:0/2")
    );

    let done =
        json!({"name": "migrate", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let backoff = json!({"name": "seed", "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}}});
    let c = cells("Pod", init(done.clone(), backoff));
    assert_eq!(c[2], json!("Init:CrashLoopBackOff"));
    // While initializing, restarts count the init containers.
    assert_eq!(c[3], json!("3 (60s ago)"));

    let failed =
        json!({"name": "seed", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}});
    assert_eq!(
        cells("Pod", init(done.clone(), failed))[2],
        json!("Init:Error")
    );
    let bare = json!({"name": "seed", "state": {"terminated": {"exitCode": 2}}});
    assert_eq!(
        cells("Pod", init(done.clone(), bare))[2],
        json!("Init:ExitCode:2")
    );
    let progressing = json!({"name": "seed", "state": {"running": {}}});
    assert_eq!(cells("Pod", init(done, progressing))[2], json!("Init:1/2"));
}

#[test]
fn sidecar_init_containers_count_toward_ready() {
    let p = pod(
        json!({
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "web"}]
        }),
        json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                "state": {"running": {}}}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}}]
        }),
    );
    let c = cells("Pod", p);
    assert_eq!(c[1..4], [json!("2/2"), json!("Running"), json!("1")]);
}

#[test]
fn deletion_and_gating() {
    let mut terminating = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": true, "state": {"running": {}}}]}),
    );
    terminating["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(cells("Pod", terminating.clone())[2], json!("Terminating"));

    let mut lost = terminating.clone();
    lost["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("Pod", lost)[2], json!("Unknown"));

    // A pod that already finished is not "Terminating".
    let mut finished = pod(one_container(), json!({"phase": "Succeeded"}));
    finished["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(cells("Pod", finished)[2], json!("Succeeded"));

    let gated = pod(
        one_container(),
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        ]}),
    );
    assert_eq!(cells("Pod", gated)[2], json!("SchedulingGated"));

    let evicted = pod(
        one_container(),
        json!({"phase": "Failed", "reason": "Evicted"}),
    );
    assert_eq!(cells("Pod", evicted)[2], json!("Evicted"));
}

#[test]
fn readiness_gates_and_nomination() {
    let p = pod(
        json!({
            "containers": [{"name": "web"}],
            "readinessGates": [{"conditionType": "www.example.com/lb"}, {"conditionType": "www.example.com/dns"}]
        }),
        json!({
            "phase": "Pending",
            "nominatedNodeName": "node-b",
            "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
            "conditions": [
                {"type": "www.example.com/lb", "status": "True"},
                {"type": "www.example.com/dns", "status": "False"}
            ]
        }),
    );
    let c = cells("Pod", p);
    assert_eq!(
        c[5..],
        [
            json!("fd00::5"),
            json!("<none>"),
            json!("node-b"),
            json!("1/2")
        ]
    );
}

#[test]
fn odd_pods_do_not_panic() {
    assert_cells(
        "Pod",
        json!({}),
        json!([
            "",
            "0/0",
            "",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ]),
    );
    let weird = json!({
        "metadata": {"name": 7, "creationTimestamp": "not a time"},
        "spec": {"containers": "nope", "initContainers": [null, 3]},
        "status": {
            "containerStatuses": [null, {"restartCount": "x", "state": null}, {"restartCount": 9_223_372_036_854_775_807_i64}],
            "initContainerStatuses": [{"restartCount": 9_223_372_036_854_775_807_i64, "state": {"terminated": null}}],
            "conditions": {"Ready": true}
        }
    });
    let c = cells("Pod", weird);
    assert_eq!(c.len(), 9);
    assert_eq!(c[4], json!("<unknown>"));
}

#[test]
fn first_container_reason_wins() {
    // Go walks the statuses backwards, so the first container's reason sticks.
    let p = pod(
        json!({"containers": [{"name": "app"}, {"name": "sidecar"}]}),
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(40)}}},
            {"name": "sidecar", "restartCount": 1, "state": {"waiting": {"reason": "ContainerCreating"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(900)}}}
        ]}),
    );
    let c = cells("Pod", p);
    assert_eq!(
        c[1..4],
        [
            json!("0/2"),
            json!("CrashLoopBackOff"),
            json!("6 (40s ago)")
        ]
    );
}
