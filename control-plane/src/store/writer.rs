//! The single writer thread: folds concurrent write requests into one durable commit.

use std::sync::Arc;

use redb::{Database, ReadableTable};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::ring::EventRing;
use super::watch::{ChangeRecord, EventType, StoreEvent};
use super::{
    decode, object_revision, ObjectKey, Precondition, StoreError, CHANGES, DEFAULT_MAX_BATCH, META,
    META_REVISION, OBJECTS,
};

pub(crate) enum Op {
    Create {
        key: ObjectKey,
        object: Value,
    },
    Update {
        key: ObjectKey,
        object: Value,
        precondition: Precondition,
    },
    Delete {
        key: ObjectKey,
        precondition: Precondition,
    },
    Shutdown,
}

pub(crate) struct WriteRequest {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Value, StoreError>>,
}

impl WriteRequest {
    pub fn shutdown() -> Self {
        let (reply, _) = oneshot::channel();
        WriteRequest {
            op: Op::Shutdown,
            reply,
        }
    }
}

pub(crate) fn spawn(
    db: Arc<Database>,
    mut rx: mpsc::UnboundedReceiver<WriteRequest>,
    ring: Arc<EventRing>,
    history: u64,
    durability: redb::Durability,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("skiff-store-writer".into())
        .spawn(move || {
            let mut stopping = false;
            while !stopping {
                let Some(first) = rx.blocking_recv() else {
                    break;
                };
                let mut batch = vec![first];
                while batch.len() < DEFAULT_MAX_BATCH {
                    match rx.try_recv() {
                        Ok(req) => batch.push(req),
                        Err(_) => break,
                    }
                }
                let mut work = Vec::with_capacity(batch.len());
                for req in batch {
                    if matches!(req.op, Op::Shutdown) {
                        stopping = true;
                    } else {
                        work.push(req);
                    }
                }
                if !work.is_empty() {
                    commit_batch(&db, work, &ring, history, durability);
                }
            }
            // Anything still queued after shutdown is answered, not dropped silently.
            rx.close();
            while let Ok(req) = rx.try_recv() {
                let _ = req.reply.send(Err(StoreError::Closed));
            }
            ring.close();
        })
        .map_err(|e| StoreError::Db(format!("cannot start the store writer thread: {e}")))
}

/// A write that took effect: the stored object, the event it produced and the event's size
/// as logged.
type Applied = (Value, Arc<StoreEvent>, usize);

/// Applies one batch in one transaction. Each request succeeds or fails on its own
/// preconditions; all successes become durable together, then every caller is answered.
fn commit_batch(
    db: &Database,
    batch: Vec<WriteRequest>,
    ring: &EventRing,
    history: u64,
    durability: redb::Durability,
) {
    let mut results: Vec<Result<Applied, StoreError>> = Vec::new();
    let outcome = (|| -> Result<(), StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(durability)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut changes = txn.open_table(CHANGES)?;
            let mut meta = txn.open_table(META)?;
            let mut revision = meta.get(META_REVISION)?.map(|v| v.value()).unwrap_or(0);
            for req in &batch {
                let result = apply(&mut objects, &req.op, revision + 1);
                match result {
                    Ok((value, event)) => {
                        revision += 1;
                        let record = ChangeRecord::from_event(&event);
                        let bytes = serde_json::to_vec(&record)
                            .map_err(|e| StoreError::Db(e.to_string()))?;
                        changes.insert(revision, bytes.as_slice())?;
                        results.push(Ok((value, Arc::new(event), bytes.len())));
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
            meta.insert(META_REVISION, revision)?;
            // Keep the change log bounded.
            let floor = revision.saturating_sub(history);
            loop {
                let oldest = changes.first()?.map(|(k, _)| k.value());
                match oldest {
                    Some(rev) if rev <= floor => {
                        changes.pop_first()?;
                    }
                    _ => break,
                }
            }
        }
        txn.commit()?;
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            for (req, result) in batch.into_iter().zip(results) {
                match result {
                    Ok((value, event, size)) => {
                        ring.push(event, size);
                        let _ = req.reply.send(Ok(value));
                    }
                    Err(e) => {
                        let _ = req.reply.send(Err(e));
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed; the batch was not written");
            for req in batch {
                let _ = req.reply.send(Err(StoreError::Db(e.to_string())));
            }
        }
    }
}

fn set_revision(object: &mut Value, revision: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".to_string(),
            Value::String(revision.to_string()),
        );
    }
}

fn check(current: &Value, pre: &Precondition) -> Result<(), StoreError> {
    if let Some(rv) = pre.resource_version {
        if object_revision(current) != Some(rv) {
            return Err(StoreError::Conflict);
        }
    }
    if let Some(uid) = &pre.uid {
        let actual = current
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if actual != uid {
            return Err(StoreError::UidMismatch {
                expected: uid.clone(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(())
}

type ObjectsTable<'a> = redb::Table<'a, &'static str, &'static [u8]>;

fn apply(
    objects: &mut ObjectsTable<'_>,
    op: &Op,
    revision: u64,
) -> Result<(Value, StoreEvent), StoreError> {
    match op {
        Op::Create { key, object } => {
            let k = key.encode();
            if objects.get(k.as_str())?.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            let mut object = object.clone();
            set_revision(&mut object, revision);
            let bytes = serde_json::to_vec(&object).map_err(|e| StoreError::Db(e.to_string()))?;
            objects.insert(k.as_str(), bytes.as_slice())?;
            let event = StoreEvent::new(
                revision,
                EventType::Added,
                key.clone(),
                object.clone(),
                None,
            );
            Ok((object, event))
        }
        Op::Update {
            key,
            object,
            precondition,
        } => {
            let k = key.encode();
            let current = match objects.get(k.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::NotFound),
            };
            check(&current, precondition)?;
            let mut object = object.clone();
            set_revision(&mut object, revision);
            let bytes = serde_json::to_vec(&object).map_err(|e| StoreError::Db(e.to_string()))?;
            objects.insert(k.as_str(), bytes.as_slice())?;
            let event = StoreEvent::new(
                revision,
                EventType::Modified,
                key.clone(),
                object.clone(),
                Some(current),
            );
            Ok((object, event))
        }
        Op::Delete { key, precondition } => {
            let k = key.encode();
            let current = match objects.get(k.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::NotFound),
            };
            check(&current, precondition)?;
            objects.remove(k.as_str())?;
            let mut object = current.clone();
            set_revision(&mut object, revision);
            let event = StoreEvent::new(
                revision,
                EventType::Deleted,
                key.clone(),
                object.clone(),
                Some(current),
            );
            Ok((object, event))
        }
        Op::Shutdown => Err(StoreError::Closed),
    }
}
