//! Scheduler filters, in kube-scheduler's plugin order, each saying why a node cannot take a
//! pod in kube-scheduler's words; and the "0/3 nodes are available: …" summary.

use std::borrow::Cow;
use std::collections::HashMap;

use super::affinity::{node_affinity_ok, AffinityState, ERR_NODE_AFFINITY};
use super::cache::NodeInfo;
use super::podinfo::PodInfo;
use super::spread::SpreadState;
use super::taints::{unschedulable_ok, untolerated};
use super::volumes::{VolumeState, ERR_VOLUME_NODE_CONFLICT};

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_TOO_MANY_PODS: &str = "Too many pods";

pub type Reason = Cow<'static, str>;

/// What PreFilter computed once per pod, read by the per-node filters.
#[derive(Debug, Default)]
pub struct CycleState {
    pub volumes: VolumeState,
    pub affinity: Option<AffinityState>,
    pub spread: Option<SpreadState>,
}

/// NodeResourcesFit: every resource the node lacks ("Insufficient cpu", …), or "Too many pods".
pub fn fits_resources(pod: &PodInfo, node: &NodeInfo, out: &mut Vec<Reason>) {
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        out.push(Cow::Borrowed(ERR_TOO_MANY_PODS));
    }
    let (want, alloc, used) = (&pod.requests, &node.allocatable, &node.requested);
    if want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        out.push(Cow::Borrowed("Insufficient cpu"));
    }
    if want.memory > 0 && want.memory > alloc.memory - used.memory {
        out.push(Cow::Borrowed("Insufficient memory"));
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
    {
        out.push(Cow::Borrowed("Insufficient ephemeral-storage"));
    }
}

/// Runs the filters on one node; an empty result means the node fits. Like kube-scheduler,
/// the first failing plugin decides (NodeResourcesFit lists every missing resource).
pub fn filter(pod: &PodInfo, node: &NodeInfo, state: &CycleState, out: &mut Vec<Reason>) {
    if node.unschedulable && !unschedulable_ok(pod) {
        out.push(Cow::Borrowed(ERR_UNSCHEDULABLE));
        return;
    }
    if let Some(r) = untolerated(pod, &node.taints) {
        out.push(Cow::Owned(r));
        return;
    }
    if !node_affinity_ok(pod, node) {
        out.push(Cow::Borrowed(ERR_NODE_AFFINITY));
        return;
    }
    if pod
        .host_ports
        .iter()
        .any(|p| node.used_ports.iter().any(|u| u.conflicts(p)))
    {
        out.push(Cow::Borrowed(ERR_PORTS));
        return;
    }
    fits_resources(pod, node, out);
    if !out.is_empty() {
        return;
    }
    if !state.volumes.node_ok(&node.name) {
        out.push(Cow::Borrowed(ERR_VOLUME_NODE_CONFLICT));
        return;
    }
    if let Some(s) = &state.spread {
        if let Err(r) = s.filter(pod, node) {
            out.push(Cow::Borrowed(r));
            return;
        }
    }
    if let Some(a) = &state.affinity {
        if let Err(r) = a.filter(pod, node) {
            out.push(Cow::Borrowed(r));
        }
    }
}

/// kube-scheduler's FitError message: "0/3 nodes are available: 1 node(s) had untolerated
/// taint {k: v}, 2 Insufficient memory." — "count reason" strings sorted as strings.
/// `prefilter` is a reason that applied to every node (e.g. a missing PVC).
pub fn summarize(
    total: usize,
    reasons: &HashMap<Reason, usize>,
    prefilter: Option<&str>,
) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut msg = format!("0/{total} nodes are available:");
    if let Some(p) = prefilter {
        msg.push_str(&format!(" {p}."));
        return msg;
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if !parts.is_empty() {
        msg.push_str(&format!(" {}.", parts.join(", ")));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(cpu: &str, mem: &str, extra: Value) -> NodeInfo {
        let mut n = json!({"metadata": {"name": "n1", "labels": {"disk": "ssd"}},
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "2", "ephemeral-storage": "1Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        if let Some(spec) = extra.get("spec") {
            n["spec"] = spec.clone();
        }
        NodeInfo::from_node(&n)
    }

    fn run(pod: &Value, n: &NodeInfo) -> Vec<String> {
        let mut out = Vec::new();
        filter(&PodInfo::from_pod(pod), n, &CycleState::default(), &mut out);
        out.into_iter().map(|r| r.into_owned()).collect()
    }

    #[test]
    fn filters_in_order() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "2Gi"}}}]}});
        assert_eq!(
            run(&pod, &node("1", "512Mi", json!({}))),
            [
                "Insufficient cpu",
                "Insufficient memory",
                "Insufficient ephemeral-storage"
            ]
        );
        assert!(run(&pod, &node("4", "8Gi", json!({})))[0].contains("ephemeral"));
        let cordoned = node(
            "4",
            "8Gi",
            json!({"spec": {"unschedulable": true, "taints": [{"key": "a", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(run(&pod, &cordoned), [ERR_UNSCHEDULABLE]);
        let tainted = node(
            "4",
            "8Gi",
            json!({"spec": {"taints": [{"key": "a", "value": "b", "effect": "NoExecute"}]}}),
        );
        assert_eq!(
            run(&pod, &tainted),
            ["node(s) had untolerated taint {a: b}"]
        );
        let sel = json!({"spec": {"nodeSelector": {"disk": "hdd"}, "containers": []}});
        assert_eq!(run(&sel, &node("4", "8Gi", json!({}))), [ERR_NODE_AFFINITY]);
        let ports =
            json!({"spec": {"containers": [{"ports": [{"containerPort": 1, "hostPort": 80}]}]}});
        let mut n = node("4", "8Gi", json!({}));
        let other = std::sync::Arc::new(PodInfo::from_pod(&ports));
        n.used_ports.extend(other.host_ports.iter().cloned());
        assert_eq!(run(&ports, &n), [ERR_PORTS]);
        n.pods.insert("a".into(), other.clone());
        n.pods.insert("b".into(), other);
        assert_eq!(run(&sel, &n)[0], ERR_NODE_AFFINITY);
        let empty = json!({"spec": {"containers": []}});
        assert_eq!(run(&empty, &n), [ERR_TOO_MANY_PODS]);
    }

    #[test]
    fn summary_as_kube_scheduler() {
        let mut r: HashMap<Reason, usize> = HashMap::new();
        r.insert("Insufficient memory".into(), 2);
        r.insert("node(s) had untolerated taint {key: value}".into(), 1);
        assert_eq!(
            summarize(3, &r, None),
            "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient memory."
        );
        assert_eq!(
            summarize(3, &r, Some("persistentvolumeclaim \"x\" not found")),
            "0/3 nodes are available: persistentvolumeclaim \"x\" not found."
        );
        assert_eq!(
            summarize(0, &r, None),
            "no nodes available to schedule pods"
        );
    }
}
