//! Paged lists, consistent at one revision.
//!
//! A page is read in one redb read transaction from the object table and the change log of
//! the same snapshot. At the newest revision the page is the object table's range from the
//! start key. At an older revision R (every page after the first, or
//! `resourceVersionMatch=Exact`) the changes logged after R within the key range are undone:
//! the first change after R to a key tells its state at R (an ADDED one: absent; a MODIFIED or
//! DELETED one: its logged previous object). When the log no longer reaches back to R the
//! page cannot be computed: `Expired`.
//!
//! Memory stays bounded by the page: the object table is scanned from the start key and only
//! items that pass the filter are kept, up to the limit; undoing keeps the keys (not the
//! objects) the log touched in range, and reads a previous object only when the scan reaches
//! its key.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};
use serde::Deserialize;
use serde_json::Value;

use super::continuation::{Continuation, ContinueKey};
use super::watch::EventType;
use super::{decode, read_revision, ListScope, StoreError, CHANGES, OBJECTS};

/// Which revision a list is read at (without a continue token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// The newest revision.
    Latest,
    /// The newest revision, which must be at least this one.
    NotOlderThan(u64),
    /// Exactly this revision (410 when the change log no longer reaches it).
    Exact(u64),
}

/// Where a continued list resumes: a verified continue token.
#[derive(Debug, Clone)]
pub struct ContinueFrom(pub(crate) Continuation);

/// One list request to the store.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub scope: ListScope,
    /// Ignored when `from` is given: the token's revision rules.
    pub at: ReadAt,
    pub from: Option<ContinueFrom>,
    /// The most items to return; `None`: all of them.
    pub limit: Option<usize>,
    /// Count the items after the page (`remainingItemCount`); only meaningful when the filter
    /// passes everything, as Kubernetes reports it only then.
    pub count_remaining: bool,
    /// Return the items as their stored JSON ([`Page::encoded`]) instead of decoded values,
    /// so a large list is never held as values. Items are decoded for the filter only when
    /// there is one: `count_remaining` means the filter passes everything.
    pub encoded: bool,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The items, unless the request asked for them `encoded`.
    pub items: Vec<Value>,
    /// The items as JSON documents, when the request asked for them `encoded`.
    pub encoded: Vec<Vec<u8>>,
    /// The revision the page was read at (every page of a list has the first page's).
    pub revision: u64,
    /// Present when more items may follow.
    pub continue_token: Option<String>,
    /// How many items follow this page at `revision` (when asked for and more follow).
    pub remaining_item_count: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token's revision is older than the change log: no consistent page can be made.
    /// `restart` continues from the same key at the newest revision (an inconsistent list).
    #[error("the continue token's revision {revision} is older than the change log")]
    ContinueExpired {
        revision: u64,
        restart: Option<String>,
    },
    /// An exact revision older than the change log.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// A revision the store has not reached.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLarge { requested: u64, current: u64 },
}

/// The state at the read revision of a key the log changed after it.
#[derive(Debug, Clone, Copy)]
struct Undo {
    /// The key held an object at the read revision.
    existed: bool,
    /// The first change after the read revision (its `prev` is the object then).
    change: u64,
}

/// The part of a logged change (`watch.rs`'s `ChangeRecord`) needed to undo it: the objects
/// are skipped, not decoded.
#[derive(Deserialize)]
struct ChangeHead {
    t: EventType,
    k: String,
}

/// A logged change's previous object.
#[derive(Deserialize)]
struct ChangePrev {
    #[serde(default)]
    p: Option<Value>,
}

/// Verifies a continue token for a list of `scope`.
pub(crate) fn verify(
    token: &str,
    key: &ContinueKey,
    scope: &ListScope,
) -> Result<ContinueFrom, String> {
    Continuation::decode(token, key, &scope.prefix()).map(ContinueFrom)
}

