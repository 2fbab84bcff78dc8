//! Change events, the persisted change log, and watchers that replay it then follow live events.

use std::collections::VecDeque;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use super::{read_revision, ListScope, ObjectKey, StoreError, CHANGES};

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
        }
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

/// Reads the logged changes after `from` whose key starts with `prefix`. Fails with `Gone` when
/// changes after `from` have already been pruned from the log.
pub(crate) fn read_history(
    db: &Database,
    prefix: &str,
    from: u64,
) -> Result<VecDeque<Arc<StoreEvent>>, StoreError> {
    let txn = db.begin_read()?;
    let current = read_revision(&txn)?;
    let changes = txn.open_table(CHANGES)?;
    let mut out = VecDeque::new();
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
    for entry in changes.range(from + 1..)? {
        let (rev, bytes) = entry?;
        let record: ChangeRecord = serde_json::from_slice(bytes.value())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !record.k.starts_with(prefix) {
            continue;
        }
        let Some(key) = ObjectKey::decode(&record.k) else {
            continue;
        };
        out.push_back(Arc::new(StoreEvent {
            revision: rev.value(),
            kind: record.t,
            key,
            object: record.o,
            prev: record.p,
        }));
    }
    Ok(out)
}

/// Delivers the changes of one scope in revision order: first the logged backlog, then live.
/// A watcher that falls behind the live broadcast catches up from the change log, so it is
/// told `Gone` only when the log no longer holds its position.
pub struct Watcher {
    rx: broadcast::Receiver<Arc<StoreEvent>>,
    backlog: VecDeque<Arc<StoreEvent>>,
    last: u64,
    scope: ListScope,
    store: super::Store,
}

impl Watcher {
    pub(crate) fn new(
        rx: broadcast::Receiver<Arc<StoreEvent>>,
        backlog: VecDeque<Arc<StoreEvent>>,
        from: u64,
        scope: ListScope,
        store: super::Store,
    ) -> Self {
        Watcher {
            rx,
            backlog,
            last: from,
            scope,
            store,
        }
    }

    /// The next change in scope. `Gone` when this watcher fell behind further than the change
    /// log reaches (re-list); `Closed` when the store shut down.
    pub async fn next(&mut self) -> Result<Arc<StoreEvent>, StoreError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.last = e.revision;
                return Ok(e);
            }
            match self.next_live().await {
                Err(StoreError::Gone { .. }) => {
                    // Behind the broadcast: read the log from where this watcher stands.
                    let fresh = self.store.watch(self.scope.clone(), self.last).await?;
                    self.rx = fresh.rx;
                    self.backlog = fresh.backlog;
                }
                other => return other,
            }
        }
    }

    async fn next_live(&mut self) -> Result<Arc<StoreEvent>, StoreError> {
        loop {
            match self.rx.recv().await {
                Ok(e) => {
                    if e.revision <= self.last {
                        continue;
                    }
                    // Out-of-scope changes still advance the revision this watch has seen,
                    // so bookmarks carry the newest revision.
                    self.last = e.revision;
                    if self.scope.contains(&e.key) {
                        return Ok(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(StoreError::Gone {
                        requested: self.last,
                        oldest: self.last + 1,
                    })
                }
                Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
            }
        }
    }

    /// The revision of the last change delivered (or the starting revision).
    pub fn last_revision(&self) -> u64 {
        self.last
    }
}
