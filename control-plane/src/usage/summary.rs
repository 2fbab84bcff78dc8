//! A node agent's `/stats/summary` as the control plane reads it (the agent's
//! `agent::stats::Summary` writes it): cumulative CPU time and the working set of the node and
//! of each container, and the HTTP request counters of Wasm HTTP components.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ContainerUsage, NodeUsage, PodUsage};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    #[serde(default)]
    pub time: String,
    #[serde(default)]
    pub cpu: CpuStats,
    #[serde(default)]
    pub memory: MemoryStats,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    #[serde(default)]
    pub usage_core_nano_seconds: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    #[serde(default)]
    pub working_set_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    #[serde(default)]
    pub cpu: CpuStats,
    #[serde(default)]
    pub memory: MemoryStats,
    #[serde(default)]
    pub requests: Option<RequestStats>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    #[serde(default)]
    pub in_flight: u64,
    #[serde(default)]
    pub total: u64,
}

/// A counter's rate per second between two readings; `None` when it went backwards (the
/// container restarted: its counters started again).
fn per_second(prev: u64, cur: u64, window: Duration) -> Option<f64> {
    let secs = window.as_secs_f64();
    (cur >= prev && secs > 0.0).then(|| (cur - prev) as f64 / secs)
}

/// Node `name`'s usage between readings `prev` and `cur`, `window` apart. A container needs
/// both readings (the first one only starts its window), as in metrics-server.
pub fn rates(
    name: &str,
    prev: &Summary,
    cur: &Summary,
    window: Duration,
) -> (Option<NodeUsage>, Vec<PodUsage>) {
    let node = per_second(
        prev.node.cpu.usage_core_nano_seconds,
        cur.node.cpu.usage_core_nano_seconds,
        window,
    )
    .map(|cpu| NodeUsage {
        name: name.to_string(),
        timestamp: cur.node.time.clone(),
        window,
        cpu_nanocores: cpu as u64,
        memory_bytes: cur.node.memory.working_set_bytes,
    });
    let before: HashMap<(&str, &str, &str), &ContainerStats> = prev
        .pods
        .iter()
        .flat_map(|p| {
            p.containers.iter().map(move |c| {
                (
                    (
                        p.pod_ref.namespace.as_str(),
                        p.pod_ref.uid.as_str(),
                        c.name.as_str(),
                    ),
                    c,
                )
            })
        })
        .collect();
    let pods = cur
        .pods
        .iter()
        .filter_map(|p| {
            let containers: Vec<ContainerUsage> = p
                .containers
                .iter()
                .filter_map(|c| {
                    let key = (
                        p.pod_ref.namespace.as_str(),
                        p.pod_ref.uid.as_str(),
                        c.name.as_str(),
                    );
                    let old = before.get(&key)?;
                    let cpu = per_second(
                        old.cpu.usage_core_nano_seconds,
                        c.cpu.usage_core_nano_seconds,
                        window,
                    )?;
                    Some(ContainerUsage {
                        name: c.name.clone(),
                        cpu_nanocores: cpu as u64,
                        memory_bytes: c.memory.working_set_bytes,
                        in_flight: c.requests.map(|r| r.in_flight),
                        requests_per_second: match (old.requests, c.requests) {
                            (Some(o), Some(n)) => per_second(o.total, n.total, window),
                            _ => None,
                        },
                    })
                })
                .collect();
            (!containers.is_empty()).then(|| PodUsage {
                namespace: p.pod_ref.namespace.clone(),
                name: p.pod_ref.name.clone(),
                uid: p.pod_ref.uid.clone(),
                node: name.to_string(),
                timestamp: cur.node.time.clone(),
                window,
                containers,
            })
        })
        .collect();
    (node, pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reading(node_cpu: u64, app_cpu: u64, total: u64) -> Summary {
        serde_json::from_value(json!({
            "node": {"nodeName": "n1", "time": "2026-12-06T10:00:00Z",
                     "cpu": {"usageCoreNanoSeconds": node_cpu},
                     "memory": {"workingSetBytes": 1000}},
            "pods": [{"podRef": {"namespace": "default", "name": "web", "uid": "u1"},
                      "containers": [{"name": "app", "runtime": "wasm",
                                      "cpu": {"usageCoreNanoSeconds": app_cpu},
                                      "memory": {"workingSetBytes": 64},
                                      "requests": {"inFlight": 3, "total": total}}]}]
        }))
        .unwrap()
    }

    #[test]
    fn rates_between_two_readings() {
        let (node, pods) = rates(
            "n1",
            &reading(1_000_000_000, 0, 10),
            &reading(3_000_000_000, 500_000_000, 30),
            Duration::from_secs(2),
        );
        let node = node.unwrap();
        assert_eq!(node.cpu_nanocores, 1_000_000_000);
        assert_eq!(node.memory_bytes, 1000);
        assert_eq!(pods.len(), 1);
        let c = &pods[0].containers[0];
        assert_eq!(c.cpu_nanocores, 250_000_000);
        assert_eq!(c.in_flight, Some(3));
        assert_eq!(c.requests_per_second, Some(10.0));
    }

    #[test]
    fn a_restarted_or_new_container_waits_for_its_second_reading() {
        // The counter went backwards: no rate this time.
        let (_, pods) = rates(
            "n1",
            &reading(1, 900, 10),
            &reading(2, 100, 1),
            Duration::from_secs(1),
        );
        assert!(pods.is_empty());
        let mut empty = reading(1, 0, 0);
        empty.pods.clear();
        let (_, pods) = rates("n1", &empty, &reading(2, 100, 1), Duration::from_secs(1));
        assert!(pods.is_empty());
    }
}
