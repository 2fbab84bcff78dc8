//! The live part of the change stream: the newest committed events, held in memory for the
//! watchers that are following, and bounded by bytes as well as by count.
//!
//! A broadcast channel keeps its last N events until newer ones overwrite them, so a few
//! multi-megabyte objects written and deleted stayed in memory long after every watcher had
//! seen them. This ring instead drops an event as soon as every registered watcher has passed
//! it (checked on every push and by [`spawn_trimmer`] once a second), and at once when the ring
//! is over its byte or count budget. A watcher that finds its next event already dropped reads
//! it from the change log on disk ([`super::watch::read_history`]), so the budgets bound memory,
//! never correctness.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::keys::ListScope;
use super::watch::StoreEvent;

/// How often events every watcher has passed are dropped when no write comes to do it.
pub const DEFAULT_RING_TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// What a watcher at revision `after` finds in the ring.
#[derive(Debug)]
pub(crate) enum Next {
    /// The next event in the watcher's scope.
    Event(Arc<StoreEvent>),
    /// No event in scope after `after`; the newest revision the ring has seen (out-of-scope
    /// changes still advance a watcher, so its bookmarks carry the newest revision).
    Idle(u64),
    /// Events after `after` were dropped from the ring: read them from the change log.
    Behind,
    /// The store has shut down.
    Closed,
}

struct Held {
    event: Arc<StoreEvent>,
    bytes: usize,
}

struct State {
    events: VecDeque<Held>,
    bytes: usize,
    /// Every event after this revision is still in `events` (or not yet pushed).
    covers_after: u64,
    /// The newest revision pushed (or the store's revision when it opened).
    newest: u64,
    /// Where each live watcher stands (the revision it has consumed).
    cursors: Vec<Weak<AtomicU64>>,
    closed: bool,
}

/// The ring of live events. Shared by the store's writer (which pushes) and its watchers.
pub(crate) struct EventRing {
    state: Mutex<State>,
    notify: Notify,
    max_events: usize,
    max_bytes: usize,
}

