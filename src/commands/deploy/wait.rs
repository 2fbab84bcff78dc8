//! Waiting for what was applied to be ready, as `kubectl rollout status` and `kubectl wait`
//! would, but failing at once, with the reason, when a pod of it cannot start.

use std::time::Duration;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio::time::Instant;

use super::apply::Applied;
use super::Cluster;

/// How often the workloads are looked at while waiting.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Container states that will not get better by waiting.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Waits until `obj` is ready (kinds without a notion of ready return at once).
pub async fn ready(
    cluster: &Cluster,
    obj: &Applied,
    deadline: Instant,
    timeout: Duration,
) -> Result<()> {
    if !matches!(
        obj.kind.as_str(),
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod"
    ) {
        return Ok(());
    }
    let api = obj.api(&cluster.client);
    let what = obj.display();
    eprintln!("waiting for {what} …");
    loop {
        let current = api.get(&obj.name).await?;
        let value = serde_json::to_value(&current)?;
        match progress(&obj.kind, &value) {
            Progress::Done(msg) => {
                eprintln!("{what}: {msg}");
                return Ok(());
            }
            Progress::Failed(msg) => bail!("{what} failed: {msg}"),
            Progress::Waiting(msg) => {
                if let Some(stuck) = stuck_pod(cluster, obj, &value).await? {
                    bail!("{what} cannot become ready: {stuck}");
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{what} is not ready after {}s: {msg}{}",
                        timeout.as_secs(),
                        pod_summary(cluster, obj, &value).await.unwrap_or_default()
                    );
                }
            }
        }
        tokio::time::sleep(DEFAULT_POLL_INTERVAL).await;
    }
}

enum Progress {
    Done(String),
    Waiting(String),
    Failed(String),
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn progress(kind: &str, v: &Value) -> Progress {
    let observed = int(v, "/metadata/generation") <= int(v, "/status/observedGeneration");
    match kind {
        "Deployment" => {
            let want = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let (updated, available, total) = (
                int(v, "/status/updatedReplicas"),
                int(v, "/status/availableReplicas"),
                int(v, "/status/replicas"),
            );
            if observed && updated == want && available == want && total == want {
                if want == 0 {
                    return Progress::Done("scaled to zero; the first request starts a pod".into());
                }
                return Progress::Done(format!("rolled out ({available}/{want} available)"));
            }
            Progress::Waiting(format!("{available}/{want} available, {updated} updated"))
        }
        "StatefulSet" => {
            let want = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready = int(v, "/status/readyReplicas");
            let revisions_match =
                v.pointer("/status/currentRevision") == v.pointer("/status/updateRevision");
            if observed
                && ready == want
                && int(v, "/status/updatedReplicas") == want
                && revisions_match
            {
                return Progress::Done(format!("rolled out ({ready}/{want} ready)"));
            }
            Progress::Waiting(format!("{ready}/{want} ready"))
        }
        "DaemonSet" => {
            let want = int(v, "/status/desiredNumberScheduled");
            let ready = int(v, "/status/numberReady");
            if observed && ready == want && int(v, "/status/updatedNumberScheduled") == want {
                return Progress::Done(format!("rolled out ({ready}/{want} ready)"));
            }
            Progress::Waiting(format!("{ready}/{want} ready"))
        }
        "Job" => {
            if condition(v, "Complete").is_some() {
                return Progress::Done("complete".into());
            }
            if let Some(c) = condition(v, "Failed") {
                return Progress::Failed(format!(
                    "{}: {}",
                    c["reason"].as_str().unwrap_or("Failed"),
                    c["message"].as_str().unwrap_or_default()
                ));
            }
            Progress::Waiting(format!(
                "{} active, {} succeeded, {} failed",
                int(v, "/status/active"),
                int(v, "/status/succeeded"),
                int(v, "/status/failed")
            ))
        }
        _ => match v.pointer("/status/phase").and_then(Value::as_str) {
            Some("Succeeded") => Progress::Done("succeeded".into()),
            Some("Failed") => Progress::Failed(
                v.pointer("/status/message")
                    .and_then(Value::as_str)
                    .unwrap_or("Failed")
                    .into(),
            ),
            _ if condition(v, "Ready").is_some() => Progress::Done("ready".into()),
            phase => Progress::Waiting(phase.unwrap_or("Pending").to_string()),
        },
    }
}

/// The workload's pods: by its selector, or the pod itself.
async fn pods(cluster: &Cluster, obj: &Applied, v: &Value) -> Result<Vec<Pod>> {
    let ns = obj.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    if obj.kind == "Pod" {
        return Ok(api.get_opt(&obj.name).await?.into_iter().collect());
    }
    let Some(labels) = v
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    else {
        return Ok(Vec::new());
    };
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// A pod of the workload stuck in a state waiting will not fix, described.
async fn stuck_pod(cluster: &Cluster, obj: &Applied, v: &Value) -> Result<Option<String>> {
    let images = images(v);
    for pod in pods(cluster, obj, v).await? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod.status.iter().flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        });
        for cs in statuses {
            // Only pods of this version: old ones are going away.
            if !images.is_empty()
                && !images
                    .iter()
                    .any(|i| cs.image == *i || cs.image.ends_with(&format!("/{i}")))
            {
                continue;
            }
            let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(w) =
                waiting.filter(|w| STUCK_REASONS.contains(&w.reason.as_deref().unwrap_or("")))
            {
                let hint = if w.reason.as_deref() == Some("CrashLoopBackOff") {
                    format!(" (see `kubectl logs {name} -c {} --previous`)", cs.name)
                } else {
                    String::new()
                };
                return Ok(Some(format!(
                    "pod {name}: container {} is {}: {}{hint}",
                    cs.name,
                    w.reason.as_deref().unwrap_or_default(),
                    w.message.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    Ok(None)
}

/// The images of the workload's pod template.
fn images(v: &Value) -> Vec<String> {
    v.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `; pod demo-x: Pending (Unschedulable: …)` for each pod, to explain a timeout.
async fn pod_summary(cluster: &Cluster, obj: &Applied, v: &Value) -> Result<String> {
    let mut out = String::new();
    for pod in pods(cluster, obj, v).await? {
        let name = pod.metadata.name.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let phase = status.phase.unwrap_or_else(|| "Pending".into());
        let why = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.status == "False" && c.reason.is_some())
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>();
        out.push_str(&format!("; pod {name}: {phase}"));
        if !why.is_empty() {
            out.push_str(&format!(" ({})", why.join("; ")));
        }
    }
    if out.is_empty() {
        out = "; it has no pods yet".into();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_progress() {
        let d = |gen, obs, updated, avail, total| {
            json!({"metadata": {"generation": gen}, "spec": {"replicas": 2},
                   "status": {"observedGeneration": obs, "updatedReplicas": updated,
                              "availableReplicas": avail, "replicas": total}})
        };
        assert!(matches!(
            progress("Deployment", &d(2, 1, 2, 2, 2)),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress("Deployment", &d(2, 2, 2, 2, 3)),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress("Deployment", &d(2, 2, 2, 2, 2)),
            Progress::Done(_)
        ));
    }

    #[test]
    fn job_progress() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert!(matches!(progress("Job", &done), Progress::Done(_)));
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        match progress("Job", &failed) {
            Progress::Failed(m) => assert!(m.contains("BackoffLimitExceeded"), "{m}"),
            _ => panic!("not failed"),
        }
        assert!(matches!(
            progress("Job", &json!({"status": {"active": 1}})),
            Progress::Waiting(_)
        ));
    }
}
