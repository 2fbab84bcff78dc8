//! Reads every node agent's `/stats/summary` once per resolution period, all nodes at once,
//! each bounded by a timeout. A node that does not answer (or has gone) has no usage until it
//! answers twice again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::summary::Summary;
use super::UsageStore;
use crate::api::nodeproxy::{self, NodeEndpoint};
use crate::store::{ListScope, Store};

/// How often nodes are read: the window usage is averaged over. metrics-server's default is
/// 15 s; 10 s lets autoscalers react one period sooner at a negligible cost (one small JSON
/// answer per node). `skiff server --metrics-resolution` overrides it.
pub const DEFAULT_METRICS_RESOLUTION: Duration = Duration::from_secs(10);
/// How long one node's answer may take; a slower node is skipped this period.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest summary read from a node (thousands of pods fit in a few MiB).
const MAX_SUMMARY_BYTES: usize = 32 << 20;

/// Reads the nodes every `resolution` into `usage` until `shutdown`.
pub async fn run(
    store: Store,
    usage: UsageStore,
    token: String,
    resolution: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(resolution);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        scrape_all(&store, &usage, &token).await;
    }
}

async fn scrape_all(store: &Store, usage: &UsageStore, token: &str) {
    let nodes = match store.list(&ListScope::new("core/nodes", None)).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list nodes to read their usage");
            return;
        }
    };
    let reads = nodes.iter().filter_map(|n| {
        let name = n.pointer("/metadata/name")?.as_str()?.to_string();
        let ep = NodeEndpoint::from_node(n)?;
        Some(async move {
            let read = tokio::time::timeout(DEFAULT_SCRAPE_TIMEOUT, fetch(&ep, token)).await;
            let read = match read {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {DEFAULT_SCRAPE_TIMEOUT:?}")),
            };
            (name, read, Instant::now())
        })
    });
    let mut answered = HashSet::new();
    for (name, read, taken) in futures::future::join_all(reads).await {
        match read {
            Ok(summary) => {
                usage.record(&name, summary, taken);
                answered.insert(name);
            }
            Err(e) => tracing::debug!(node = %name, error = %e, "cannot read the node's usage"),
        }
    }
    for name in usage.known() {
        if !answered.contains(&name) {
            usage.forget(&name);
        }
    }
}

async fn fetch(ep: &NodeEndpoint, token: &str) -> Result<Summary, String> {
    let body = nodeproxy::get_bytes(ep, "/stats/summary", token, MAX_SUMMARY_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("unreadable summary: {e}"))
}