impl EventRing {
    /// An empty ring for a store whose newest revision is `revision`.
    pub fn new(revision: u64, max_events: usize, max_bytes: usize) -> Self {
        EventRing {
            state: Mutex::new(State {
                events: VecDeque::new(),
                bytes: 0,
                covers_after: revision,
                newest: revision,
                cursors: Vec::new(),
                closed: false,
            }),
            notify: Notify::new(),
            max_events: max_events.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the ring inconsistent (every change
        // is one push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a committed event (`bytes`: its size as stored, the budget's measure) and wakes
    /// the watchers.
    pub fn push(&self, event: Arc<StoreEvent>, bytes: usize) {
        {
            let mut st = self.lock();
            st.newest = st.newest.max(event.revision);
            st.bytes += bytes;
            st.events.push_back(Held { event, bytes });
            self.trim_locked(&mut st);
        }
        self.notify.notify_waiters();
    }

    /// Drops what every watcher has passed, then what is over the budgets.
    pub fn trim(&self) {
        let mut st = self.lock();
        self.trim_locked(&mut st);
    }

    fn trim_locked(&self, st: &mut State) {
        let mut slowest = u64::MAX;
        st.cursors.retain(|c| match c.upgrade() {
            Some(c) => {
                slowest = slowest.min(c.load(Ordering::Acquire));
                true
            }
            None => false,
        });
        while let Some(front) = st.events.front() {
            let passed = front.event.revision <= slowest;
            let over = st.events.len() > self.max_events || st.bytes > self.max_bytes;
            if !(passed || over) {
                break;
            }
            if let Some(old) = st.events.pop_front() {
                st.bytes -= old.bytes;
                st.covers_after = st.covers_after.max(old.event.revision);
            }
        }
    }

    /// Marks the store closed and wakes every watcher.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Registers a watcher standing at `revision`; it moves the returned cursor as it goes.
    pub fn register(&self, revision: u64) -> Arc<AtomicU64> {
        let cursor = Arc::new(AtomicU64::new(revision));
        self.lock().cursors.push(Arc::downgrade(&cursor));
        cursor
    }

    /// The first event in `scope` after revision `after`.
    pub fn next_after(&self, after: u64, scope: &ListScope) -> Next {
        let st = self.lock();
        if after < st.covers_after {
            return Next::Behind;
        }
        let start = st.events.partition_point(|h| h.event.revision <= after);
        for held in st.events.range(start..) {
            if scope.contains(&held.event.key) {
                return Next::Event(held.event.clone());
            }
        }
        if st.closed {
            return Next::Closed;
        }
        Next::Idle(st.newest.max(after))
    }

    /// Waits for the first event in `scope` after `after` (see [`Next`]).
    pub async fn wait_after(&self, after: u64, scope: &ListScope) -> Next {
        let mut after = after;
        loop {
            // Registered before looking, so a push between the look and the wait still wakes.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.next_after(after, scope) {
                Next::Idle(newest) => {
                    if newest > after {
                        return Next::Idle(newest);
                    }
                    notified.await;
                    after = newest;
                }
                other => return other,
            }
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let st = self.lock();
        (st.events.len(), st.bytes)
    }
}

/// Trims `ring` every [`DEFAULT_RING_TRIM_INTERVAL`] until the store closes or is dropped.
pub(crate) fn spawn_trimmer(ring: Weak<EventRing>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DEFAULT_RING_TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(ring) = ring.upgrade() else { return };
            if ring.lock().closed {
                return;
            }
            ring.trim();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventType, ObjectKey};
    use serde_json::json;

    fn event(revision: u64, name: &str) -> Arc<StoreEvent> {
        Arc::new(StoreEvent::new(
            revision,
            EventType::Added,
            ObjectKey::new("core/configmaps", "default", name),
            json!({}),
            None,
        ))
    }

    fn everything() -> ListScope {
        ListScope::new("core/configmaps", None)
    }

    #[test]
    fn events_every_watcher_passed_are_dropped() {
        let ring = EventRing::new(0, 100, 1 << 20);
        let cursor = ring.register(0);
        ring.push(event(1, "a"), 10);
        ring.push(event(2, "b"), 10);
        assert_eq!(ring.held(), (2, 20));
        cursor.store(1, Ordering::Release);
        ring.trim();
        assert_eq!(ring.held(), (1, 10));
        drop(cursor);
        ring.trim();
        assert_eq!(ring.held(), (0, 0), "no watcher left: nothing is kept");
        assert!(matches!(ring.next_after(0, &everything()), Next::Behind));
        assert!(matches!(ring.next_after(2, &everything()), Next::Idle(2)));
    }

    #[test]
    fn the_byte_and_count_budgets_bound_a_slow_watcher() {
        let ring = EventRing::new(0, 3, 25);
        let _slow = ring.register(0);
        ring.push(event(1, "a"), 10);
        ring.push(event(2, "b"), 10);
        assert_eq!(ring.held(), (2, 20));
        ring.push(event(3, "c"), 10);
        assert_eq!(ring.held(), (2, 20), "over 25 bytes: the oldest goes");
        assert!(matches!(ring.next_after(0, &everything()), Next::Behind));
        assert!(matches!(ring.next_after(1, &everything()), Next::Event(e) if e.revision == 2));
        for r in 4..=6 {
            ring.push(event(r, "d"), 1);
        }
        assert_eq!(ring.held().0, 3, "at most three events");
        ring.push(event(7, "big"), 100);
        assert_eq!(
            ring.held(),
            (0, 0),
            "an event over the budget alone is not kept"
        );
        assert!(matches!(ring.next_after(6, &everything()), Next::Behind));
    }

    #[test]
    fn scopes_filter_and_out_of_scope_events_advance_the_watcher() {
        let ring = EventRing::new(5, 100, 1 << 20);
        let _c = ring.register(5);
        ring.push(
            Arc::new(StoreEvent::new(
                6,
                EventType::Added,
                ObjectKey::new("core/configmaps", "other", "x"),
                json!({}),
                None,
            )),
            1,
        );
        ring.push(event(7, "y"), 1);
        let ns = ListScope::new("core/configmaps", Some("default"));
        assert!(matches!(ring.next_after(5, &ns), Next::Event(e) if e.revision == 7));
        let secrets = ListScope::new("core/secrets", None);
        assert!(matches!(ring.next_after(5, &secrets), Next::Idle(7)));
    }

    #[tokio::test]
    async fn waiting_watchers_wake_on_push_and_on_close() {
        let ring = Arc::new(EventRing::new(0, 100, 1 << 20));
        let _c = ring.register(0);
        let r = ring.clone();
        let waiter = tokio::spawn(async move { r.wait_after(0, &everything()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ring.push(event(1, "a"), 1);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(got, Next::Event(e) if e.revision == 1));
        let r = ring.clone();
        let waiter = tokio::spawn(async move { r.wait_after(1, &everything()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ring.close();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(got, Next::Closed));
    }
}
