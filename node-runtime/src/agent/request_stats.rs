//! The node's request counts for the control plane's request-driven autoscaler, streamed:
//! `/stats/requests` answers with one JSON report per line, one now, then one every
//! [`DEFAULT_REQUEST_REPORT_INTERVAL`] and one at once whenever the activator starts holding
//! connections for a Service (so a scale from zero does not wait for the next tick).
//!
//! A report holds counters, not rates (the reader takes differences): per Wasm HTTP
//! container its requests in flight, in total, and their durations added up; per activated
//! Service the activator's connections held, in flight, in total, and their durations.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::activator::ActivatorStats;
use crate::wasm::UsageRegistry;

/// How often a report goes out without demand: the autoscaler's sampling period (Knative's
/// queue-proxies report every second too).
pub const DEFAULT_REQUEST_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// One report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestReport {
    /// When it was read (RFC 3339, the node's clock).
    pub time: String,
    pub pods: Vec<PodRequests>,
    pub services: Vec<ServiceRequests>,
}

/// A Wasm HTTP container's counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodRequests {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container: String,
    pub in_flight: u64,
    pub requests: u64,
    pub busy_nanos: u64,
}

/// The activator's counters of one Service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequests {
    pub namespace: String,
    pub name: String,
    pub held: u64,
    pub in_flight: u64,
    pub requests: u64,
    pub busy_nanos: u64,
}

/// Reads the counters now.
pub fn report(wasm: &UsageRegistry, activator: &ActivatorStats) -> RequestReport {
    RequestReport {
        time: jiff::Timestamp::now().to_string(),
        pods: wasm
            .snapshot()
            .into_iter()
            .filter(|(_, u)| u.requests > 0 || u.in_flight > 0)
            .map(|(c, u)| PodRequests {
                namespace: c.namespace,
                name: c.pod,
                uid: c.pod_uid,
                container: c.container,
                in_flight: u.in_flight,
                requests: u.requests,
                busy_nanos: u.busy_nanos,
            })
            .collect(),
        services: activator
            .snapshot()
            .into_iter()
            .map(|(s, c)| ServiceRequests {
                namespace: s.namespace,
                name: s.name,
                held: c.held,
                in_flight: c.in_flight,
                requests: c.requests,
                busy_nanos: c.busy_nanos,
            })
            .collect(),
    }
}

/// The endless stream of report lines, ending at `shutdown`.
pub fn stream(
    wasm: UsageRegistry,
    activator: ActivatorStats,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let state = (wasm, activator, shutdown, true);
    futures::stream::unfold(state, |(wasm, activator, mut shutdown, first)| async move {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(DEFAULT_REQUEST_REPORT_INTERVAL) => {}
                _ = activator.demand() => {}
                _ = shutdown.changed() => return None,
            }
        }
        if *shutdown.borrow() {
            return None;
        }
        let mut line = serde_json::to_vec(&report(&wasm, &activator)).unwrap_or_default();
        line.push(b'\n');
        Some((
            Ok(bytes::Bytes::from(line)),
            (wasm, activator, shutdown, false),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn reports_at_once_then_on_demand() {
        let activator = ActivatorStats::default();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let mut lines = Box::pin(stream(UsageRegistry::default(), activator.clone(), rx));
        let first = lines.next().await.unwrap().unwrap();
        let r: RequestReport = serde_json::from_slice(&first).unwrap();
        assert!(r.services.is_empty() && r.pods.is_empty());
        activator.signal_demand();
        let started = std::time::Instant::now();
        lines.next().await.unwrap().unwrap();
        assert!(started.elapsed() < DEFAULT_REQUEST_REPORT_INTERVAL);
    }
}
