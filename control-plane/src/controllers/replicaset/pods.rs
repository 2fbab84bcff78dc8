//! Pure functions about pods that the ReplicaSet (and Deployment) controllers share: activity,
//! readiness and availability (`minReadySeconds`), the pod a template stamps out, and which
//! pods go first when scaling down (Kubernetes' `ActivePods` ordering).

use std::cmp::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::api::object;

/// Annotation that ranks pods for scale-down (lower goes first), as in Kubernetes.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Counts toward replicas: not terminating and not finished (`FilterActivePods`).
pub fn is_active(pod: &Value) -> bool {
    let phase = phase(pod);
    !object::is_terminating(pod) && phase != "Succeeded" && phase != "Failed"
}

pub fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    ready_condition(pod)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// When the pod last became Ready (`None` when not ready or unknown).
pub fn ready_since(pod: &Value) -> Option<Timestamp> {
    if !is_ready(pod) {
        return None;
    }
    ready_condition(pod)?
        .get("lastTransitionTime")?
        .as_str()?
        .parse()
        .ok()
}

/// How long until a ready pod counts as available: `Some(ZERO)` = available now, `None` =
/// not ready (Kubernetes' `IsPodAvailable`).
pub fn available_in(pod: &Value, min_ready_seconds: i64, now: Timestamp) -> Option<Duration> {
    if !is_ready(pod) {
        return None;
    }
    if min_ready_seconds <= 0 {
        return Some(Duration::ZERO);
    }
    let Some(since) = ready_since(pod) else {
        // Ready without a transition time: treat it as ready long enough.
        return Some(Duration::ZERO);
    };
    let due = since
        .checked_add(jiff::SignedDuration::from_secs(min_ready_seconds))
        .unwrap_or(since);
    if due <= now {
        Some(Duration::ZERO)
    } else {
        Some(Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO))
    }
}

pub fn is_available(pod: &Value, min_ready_seconds: i64, now: Timestamp) -> bool {
    available_in(pod, min_ready_seconds, now) == Some(Duration::ZERO)
}

