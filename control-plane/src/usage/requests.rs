//! Request counts from the node agents, for the request-driven autoscaler
//! (`controllers/autoscaler/`): the control plane follows each node's `/stats/requests`
//! stream (one JSON report per line, every second and at once when the node's activator starts
//! holding connections) and keeps each node's latest report. A report carries counters; the
//! autoscaler takes their differences. Reports with held connections also queue their
//! Services as demand, which wakes the autoscaler to scale from zero without waiting for a tick.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{watch, Notify};

use crate::api::nodeproxy::{self, NodeEndpoint};
use crate::store::{ListScope, Store};

/// How often the node list is read to follow new nodes and drop gone ones.
pub const DEFAULT_NODE_RESCAN: Duration = Duration::from_secs(2);
/// Pause before following a node's stream again after it ended or failed.
pub const DEFAULT_RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// A node whose last report is older than this counts as silent (its counts are ignored).
pub const DEFAULT_REPORT_STALENESS: Duration = Duration::from_secs(5);
/// The longest report line accepted (thousands of pods fit in well under this).
const MAX_LINE: usize = 16 << 20;

/// One report line (the agent's `agent::request_stats::RequestReport`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(default)]
    pub pods: Vec<PodCounters>,
    #[serde(default)]
    pub services: Vec<ServiceCounters>,
}

/// A Wasm HTTP container's counters.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCounters {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container: String,
    pub in_flight: u64,
    pub requests: u64,
    pub busy_nanos: u64,
}

/// A node activator's counters of one Service.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceCounters {
    pub namespace: String,
    pub name: String,
    pub held: u64,
    pub in_flight: u64,
    pub requests: u64,
    pub busy_nanos: u64,
}

/// Counters of one source (a container, or one node's activator for a Service), by a key
/// that stays the same across reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub held: u64,
    pub in_flight: u64,
    pub requests: u64,
    pub busy_nanos: u64,
}

/// Services (namespace, name) with connections held, not yet taken by the autoscaler, and
/// the signal that there are some.
type Demand = (Mutex<BTreeSet<(String, String)>>, Notify);

/// Every node's latest report, and the Services waiting at an activator.
#[derive(Debug, Clone, Default)]
pub struct RequestStore {
    nodes: Arc<RwLock<HashMap<String, (Instant, Report)>>>,
    demand: Arc<Demand>,
}

