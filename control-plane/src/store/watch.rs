//! Change events, the persisted change log, and watchers that replay it then follow live
//! events ([`super::ring`]).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use std::sync::atomic::{AtomicU64, Ordering};

use super::ring::Next;
use super::{read_revision, ListScope, ObjectKey, StoreError, CHANGES};
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `prev` is the object before the change (for MODIFIED/DELETED), which
/// filtered watches need to tell "left the selection" from "never in it".
#[derive(Debug, Clone)]
pub struct StoreEvent {
    pub revision: u64,
    pub kind: EventType,
    pub key: ObjectKey,
    pub object: Value,
    pub prev: Option<Value>,
    /// `object` as JSON, made by the first watcher that sends it.
    encoded: OnceLock<Bytes>,
}

impl StoreEvent {
    pub fn new(
        revision: u64,
        kind: EventType,
        key: ObjectKey,
        object: Value,
        prev: Option<Value>,
    ) -> Self {
        StoreEvent {
            revision,
            kind,
            key,
            object,
            prev,
            encoded: OnceLock::new(),
        }
    }

    /// The object as JSON, encoded once however many watchers send it.
    pub fn object_json(&self) -> Bytes {
        self.encoded
            .get_or_init(|| {
                serde_json::to_vec(&self.object)
                    .map(Bytes::from)
                    .unwrap_or_default()
            })
            .clone()
    }
}

/// The on-disk form of a change in the log.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChangeRecord {
    t: EventType,
    k: String,
    o: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<Value>,
}

impl ChangeRecord {
    pub fn from_event(e: &StoreEvent) -> Self {
        ChangeRecord {
            t: e.kind,
            k: e.key.encode(),
            o: e.object.clone(),
            p: e.prev.clone(),
        }
    }
}

/// A batch of logged changes read for a watcher that is behind the live ring.
pub(crate) struct History {
    pub events: VecDeque<Arc<StoreEvent>>,
    /// The newest revision this read looked at (in scope or not): the watcher stands there
    /// once it has delivered `events`.
    pub scanned_to: u64,
}

/// Reads the logged changes after `from` whose key starts with `prefix`, stopping after
/// `max_bytes` of logged changes (at least one) so a watcher far behind catches up in bounded
/// batches. Fails with `Gone` when changes after `from` have already been pruned from the log.
pub(crate) fn read_history(
    db: &Database,
    prefix: &str,
    from: u64,
    max_bytes: usize,
) -> Result<History, StoreError> {
    let txn = db.begin_read()?;
    let current = read_revision(&txn)?;
    let changes = txn.open_table(CHANGES)?;
    let mut out = History {
        events: VecDeque::new(),
        scanned_to: from.max(current),
    };
    if from >= current {
        return Ok(out);
    }
    let oldest = changes
        .first()?
        .map(|(k, _)| k.value())
        .unwrap_or(current + 1);
    if from + 1 < oldest {
        return Err(StoreError::Gone {
            requested: from,
            oldest,
        });
    }
    let mut read = 0usize;
    for entry in changes.range(from + 1..)? {
        let (rev, bytes) = entry?;
        let rev = rev.value();
        if read >= max_bytes {
            out.scanned_to = rev - 1;
            break;
        }
        read += bytes.value().len();
        // Only the key is needed to skip a change out of scope.
        let head: ChangeKey = serde_json::from_slice(bytes.value())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !head.k.starts_with(prefix) {
            continue;
        }
        let record: ChangeRecord = serde_json::from_slice(bytes.value())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let Some(key) = ObjectKey::decode(&record.k) else {
            continue;
        };
        out.events.push_back(Arc::new(StoreEvent::new(
            rev, record.t, key, record.o, record.p,
        )));
    }
    Ok(out)
}

/// The key of a logged change, read without decoding its objects.
#[derive(Deserialize)]
struct ChangeKey {
    k: String,
}

/// Delivers the changes of one scope in revision order: from the live ring while it holds
/// what comes next, otherwise from the change log in bounded batches. It is told `Gone` only
/// when the log no longer holds its position.
pub struct Watcher {
    backlog: VecDeque<Arc<StoreEvent>>,
    /// Where the watcher stands once `backlog` is delivered.
    backlog_to: u64,
    last: u64,
    /// `last`, shared with the ring so it keeps what this watcher has not yet passed.
    cursor: Arc<AtomicU64>,
    scope: ListScope,
    store: super::Store,
}

impl Watcher {
    pub(crate) fn new(history: History, from: u64, scope: ListScope, store: super::Store) -> Self {
        let cursor = store.ring().register(from);
        Watcher {
            backlog: history.events,
            backlog_to: history.scanned_to,
            last: from,
            cursor,
            scope,
            store,
        }
    }

    fn advance(&mut self, revision: u64) {
        self.last = self.last.max(revision);
        self.cursor.store(self.last, Ordering::Release);
    }

    /// The next change in scope. `Gone` when this watcher fell behind further than the change
    /// log reaches (re-list); `Closed` when the store shut down.
    pub async fn next(&mut self) -> Result<Arc<StoreEvent>, StoreError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.advance(e.revision);
                return Ok(e);
            }
            self.advance(self.backlog_to);
            let ring = self.store.ring();
            match ring.wait_after(self.last, &self.scope).await {
                Next::Event(e) => {
                    self.advance(e.revision);
                    return Ok(e);
                }
                Next::Idle(newest) => self.advance(newest),
                Next::Behind => {
                    let history = self.store.history(&self.scope, self.last).await?;
                    self.backlog = history.events;
                    self.backlog_to = history.scanned_to;
                }
                Next::Closed => return Err(StoreError::Closed),
            }
        }
    }

    /// The revision of the last change delivered (or the starting revision).
    pub fn last_revision(&self) -> u64 {
        self.last
    }
}