/// Every label of the template is on the pod with the same value (`fullyLabeledReplicas`).
pub fn fully_labeled(pod: &Value, template_labels: Option<&Map<String, Value>>) -> bool {
    let Some(want) = template_labels else {
        return true;
    };
    let have = object::labels(pod);
    want.iter()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// A pod as `template` (a PodTemplateSpec) stamps it out for `owner`: generateName
/// `<owner>-`, the template's labels, annotations and finalizers, and a controller
/// ownerReference with blockOwnerDeletion (Kubernetes' `GetPodFromTemplate`).
pub fn pod_from_template(owner: &Value, template: &Value) -> Value {
    let mut meta = Map::new();
    meta.insert(
        "generateName".into(),
        json!(format!("{}-", object::name(owner))),
    );
    meta.insert("namespace".into(), json!(object::namespace(owner)));
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template
            .pointer(&format!("/metadata/{field}"))
            .filter(|v| !v.is_null())
        {
            meta.insert(field.into(), v.clone());
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([super::claim::controller_ref_to(owner)]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

fn phase_rank(pod: &Value) -> u8 {
    match phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum()
        })
        .unwrap_or(0)
}

fn created(pod: &Value) -> Option<Timestamp> {
    object::meta_str(pod, "creationTimestamp").and_then(|s| s.parse().ok())
}

fn scheduled(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// Scale-down order (Kubernetes' `ActivePods.Less`): `Less` pods are deleted first —
/// unscheduled before scheduled, Pending before Unknown before Running, not ready before
/// ready, lower deletion cost first, more recently ready first, more restarts first, newer
/// before older.
pub fn deletion_order(a: &Value, b: &Value) -> Ordering {
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        // Newer readiness / creation first: compare in reverse; unknown times go first.
        .then_with(|| newer_first(ready_since(a), ready_since(b)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| newer_first(created(a), created(b)))
        .then_with(|| object::name(a).cmp(object::name(b)))
}

fn newer_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The `n` pods to delete first.
pub fn pods_to_delete(pods: &[Value], n: usize) -> Vec<Value> {
    let mut sorted: Vec<&Value> = pods.iter().collect();
    sorted.sort_by(|a, b| deletion_order(a, b));
    sorted.into_iter().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: Option<&str>, created: &str) -> Value {
        let mut conditions = Vec::new();
        if let Some(since) = ready {
            conditions
                .push(json!({"type": "Ready", "status": "True", "lastTransitionTime": since}));
        }
        json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions},
        })
    }

    #[test]
    fn unscheduled_then_not_ready_then_newest_go_first() {
        let pods = vec![
            pod(
                "old-ready",
                "n1",
                "Running",
                Some("2024-01-01T00:01:00Z"),
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "new-ready",
                "n1",
                "Running",
                Some("2024-01-01T00:05:00Z"),
                "2024-01-01T00:04:00Z",
            ),
            pod(
                "running-not-ready",
                "n1",
                "Running",
                None,
                "2024-01-01T00:00:00Z",
            ),
            pod("pending", "n1", "Pending", None, "2024-01-01T00:00:00Z"),
            pod("unscheduled", "", "Pending", None, "2024-01-01T00:00:00Z"),
        ];
        let order: Vec<String> = pods_to_delete(&pods, 5)
            .iter()
            .map(|p| object::name(p).to_string())
            .collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "running-not-ready",
                "new-ready",
                "old-ready"
            ]
        );
        assert_eq!(pods_to_delete(&pods, 1).len(), 1);
    }

    #[test]
    fn deletion_cost_wins_over_age() {
        let mut cheap = pod(
            "cheap",
            "n1",
            "Running",
            Some("2024-01-01T00:01:00Z"),
            "2024-01-01T00:00:00Z",
        );
        cheap["metadata"]["annotations"] = json!({POD_DELETION_COST: "-5"});
        let newer = pod(
            "newer",
            "n1",
            "Running",
            Some("2024-01-01T00:05:00Z"),
            "2024-01-01T00:04:00Z",
        );
        assert_eq!(deletion_order(&cheap, &newer), Ordering::Less);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod(
            "p",
            "n1",
            "Running",
            Some("2024-01-01T00:00:00Z"),
            "2024-01-01T00:00:00Z",
        );
        let now: Timestamp = "2024-01-01T00:00:04Z".parse().unwrap();
        assert!(is_available(&p, 0, now));
        assert!(!is_available(&p, 10, now));
        assert_eq!(available_in(&p, 10, now), Some(Duration::from_secs(6)));
        assert!(is_available(&p, 4, now));
        let not_ready = pod("q", "n1", "Running", None, "2024-01-01T00:00:00Z");
        assert_eq!(available_in(&not_ready, 0, now), None);
    }

    #[test]
    fn activity_and_labels() {
        let mut p = pod("p", "n1", "Running", None, "2024-01-01T00:00:00Z");
        assert!(is_active(&p));
        p["status"]["phase"] = json!("Failed");
        assert!(!is_active(&p));
        let mut q = pod("q", "n1", "Running", None, "2024-01-01T00:00:00Z");
        q["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(!is_active(&q));
        q["metadata"]["labels"] = json!({"app": "web", "tier": "x"});
        let want = json!({"app": "web"});
        assert!(fully_labeled(&q, want.as_object()));
        let want = json!({"app": "web", "v": "2"});
        assert!(!fully_labeled(&q, want.as_object()));
    }

    #[test]
    fn template_pods_are_owned() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"}});
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let p = pod_from_template(&rs, &t);
        assert_eq!(p["metadata"]["generateName"], "web-abc-");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert_eq!(p["spec"]["containers"][0]["image"], "i");
    }
}
