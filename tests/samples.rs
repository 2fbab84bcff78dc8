//! The samples in samples/, end to end: each test applies the sample's own YAML files from
//! disk (so a sample cannot rot without failing here), imports its images as its README
//! says, and checks what the README promises — bodies served through the Service, logs,
//! object states. The ones needing Linux containers are in tests/samples_containers.rs.
//! Networked tests run their cluster in a network namespace of their own and send traffic only
//! inside it.

mod common;
#[path = "samples/support.rs"]
mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::net::{cluster_ip, fetch, pod_ip};
use common::{guest, wait_for, wait_for_within, Skiff};
use serde_json::Value;
use support::{apply_sample, request, rollout, tail};

fn condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// Waits for Job `job` to be Complete (failing at once if it Failed).
fn wait_complete(s: &Skiff, job: &str, limit: Duration) -> Result<()> {
    wait_for_within(&format!("job {job} Complete"), limit, || {
        let j = s.json(&["get", "job", job])?;
        ensure!(!condition_true(&j, "Failed"), "job {job} failed: {j}");
        Ok(condition_true(&j, "Complete").then_some(()))
    })
}

#[test]
fn hello_wasm_serves_through_its_service_and_its_host_port() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;

    // deploy.yaml: two replicas behind a ClusterIP Service.
    apply_sample(&s, "hello-wasm", "deploy.yaml")?;
    rollout(&s, "deployment/hello-wasm")?;
    let vip = cluster_ip(&s, "hello-wasm")?;
    let body = wait_for("hello-wasm through its ClusterIP", || {
        Ok(fetch(&s, &format!("http://{vip}/")).ok())
    })?;
    assert_eq!(body, "Hello from Skiff! version=v1 path=/\n");
    let body = fetch(&s, &format!("http://{vip}/items?id=3"))?;
    assert_eq!(body, "Hello from Skiff! version=v1 path=/items?id=3\n");
    let logs = s.ok(&["logs", "-l", "app=hello-wasm,tier=web", "--prefix"])?;
    assert!(logs.contains("GET /items?id=3"), "{logs}");

    // pod.yaml: the single pod of the quick start, on host port 8080 of the node.
    apply_sample(&s, "hello-wasm", "pod.yaml")?;
    pod_ip(&s, "hello-wasm")?;
    let url = format!("http://{}:8080/quick-start", common::NODE_IP);
    let body = wait_for("hello-wasm on its host port", || Ok(fetch(&s, &url).ok()))?;
    assert_eq!(body, "Hello from Skiff! version=v1 path=/quick-start\n");
    let logs = s.ok(&["logs", "hello-wasm"])?;
    assert!(logs.contains("GET /quick-start"), "{logs}");
    Ok(())
}

const PRIMES: &str = "primes: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71\nsum: 639\n";

#[test]
fn wasm_job_runs_to_completion_as_a_pod_and_as_a_job() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("wasm-job")?, "wasm-job:v1")?;

    apply_sample(&s, "wasm-job", "job.yaml")?;
    wait_complete(&s, "primes", common::WAIT)?;
    let j = s.json(&["get", "job", "primes"])?;
    assert_eq!(j["status"]["succeeded"], 1, "{j}");
    assert_eq!(s.ok(&["logs", "job/primes"])?, PRIMES);

    apply_sample(&s, "wasm-job", "pod.yaml")?;
    wait_for("pod wasm-job Succeeded", || {
        let p = s.json(&["get", "pod", "wasm-job"])?;
        ensure!(p["status"]["phase"] != "Failed", "{p}");
        Ok((p["status"]["phase"] == "Succeeded").then_some(()))
    })?;
    assert_eq!(s.ok(&["logs", "wasm-job"])?, PRIMES);
    Ok(())
}

const REPORT: &str = "Daily sales report
source: /config/sales.csv (4 rows)
gizmos: 23
widgets: 17
gadgets: 7
total: 47
best seller: gizmos
";

#[test]
fn cron_report_runs_by_hand_and_on_its_schedule() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("cron-report")?, "cron-report:v1")?;
    apply_sample(&s, "cron-report", "cronjob.yaml")?;
    let cj = s.json(&["get", "cronjob", "cron-report"])?;
    assert_eq!(cj["spec"]["schedule"], "*/1 * * * *", "{cj}");

    // A run by hand, from the CronJob's template.
    s.ok(&["create", "job", "manual-1", "--from=cronjob/cron-report"])?;
    wait_complete(&s, "manual-1", common::WAIT)?;
    assert_eq!(s.ok(&["logs", "job/manual-1"])?, REPORT);

    // A run the controller starts on the schedule (every minute: within about 70 s).
    let scheduled = wait_for_within(
        "a Job the CronJob controller created on schedule",
        Duration::from_secs(90),
        || {
            let jobs = s.json(&["get", "jobs"])?;
            Ok(jobs["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|j| {
                    j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
                        .is_string()
                })
                .and_then(|j| j["metadata"]["name"].as_str().map(str::to_string)))
        },
    )?;
    assert!(scheduled.starts_with("cron-report-"), "{scheduled}");
    wait_complete(&s, &scheduled, common::WAIT)?;
    assert_eq!(s.ok(&["logs", &format!("job/{scheduled}")])?, REPORT);
    wait_for("the CronJob's lastSuccessfulTime", || {
        let cj = s.json(&["get", "cronjob", "cron-report"])?;
        Ok(cj["status"]["lastSuccessfulTime"].is_string().then_some(()))
    })?;
    Ok(())
}

fn replicas(s: &Skiff, deployment: &str) -> Result<u64> {
    let d = s.json(&["get", "deployment", deployment])?;
    d["spec"]["replicas"].as_u64().context("spec.replicas")
}

