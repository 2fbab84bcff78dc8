//! The RollingUpdate strategy, after Kubernetes' `daemon/update.go`: without surge, delete
//! just enough old pods to stay within `maxUnavailable` and let the manage loop create the
//! new ones; with `maxSurge`, create a new pod beside an old one on up to maxSurge nodes and
//! delete the old one when the new one is available. (OnDelete does nothing here: the manage
//! loop replaces pods only when they are deleted.) Pure planning; `mod.rs` carries it out.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::placement::is_updated;
use crate::api::object;
use crate::controllers::deployment::util::scaled_value;
use crate::controllers::replicaset::pods;

pub fn is_rolling(ds: &Value) -> bool {
    ds.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// (maxSurge, maxUnavailable) for `desired` nodes, percents rounded up (`SurgeCount`,
/// `UnavailableCount`); both 0 with something to run means unavailable 1.
pub fn limits(ds: &Value, desired: i64) -> (i64, i64) {
    if !is_rolling(ds) {
        return (0, 0);
    }
    let ru = ds.pointer("/spec/updateStrategy/rollingUpdate");
    let one = json!(1);
    let unavailable = ru
        .and_then(|r| r.get("maxUnavailable"))
        .filter(|v| !v.is_null())
        .unwrap_or(&one);
    let surge = ru.and_then(|r| r.get("maxSurge"));
    let surge = scaled_value(surge, desired, true).max(0);
    let unavailable = scaled_value(Some(unavailable), desired, true).max(0);
    if desired > 0 && surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// Whether the DaemonSet may run two pods on a node during an update.
pub fn allows_surge(ds: &Value) -> bool {
    is_rolling(ds)
        && ds
            .pointer("/spec/updateStrategy/rollingUpdate/maxSurge")
            .is_some_and(|v| scaled_value(Some(v), 100, true) > 0)
}

/// What one rolling step does.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Step {
    /// Old pods to delete (names).
    pub delete: Vec<String>,
    /// Nodes to create a new pod on (surge).
    pub create_on: Vec<String>,
}

/// `findUpdatedPodsOnNode`: the one new and one old live pod, or `None` when there are more.
fn updated_on_node<'a>(
    pods_on_node: &[&'a Value],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Value>, Option<&'a Value>)> {
    let (mut new, mut old) = (None, None);
    for p in pods_on_node
        .iter()
        .copied()
        .filter(|p| !object::is_terminating(p))
    {
        let slot = if is_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

/// One rolling-update step (Kubernetes' `rollingUpdate`). `node_pods` = daemon pods by target
/// node; `should_run(node)` = `NodeShouldRunDaemonPod(..).0`; `desired` = nodes that should run.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    ds: &Value,
    node_pods: &BTreeMap<String, Vec<&Value>>,
    should_run: impl Fn(&str) -> bool,
    hash: &str,
    generation: Option<i64>,
    desired: i64,
    now: Timestamp,
) -> Step {
    let (max_surge, max_unavailable) = limits(ds, desired);
    let min_ready = ds
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let available = |p: &Value| pods::is_available(p, min_ready, now);
    let mut step = Step::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods_on_node in node_pods.values() {
            let Some((new, old)) = updated_on_node(pods_on_node, hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replace.push(object::name(old).to_string());
                    } else if unavailable < max_unavailable {
                        candidates.push(object::name(old).to_string());
                    }
                }
            }
        }
        let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
        step.delete = replace;
        step.delete.extend(candidates.into_iter().take(room));
        return step;
    }
    let mut surging = 0;
    let mut available_nodes = 0;
    let mut not_fitting = Vec::new();
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods_on_node) in node_pods {
        let Some((new, old)) = updated_on_node(pods_on_node, hash, generation) else {
            surging += 1;
            continue;
        };
        if old.is_some_and(available) || new.is_some_and(available) {
            available_nodes += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if !should_run(node) {
                        not_fitting.push(object::name(old).to_string());
                        continue;
                    }
                    allowed.push(node.clone());
                } else if surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    step.delete.push(object::name(old).to_string());
                } else {
                    surging += 1;
                }
            }
        }
    }
    // Pods on nodes that no longer fit go only while enough others are available.
    let deletable = usize::try_from((available_nodes - desired).max(0)).unwrap_or(0);
    step.delete.extend(not_fitting.into_iter().take(deletable));
    let room = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
    step.create_on = allowed;
    step.create_on.extend(candidates.into_iter().take(room));
    step
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::revisions::DAEMONSET_HASH_LABEL;

    fn ds(ru: Value) -> Value {
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}}})
    }

    fn pod(name: &str, hash: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {DAEMONSET_HASH_LABEL: hash}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn limits_round_up() {
        assert_eq!(limits(&ds(json!({"maxUnavailable": 1})), 5), (0, 1));
        assert_eq!(limits(&ds(json!({"maxUnavailable": "30%"})), 5), (0, 2));
        assert_eq!(
            limits(&ds(json!({"maxUnavailable": 0, "maxSurge": "10%"})), 5),
            (1, 0)
        );
        assert_eq!(
            limits(&ds(json!({"maxUnavailable": 0, "maxSurge": 0})), 5),
            (0, 1)
        );
        assert_eq!(limits(&json!({"spec": {}}), 3), (0, 1), "defaults");
        let ondelete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert_eq!(limits(&ondelete, 3), (0, 0));
        assert!(!allows_surge(&ondelete));
        assert!(allows_surge(&ds(json!({"maxSurge": 1}))));
    }

    #[test]
    fn unavailable_budget() {
        let d = ds(json!({"maxUnavailable": 1}));
        let (a, b, c) = (
            pod("a", "old", true),
            pod("b", "old", true),
            pod("c", "old", false),
        );
        let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        m.insert("n1".into(), vec![&a]);
        m.insert("n2".into(), vec![&b]);
        let step = plan(&d, &m, |_| true, "new", None, 2, Timestamp::now());
        assert_eq!(step.delete, ["a"], "one at a time");
        // An unavailable old pod is replaced whatever the budget; available ones use it.
        m.insert("n3".into(), vec![&c]);
        let step = plan(&d, &m, |_| true, "new", None, 3, Timestamp::now());
        assert_eq!(step.delete, ["c", "a"]);
        // A new pod not yet available uses the budget.
        let n = pod("n", "new", false);
        m.insert("n3".into(), vec![&n]);
        let step = plan(&d, &m, |_| true, "new", None, 3, Timestamp::now());
        assert!(step.delete.is_empty(), "{step:?}");
    }

    #[test]
    fn surge_creates_then_deletes() {
        let d = ds(json!({"maxUnavailable": 0, "maxSurge": 1}));
        let (a, b) = (pod("a", "old", true), pod("b", "old", true));
        let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        m.insert("n1".into(), vec![&a]);
        m.insert("n2".into(), vec![&b]);
        let step = plan(&d, &m, |_| true, "new", None, 2, Timestamp::now());
        assert_eq!(step.create_on, ["n1"]);
        assert!(step.delete.is_empty());
        let waiting = pod("w", "new", false);
        m.insert("n1".into(), vec![&a, &waiting]);
        let step = plan(&d, &m, |_| true, "new", None, 2, Timestamp::now());
        assert_eq!(step, Step::default(), "surge budget in use");
        let up = pod("u", "new", true);
        m.insert("n1".into(), vec![&a, &up]);
        let step = plan(&d, &m, |_| true, "new", None, 2, Timestamp::now());
        assert_eq!(step.delete, ["a"]);
        assert_eq!(step.create_on, ["n2"]);
    }
}
