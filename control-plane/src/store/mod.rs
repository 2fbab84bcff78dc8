//! Durable object store on redb.
//!
//! Objects are JSON documents keyed by (resource, namespace, name). One global revision counter
//! is every object's `resourceVersion`. All writes go through one writer thread ([`writer`]) that
//! groups concurrent requests into a single `Durability::Immediate` commit; every caller gets its
//! reply only after that commit is on disk. Every change is also appended to a bounded change log
//! in the same transaction, so watches can resume from any revision still in it, across restarts.
//! The same log lets a paged list read later pages at its first page's revision ([`pages`]).

mod continuation;
mod keys;
mod pages;
mod ring;
mod watch;
mod writer;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use continuation::ContinueKey;
pub use keys::{ListScope, ObjectKey};
pub use pages::{ContinueFrom, ListError, Page, PageRequest, ReadAt};
pub use watch::{EventType, StoreEvent, Watcher};
use writer::{Op, WriteRequest};

/// Object documents: encoded key -> JSON bytes.
pub(crate) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// Change log: revision -> JSON of the change (type, key, object, previous object).
pub(crate) const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Small metadata values (the current revision).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_REVISION: &str = "revision";

/// redb's page cache. Its default (1 GiB) let a server that had churned through a thousand
/// Deployments hold ~400 MiB of cached pages (objects and the change log's previous versions);
/// the hot pages fit in far less, and the OS page cache serves the rest at memory speed.
pub const DEFAULT_STORE_CACHE_BYTES: usize = 8 << 20;
/// How many changes the log keeps for watches. Kubernetes keeps ~5 minutes of etcd history;
/// 10,000 changes covers far more than that at this cluster size while bounding disk use.
pub const DEFAULT_WATCH_HISTORY: u64 = 10_000;
/// The most live events held in memory for watchers that have not passed them yet. A watcher
/// that falls further behind catches up from the change log (on disk), so this bounds memory,
/// not correctness: each event is an object and its previous version, and a broadcast that
/// kept its last 4,096 held ~300 MiB once a thousand Deployments had churned through it.
pub const DEFAULT_WATCH_BUFFER: usize = 256;
/// The most bytes (as stored: JSON of the object and its previous version) of live events held
/// for watchers that have not passed them yet. A count alone let eight 2.5 MB objects written
/// and deleted stay pinned long after every watcher had seen them; now events go once every
/// watcher has passed them, and this bound only cuts off a watcher that stops reading. It must
/// cover an ordinary burst (a few maximum-size writes at once): a watcher cut off reads its own
/// copy of every change from the log, so cutting off every follower at once would multiply the
/// memory instead of bounding it.
pub const DEFAULT_WATCH_BUFFER_BYTES: usize = 64 << 20;
/// How much of the change log (bytes as stored) a watcher that is behind reads at once, so
/// resuming from an old resourceVersion replays in bounded batches instead of loading every
/// change since then.
pub const DEFAULT_WATCH_CATCHUP_BYTES: usize = 4 << 20;
/// The most write requests folded into one commit; bounds the latency one batch adds.
pub const DEFAULT_MAX_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    #[error("precondition failed: UID in precondition: {expected}, UID in object meta: {actual}")]
    UidMismatch { expected: String, actual: String },
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("storage error: {0}")]
    Db(String),
    #[error("stored object is not valid JSON: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

macro_rules! db_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Tuning of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Changes kept in the log for watches to resume from (and paged lists to stay
    /// consistent over).
    pub watch_history: u64,
    /// The key list continue tokens are signed with; `None`: a random one, so tokens last
    /// only as long as the process (the server passes the one kept in its data dir).
    pub continue_key: Option<ContinueKey>,
    /// Commits without fsync: acknowledged writes are lost on a crash. Only for the crash
    /// test's negative control (`skiff server --unsafe-non-durable-store`), which must see
    /// the loss to prove it can.
    pub non_durable: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            watch_history: DEFAULT_WATCH_HISTORY,
            continue_key: None,
            non_durable: false,
        }
    }
}

/// Conditions a write must meet against the stored object.
#[derive(Debug, Clone, Default)]
pub struct Precondition {
    pub resource_version: Option<u64>,
    pub uid: Option<String>,
}

/// A consistent list: the items and the revision they were read at.
#[derive(Debug)]
pub struct ListResult {
    pub items: Vec<Value>,
    pub revision: u64,
}

