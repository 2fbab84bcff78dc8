//! From the nodes' counters to one tick's [`Sample`]: the differences since the previous
//! tick, per source (a Wasm container, or one node's activator for a Service).

use std::collections::HashMap;
use std::time::Instant;

use super::decide::{Sample, DEFAULT_TICK};
use crate::usage::requests::Counter;

/// The previous tick's counters of one workload.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    prev: HashMap<String, (u64, u64)>,
    at: Option<Instant>,
}

/// Samples closer together than this are not taken: a reconcile right after another (its
/// own write, a Service change) would divide a few counts by milliseconds.
pub const MIN_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

impl Meter {
    /// How long until the next sample is due (zero: now).
    pub fn due_in(&self, now: Instant) -> std::time::Duration {
        self.at.map_or(std::time::Duration::ZERO, |at| {
            MIN_SAMPLE_INTERVAL.saturating_sub(now.duration_since(at))
        })
    }

    /// The sample since the previous call. The first call only takes the baseline (counters
    /// that ran before the control plane started are not a burst); a source first seen later
    /// is new (a pod that just started), so all of its counts are recent.
    pub fn measure(&mut self, counters: &[Counter], now: Instant) -> Sample {
        let first = self.at.is_none();
        let dt = self
            .at
            .map_or(DEFAULT_TICK, |at| now.duration_since(at))
            .as_secs_f64()
            .max(1e-3);
        let (mut requests, mut busy, mut in_flight, mut held) = (0u64, 0u64, 0u64, 0u64);
        let mut next = HashMap::with_capacity(counters.len());
        for c in counters {
            let (prev_requests, prev_busy) = match self.prev.get(&c.key) {
                Some(p) => *p,
                None if first => (c.requests, c.busy_nanos),
                None => (0, 0),
            };
            // A counter that went back restarted: all of it is new.
            let delta = |now: u64, prev: u64| if now >= prev { now - prev } else { now };
            requests += delta(c.requests, prev_requests);
            busy += delta(c.busy_nanos, prev_busy);
            in_flight += c.in_flight;
            held += c.held;
            next.insert(c.key.clone(), (c.requests, c.busy_nanos));
        }
        self.prev = next;
        self.at = Some(now);
        let average = busy as f64 / 1e9 / dt;
        Sample {
            concurrency: average.max(in_flight as f64),
            rps: requests as f64 / dt,
            held,
            active: requests > 0 || in_flight > 0 || held > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(key: &str, requests: u64, busy_ms: u64, in_flight: u64) -> Counter {
        Counter {
            key: key.into(),
            held: 0,
            in_flight,
            requests,
            busy_nanos: busy_ms * 1_000_000,
        }
    }

    #[test]
    fn differences_per_source_with_a_baseline_first() {
        let t0 = Instant::now();
        let mut m = Meter::default();
        let s = m.measure(&[c("a", 1000, 50_000, 0)], t0);
        assert!(
            !s.active && s.rps == 0.0,
            "the baseline is not traffic: {s:?}"
        );
        let t1 = t0 + Duration::from_secs(2);
        let s = m.measure(&[c("a", 1100, 52_000, 1), c("b", 20, 1_000, 0)], t1);
        assert_eq!(s.rps, 60.0);
        // 3 s of request time over 2 s: concurrency 1.5.
        assert!((s.concurrency - 1.5).abs() < 1e-9, "{s:?}");
        assert!(s.active);
        // A restarted source counts from zero.
        let s = m.measure(&[c("a", 10, 0, 0)], t1 + Duration::from_secs(1));
        assert_eq!(s.rps, 10.0);
    }
}
