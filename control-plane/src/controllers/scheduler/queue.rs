//! The scheduling queue (kube-scheduler's): an active queue ordered by priority then age, and
//! the unschedulable pods. A cluster change (node added or changed, a pod freeing room or
//! landing somewhere) moves unschedulable pods back to active once their backoff has passed;
//! a periodic flush retries the ones no event woke up.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::podinfo::PodInfo;

/// Backoff after a pod's first failed attempt (kube-scheduler's `podInitialBackoffSeconds`).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Backoff doubles per failed attempt up to this (`podMaxBackoffSeconds`).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod no event woke up is retried after this long (kube-scheduler waits
/// 5 min; our change detection is coarser, so a shorter bound costs little).
pub const DEFAULT_UNSCHEDULABLE_MAX: Duration = Duration::from_secs(60);

type Order = (Reverse<i64>, String, u64, String);

#[derive(Debug)]
struct Parked {
    since: Instant,
    backoff_until: Instant,
    /// A change happened while the pod was backing off: retry when the backoff ends.
    moved: bool,
    order: Order,
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    active: BTreeSet<Order>,
    in_active: HashMap<String, Order>,
    parked: HashMap<String, Parked>,
    attempts: HashMap<String, u32>,
    seq: u64,
}

impl SchedulingQueue {
    pub fn len_active(&self) -> usize {
        self.active.len()
    }

    pub fn len_parked(&self) -> usize {
        self.parked.len()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.in_active.contains_key(key) || self.parked.contains_key(key)
    }

    fn order(&mut self, info: &PodInfo) -> Order {
        self.seq += 1;
        (
            Reverse(info.priority),
            info.created.clone(),
            self.seq,
            info.key(),
        )
    }

    /// A pod waiting for a node: queued unless already queued or parked.
    pub fn add(&mut self, info: &PodInfo) {
        let key = info.key();
        if self.contains(&key) {
            return;
        }
        let o = self.order(info);
        self.activate(key, o);
    }

    fn activate(&mut self, key: String, o: Order) {
        self.active.insert(o.clone());
        self.in_active.insert(key, o);
    }

    /// The next pod to schedule.
    pub fn pop(&mut self) -> Option<String> {
        let o = self.active.pop_first()?;
        self.in_active.remove(&o.3);
        Some(o.3)
    }

    /// A failed attempt: the pod waits for a change (or, with `retry`, only for its backoff).
    pub fn park(&mut self, info: &PodInfo, retry: bool, now: Instant) {
        let key = info.key();
        self.forget_queued(&key);
        let n = self.attempts.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        let backoff = DEFAULT_INITIAL_BACKOFF
            .saturating_mul(1u32 << (*n - 1).min(16))
            .min(DEFAULT_MAX_BACKOFF);
        let order = self.order(info);
        self.parked.insert(
            key,
            Parked {
                since: now,
                backoff_until: now + backoff,
                moved: retry,
                order,
            },
        );
    }

    /// Something changed that may let parked pods fit: retry them after their backoff.
    pub fn move_all(&mut self, now: Instant) {
        let ready: Vec<String> = self
            .parked
            .iter_mut()
            .filter_map(|(k, p)| {
                p.moved = true;
                (p.backoff_until <= now).then(|| k.clone())
            })
            .collect();
        for k in ready {
            if let Some(p) = self.parked.remove(&k) {
                self.activate(k, p.order);
            }
        }
    }

    /// Activates parked pods whose time has come; returns when to look again.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let due: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| {
                p.backoff_until <= now && (p.moved || now >= p.since + DEFAULT_UNSCHEDULABLE_MAX)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(p) = self.parked.remove(&k) {
                self.activate(k, p.order);
            }
        }
        self.parked
            .values()
            .map(|p| {
                if p.moved {
                    p.backoff_until
                } else {
                    (p.since + DEFAULT_UNSCHEDULABLE_MAX).max(p.backoff_until)
                }
            })
            .min()
    }

    fn forget_queued(&mut self, key: &str) {
        if let Some(o) = self.in_active.remove(key) {
            self.active.remove(&o);
        }
        self.parked.remove(key);
    }

    /// The pod is bound or gone.
    pub fn remove(&mut self, key: &str) {
        self.forget_queued(key);
        self.attempts.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, prio: i64, created: &str) -> PodInfo {
        PodInfo::from_pod(
            &json!({"metadata": {"name": name, "namespace": "d", "creationTimestamp": created},
            "spec": {"priority": prio, "containers": []}}),
        )
    }

    #[test]
    fn priority_then_age() {
        let mut q = SchedulingQueue::default();
        q.add(&pod("old", 0, "2024-01-01T00:00:00Z"));
        q.add(&pod("new", 0, "2024-01-02T00:00:00Z"));
        q.add(&pod("vip", 10, "2024-01-03T00:00:00Z"));
        q.add(&pod("old", 0, "2024-01-01T00:00:00Z"));
        assert_eq!(q.pop().as_deref(), Some("d/vip"));
        assert_eq!(q.pop().as_deref(), Some("d/old"));
        assert_eq!(q.pop().as_deref(), Some("d/new"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn parked_pods_wait_for_changes_and_backoff() {
        let mut q = SchedulingQueue::default();
        let p = pod("p", 0, "t");
        let t0 = Instant::now();
        q.park(&p, false, t0);
        // Re-adding a parked pod (a status update) does not requeue it.
        q.add(&p);
        assert_eq!(q.pop(), None);
        // A change during the backoff retries it when the backoff ends.
        q.move_all(t0);
        assert_eq!(q.pop(), None);
        assert_eq!(q.tick(t0), Some(t0 + DEFAULT_INITIAL_BACKOFF));
        q.tick(t0 + DEFAULT_INITIAL_BACKOFF);
        assert_eq!(q.pop().as_deref(), Some("d/p"));
        // Second failure: 2 s backoff; no change: the periodic flush.
        q.park(&p, false, t0);
        q.move_all(t0 + Duration::from_secs(1));
        assert_eq!(q.pop(), None);
        q.move_all(t0 + Duration::from_secs(2));
        assert_eq!(q.pop().as_deref(), Some("d/p"));
        q.park(&p, false, t0);
        assert_eq!(
            q.tick(t0 + Duration::from_secs(5)),
            Some(t0 + DEFAULT_UNSCHEDULABLE_MAX)
        );
        q.tick(t0 + DEFAULT_UNSCHEDULABLE_MAX);
        assert_eq!(q.len_active(), 1);
        q.remove("d/p");
        assert_eq!(q.len_active() + q.len_parked(), 0);
    }
}
