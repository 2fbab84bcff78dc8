//! What a Wasm container uses, counted by the runtime itself (no cgroup holds a component, its
//! guests run on the agent's threads): the CPU time its guests spent running, the linear
//! memory its live instances hold, and for HTTP components the requests in flight and served.
//! The agent's stats endpoint reports it (`kubectl top`, autoscaling).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One Wasm container's counters; shared by its instances.
#[derive(Debug, Default)]
pub struct Usage {
    cpu_nanos: AtomicU64,
    memory_bytes: AtomicU64,
    in_flight: AtomicU64,
    requests: AtomicU64,
    busy_nanos: AtomicU64,
}

/// A reading of [`Usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageSnapshot {
    /// CPU time the guests spent running, in total (a counter).
    pub cpu_nanos: u64,
    /// Linear memory the live instances hold now.
    pub memory_bytes: u64,
    /// HTTP requests being answered now.
    pub in_flight: u64,
    /// HTTP requests answered or being answered, in total (a counter).
    pub requests: u64,
    /// The answered requests' durations added up (a counter): its growth over a window,
    /// divided by the window, is the average concurrency (Knative's measure).
    pub busy_nanos: u64,
}

impl Usage {
    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            cpu_nanos: self.cpu_nanos.load(Ordering::Relaxed),
            memory_bytes: self.memory_bytes.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
        }
    }

    fn add_cpu(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn memory_grew(&self, bytes: usize) {
        self.memory_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn memory_released(&self, bytes: usize) {
        // Never below zero, whatever the order of updates.
        let _ = self
            .memory_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some(m.saturating_sub(bytes as u64))
            });
    }

    /// Counts a request until the returned guard is dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone(), Instant::now())
    }
}

/// A request in flight (see [`Usage::request`]).
pub(crate) struct InFlight(Arc<Usage>, Instant);

impl Drop for InFlight {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        let _ = self
            .0
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

/// A guest's run, its time in `poll` counted as CPU time: a guest only runs while its future
/// is polled, and a guest waiting on I/O or a timer is not being polled.
pub(crate) struct Timed<F> {
    inner: Pin<Box<F>>,
    usage: Arc<Usage>,
}

impl<F: Future> Timed<F> {
    pub(crate) fn new(inner: F, usage: Arc<Usage>) -> Self {
        Timed {
            inner: Box::pin(inner),
            usage,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let out = self.inner.as_mut().poll(cx);
        self.usage.add_cpu(started.elapsed());
        out
    }
}

/// Which container a [`Usage`] belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
}

/// The node's running Wasm containers' usage. Entries are weak: a container's counters go
/// when its instances and server do, and a restarted container registers new ones.
#[derive(Debug, Clone, Default)]
pub struct UsageRegistry(Arc<Mutex<HashMap<ContainerRef, Weak<Usage>>>>);

impl UsageRegistry {
    /// New counters for `container`, listed until every holder drops them.
    pub fn register(&self, container: ContainerRef) -> Arc<Usage> {
        let usage = Arc::new(Usage::default());
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, u| u.strong_count() > 0);
        map.insert(container, Arc::downgrade(&usage));
        usage
    }

    /// A reading of every live container's counters, in container order.
    pub fn snapshot(&self) -> Vec<(ContainerRef, UsageSnapshot)> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, u| u.strong_count() > 0);
        let mut out: Vec<_> = map
            .iter()
            .filter_map(|(c, u)| Some((c.clone(), u.upgrade()?.snapshot())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_memory_and_never_underflows() {
        let u = Arc::new(Usage::default());
        let a = u.request();
        let b = u.request();
        assert_eq!(u.snapshot().in_flight, 2);
        drop(a);
        drop(b);
        let s = u.snapshot();
        assert_eq!((s.in_flight, s.requests), (0, 2));
        u.memory_grew(64 << 10);
        u.memory_released(128 << 10);
        assert_eq!(u.snapshot().memory_bytes, 0);
    }

    #[test]
    fn the_registry_lists_live_containers_only() {
        let reg = UsageRegistry::default();
        let c = |name: &str| ContainerRef {
            namespace: "default".into(),
            pod: "web".into(),
            pod_uid: "u1".into(),
            container: name.into(),
        };
        let a = reg.register(c("a"));
        let b = reg.register(c("b"));
        a.memory_grew(10);
        assert_eq!(reg.snapshot().len(), 2);
        drop(b);
        let snap = reg.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].0.container, "a");
        assert_eq!(snap[0].1.memory_bytes, 10);
    }

    #[tokio::test]
    async fn time_in_poll_is_cpu_time() {
        let u = Arc::new(Usage::default());
        Timed::new(
            async {
                let until = Instant::now() + Duration::from_millis(20);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                // Waiting is not running.
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
            u.clone(),
        )
        .await;
        let cpu = Duration::from_nanos(u.snapshot().cpu_nanos);
        assert!(cpu >= Duration::from_millis(20), "{cpu:?}");
        assert!(cpu < Duration::from_millis(50), "{cpu:?}");
    }
}
