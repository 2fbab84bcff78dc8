//! A work queue of object keys, as client-go's and kube-runtime's: a key is queued at most
//! once, a key being reconciled is never handed out again until `done`, and a key added while
//! it is being reconciled runs again afterwards. Delayed adds (requeue-after, error backoff)
//! wait in a timer list.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::store::ObjectKey;

/// First retry delay after a failed reconcile; doubles per consecutive failure.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(200);
/// Longest retry delay (client-go's default limiter caps at 1000 s; a minute keeps a
/// single-node cluster responsive after transient store errors).
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    ready: VecDeque<ObjectKey>,
    /// Keys in `ready` (or to be re-queued once their reconcile ends).
    dirty: HashSet<ObjectKey>,
    processing: HashSet<ObjectKey>,
    /// Delayed keys by due time (the counter keeps equal instants apart).
    delayed: BTreeMap<(Instant, u64), ObjectKey>,
    seq: u64,
    failures: HashMap<ObjectKey, u32>,
}

#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
}

impl WorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain collections behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now (no-op when it is already queued).
    pub fn add(&self, key: ObjectKey) {
        let mut st = self.lock();
        if st.dirty.insert(key.clone()) && !st.processing.contains(&key) {
            st.ready.push_back(key);
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: ObjectKey, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        st.delayed.insert((Instant::now() + delay, seq), key);
        drop(st);
        self.notify.notify_one();
    }

    /// Queues `key` after a delay that doubles with each consecutive failure.
    pub fn add_failed(&self, key: ObjectKey) {
        let n = {
            let mut st = self.lock();
            let n = st.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = DEFAULT_RETRY_INITIAL
            .saturating_mul(
                1u32.checked_shl(n.saturating_sub(1).min(20))
                    .unwrap_or(u32::MAX),
            )
            .min(DEFAULT_RETRY_MAX);
        self.add_after(key, delay);
    }

    /// Clears the failure count of `key` (after a successful reconcile).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().failures.remove(key);
    }

    /// Moves due delayed keys to the ready queue; returns when the next one is due.
    fn promote(&self) -> Option<Instant> {
        let mut st = self.lock();
        let now = Instant::now();
        while let Some((&(due, seq), _)) = st.delayed.iter().next() {
            if due > now {
                return Some(due);
            }
            if let Some(key) = st.delayed.remove(&(due, seq)) {
                if st.dirty.insert(key.clone()) && !st.processing.contains(&key) {
                    st.ready.push_back(key);
                }
            }
        }
        None
    }

    /// The next key to reconcile, waiting for one; marks it as processing. Returns `None`
    /// after `timeout` with nothing to do, so callers can check for shutdown.
    pub async fn next(&self, timeout: Duration) -> Option<ObjectKey> {
        let give_up = Instant::now() + timeout;
        loop {
            let next_due = self.promote();
            {
                let mut st = self.lock();
                if let Some(key) = st.ready.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    return Some(key);
                }
            }
            let now = Instant::now();
            if now >= give_up {
                return None;
            }
            let until = next_due.map_or(give_up, |d| d.min(give_up));
            let _ =
                tokio::time::timeout(until.saturating_duration_since(now), self.notify.notified())
                    .await;
        }
    }

    /// Marks the reconcile of `key` finished; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &ObjectKey) {
        let mut st = self.lock();
        st.processing.remove(key);
        if st.dirty.contains(key) {
            st.ready.push_back(key.clone());
            drop(st);
            self.notify.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        let st = self.lock();
        st.ready.len() + st.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str) -> ObjectKey {
        ObjectKey::new("apps/replicasets", "default", n)
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_handed_out_twice_at_once() {
        let q = WorkQueue::new();
        q.add(k("a"));
        q.add(k("a"));
        q.add(k("b"));
        assert_eq!(q.next(Duration::from_millis(10)).await, Some(k("a")));
        q.add(k("a")); // while processing: held back
        assert_eq!(q.next(Duration::from_millis(10)).await, Some(k("b")));
        assert_eq!(q.next(Duration::from_millis(10)).await, None);
        q.done(&k("a"));
        assert_eq!(q.next(Duration::from_millis(10)).await, Some(k("a")));
        q.done(&k("a"));
        q.done(&k("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn delayed_and_failed_keys_come_back_later() {
        let q = WorkQueue::new();
        q.add_after(k("late"), Duration::from_millis(50));
        let t = Instant::now();
        assert_eq!(q.next(Duration::from_secs(2)).await, Some(k("late")));
        assert!(t.elapsed() >= Duration::from_millis(45));
        q.done(&k("late"));
        q.add_failed(k("late"));
        q.add_failed(k("late")); // second failure: 400 ms
        let t = Instant::now();
        assert_eq!(q.next(Duration::from_secs(2)).await, Some(k("late")));
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }
}
