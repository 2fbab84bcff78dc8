//! Deployment, ReplicaSet, DaemonSet, StatefulSet, Job and CronJob rows.

use super::common;

use common::{ago, assert_cells, cells, columns};
use serde_json::{json, Value};

fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [
            {"name": "web", "image": "nginx:1.27"},
            {"name": "log", "image": "busybox"}
        ]}
    })
}

fn meta(name: &str, age_secs: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age_secs)})
}

#[test]
fn deployment() {
    let (all, wide) = columns("Deployment");
    assert_eq!(
        all,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(wide, ["Containers", "Images", "Selector"]);
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("web", 10 * 86400),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}, "template": template()},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_cells(
        "Deployment",
        d,
        json!([
            "web",
            "2/3",
            3,
            2,
            "10d",
            "web,log",
            "nginx:1.27,busybox",
            "app=web,tier=fe"
        ]),
    );
    // A fresh object: replicas defaults to 1, status is empty.
    let fresh = json!({"metadata": meta("new", 5), "spec": {"template": template()}});
    assert_cells(
        "Deployment",
        fresh,
        json!([
            "new",
            "0/1",
            0,
            0,
            "5s",
            "web,log",
            "nginx:1.27,busybox",
            ""
        ]),
    );
}

#[test]
fn replica_set_and_daemon_set() {
    let rs = json!({
        "metadata": meta("web-5f7c", 90),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5f7c"}}, "template": template()},
        "status": {"replicas": 2, "readyReplicas": 1}
    });
    assert_cells(
        "ReplicaSet",
        rs,
        json!([
            "web-5f7c",
            2,
            2,
            1,
            "90s",
            "web,log",
            "nginx:1.27,busybox",
            "app=web,pod-template-hash=5f7c"
        ]),
    );
    let (all, _) = columns("DaemonSet");
    assert_eq!(
        all,
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let ds = json!({
        "metadata": meta("agent", 2 * 86400 + 3600),
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "agent", "image": "agent:2"}]}}
        },
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}
    });
    assert_cells(
        "DaemonSet",
        ds,
        json!([
            "agent",
            3,
            3,
            2,
            3,
            2,
            "kubernetes.io/os=linux",
            "2d1h",
            "agent",
            "agent:2",
            "app=agent"
        ]),
    );
    let bare = cells("DaemonSet", json!({"metadata": {"name": "x"}}));
    assert_eq!(bare[6], json!("<none>"));
    assert_eq!(bare[10], json!("<none>"));
}

#[test]
fn stateful_set() {
    let (all, wide) = columns("StatefulSet");
    assert_eq!(all, ["Name", "Ready", "Age", "Containers", "Images"]);
    assert_eq!(wide, ["Containers", "Images"]);
    let ss = json!({
        "metadata": meta("db", 600),
        "spec": {"replicas": 3, "template": template()},
        "status": {"replicas": 3, "readyReplicas": 3}
    });
    assert_cells(
        "StatefulSet",
        ss,
        json!(["db", "3/3", "10m", "web,log", "nginx:1.27,busybox"]),
    );
}

fn job(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["template"] = template();
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
    json!({"metadata": meta("pi", 3600), "spec": spec, "status": status})
}

#[test]
fn jobs() {
    let (all, _) = columns("Job");
    assert_eq!(
        all,
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let complete = job(
        json!({"completions": 1, "parallelism": 1}),
        json!({
            "succeeded": 1, "startTime": ago(600), "completionTime": ago(450),
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]
        }),
    );
    assert_cells(
        "Job",
        complete,
        json!([
            "pi",
            "Complete",
            "1/1",
            "2m30s",
            "60m",
            "web,log",
            "nginx:1.27,busybox",
            "batch.kubernetes.io/controller-uid=abc"
        ]),
    );
    let running = job(
        json!({"completions": 5}),
        json!({"succeeded": 2, "active": 1, "startTime": ago(95)}),
    );
    let c = cells("Job", running);
    assert_eq!(c[1..4], [json!("Running"), json!("2/5"), json!("95s")]);

    let failed = job(
        json!({"parallelism": 3}),
        json!({"failed": 4, "startTime": ago(7200), "conditions": [
            {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}
        ]}),
    );
    let c = cells("Job", failed);
    assert_eq!(c[1..4], [json!("Failed"), json!("0/1 of 3"), json!("120m")]);

    let suspended = job(
        json!({}),
        json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
    );
    let c = cells("Job", suspended);
    assert_eq!(c[1..4], [json!("Suspended"), json!("0/1"), json!("")]);

    let mut deleting = job(json!({"completions": 1}), json!({}));
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("Job", deleting)[1], json!("Terminating"));

    let not_complete = job(
        json!({}),
        json!({"conditions": [{"type": "Complete", "status": "False"}]}),
    );
    assert_eq!(cells("Job", not_complete)[1], json!("Running"));
}

#[test]
fn cron_job() {
    let (all, wide) = columns("CronJob");
    assert_eq!(
        all,
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(wide, ["Containers", "Images", "Selector"]);
    let cj = json!({
        "metadata": meta("nightly", 3 * 86400),
        "spec": {
            "schedule": "0 3 * * *",
            "timeZone": "Etc/UTC",
            "suspend": false,
            "jobTemplate": {"spec": {"template": template()}}
        },
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(4 * 3600)}
    });
    assert_cells(
        "CronJob",
        cj,
        json!([
            "nightly",
            "0 3 * * *",
            "Etc/UTC",
            "False",
            1,
            "4h",
            "3d",
            "web,log",
            "nginx:1.27,busybox",
            "<none>"
        ]),
    );
    let plain =
        json!({"metadata": meta("hourly", 59), "spec": {"schedule": "@hourly", "suspend": true}});
    assert_cells(
        "CronJob",
        plain,
        json!(["hourly", "@hourly", "<none>", "True", 0, "<none>", "59s", "", "", "<none>"]),
    );
}

#[test]
fn replication_controller() {
    let rc = json!({
        "metadata": meta("legacy", 30),
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template()},
        "status": {"replicas": 2, "readyReplicas": 2}
    });
    assert_cells(
        "ReplicationController",
        rc,
        json!([
            "legacy",
            2,
            2,
            2,
            "30s",
            "web,log",
            "nginx:1.27,busybox",
            "app=legacy"
        ]),
    );
}

#[test]
fn controller_revision_shows_its_controller_and_revision() {
    let mut m = meta("agent-5d8f9c7b6", 30);
    m["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                   "uid": "u1", "controller": true}]);
    assert_cells(
        "ControllerRevision",
        json!({"metadata": m, "revision": 3, "data": {}}),
        json!(["agent-5d8f9c7b6", "daemonset.apps/agent", 3, "30s"]),
    );
    assert_cells(
        "ControllerRevision",
        json!({"metadata": meta("loose", 30), "revision": 1}),
        json!(["loose", "<none>", 1, "30s"]),
    );
}
