//! The counters Kubernetes always sends in a workload's status.
//!
//! Go encodes a status struct's non-`omitempty` fields even at zero, so a ReplicaSet just
//! created reads `status: {replicas: 0}`, a DaemonSet its four counters: clients with typed
//! models (the Python client) refuse a status without them. The defaults are what the
//! k8s-openapi status types serialize to when empty: their required fields.

use serde_json::{Map, Value};

use k8s_openapi::api::{apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch};
use k8s_openapi::api::{core::v1 as core, policy::v1 as policy};

/// The empty status of `kind`, with its required counters at zero.
fn empty_status(kind: &str) -> Option<Value> {
    let value = match kind {
        "ReplicaSet" => serde_json::to_value(apps::ReplicaSetStatus::default()),
        "StatefulSet" => serde_json::to_value(apps::StatefulSetStatus::default()),
        "DaemonSet" => serde_json::to_value(apps::DaemonSetStatus::default()),
        "Deployment" => serde_json::to_value(apps::DeploymentStatus::default()),
        "Job" => serde_json::to_value(batch::JobStatus::default()),
        "CronJob" => serde_json::to_value(batch::CronJobStatus::default()),
        "ReplicationController" => {
            serde_json::to_value(core::ReplicationControllerStatus::default())
        }
        "HorizontalPodAutoscaler" => {
            serde_json::to_value(autoscaling::HorizontalPodAutoscalerStatus::default())
        }
        "PodDisruptionBudget" => serde_json::to_value(policy::PodDisruptionBudgetStatus::default()),
        _ => return None,
    };
    value.ok()
}

/// Adds the required status counters `obj` lacks (a missing status becomes the empty one).
pub fn fill(kind: &str, obj: &mut Value) {
    let Some(Value::Object(defaults)) = empty_status(kind) else {
        return;
    };
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let status = map
        .entry("status")
        .or_insert_with(|| Value::Object(Map::new()));
    if status.is_null() {
        *status = Value::Object(Map::new());
    }
    if let Some(status) = status.as_object_mut() {
        for (k, v) in defaults {
            status.entry(k).or_insert(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_counters_are_added_and_kept() {
        let mut rs = json!({"status": {}});
        fill("ReplicaSet", &mut rs);
        assert_eq!(rs["status"], json!({"replicas": 0}));
        let mut ds = json!({});
        fill("DaemonSet", &mut ds);
        for k in [
            "currentNumberScheduled",
            "desiredNumberScheduled",
            "numberMisscheduled",
            "numberReady",
        ] {
            assert_eq!(ds["status"][k], 0, "{k}");
        }
        let mut sts = json!({"status": {"replicas": 3, "readyReplicas": 2}});
        fill("StatefulSet", &mut sts);
        assert_eq!(sts["status"], json!({"replicas": 3, "readyReplicas": 2}));
        let mut hpa = json!({"status": null});
        fill("HorizontalPodAutoscaler", &mut hpa);
        assert_eq!(hpa["status"]["desiredReplicas"], 0);
        let mut cm = json!({});
        fill("ConfigMap", &mut cm);
        assert_eq!(cm, json!({}));
    }
}