struct Inner {
    db: Arc<Database>,
    tx: mpsc::UnboundedSender<WriteRequest>,
    ring: Arc<ring::EventRing>,
    continue_key: ContinueKey,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the database file and starts the writer thread.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, StoreOptions::default()).await
    }

    pub async fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || -> Result<(Database, u64), StoreError> {
            let db = Database::builder()
                .set_cache_size(DEFAULT_STORE_CACHE_BYTES)
                .create(&path)?;
            // A new file's name is durable only once its directory is synced: without this a
            // power cut after the first start could lose the whole store file.
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::Db(format!("syncing {}: {e}", dir.display())))?;
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| StoreError::Db(e.to_string()))?;
            {
                txn.open_table(OBJECTS)?;
                txn.open_table(CHANGES)?;
                let mut meta = txn.open_table(META)?;
                if meta.get(META_REVISION)?.is_none() {
                    meta.insert(META_REVISION, 0)?;
                }
            }
            txn.commit()?;
            let revision = read_revision(&db.begin_read()?)?;
            Ok((db, revision))
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
        let (db, revision) = opened;
        let db = Arc::new(db);
        let ring = Arc::new(ring::EventRing::new(
            revision,
            DEFAULT_WATCH_BUFFER,
            DEFAULT_WATCH_BUFFER_BYTES,
        ));
        ring::spawn_trimmer(Arc::downgrade(&ring));
        let (tx, rx) = mpsc::unbounded_channel();
        let durability = if options.non_durable {
            tracing::warn!("the store commits without fsync (--unsafe-non-durable-store): a crash loses acknowledged writes");
            redb::Durability::None
        } else {
            redb::Durability::Immediate
        };
        let writer = writer::spawn(
            db.clone(),
            rx,
            ring.clone(),
            options.watch_history.max(1),
            durability,
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                tx,
                ring,
                continue_key: options.continue_key.unwrap_or_else(ContinueKey::random),
                writer: std::sync::Mutex::new(Some(writer)),
            }),
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Db(e.to_string()))?
    }

    /// The newest committed revision.
    pub async fn current_revision(&self) -> Result<u64, StoreError> {
        self.read(|db| {
            let txn = db.begin_read()?;
            read_revision(&txn)
        })
        .await
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        let k = key.encode();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(OBJECTS)?;
            match table.get(k.as_str())? {
                Some(v) => Ok(Some(decode(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Lists every object in scope, with the revision of the snapshot it was read from.
    pub async fn list(&self, scope: &ListScope) -> Result<ListResult, StoreError> {
        let prefix = scope.prefix();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let revision = read_revision(&txn)?;
            let table = txn.open_table(OBJECTS)?;
            let mut items = Vec::new();
            for entry in table.range(prefix.as_str()..)? {
                let (k, v) = entry?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                items.push(decode(v.value())?);
            }
            Ok(ListResult { items, revision })
        })
        .await
    }

    /// Verifies a list's continue token: it must be one this server signed, for `scope`.
    /// The error is the reason, as in Kubernetes' "continue key is not valid: REASON".
    pub fn verify_continue(&self, token: &str, scope: &ListScope) -> Result<ContinueFrom, String> {
        pages::verify(token, &self.inner.continue_key, scope)
    }

    /// One page of a list that keeps the items `filter` passes: up to `limit` of them in key
    /// order from the start of the scope or from where a continue token points, at the
    /// revision of the list's first page (see [`pages`]).
    pub async fn list_page<F>(&self, req: PageRequest, filter: F) -> Result<Page, ListError>
    where
        F: Fn(&Value) -> bool + Send + 'static,
    {
        let key = self.inner.continue_key.clone();
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || pages::read_page(&db, &key, &req, &filter))
            .await
            .map_err(|e| ListError::Store(StoreError::Db(e.to_string())))?
    }

    async fn submit(&self, op: Op) -> Result<Value, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(WriteRequest { op, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Creates the object if absent. Returns it with its new `resourceVersion`.
    pub async fn create(&self, key: ObjectKey, object: Value) -> Result<Value, StoreError> {
        self.submit(Op::Create { key, object }).await
    }

    /// Replaces an existing object, if the precondition holds.
    pub async fn update(
        &self,
        key: ObjectKey,
        object: Value,
        precondition: Precondition,
    ) -> Result<Value, StoreError> {
        self.submit(Op::Update {
            key,
            object,
            precondition,
        })
        .await
    }

    /// Removes an object, if the precondition holds. Returns the last state of the object,
    /// carrying the revision of the deletion.
    pub async fn delete(
        &self,
        key: ObjectKey,
        precondition: Precondition,
    ) -> Result<Value, StoreError> {
        self.submit(Op::Delete { key, precondition }).await
    }

    /// Starts a watch of `scope` delivering every change after revision `from` (`Gone` at
    /// once when the change log no longer reaches back to it).
    pub async fn watch(&self, scope: ListScope, from: u64) -> Result<Watcher, StoreError> {
        let history = self.history(&scope, from).await?;
        Ok(Watcher::new(history, from, scope, self.clone()))
    }

    /// The next batch of logged changes in `scope` after `from`.
    async fn history(&self, scope: &ListScope, from: u64) -> Result<watch::History, StoreError> {
        let prefix = scope.prefix();
        self.read(move |db| watch::read_history(db, &prefix, from, DEFAULT_WATCH_CATCHUP_BYTES))
            .await
    }

    fn ring(&self) -> &ring::EventRing {
        &self.inner.ring
    }

    /// Stops the writer after it has committed everything queued, and waits for it.
    pub async fn close(&self) {
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        // Closing the queue: the writer drains what is left, then exits.
        let _ = self.inner.tx.send(WriteRequest::shutdown());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

pub(crate) fn read_revision(txn: &redb::ReadTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(META_REVISION)?.map(|v| v.value()).unwrap_or(0))
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads `metadata.resourceVersion` as a revision number.
pub fn object_revision(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests;
