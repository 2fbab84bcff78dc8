//! Namespace deletion: a terminating namespace has its contents deleted, then its
//! `kubernetes` finalizer removed, which lets the namespace itself go.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::api::object;
use crate::api::resources::stored_resources;
use crate::store::{ListScope, ObjectKey, Precondition, Store, StoreError};

/// How soon a namespace still holding objects (e.g. with finalizers) is looked at again.
pub const DEFAULT_REQUEUE: Duration = Duration::from_secs(1);
/// A terminating namespace keeps its contents this long before the controller deletes them,
/// so a client deleting the namespace and its objects together (`kubectl delete -f` of one
/// file) deletes each object itself, as it would against Kubernetes.
pub const DEFAULT_CONTENT_DELETE_DELAY: Duration = Duration::from_secs(2);
/// Periodic full pass even without changes, so nothing waits on a missed event.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);

pub async fn run(store: Store, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (pending, revision) = match pass(&store).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "namespace controller pass failed; retrying");
                (true, 0)
            }
        };
        let wait = if pending {
            DEFAULT_REQUEUE
        } else {
            DEFAULT_RESYNC
        };
        let watched = store
            .watch(ListScope::new("core/namespaces", None), revision)
            .await;
        tokio::select! {
            _ = async {
                match watched {
                    Ok(mut w) => { let _ = w.next().await; }
                    Err(_) => tokio::time::sleep(wait).await,
                }
            } => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass over all namespaces. Returns whether any is still terminating, and the revision
/// the namespaces were listed at.
async fn pass(store: &Store) -> Result<(bool, u64), StoreError> {
    let list = store.list(&ListScope::new("core/namespaces", None)).await?;
    let mut pending = false;
    for ns in list.items.iter().filter(|n| object::is_terminating(n)) {
        let name = object::name(ns).to_string();
        if !delay_elapsed(ns) {
            pending = true;
            continue;
        }
        let span = tracing::info_span!("reconcile", controller = "namespace", namespace = %name);
        match finalize(store, ns).instrument(span).await {
            Ok(true) => {}
            Ok(false) => pending = true,
            Err(e) => {
                tracing::warn!(namespace = %name, error = %e, "namespace cleanup failed; will retry");
                pending = true;
            }
        }
    }
    Ok((pending, list.revision))
}

fn delay_elapsed(ns: &Value) -> bool {
    let since = ns
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match since {
        Some(t) => {
            let delay =
                jiff::SignedDuration::try_from(DEFAULT_CONTENT_DELETE_DELAY).unwrap_or_default();
            jiff::Timestamp::now().duration_since(t) >= delay
        }
        None => true,
    }
}

/// Deletes the namespace's contents; once none are left, clears its finalizers and deletes it.
/// Returns true when the namespace is gone.
async fn finalize(store: &Store, ns: &Value) -> Result<bool, StoreError> {
    let name = object::name(ns).to_string();
    let mut remaining = 0usize;
    for def in stored_resources().into_iter().filter(|d| d.namespaced) {
        let resource = def.store_resource();
        let items = store
            .list(&ListScope::new(&resource, Some(&name)))
            .await?
            .items;
        for item in items {
            let key = ObjectKey::new(&resource, &name, object::name(&item));
            if object::finalizers(&item).is_empty() {
                match store.delete(key, Precondition::default()).await {
                    Ok(_) | Err(StoreError::NotFound) => {}
                    Err(StoreError::Conflict) => remaining += 1,
                    Err(e) => return Err(e),
                }
            } else {
                remaining += 1;
                if !object::is_terminating(&item) {
                    let mut marked = item.clone();
                    object::meta_mut(&mut marked)
                        .insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
                    object::meta_mut(&mut marked)
                        .insert("deletionGracePeriodSeconds".into(), json!(0));
                    match store.update(key, marked, Precondition::default()).await {
                        Ok(_) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    let key = ObjectKey::new("core/namespaces", "", &name);
    let rv = crate::store::object_revision(ns);
    match store
        .delete(
            key,
            Precondition {
                resource_version: rv,
                uid: None,
            },
        )
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %name, "namespace deleted");
            Ok(true)
        }
        Err(StoreError::NotFound) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}
