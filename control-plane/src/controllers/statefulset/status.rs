//! Pod predicates and the StatefulSet status (Kubernetes' `computeReplicaStatus`,
//! `updateStatus`, `completeRollingUpdate`): replicas, readyReplicas, availableReplicas,
//! currentReplicas, updatedReplicas, currentRevision, updateRevision, observedGeneration,
//! collisionCount — what `kubectl rollout status sts/x` reads.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::identity::pod_revision;
use crate::api::object;
use crate::controllers::replicaset::pods as rs_pods;

/// The pod exists in the API (Kubernetes' `isCreated`: it has a phase).
pub fn is_created(pod: &Value) -> bool {
    !rs_pods::phase(pod).is_empty()
}

pub fn is_failed(pod: &Value) -> bool {
    rs_pods::phase(pod) == "Failed"
}

pub fn is_succeeded(pod: &Value) -> bool {
    rs_pods::phase(pod) == "Succeeded"
}

pub fn is_pending(pod: &Value) -> bool {
    rs_pods::phase(pod) == "Pending"
}

/// Phase Running and the Ready condition True.
pub fn is_running_and_ready(pod: &Value) -> bool {
    rs_pods::phase(pod) == "Running" && rs_pods::is_ready(pod)
}

/// Running, ready, and ready for at least `min_ready_seconds`.
pub fn is_running_and_available(pod: &Value, min_ready_seconds: i64, now: Timestamp) -> bool {
    rs_pods::phase(pod) == "Running" && rs_pods::is_available(pod, min_ready_seconds, now)
}

/// Running and ready and not terminating (Kubernetes' `isHealthy`).
pub fn is_healthy(pod: &Value) -> bool {
    is_running_and_ready(pod) && !object::is_terminating(pod)
}

/// The counted part of a StatefulSet status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub current: i64,
    pub updated: i64,
}

/// Counts over `pods` (name-only entries of pods not created yet do not count). Also returns how
/// long until the next ready pod becomes available (for `minReadySeconds`).
pub fn count<'a>(
    pods: impl IntoIterator<Item = &'a Value>,
    min_ready_seconds: i64,
    current_revision: &str,
    update_revision: &str,
    now: Timestamp,
) -> (Counts, Option<Duration>) {
    let mut c = Counts::default();
    let mut next: Option<Duration> = None;
    for pod in pods {
        if is_created(pod) {
            c.replicas += 1;
        }
        if is_running_and_ready(pod) {
            c.ready += 1;
            match rs_pods::available_in(pod, min_ready_seconds, now) {
                Some(Duration::ZERO) => c.available += 1,
                Some(d) => next = Some(next.map_or(d, |n: Duration| n.min(d))),
                None => {}
            }
        }
        if is_created(pod) && !object::is_terminating(pod) {
            let rev = pod_revision(pod);
            if rev == current_revision {
                c.current += 1;
            }
            if rev == update_revision {
                c.updated += 1;
            }
        }
    }
    (c, next)
}

/// Revisions and collision count that go into the status with the counts.
pub struct Revisions<'a> {
    pub current: &'a str,
    pub update: &'a str,
    pub collision_count: i64,
}

/// The status to store: `completeRollingUpdate` applied (a finished RollingUpdate makes the
/// update revision current), then the fields as Kubernetes serializes them.
pub fn status(set: &Value, counts: &Counts, revs: &Revisions<'_>) -> Value {
    let rolling = set
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let mut current = counts.current;
    let mut current_revision = revs.current;
    if rolling && counts.updated == counts.replicas && counts.ready == counts.replicas {
        current = counts.updated;
        current_revision = revs.update;
    }
    let mut st = Map::new();
    let generation = set
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if generation > 0 {
        st.insert("observedGeneration".into(), json!(generation));
    }
    st.insert("replicas".into(), json!(counts.replicas));
    for (k, v) in [
        ("readyReplicas", counts.ready),
        ("currentReplicas", current),
        ("updatedReplicas", counts.updated),
    ] {
        if v > 0 {
            st.insert(k.into(), json!(v));
        }
    }
    if !current_revision.is_empty() {
        st.insert("currentRevision".into(), json!(current_revision));
    }
    if !revs.update.is_empty() {
        st.insert("updateRevision".into(), json!(revs.update));
    }
    st.insert("collisionCount".into(), json!(revs.collision_count));
    st.insert("availableReplicas".into(), json!(counts.available));
    if let Some(conds) = set
        .pointer("/status/conditions")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        st.insert("conditions".into(), conds.clone());
    }
    Value::Object(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(rev: &str, phase: &str, ready: bool) -> Value {
        json!({"metadata": {"name": "web-0", "labels": {"controller-revision-hash": rev}},
               "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn counts_and_completed_rollouts() {
        let now = Timestamp::now();
        let pods = [
            pod("r1", "Running", true),
            pod("r2", "Running", true),
            pod("r2", "Pending", false),
            json!({"metadata": {"name": "web-3"}}), // not created yet
        ];
        let (c, next) = count(&pods, 0, "r1", "r2", now);
        assert_eq!(
            c,
            Counts {
                replicas: 3,
                ready: 2,
                available: 2,
                current: 1,
                updated: 2
            }
        );
        assert!(next.is_none());
        let set = json!({"metadata": {"generation": 4}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}});
        let revs = Revisions {
            current: "r1",
            update: "r2",
            collision_count: 0,
        };
        let st = status(&set, &c, &revs);
        assert_eq!(st["observedGeneration"], 4);
        assert_eq!(st["currentRevision"], "r1");
        assert_eq!(st["currentReplicas"], 1);
        assert_eq!(st["collisionCount"], 0);
        // Every pod updated and ready: the update revision becomes current.
        let done = Counts {
            replicas: 2,
            ready: 2,
            available: 2,
            current: 0,
            updated: 2,
        };
        let st = status(&set, &done, &revs);
        assert_eq!(st["currentRevision"], "r2");
        assert_eq!(st["currentReplicas"], 2);
        // OnDelete never completes on its own.
        let on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert_eq!(status(&on_delete, &done, &revs)["currentRevision"], "r1");
    }
}
