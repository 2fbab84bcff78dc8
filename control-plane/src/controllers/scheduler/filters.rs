//! Scheduler filters: each says why a node cannot take a pod, in kube-scheduler's words.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::admission::quantity::Quantity;

/// What a pod asks of a node.
#[derive(Debug, Clone, Default)]
pub struct PodDemand {
    pub cpu_millis: i128,
    pub memory_bytes: i128,
    pub host_ports: Vec<(String, u16)>,
}

/// A node and what is already placed on it.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub unschedulable: bool,
    pub taints: Vec<Value>,
    pub alloc_cpu_millis: i128,
    pub alloc_memory_bytes: i128,
    pub alloc_pods: i128,
    pub used_cpu_millis: i128,
    pub used_memory_bytes: i128,
    pub used_pods: i128,
    pub used_host_ports: Vec<(String, u16)>,
}

fn quantity(v: Option<&Value>) -> Option<Quantity> {
    match v? {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

fn bytes(q: &Quantity) -> i128 {
    q.nanos() / 1_000_000_000
}

/// Requests of the pod: the sum over containers, or the largest init container if larger.
pub fn pod_demand(pod: &Value) -> PodDemand {
    let sum = |list: Option<&Value>| -> (i128, i128) {
        list.and_then(Value::as_array)
            .map(|cs| {
                cs.iter().fold((0, 0), |(c, m), ctr| {
                    let req = ctr.pointer("/resources/requests");
                    let cpu = quantity(req.and_then(|r| r.get("cpu")))
                        .map(|q| q.millis())
                        .unwrap_or(0);
                    let mem = quantity(req.and_then(|r| r.get("memory")))
                        .map(|q| bytes(&q))
                        .unwrap_or(0);
                    (c + cpu, m + mem)
                })
            })
            .unwrap_or((0, 0))
    };
    let (cpu, mem) = sum(pod.pointer("/spec/containers"));
    let (icpu, imem) = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter().fold((0i128, 0i128), |(c, m), ctr| {
                let req = ctr.pointer("/resources/requests");
                let cpu = quantity(req.and_then(|r| r.get("cpu")))
                    .map(|q| q.millis())
                    .unwrap_or(0);
                let mem = quantity(req.and_then(|r| r.get("memory")))
                    .map(|q| bytes(&q))
                    .unwrap_or(0);
                (c.max(cpu), m.max(mem))
            })
        })
        .unwrap_or((0, 0));
    let host_ports = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| {
            let hp = p
                .get("hostPort")
                .and_then(Value::as_u64)
                .filter(|p| *p > 0)?;
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string();
            Some((proto, hp as u16))
        })
        .collect();
    PodDemand {
        cpu_millis: cpu.max(icpu),
        memory_bytes: mem.max(imem),
        host_ports,
    }
}

impl NodeState {
    pub fn from_node(node: &Value) -> NodeState {
        let alloc = node.pointer("/status/allocatable");
        let labels = node
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let ready = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            });
        NodeState {
            name: node
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            labels,
            ready,
            unschedulable: node
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            taints: node
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            alloc_cpu_millis: quantity(alloc.and_then(|a| a.get("cpu")))
                .map(|q| q.millis())
                .unwrap_or(0),
            alloc_memory_bytes: quantity(alloc.and_then(|a| a.get("memory")))
                .map(|q| bytes(&q))
                .unwrap_or(0),
            alloc_pods: quantity(alloc.and_then(|a| a.get("pods")))
                .map(|q| q.millis() / 1000)
                .unwrap_or(110),
            used_cpu_millis: 0,
            used_memory_bytes: 0,
            used_pods: 0,
            used_host_ports: Vec::new(),
        }
    }

    pub fn add(&mut self, d: &PodDemand) {
        self.used_cpu_millis += d.cpu_millis;
        self.used_memory_bytes += d.memory_bytes;
        self.used_pods += 1;
        self.used_host_ports.extend(d.host_ports.iter().cloned());
    }
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    let key = taint.get("key").and_then(Value::as_str).unwrap_or("");
    let value = taint.get("value").and_then(Value::as_str).unwrap_or("");
    let effect = taint.get("effect").and_then(Value::as_str).unwrap_or("");
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| {
            let tkey = t.get("key").and_then(Value::as_str).unwrap_or("");
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            let teffect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let key_ok = tkey.is_empty() && op == "Exists" || tkey == key;
            let value_ok =
                op == "Exists" || t.get("value").and_then(Value::as_str).unwrap_or("") == value;
            let effect_ok = teffect.is_empty() || teffect == effect;
            key_ok && value_ok && effect_ok
        })
}