fn pod_count(s: &Skiff, selector: &str) -> Result<usize> {
    let list = s.json(&["get", "pods", "-l", selector])?;
    Ok(list["items"].as_array().map_or(0, Vec::len))
}

#[test]
fn scale_to_zero_goes_to_zero_and_answers_the_next_request() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    apply_sample(&s, "scale-to-zero", "deploy.yaml")?;

    // Idle from the start: zero replicas and no pod after the 10 s scale-down delay.
    wait_for_within(
        "scale-to-zero at zero replicas",
        Duration::from_secs(90),
        || {
            Ok(
                (replicas(&s, "scale-to-zero")? == 0 && pod_count(&s, "app=scale-to-zero")? == 0)
                    .then_some(()),
            )
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}; log tail:\n{}", tail(&s.log())))?;
    assert!(
        s.event_messages("ScaledToZero")?
            .iter()
            .any(|m| !m.is_empty()),
        "a ScaledToZero event"
    );

    // A request through the ClusterIP while at zero: held by the activator, answered by the
    // pod it brings up.
    let vip = cluster_ip(&s, "scale-to-zero")?;
    let (code, body) = request(&s, "GET", &format!("http://{vip}/from-zero"), None)?;
    assert_eq!(code, 200, "{body}; log tail:\n{}", tail(&s.log()));
    assert_eq!(
        body,
        "Hello from Skiff! version=serverless path=/from-zero\n"
    );
    assert!(replicas(&s, "scale-to-zero")? >= 1);
    let from_zero = s.event_messages("ScaledFromZero")?;
    assert!(
        from_zero.iter().any(|m| m.contains("Scaled from 0 to 1")),
        "{from_zero:?}"
    );
    let cold = wait_for("the ColdStart event on the Service", || {
        let cold = s.event_messages("ColdStart")?;
        Ok((!cold.is_empty()).then_some(cold))
    })?;
    assert!(
        cold.iter().any(|m| m.contains("the first request waited")),
        "{cold:?}"
    );
    Ok(())
}

/// The uid of pod `name` once it is Ready.
fn ready_pod_uid(s: &Skiff, name: &str) -> Result<String> {
    wait_for(&format!("pod {name} Ready"), || {
        let Ok(p) = s.json(&["get", "pod", name]) else {
            return Ok(None);
        };
        let ready = common::is_ready(&p) && p["metadata"]["deletionTimestamp"].is_null();
        Ok(ready
            .then(|| p["metadata"]["uid"].as_str().map(str::to_string))
            .flatten())
    })
}

#[test]
fn todo_api_keeps_its_todos_across_a_pod_restart() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    s.import(&guest("todo_api")?, "todo-api:v1")?;
    apply_sample(&s, "todo-api", "statefulset.yaml")?;
    rollout(&s, "statefulset/todo-api")?;
    let first_uid = ready_pod_uid(&s, "todo-api-0")?;
    let pvc = s.json(&["get", "pvc", "data-todo-api-0"])?;
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    let base = format!("http://{}/todos", cluster_ip(&s, "todo-api")?);
    let api = |method: &str, path: &str, body: Option<&str>| -> Result<(u16, Value)> {
        let (code, text) = request(&s, method, &format!("{base}{path}"), body)?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.trim().to_string()))
        };
        Ok((code, json))
    };

    // The Service may need a moment after Ready to have the endpoint programmed.
    let listed = wait_for("GET /todos through the Service", || {
        Ok(api("GET", "", None).ok().filter(|(code, _)| *code == 200))
    })?;
    assert_eq!(listed.1, serde_json::json!([]));
    let (code, milk) = api("POST", "", Some(r#"{"title":"buy milk"}"#))?;
    assert_eq!(code, 201, "{milk}");
    assert_eq!(
        milk,
        serde_json::json!({"id": 1, "title": "buy milk", "done": false})
    );
    let (code, docs) = api("POST", "", Some(r#"{"title":"write the docs"}"#))?;
    assert_eq!((code, &docs["id"]), (201, &serde_json::json!(2)), "{docs}");
    let (code, done) = api("PUT", "/1", Some(r#"{"title":"buy milk","done":true}"#))?;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["done"], true);
    let (code, _) = api("DELETE", "/2", None)?;
    assert_eq!(code, 204);
    let (code, gone) = api("GET", "/2", None)?;
    assert_eq!(code, 404, "{gone}");
    assert_eq!(gone, Value::String("no todo 2".into()));
    // A body that is not a todo: 400 naming the problem.
    let (code, bad) = api("POST", "", Some(r#"{"title": 5}"#))?;
    assert_eq!(code, 400, "{bad}");
    assert!(bad.to_string().contains("invalid type"), "{bad}");
    let logs = s.ok(&["logs", "todo-api-0"])?;
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""level":"info""#) && l.contains(r#""msg":"todo created""#)),
        "{logs}"
    );

    // The pod goes; the StatefulSet makes a new todo-api-0 on the same claim.
    s.ok(&["delete", "pod", "todo-api-0", "--wait=false"])?;
    let second_uid = wait_for("a new todo-api-0", || {
        let uid = ready_pod_uid(&s, "todo-api-0")?;
        Ok((uid != first_uid).then_some(uid))
    })?;
    assert_ne!(second_uid, first_uid);
    let after = wait_for("GET /todos from the new pod", || {
        Ok(api("GET", "", None).ok().filter(|(code, _)| *code == 200))
    })?;
    assert_eq!(
        after.1,
        serde_json::json!([{"id": 1, "title": "buy milk", "done": true}])
    );
    // Ids go on from where they were.
    let (code, next) = api("POST", "", Some(r#"{"title":"after the restart"}"#))?;
    assert_eq!((code, &next["id"]), (201, &serde_json::json!(3)), "{next}");
    Ok(())
}
