//! The request-driven autoscaler's arithmetic, Knative's (`pkg/autoscaler/scaling`): from
//! one sample per tick (average concurrency or request rate of a Deployment's pods and of the
//! activators in front of it), the replicas it needs. A stable window averages out noise; a
//! panic window ten times shorter reacts to bursts, and while in panic the count never goes
//! down; changes are bounded by the ready pods times the maximum scale-up and scale-down
//! rates; a scale-down only happens once the lower count held for the scale-down delay; and a
//! workload whose minimum is zero goes to zero after receiving nothing for that delay. At zero,
//! any held request scales it up at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often a scaled-up workload is re-evaluated (Knative's tick is 2 s; the nodes report
/// every second, so sampling each report halves the reaction time at no cost).
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// The window the stable average is taken over (Knative's default).
pub const DEFAULT_STABLE_WINDOW: Duration = Duration::from_secs(60);
/// The panic window as a share of the stable window (Knative's default: 10 %, so 6 s).
pub const DEFAULT_PANIC_WINDOW_PERCENT: f64 = 10.0;
/// Panic when the panic window wants this many times the ready pods (Knative: 200 %).
pub const DEFAULT_PANIC_THRESHOLD: f64 = 2.0;
/// At most this many times the ready pods in one step up (Knative's default).
pub const DEFAULT_MAX_SCALE_UP_RATE: f64 = 1000.0;
/// At least the ready pods divided by this in one step down (Knative's default).
pub const DEFAULT_MAX_SCALE_DOWN_RATE: f64 = 2.0;
/// The share of the target concurrency the autoscaler aims at, leaving headroom for bursts
/// while new pods start (Knative's default 70 %). Request-rate targets are used as given.
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;

/// What the autoscaler scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// In-flight requests per pod (`target-concurrency`).
    Concurrency,
    /// Requests per second per pod (`target-rps`).
    Rps,
}

/// One workload's settings (its annotations with the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub min: u32,
    pub max: Option<u32>,
    pub metric: Metric,
    /// Per pod, in the metric's unit (utilization applied).
    pub target: f64,
    pub scale_down_delay: Duration,
    pub stable_window: Duration,
    pub panic_window: Duration,
}

/// What one tick measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Average requests in flight over the tick.
    pub concurrency: f64,
    /// Requests per second over the tick.
    pub rps: f64,
    /// Connections an activator holds for a ready endpoint now.
    pub held: u64,
    /// Any request arrived, was in flight or held during the tick.
    pub active: bool,
}

/// The decision of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: u32,
    pub reason: String,
    pub panic: bool,
}

/// One workload's history.
#[derive(Debug, Clone)]
pub struct Scaler {
    samples: VecDeque<(Instant, f64)>,
    panic_since: Option<Instant>,
    panic_max: u32,
    /// Recent wanted counts, for the scale-down delay.
    recent: VecDeque<(Instant, u32)>,
    last_active: Instant,
}

impl Scaler {
    /// A fresh history: the workload counts as active now, so it is not scaled to zero
    /// before a whole scale-down delay has passed.
    pub fn new(now: Instant) -> Self {
        Scaler {
            samples: VecDeque::new(),
            panic_since: None,
            panic_max: 0,
            recent: VecDeque::new(),
            last_active: now,
        }
    }

    fn average(&self, window: Duration, now: Instant) -> f64 {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= window)
            .map(|(_, v)| *v)
            .collect();
        if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    }

    /// The replicas for `current` (of which `ready` are ready) after `sample`.
    pub fn decide(
        &mut self,
        s: &Settings,
        sample: &Sample,
        current: u32,
        ready: u32,
        now: Instant,
    ) -> Decision {
        let value = match s.metric {
            Metric::Concurrency => sample.concurrency,
            Metric::Rps => sample.rps,
        };
        self.samples.push_back((now, value));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > s.stable_window)
        {
            self.samples.pop_front();
        }
        if sample.active || sample.held > 0 {
            self.last_active = now;
        }
        let clamp = |n: u32| {
            let n = n.max(s.min);
            s.max.map_or(n, |max| n.min(max))
        };
        let target = s.target.max(f64::MIN_POSITIVE);
        let unit = match s.metric {
            Metric::Concurrency => "concurrency",
            Metric::Rps => "requests/s",
        };

        if current == 0 {
            if sample.held > 0 || sample.active {
                // Enough pods for the waiting connections at the target concurrency (one for a
                // request-rate target: a rate needs time to measure); panic mode takes it on.
                let wanted = match s.metric {
                    Metric::Concurrency => (sample.held as f64 / target).ceil() as u32,
                    Metric::Rps => 1,
                };
                let n = clamp(wanted.max(1));
                self.panic_since = None;
                self.recent.clear();
                self.recent.push_back((now, n));
                return Decision {
                    replicas: n,
                    reason: format!(
                        "{} request(s) waiting at zero; {unit} target {:.1} per pod",
                        sample.held, s.target
                    ),
                    panic: false,
                };
            }
            return Decision {
                replicas: clamp(0),
                reason: "no traffic".into(),
                panic: false,
            };
        }

        let stable = self.average(s.stable_window, now);
        let panic = self.average(s.panic_window, now);
        let ready_f = f64::from(ready.max(1));
        let up = (ready_f * DEFAULT_MAX_SCALE_UP_RATE).ceil() as u32;
        let down = (ready_f / DEFAULT_MAX_SCALE_DOWN_RATE).floor() as u32;
        let bound = |n: f64| (n.ceil() as u32).clamp(down, up.max(down));
        let want_stable = bound(stable / target);
        let want_panic = bound(panic / target);

        let panic_ratio = panic / target / ready_f;
        match self.panic_since {
            None if panic_ratio >= DEFAULT_PANIC_THRESHOLD => {
                self.panic_since = Some(now);
                self.panic_max = ready;
            }
            Some(since)
                if panic_ratio < DEFAULT_PANIC_THRESHOLD
                    && now.duration_since(since) >= s.stable_window =>
            {
                self.panic_since = None;
                self.panic_max = 0;
            }
            _ => {}
        }
        let in_panic = self.panic_since.is_some();
        let mut want = if in_panic {
            let n = want_panic.max(self.panic_max);
            self.panic_max = n;
            n
        } else {
            want_stable
        };

        // A lower count applies only once it held for the scale-down delay (counted from the
        // first sight too: a new Deployment keeps its initial scale that long).
        if self.recent.is_empty() {
            self.recent.push_back((now, current));
        }
        self.recent.push_back((now, want));
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > s.scale_down_delay)
        {
            self.recent.pop_front();
        }
        want = self.recent.iter().map(|(_, n)| *n).max().unwrap_or(want);

        let idle = now.duration_since(self.last_active);
        if s.min == 0 && idle >= s.scale_down_delay {
            self.recent.clear();
            self.panic_since = None;
            return Decision {
                replicas: 0,
                reason: format!("no requests for {}s", idle.as_secs()),
                panic: false,
            };
        }
        Decision {
            replicas: clamp(want.max(1)),
            reason: format!(
                "{unit} {stable:.1} (stable) / {panic:.1} (panic) against a target of {:.1} per pod{}",
                s.target,
                if in_panic { "; panic mode" } else { "" }
            ),
            panic: in_panic,
        }
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
