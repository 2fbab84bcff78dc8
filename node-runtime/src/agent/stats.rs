//! What the node and its containers use, for the control plane's metrics (`kubectl top`,
//! HorizontalPodAutoscalers, the request-driven autoscaler). Served by the agent endpoint at
//! `/stats/summary`, shaped after kubelet's Summary API: cumulative CPU time
//! (`usageCoreNanoSeconds`; the reader computes rates between two readings) and the working set
//! now. Wasm containers are counted by the runtime ([`crate::wasm::UsageRegistry`]), which also
//! counts their HTTP requests; Linux containers come from CRI's `ListContainerStats` (cgroups).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cri::api;
use crate::oci::{OciRuntime, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::wasm::UsageRegistry;

/// The CRI label naming a container inside its pod.
const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    /// When the readings were taken (RFC 3339).
    pub time: String,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
}

#[derive(Debug, Serialize, PartialEq, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub usage_core_nano_seconds: u64,
}

#[derive(Debug, Serialize, PartialEq, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub working_set_bytes: u64,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    pub containers: Vec<ContainerStats>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    /// `wasm` or `oci`.
    pub runtime: &'static str,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    /// HTTP requests (Wasm HTTP components; the runtime's server sees each one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestStats>,
}

#[derive(Debug, Serialize, PartialEq, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    pub in_flight: u64,
    /// Requests answered or being answered since the container started (a counter).
    pub total: u64,
}

/// Where the readings come from.
#[derive(Clone)]
pub struct StatsSource {
    pub node_name: String,
    pub wasm: UsageRegistry,
    pub oci: Option<OciRuntime>,
    /// The activator's per-Service counters (`/stats/requests`).
    pub activator: crate::activator::ActivatorStats,
}

impl StatsSource {
    /// Reads everything now. A node whose containerd does not answer still reports its Wasm
    /// containers and itself.
    pub async fn summary(&self) -> Summary {
        let mut pods: BTreeMap<(String, String, String), Vec<ContainerStats>> = BTreeMap::new();
        for (c, u) in self.wasm.snapshot() {
            pods.entry((c.namespace, c.pod, c.pod_uid))
                .or_default()
                .push(ContainerStats {
                    name: c.container,
                    runtime: "wasm",
                    cpu: CpuStats {
                        usage_core_nano_seconds: u.cpu_nanos,
                    },
                    memory: MemoryStats {
                        working_set_bytes: u.memory_bytes,
                    },
                    requests: Some(RequestStats {
                        in_flight: u.in_flight,
                        total: u.requests,
                    }),
                });
        }
        if let Some(oci) = &self.oci {
            match oci
                .cri
                .list_container_stats(api::ListContainerStatsRequest::default())
                .await
            {
                Ok(resp) => {
                    for s in resp.stats {
                        if let Some((pod, c)) = oci_container(s) {
                            pods.entry(pod).or_default().push(c);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "no container stats from containerd"),
            }
        }
        let (cpu, memory) = tokio::task::spawn_blocking(node_usage)
            .await
            .unwrap_or_default();
        Summary {
            node: NodeStats {
                node_name: self.node_name.clone(),
                time: jiff::Timestamp::now().to_string(),
                cpu,
                memory,
            },
            pods: pods
                .into_iter()
                .map(|((namespace, name, uid), mut containers)| {
                    containers.sort_by(|a, b| a.name.cmp(&b.name));
                    PodStats {
                        pod_ref: PodRef {
                            namespace,
                            name,
                            uid,
                        },
                        containers,
                    }
                })
                .collect(),
        }
    }
}

type PodKey = (String, String, String);

/// A Linux container's reading, with the pod it belongs to (by the labels Skiff sets).
fn oci_container(s: api::ContainerStats) -> Option<(PodKey, ContainerStats)> {
    let attrs = s.attributes?;
    let label = |k: &str| attrs.labels.get(k).cloned();
    let pod = (
        label(LABEL_POD_NAMESPACE)?,
        label(LABEL_POD_NAME)?,
        label(LABEL_POD_UID)?,
    );
    let name = label(LABEL_CONTAINER_NAME)
        .or_else(|| attrs.metadata.map(|m| m.name))
        .unwrap_or_default();
    let cpu = s
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    let memory = s
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    Some((
        pod,
        ContainerStats {
            name,
            runtime: "oci",
            cpu: CpuStats {
                usage_core_nano_seconds: cpu,
            },
            memory: MemoryStats {
                working_set_bytes: memory,
            },
            requests: None,
        },
    ))
}

/// The node's CPU time (all cores, busy) and working set (`MemTotal - MemAvailable`), from
/// `/proc`; zero where it cannot be read.
fn node_usage() -> (CpuStats, MemoryStats) {
    let cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| busy_nanos(&s))
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| working_set(&s))
        .unwrap_or(0);
    (
        CpuStats {
            usage_core_nano_seconds: cpu,
        },
        MemoryStats {
            working_set_bytes: mem,
        },
    )
}

/// The busy CPU time in `/proc/stat`'s `cpu` line (user, nice, system, irq, softirq, steal;
/// not idle or iowait), in nanoseconds.
fn busy_nanos(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(busy.saturating_mul(1_000_000_000 / hz))
}

fn working_set(meminfo: &str) -> Option<u64> {
    let kib = |key: &str| -> Option<u64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(kib("MemTotal:")?.saturating_sub(kib("MemAvailable:")?) * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        // SAFETY: as above.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(busy_nanos(stat), Some(161 * (1_000_000_000 / hz)));
        let mem = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n";
        assert_eq!(working_set(mem), Some(600 * 1024));
    }

    #[tokio::test]
    async fn wasm_containers_are_grouped_by_pod() {
        let wasm = UsageRegistry::default();
        let c = |pod: &str, name: &str| crate::wasm::ContainerRef {
            namespace: "default".into(),
            pod: pod.into(),
            pod_uid: format!("{pod}-uid"),
            container: name.into(),
        };
        let _a = wasm.register(c("web", "app"));
        let _b = wasm.register(c("web", "side"));
        let _c = wasm.register(c("api", "app"));
        let source = StatsSource {
            node_name: "n1".into(),
            wasm,
            oci: None,
            activator: Default::default(),
        };
        let s = source.summary().await;
        assert_eq!(s.node.node_name, "n1");
        let names: Vec<_> = s
            .pods
            .iter()
            .map(|p| (p.pod_ref.name.as_str(), p.containers.len()))
            .collect();
        assert_eq!(names, vec![("api", 1), ("web", 2)]);
        assert_eq!(s.pods[1].containers[0].runtime, "wasm");
        assert!(s.pods[1].containers[0].requests.is_some());
    }
}
