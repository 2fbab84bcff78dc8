//! DaemonSet status, as Kubernetes' `updateDaemonSetStatus`: per node that should run a daemon
//! pod — desired, current (has one), ready, available (minReadySeconds) and updated (carries the
//! current hash) judged on its oldest pod — and misscheduled pods on nodes that should not run
//! one. `kubectl rollout status ds` is done when generation ≤ observedGeneration and
//! updatedNumberScheduled = numberAvailable = desiredNumberScheduled.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::placement::{is_updated, oldest_first};
use crate::controllers::replicaset::pods;

/// The status fields the controller owns (the others — conditions, collisionCount — are kept).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub desired: i64,
    pub current: i64,
    pub misscheduled: i64,
    pub ready: i64,
    pub updated: i64,
    pub available: i64,
}

/// Counts over `nodes` (name, should run a daemon pod) and the daemon pods by node, and when
/// a ready pod becomes available (to requeue for `minReadySeconds`).
pub fn count(
    ds: &Value,
    nodes: &[(String, bool)],
    node_pods: &BTreeMap<String, Vec<&Value>>,
    hash: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> (Counts, Option<Duration>) {
    let min_ready = ds
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut c = Counts::default();
    let mut next: Option<Duration> = None;
    for (node, should_run) in nodes {
        let on_node = node_pods.get(node).filter(|p| !p.is_empty());
        if !should_run {
            if on_node.is_some() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let Some(on_node) = on_node else { continue };
        c.current += 1;
        let mut sorted = on_node.clone();
        sorted.sort_by(|a, b| oldest_first(a, b));
        let pod = sorted[0];
        if pods::is_ready(pod) {
            c.ready += 1;
            match pods::available_in(pod, min_ready, now) {
                Some(Duration::ZERO) => c.available += 1,
                Some(d) => next = Some(next.map_or(d, |n: Duration| n.min(d))),
                None => {}
            }
        }
        if is_updated(pod, hash, generation) {
            c.updated += 1;
        }
    }
    (c, next)
}

/// The new status: `old` with the counts and observedGeneration set. Fields Kubernetes omits
/// when zero (updated, available, unavailable) are left out then.
pub fn status(old: Option<&Value>, c: Counts, observed_generation: i64) -> Value {
    let mut st: Map<String, Value> = old.and_then(Value::as_object).cloned().unwrap_or_default();
    let mut put = |k: &str, v: i64, omit_zero: bool| {
        if v == 0 && omit_zero {
            st.remove(k);
        } else {
            st.insert(k.to_string(), Value::from(v));
        }
    };
    put("currentNumberScheduled", c.current, false);
    put("numberMisscheduled", c.misscheduled, false);
    put("desiredNumberScheduled", c.desired, false);
    put("numberReady", c.ready, false);
    put("observedGeneration", observed_generation, true);
    put("updatedNumberScheduled", c.updated, true);
    put("numberAvailable", c.available, true);
    put("numberUnavailable", c.desired - c.available, true);
    Value::Object(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::revisions::DAEMONSET_HASH_LABEL;
    use serde_json::json;

    fn pod(name: &str, hash: &str, ready_since: Option<&str>) -> Value {
        let conds = match ready_since {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([]),
        };
        json!({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {DAEMONSET_HASH_LABEL: hash}},
            "spec": {"nodeName": "x"}, "status": {"phase": "Running", "conditions": conds}})
    }

    #[test]
    fn counts_per_node() {
        let ds = json!({"spec": {"minReadySeconds": 10}});
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let (a, b, c) = (
            pod("a", "h", Some("2026-01-01T00:00:00Z")),
            pod("b", "old", Some("2026-01-01T00:00:55Z")),
            pod("c", "h", None),
        );
        let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        m.insert("n1".into(), vec![&a]);
        m.insert("n2".into(), vec![&b]);
        m.insert("n3".into(), vec![&c]);
        let nodes = vec![
            ("n1".to_string(), true),
            ("n2".to_string(), true),
            ("n3".to_string(), false),
            ("n4".to_string(), true),
        ];
        let (counts, next) = count(&ds, &nodes, &m, "h", None, now);
        assert_eq!(
            counts,
            Counts {
                desired: 3,
                current: 2,
                misscheduled: 1,
                ready: 2,
                updated: 1,
                available: 1
            }
        );
        assert_eq!(next, Some(Duration::from_secs(5)));
        let st = status(Some(&json!({"collisionCount": 1})), counts, 4);
        assert_eq!(st["collisionCount"], 1);
        assert_eq!(st["numberUnavailable"], 2);
        assert_eq!(st["observedGeneration"], 4);
        let empty = status(None, Counts::default(), 1);
        assert_eq!(empty["desiredNumberScheduled"], 0);
        assert!(empty.get("numberAvailable").is_none());
    }
}
