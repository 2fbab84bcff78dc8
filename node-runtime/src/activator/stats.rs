//! What the activator counts per Service, for the control plane's autoscaler: connections held
//! (waiting for a ready endpoint), in flight (held or forwarded, not yet closed), accepted in
//! total, and the closed ones' durations added up (their growth over a window is the average
//! concurrency). A Service's first held connection also wakes the node's request-stats stream
//! at once, so the autoscaler scales from zero without waiting for the next report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// A Service by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One Service's counters.
#[derive(Debug, Default)]
pub struct ServiceCounters {
    held: AtomicU64,
    in_flight: AtomicU64,
    requests: AtomicU64,
    busy_nanos: AtomicU64,
    /// When the current cold start began (the first connection held while none was).
    cold_since: Mutex<Option<Instant>>,
}

/// A reading of one Service's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceSnapshot {
    pub held: u64,
    pub in_flight: u64,
    pub requests: u64,
    pub busy_nanos: u64,
}

impl ServiceCounters {
    pub fn snapshot(&self) -> ServiceSnapshot {
        ServiceSnapshot {
            held: self.held.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
        }
    }

    /// Counts a connection until the guard drops.
    pub(crate) fn connection(self: &Arc<Self>) -> Active {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Active(self.clone(), Instant::now())
    }

    /// Holds a connection, unless `max` are held already. The first hold of a cold start
    /// notes when it began.
    pub(crate) fn hold(self: &Arc<Self>, max: u64) -> Option<Held> {
        let prev = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        if prev == 0 {
            let mut since = self.cold_since.lock().unwrap_or_else(|p| p.into_inner());
            since.get_or_insert_with(Instant::now);
        }
        Some(Held(self.clone()))
    }

    /// The cold start's beginning, once: the first forwarded held connection takes it.
    pub(crate) fn take_cold_start(&self) -> Option<Instant> {
        self.cold_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

fn decrement(counter: &AtomicU64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(1))
    });
}

/// A connection in flight.
pub(crate) struct Active(Arc<ServiceCounters>, Instant);

impl Drop for Active {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        decrement(&self.0.in_flight);
    }
}

/// A connection held.
pub(crate) struct Held(Arc<ServiceCounters>);

impl Drop for Held {
    fn drop(&mut self) {
        decrement(&self.0.held);
    }
}

/// Every Service's counters on this node, and the demand signal.
#[derive(Debug, Clone, Default)]
pub struct ActivatorStats {
    services: Arc<Mutex<BTreeMap<ServiceRef, Arc<ServiceCounters>>>>,
    demand: Arc<Notify>,
}

impl ActivatorStats {
    /// The counters of `service` (created on first use; one entry per Service ever seen).
    pub(crate) fn service(&self, service: &ServiceRef) -> Arc<ServiceCounters> {
        let mut map = self.services.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(service.clone()).or_default().clone()
    }

    /// Forgets Services that are gone (and have nothing in flight).
    pub(crate) fn retain(&self, keep: impl Fn(&ServiceRef) -> bool) {
        let mut map = self.services.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|s, c| keep(s) || c.in_flight.load(Ordering::Relaxed) > 0);
    }

    /// A reading of every Service's counters, in Service order.
    pub fn snapshot(&self) -> Vec<(ServiceRef, ServiceSnapshot)> {
        let map = self.services.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(s, c)| (s.clone(), c.snapshot())).collect()
    }

    /// Someone waits: report now.
    pub(crate) fn signal_demand(&self) {
        self.demand.notify_one();
    }

    /// Resolves at the next demand signal (one that came while nobody waited counts).
    pub async fn demand(&self) {
        self.demand.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_bounded_and_counters_settle() {
        let stats = ActivatorStats::default();
        let web = ServiceRef {
            namespace: "default".into(),
            name: "web".into(),
        };
        let c = stats.service(&web);
        let a = c.connection();
        let h1 = c.hold(2).unwrap();
        let h2 = c.hold(2).unwrap();
        assert!(c.hold(2).is_none(), "a third hold is over the bound");
        assert!(c.take_cold_start().is_some());
        assert!(c.take_cold_start().is_none(), "taken once");
        let s = c.snapshot();
        assert_eq!((s.held, s.in_flight, s.requests), (2, 1, 1));
        drop((h1, h2, a));
        let s = stats.snapshot()[0].1;
        assert_eq!((s.held, s.in_flight, s.requests), (0, 0, 1));
        stats.retain(|_| false);
        assert!(stats.snapshot().is_empty());
    }
}