/// The first reason `node` cannot run `pod`, or None when it can.
pub fn reject_reason(pod: &Value, demand: &PodDemand, node: &NodeState) -> Option<String> {
    if !node.ready {
        return Some("node(s) were not ready".into());
    }
    if node.unschedulable {
        let tolerated = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                t.get("key").and_then(Value::as_str) == Some("node.kubernetes.io/unschedulable")
            });
        if !tolerated {
            return Some("node(s) were unschedulable".into());
        }
    }
    for taint in &node.taints {
        let effect = taint.get("effect").and_then(Value::as_str).unwrap_or("");
        if (effect == "NoSchedule" || effect == "NoExecute") && !tolerates(pod, taint) {
            let key = taint.get("key").and_then(Value::as_str).unwrap_or("");
            let value = taint.get("value").and_then(Value::as_str).unwrap_or("");
            return Some(format!("node(s) had untolerated taint {{{key}: {value}}}"));
        }
    }
    if let Some(sel) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object) {
        let ok = sel
            .iter()
            .all(|(k, v)| node.labels.get(k).map(String::as_str) == v.as_str());
        if !ok {
            return Some("node(s) didn't match Pod's node affinity/selector".into());
        }
    }
    if node.used_pods + 1 > node.alloc_pods {
        return Some("Too many pods".into());
    }
    if demand.cpu_millis > 0 && node.used_cpu_millis + demand.cpu_millis > node.alloc_cpu_millis {
        return Some("Insufficient cpu".into());
    }
    if demand.memory_bytes > 0
        && node.used_memory_bytes + demand.memory_bytes > node.alloc_memory_bytes
    {
        return Some("Insufficient memory".into());
    }
    if demand
        .host_ports
        .iter()
        .any(|p| node.used_host_ports.contains(p))
    {
        return Some("node(s) didn't have free ports for the requested pod ports".into());
    }
    None
}

/// Least-allocated score in 0..=100 (higher is better), as kube-scheduler's default.
pub fn score(demand: &PodDemand, node: &NodeState) -> i64 {
    let frac = |used: i128, want: i128, alloc: i128| -> f64 {
        if alloc <= 0 {
            return 0.0;
        }
        ((alloc - used - want).max(0) as f64) / alloc as f64
    };
    let cpu = frac(
        node.used_cpu_millis,
        demand.cpu_millis,
        node.alloc_cpu_millis,
    );
    let mem = frac(
        node.used_memory_bytes,
        demand.memory_bytes,
        node.alloc_memory_bytes,
    );
    ((cpu + mem) / 2.0 * 100.0) as i64
}

/// "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match …." from the
/// per-node reasons, as kube-scheduler summarizes them.
pub fn summarize(total: usize, reasons: &[String]) -> String {
    if total == 0 {
        return "0/0 nodes are available: no nodes are registered.".into();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, mem: &str) -> NodeState {
        NodeState::from_node(&json!({
            "metadata": {"name": name, "labels": {"disk": "ssd"}},
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
    }

    #[test]
    fn filters_and_scores() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}, "ports": [{"containerPort": 80, "hostPort": 8080}]}]}});
        let d = pod_demand(&pod);
        assert_eq!(d.cpu_millis, 500);
        assert_eq!(d.memory_bytes, 1 << 30);
        let mut small = node("a", "1", "512Mi");
        assert_eq!(
            reject_reason(&pod, &d, &small).as_deref(),
            Some("Insufficient memory")
        );
        let big = node("b", "4", "8Gi");
        assert!(reject_reason(&pod, &d, &big).is_none());
        small.alloc_memory_bytes = 8 << 30;
        small.add(&d);
        assert_eq!(
            reject_reason(&pod, &d, &small).as_deref(),
            Some("node(s) didn't have free ports for the requested pod ports")
        );
        assert!(score(&d, &big) > score(&d, &small));
        let sel = json!({"spec": {"nodeSelector": {"disk": "hdd"}, "containers": []}});
        assert!(reject_reason(&sel, &pod_demand(&sel), &big)
            .unwrap()
            .contains("selector"));
        assert_eq!(
            summarize(
                3,
                &[
                    "Insufficient memory".into(),
                    "node(s) were not ready".into(),
                    "Insufficient memory".into()
                ]
            ),
            "0/3 nodes are available: 2 Insufficient memory, 1 node(s) were not ready."
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let mut n = node("a", "1", "1Gi");
        n.taints = vec![json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})];
        let pod = json!({"spec": {"containers": []}});
        assert!(reject_reason(&pod, &pod_demand(&pod), &n)
            .unwrap()
            .contains("untolerated taint {dedicated: gpu}"));
        let tolerant = json!({"spec": {"containers": [], "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}});
        assert!(reject_reason(&tolerant, &pod_demand(&tolerant), &n).is_none());
    }
}