impl RequestStore {
    /// Takes node `node`'s new report.
    pub fn record(&self, node: &str, report: Report) {
        let waiting: Vec<(String, String)> = report
            .services
            .iter()
            .filter(|s| s.held > 0)
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_string(), (Instant::now(), report));
        if !waiting.is_empty() {
            self.demand
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(waiting);
            self.demand.1.notify_one();
        }
    }

    pub fn forget(&self, node: &str) {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
    }

    /// The Services (namespace, name) with connections held since the last call; waits for
    /// one when there is none.
    pub async fn demand(&self) -> Vec<(String, String)> {
        loop {
            let taken =
                std::mem::take(&mut *self.demand.0.lock().unwrap_or_else(|p| p.into_inner()));
            if !taken.is_empty() {
                return taken.into_iter().collect();
            }
            self.demand.1.notified().await;
        }
    }

    /// Reads the fresh reports.
    fn fresh<T>(&self, mut f: impl FnMut(&str, &Report) -> Option<T>) -> Vec<T> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter()
            .filter(|(_, (at, _))| at.elapsed() <= DEFAULT_REPORT_STALENESS)
            .filter_map(|(node, (_, r))| f(node, r))
            .collect()
    }

    /// The counters of a pod's Wasm HTTP containers.
    pub fn pod(&self, namespace: &str, uid: &str) -> Vec<Counter> {
        self.fresh(|_, r| {
            Some(
                r.pods
                    .iter()
                    .filter(|p| p.namespace == namespace && p.uid == uid)
                    .map(|p| Counter {
                        key: format!("pod/{}/{}", p.uid, p.container),
                        held: 0,
                        in_flight: p.in_flight,
                        requests: p.requests,
                        busy_nanos: p.busy_nanos,
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// Every node activator's counters of a Service.
    pub fn service(&self, namespace: &str, name: &str) -> Vec<Counter> {
        self.fresh(|node, r| {
            let s = r
                .services
                .iter()
                .find(|s| s.namespace == namespace && s.name == name)?;
            Some(Counter {
                key: format!("service/{node}/{namespace}/{name}"),
                held: s.held,
                in_flight: s.in_flight,
                requests: s.requests,
                busy_nanos: s.busy_nanos,
            })
        })
    }
}

/// Follows every node's request stream until `shutdown`.
pub async fn run(
    store: Store,
    requests: RequestStore,
    token: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut following: HashMap<String, (String, tokio::task::JoinHandle<()>)> = HashMap::new();
    loop {
        let nodes = match store.list(&ListScope::new("core/nodes", None)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list nodes to follow their request counts");
                Vec::new()
            }
        };
        let mut seen = std::collections::HashSet::new();
        for node in &nodes {
            let Some(name) = node.pointer("/metadata/name").and_then(|n| n.as_str()) else {
                continue;
            };
            let Some(ep) = NodeEndpoint::from_node(node) else {
                continue;
            };
            seen.insert(name.to_string());
            let id = format!("{}:{}/{}", ep.host, ep.port, ep.fingerprint);
            if following.get(name).is_some_and(|(known, _)| *known == id) {
                continue;
            }
            if let Some((_, task)) = following.remove(name) {
                task.abort();
            }
            let task = tokio::spawn(follow(
                name.to_string(),
                ep,
                token.clone(),
                requests.clone(),
                shutdown.clone(),
            ));
            following.insert(name.to_string(), (id, task));
        }
        following.retain(|name, (_, task)| {
            let keep = seen.contains(name);
            if !keep {
                task.abort();
                requests.forget(name);
            }
            keep
        });
        tokio::select! {
            _ = tokio::time::sleep(DEFAULT_NODE_RESCAN) => {}
            _ = shutdown.changed() => {
                for (_, (_, task)) in following {
                    task.abort();
                }
                return;
            }
        }
    }
}

/// Follows one node's stream, reconnecting after a pause when it ends.
async fn follow(
    node: String,
    ep: NodeEndpoint,
    token: String,
    requests: RequestStore,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match nodeproxy::get(&ep, "/stats/requests", &token).await {
            Ok(resp) => {
                let mut body = resp.into_body().into_data_stream();
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    let chunk = tokio::select! {
                        c = body.next() => c,
                        _ = shutdown.changed() => return,
                    };
                    let Some(Ok(chunk)) = chunk else { break };
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        match serde_json::from_slice::<Report>(&line) {
                            Ok(report) => requests.record(&node, report),
                            Err(e) => {
                                tracing::debug!(%node, error = %e, "unreadable request report")
                            }
                        }
                    }
                    if buf.len() > MAX_LINE {
                        tracing::debug!(%node, "request report too long; reconnecting");
                        break;
                    }
                }
            }
            Err(e) => tracing::debug!(%node, error = %e, "cannot follow the node's request counts"),
        }
        requests.forget(&node);
        tokio::select! {
            _ = tokio::time::sleep(DEFAULT_RECONNECT_PAUSE) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_give_counters_and_demand() {
        let store = RequestStore::default();
        let report: Report = serde_json::from_str(
            r#"{"time":"t","pods":[{"namespace":"default","name":"web-1","uid":"u1","container":"app","inFlight":2,"requests":10,"busyNanos":5}],
                "services":[{"namespace":"default","name":"web","held":3,"inFlight":3,"requests":3,"busyNanos":0}]}"#,
        )
        .unwrap();
        store.record("n1", report);
        assert_eq!(store.pod("default", "u1")[0].requests, 10);
        assert_eq!(store.service("default", "web")[0].held, 3);
        assert!(store.service("default", "other").is_empty());
        assert_eq!(
            store.demand().await,
            vec![("default".to_string(), "web".to_string())]
        );
        store.forget("n1");
        assert!(store.pod("default", "u1").is_empty());
    }
}
