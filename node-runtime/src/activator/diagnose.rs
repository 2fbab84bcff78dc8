//! Why a held Service has no ready endpoint, read from its pods: a pod that cannot start
//! (its image cannot be pulled, it crashes, it cannot be scheduled) makes the held connections
//! fail at once with that reason, instead of waiting out the hold.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// Container waiting reasons that do not clear by waiting: the workload needs a fix.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What the pods say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The workload cannot start: answer the held connections now with this.
    pub fatal: Option<String>,
    /// Where the start stands (for the message when the hold times out).
    pub status: String,
}

/// Reads the pods `selector` picks in `namespace`.
pub async fn diagnose(client: &kube::Client, namespace: &str, selector: &str) -> Diagnosis {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => of_pods(&list.items),
        Err(e) => Diagnosis {
            fatal: None,
            status: format!("its pods cannot be read ({e})"),
        },
    }
}

/// The diagnosis of these pods (the Service's).
pub fn of_pods(pods: &[Pod]) -> Diagnosis {
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    if live.is_empty() {
        return Diagnosis {
            fatal: None,
            status: "no pod of it exists yet (it is scaled to zero and waits for the autoscaler)"
                .into(),
        };
    }
    let mut pending = Vec::new();
    for pod in &live {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let status = pod.status.as_ref();
        for c in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or("");
            if FATAL_WAITING.contains(&reason) {
                let detail = waiting
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                return Diagnosis {
                    fatal: Some(format!(
                        "pod {name} cannot start: container {} is {reason}{detail}",
                        c.name
                    )),
                    status: String::new(),
                };
            }
            pending.push(format!("pod {name}: container {} {reason}", c.name));
        }
        let unschedulable = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            });
        if let Some(c) = unschedulable {
            pending.push(format!(
                "pod {name} cannot be scheduled: {}",
                c.message.as_deref().unwrap_or("no node fits")
            ));
        } else if status.and_then(|s| s.phase.as_deref()) == Some("Pending") {
            pending.push(format!("pod {name} is starting"));
        }
    }
    let status = if pending.is_empty() {
        format!("{} pod(s) exist but none is ready", live.len())
    } else {
        pending.join("; ")
    };
    Diagnosis {
        fatal: None,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-1"}, "status": status})).unwrap()
    }

    #[test]
    fn a_missing_image_is_fatal_and_a_start_is_not() {
        let d = of_pods(&[pod(json!({"phase": "Pending", "containerStatuses": [{
            "name": "app", "image": "nope", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "image \"nope\" not found"}}}]}))]);
        assert_eq!(
            d.fatal.as_deref(),
            Some("pod web-1 cannot start: container app is ErrImagePull: image \"nope\" not found")
        );
        let d = of_pods(&[pod(json!({"phase": "Pending"}))]);
        assert_eq!(d.fatal, None);
        assert_eq!(d.status, "pod web-1 is starting");
        let d = of_pods(&[]);
        assert!(d.status.contains("scaled to zero"), "{}", d.status);
        let d = of_pods(&[pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"}]}),
        )]);
        assert_eq!(d.fatal, None);
        assert!(d.status.contains("0/1 nodes are available"), "{}", d.status);
    }
}