/// Reads one page in one read transaction.
pub(crate) fn read_page(
    db: &redb::Database,
    key: &ContinueKey,
    req: &PageRequest,
    filter: &dyn Fn(&Value) -> bool,
) -> Result<Page, ListError> {
    let prefix = req.scope.prefix();
    let txn = db.begin_read().map_err(StoreError::from)?;
    let current = read_revision(&txn)?;
    let (start, at) = match &req.from {
        Some(ContinueFrom(c)) => (
            c.start.clone(),
            match c.revision() {
                Some(rev) => ReadAt::Exact(rev),
                None => ReadAt::Latest,
            },
        ),
        None => (prefix.clone(), req.at),
    };
    let revision = match at {
        ReadAt::Latest => current,
        ReadAt::NotOlderThan(rev) | ReadAt::Exact(rev) if rev > current => {
            return Err(ListError::TooLarge {
                requested: rev,
                current,
            })
        }
        ReadAt::NotOlderThan(_) => current,
        ReadAt::Exact(rev) => rev,
    };
    let objects = txn.open_table(OBJECTS).map_err(StoreError::from)?;
    let changes = txn.open_table(CHANGES).map_err(StoreError::from)?;
    let undo = if revision < current {
        match undo_after(&changes, &prefix, &start, revision, current)? {
            Ok(undo) => undo,
            Err(oldest) => {
                return Err(match &req.from {
                    Some(_) => ListError::ContinueExpired {
                        revision,
                        restart: Some(Continuation::new(-1, &prefix, start).encode(key)),
                    },
                    None => ListError::Expired {
                        requested: revision,
                        oldest,
                    },
                })
            }
        }
    } else {
        BTreeMap::new()
    };

    let limit = req.limit.unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut encoded = Vec::new();
    let mut taken = 0usize;
    let mut last_key: Option<String> = None;
    let mut following: u64 = 0;
    let mut current_iter = objects
        .range(start.as_str()..)
        .map_err(StoreError::from)?
        .peekable();
    let mut undo_iter = undo.iter().peekable();
    loop {
        // The next key in order from either side; a key the log changed is taken from the log.
        let cur_key = match current_iter.peek() {
            Some(Ok((k, _))) if k.value().starts_with(prefix.as_str()) => {
                Some(k.value().to_string())
            }
            Some(Err(_)) => {
                let err = current_iter.next().and_then(Result::err);
                return Err(StoreError::from(err.expect("an error was peeked")).into());
            }
            _ => None,
        };
        let undo_key: Option<&String> = undo_iter.peek().map(|(k, _)| *k);
        let from_log = match (cur_key.as_deref(), undo_key) {
            (None, None) => break,
            (Some(c), Some(u)) => u.as_str() <= c,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        let (key, state) = if from_log {
            let (k, undo) = undo_iter.next().expect("peeked");
            if cur_key.as_deref() == Some(k.as_str()) {
                current_iter.next();
            }
            (k.clone(), Source::Undo(*undo))
        } else {
            let (_, v) = current_iter
                .next()
                .expect("peeked")
                .map_err(StoreError::from)?;
            (cur_key.expect("peeked"), Source::Current(v))
        };
        let exists = match &state {
            Source::Undo(u) => u.existed,
            Source::Current(_) => true,
        };
        if !exists {
            continue;
        }
        if taken >= limit {
            // The page is full; only whether (and how many) items follow is left to learn.
            following += 1;
            if !req.count_remaining {
                break;
            }
            continue;
        }
        let passed = match state {
            Source::Current(v) if req.encoded && req.count_remaining => {
                encoded.push(v.value().to_vec());
                true
            }
            Source::Current(v) => {
                let object = decode(v.value())?;
                let passed = filter(&object);
                if passed && req.encoded {
                    encoded.push(v.value().to_vec());
                } else if passed {
                    items.push(object);
                }
                passed
            }
            Source::Undo(u) => {
                let object = previous_object(&changes, u.change)?;
                let passed = filter(&object);
                if passed && req.encoded {
                    encoded.push(
                        serde_json::to_vec(&object)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    );
                } else if passed {
                    items.push(object);
                }
                passed
            }
        };
        if passed {
            taken += 1;
            last_key = Some(key);
        }
    }
    let continue_token = match (following > 0, last_key) {
        (true, Some(last)) => {
            let rev = i64::try_from(revision)
                .map_err(|_| StoreError::Corrupt(format!("revision {revision} out of range")))?;
            Some(Continuation::new(rev, &prefix, format!("{last}\0")).encode(key))
        }
        _ => None,
    };
    let remaining_item_count =
        (continue_token.is_some() && req.count_remaining).then_some(following);
    Ok(Page {
        items,
        encoded,
        revision,
        continue_token,
        remaining_item_count,
    })
}

enum Source<'a> {
    Current(redb::AccessGuard<'a, &'static [u8]>),
    Undo(Undo),
}

type ChangesTable = redb::ReadOnlyTable<u64, &'static [u8]>;

/// For each key in `[start, end of prefix)` the log changed after `revision`, its state at
/// `revision`. `Err(oldest)` when the log no longer holds every change after `revision`.
fn undo_after(
    changes: &ChangesTable,
    prefix: &str,
    start: &str,
    revision: u64,
    current: u64,
) -> Result<Result<BTreeMap<String, Undo>, u64>, StoreError> {
    let oldest = changes
        .first()?
        .map(|(k, _)| k.value())
        .unwrap_or(current + 1);
    if revision + 1 < oldest {
        return Ok(Err(oldest));
    }
    let mut undo = BTreeMap::new();
    for entry in changes.range(revision + 1..=current)? {
        let (rev, bytes) = entry?;
        let head: ChangeHead = serde_json::from_slice(bytes.value())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !head.k.starts_with(prefix) || head.k.as_str() < start {
            continue;
        }
        undo.entry(head.k).or_insert(Undo {
            existed: head.t != EventType::Added,
            change: rev.value(),
        });
    }
    Ok(Ok(undo))
}

/// The object a logged change replaced.
fn previous_object(changes: &ChangesTable, change: u64) -> Result<Value, StoreError> {
    let bytes = changes
        .get(change)?
        .ok_or_else(|| StoreError::Corrupt(format!("change {change} left the log mid-read")))?;
    let record: ChangePrev =
        serde_json::from_slice(bytes.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    record
        .p
        .ok_or_else(|| StoreError::Corrupt(format!("change {change} has no previous object")))
}
