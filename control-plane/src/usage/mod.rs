//! Resource usage of nodes and pods, as metrics-server keeps it: every resolution period the
//! control plane reads each node agent's `/stats/summary` (cumulative CPU time, working set,
//! and for Wasm HTTP components their requests) and keeps, per node and per pod, the rates
//! between the last two readings. `metrics.k8s.io` (`kubectl top`) and the autoscalers read
//! them from here; nothing is stored on disk (usage is re-read within one period after a
//! restart).
//!
//! - `summary.rs`: the agent's answer, as read here.
//! - `scrape.rs`: the loop that reads every node.
//! - `requests.rs`: the nodes' request counts for the request-driven autoscaler, streamed
//!   (every second, and at once when an activator holds connections).

pub mod requests;
mod scrape;
mod summary;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use requests::RequestStore;
pub use scrape::{run, DEFAULT_METRICS_RESOLUTION, DEFAULT_SCRAPE_TIMEOUT};
pub use summary::Summary;

/// What one node used over its last window.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUsage {
    pub name: String,
    /// When the newer reading was taken (RFC 3339, the agent's clock).
    pub timestamp: String,
    pub window: Duration,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// What one container used over its pod's last window.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
    /// HTTP requests in flight at the reading (Wasm HTTP components).
    pub in_flight: Option<u64>,
    /// HTTP requests per second over the window (Wasm HTTP components).
    pub requests_per_second: Option<f64>,
}

/// What one pod's containers used over its last window.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub timestamp: String,
    pub window: Duration,
    pub containers: Vec<ContainerUsage>,
}

impl PodUsage {
    pub fn cpu_nanocores(&self) -> u64 {
        self.containers.iter().map(|c| c.cpu_nanocores).sum()
    }

    pub fn memory_bytes(&self) -> u64 {
        self.containers.iter().map(|c| c.memory_bytes).sum()
    }
}

/// The latest usage of every node that answered, and of its pods.
#[derive(Debug, Clone, Default)]
pub struct UsageStore(Arc<RwLock<Readings>>);

#[derive(Debug, Default)]
struct Readings {
    nodes: HashMap<String, NodeReadings>,
}

/// A node's last reading and the usage computed from the one before it.
#[derive(Debug)]
struct NodeReadings {
    last: summary::Summary,
    taken: std::time::Instant,
    node: Option<NodeUsage>,
    pods: Vec<PodUsage>,
}

impl UsageStore {
    /// Every node with usage, by name.
    pub fn nodes(&self) -> Vec<NodeUsage> {
        let r = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = r.nodes.values().filter_map(|n| n.node.clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every pod with usage (in `namespace`, or all), by namespace and name.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<PodUsage> {
        let r = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = r
            .nodes
            .values()
            .flat_map(|n| n.pods.iter())
            .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    /// One pod's usage.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let r = self.0.read().unwrap_or_else(|p| p.into_inner());
        r.nodes
            .values()
            .flat_map(|n| n.pods.iter())
            .find(|p| p.namespace == namespace && p.name == name)
            .cloned()
    }

    /// Takes node `name`'s new reading, taken at `taken`: usage is computed against the
    /// previous one.
    pub(crate) fn record(&self, name: &str, reading: summary::Summary, taken: std::time::Instant) {
        let mut r = self.0.write().unwrap_or_else(|p| p.into_inner());
        let (node, pods) = match r.nodes.get(name) {
            Some(prev) => summary::rates(name, &prev.last, &reading, taken - prev.taken),
            None => (None, Vec::new()),
        };
        r.nodes.insert(
            name.to_string(),
            NodeReadings {
                last: reading,
                taken,
                node,
                pods,
            },
        );
    }

    /// Forgets nodes that are gone or did not answer.
    pub(crate) fn forget(&self, name: &str) {
        let mut r = self.0.write().unwrap_or_else(|p| p.into_inner());
        r.nodes.remove(name);
    }

    /// The names of the nodes with readings.
    pub(crate) fn known(&self) -> Vec<String> {
        let r = self.0.read().unwrap_or_else(|p| p.into_inner());
        r.nodes.keys().cloned().collect()
    }
}
