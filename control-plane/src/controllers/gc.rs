//! The garbage collector: deletes objects whose owners are gone, and finishes
//! `propagationPolicy` Foreground and Orphan deletions, as Kubernetes' garbage collector.
//!
//! - Background: the owner is deleted at once; every dependent whose ownerReferences all
//!   point at missing owners (checked by uid) is deleted. A dependent that still has a live
//!   owner only loses the references to the dead ones.
//! - Foreground: the owner carries `deletionTimestamp` + the `foregroundDeletion` finalizer;
//!   its dependents are deleted (in the foreground themselves when they have dependents) and
//!   once none with `blockOwnerDeletion: true` remains, the finalizer goes and so does the owner.
//! - Orphan: the owner carries the `orphan` finalizer; its ownerReference is removed from every
//!   dependent, then the finalizer goes.
//!
//! Level-triggered: every resource is watched. An in-memory graph (owner uid → dependents),
//! rebuilt from the watches, only decides *what to look at*; every decision re-reads the
//! store, and finalizer processing scans the store for dependents, so a missed or stale
//! graph entry can delay work but never cause a wrong deletion.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::replicaset::claim::{self, owner_refs};
use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{
    DeleteOptions, Objects, Subresource, FOREGROUND_FINALIZER, ORPHAN_FINALIZER,
};
use crate::api::object;
use crate::api::resources::{stored_resources, ResourceDef};
use crate::api::ApiError;
use crate::store::{EventType, ListScope, ObjectKey, StoreEvent};

/// Workers processing objects at once.
pub const DEFAULT_WORKERS: usize = 2;
/// A foreground-deleting owner still waiting for blocking dependents is looked at again this
/// soon even without events (dependents' deletions wake it earlier).
pub const DEFAULT_FOREGROUND_RECHECK: Duration = Duration::from_secs(5);

/// Kinds never owned or owning (high volume, no ownerReferences).
const SKIPPED_RESOURCES: &[&str] = &["core/events", "events.k8s.io/events"];

/// owner uid → dependents, and dependent → its owners' uids (to undo on change).
#[derive(Default)]
struct GraphInner {
    dependents: HashMap<String, HashSet<ObjectKey>>,
    owners_of: HashMap<ObjectKey, Vec<String>>,
}

/// Who depends on whom, as the watches last showed it.
#[derive(Default)]
pub struct Graph {
    inner: Mutex<GraphInner>,
}

fn ref_uid(r: &Value) -> Option<&str> {
    r.get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
}

impl Graph {
    pub fn observe(&self, e: &StoreEvent) {
        let Ok(mut g) = self.inner.lock() else { return };
        if let Some(old) = g.owners_of.remove(&e.key) {
            for uid in old {
                if let Some(set) = g.dependents.get_mut(&uid) {
                    set.remove(&e.key);
                    if set.is_empty() {
                        g.dependents.remove(&uid);
                    }
                }
            }
        }
        if e.kind == EventType::Deleted {
            return;
        }
        let uids: Vec<String> = owner_refs(&e.object)
            .iter()
            .filter_map(ref_uid)
            .map(str::to_string)
            .collect();
        if uids.is_empty() {
            return;
        }
        for uid in &uids {
            g.dependents
                .entry(uid.clone())
                .or_default()
                .insert(e.key.clone());
        }
        g.owners_of.insert(e.key.clone(), uids);
    }

    pub fn dependents(&self, owner_uid: &str) -> Vec<ObjectKey> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        g.dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The served resource stored as `store_resource` (`apps/replicasets`; custom resources too).
fn def_of(store_resource: &str) -> Option<&'static ResourceDef> {
    stored_resources()
        .into_iter()
        .find(|d| d.store_resource() == store_resource)
}

/// Where the owner an ownerReference names is stored, for a dependent in `namespace`.
/// `None` when the kind is not served (such references are left alone).
pub fn owner_key(r: &Value, namespace: &str) -> Option<(&'static ResourceDef, ObjectKey)> {
    let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let def = crate::api::resources::find_kind(api_version, kind).or_else(|| {
        stored_resources()
            .into_iter()
            .find(|d| d.group == group && d.kind == kind)
    })?;
    let ns = if def.namespaced { namespace } else { "" };
    if def.namespaced && ns.is_empty() {
        return None;
    }
    Some((def, ObjectKey::new(&def.store_resource(), ns, name)))
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    object::finalizers(obj).iter().any(|x| x == f)
}

fn gc_terminating(obj: &Value) -> bool {
    object::is_terminating(obj)
        && (has_finalizer(obj, FOREGROUND_FINALIZER) || has_finalizer(obj, ORPHAN_FINALIZER))
}

/// The store changes worth a look: the object itself when it is new, its owners changed, or
/// it awaits GC finalizer processing; its dependents when it goes (or starts going); its
/// owners when it goes (a foreground-deleting owner may be unblocked).
fn keys_for(graph: &Graph, e: &StoreEvent) -> Vec<ObjectKey> {
    let obj = &e.object;
    let mut keys = Vec::new();
    let deleted = e.kind == EventType::Deleted;
    let refs_changed = e
        .prev
        .as_ref()
        .is_none_or(|p| owner_refs(p) != owner_refs(obj));
    if !deleted && ((refs_changed && !owner_refs(obj).is_empty()) || gc_terminating(obj)) {
        keys.push(e.key.clone());
    }
    let was_terminating = e.prev.as_ref().is_some_and(object::is_terminating);
    if deleted || (object::is_terminating(obj) && !was_terminating) || gc_terminating(obj) {
        if let Some(uid) = object::meta_str(obj, "uid") {
            keys.extend(graph.dependents(uid));
        }
    }
    if deleted {
        for r in owner_refs(obj) {
            if let Some((_, k)) = owner_key(r, &e.key.namespace) {
                keys.push(k);
            }
        }
    }
    keys.dedup();
    keys
}

pub struct GarbageCollector {
    objects: Objects,
    graph: Arc<Graph>,
}

impl GarbageCollector {
    pub fn new(objects: Objects) -> Self {
        GarbageCollector {
            objects,
            graph: Arc::new(Graph::default()),
        }
    }

    /// Every object whose ownerReferences name `owner` (by uid), read from the store.
    async fn find_dependents(
        &self,
        owner: &Value,
    ) -> Result<Vec<(&'static ResourceDef, Value)>, ReconcileError> {
        let uid = object::meta_str(owner, "uid").unwrap_or("");
        let ns = object::namespace(owner);
        let mut out = Vec::new();
        for def in stored_resources() {
            let resource = def.store_resource();
            if SKIPPED_RESOURCES.contains(&resource.as_str()) || (!ns.is_empty() && !def.namespaced)
            {
                continue;
            }
            let scope = ListScope::new(&resource, (!ns.is_empty()).then_some(ns));
            for item in self.objects.state().store.list(&scope).await?.items {
                if owner_refs(&item).iter().any(|r| ref_uid(r) == Some(uid)) {
                    out.push((def, item));
                }
            }
        }
        Ok(out)
    }

    async fn remove_finalizer(
        &self,
        def: &'static ResourceDef,
        obj: &Value,
        finalizer: &str,
    ) -> Result<(), ReconcileError> {
        let uid = object::meta_str(obj, "uid").unwrap_or("").to_string();
        let result = self
            .objects
            .modify(
                def,
                object::namespace(obj),
                object::name(obj),
                Subresource::Main,
                |o| {
                    if object::meta_str(o, "uid") != Some(uid.as_str()) {
                        return Err(ApiError::conflict(def.plural, def.group, object::name(o)));
                    }
                    let kept: Vec<String> = object::finalizers(o)
                        .into_iter()
                        .filter(|f| f != finalizer)
                        .collect();
                    object::meta_mut(o).insert("finalizers".into(), serde_json::json!(kept));
                    Ok(())
                },
            )
            .await;
        match result {
            Ok(_) => {
                tracing::info!(
                    kind = def.kind,
                    name = object::name(obj),
                    finalizer,
                    "dependents handled; finalizer removed"
                );
                Ok(())
            }
            // Replaced by a new object of the same name: nothing left to finish.
            Err(e) if e.code == http::StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Foreground: delete the dependents; release the owner once no blocking one is left.
    async fn process_foreground(
        &self,
        def: &'static ResourceDef,
        owner: &Value,
    ) -> Result<Action, ReconcileError> {
        let uid = object::meta_str(owner, "uid").unwrap_or("").to_string();
        let dependents = self.find_dependents(owner).await?;
        let mut blocking = 0;
        for (ddef, dep) in &dependents {
            if !object::is_terminating(dep) {
                self.attempt_to_delete(ddef, dep).await?;
            }
            let key = ObjectKey::new(
                &ddef.store_resource(),
                object::namespace(dep),
                object::name(dep),
            );
            if let Some(now) = self.objects.state().store.get(&key).await? {
                let blocks = owner_refs(&now).iter().any(|r| {
                    ref_uid(r) == Some(uid.as_str())
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                });
                if blocks {
                    blocking += 1;
                }
            }
        }
        if blocking > 0 {
            tracing::debug!(
                kind = def.kind,
                name = object::name(owner),
                blocking,
                "waiting for dependents"
            );
            return Ok(Action::RequeueAfter(DEFAULT_FOREGROUND_RECHECK));
        }
        self.remove_finalizer(def, owner, FOREGROUND_FINALIZER)
            .await?;
        Ok(Action::Done)
    }

    /// Orphan: remove the owner's reference from every dependent, then let the owner go.
    async fn process_orphan(
        &self,
        def: &'static ResourceDef,
        owner: &Value,
    ) -> Result<Action, ReconcileError> {
        let uid = object::meta_str(owner, "uid").unwrap_or("").to_string();
        for (ddef, dep) in self.find_dependents(owner).await? {
            claim::remove_owner(&self.objects, ddef, &dep, &uid).await?;
        }
        self.remove_finalizer(def, owner, ORPHAN_FINALIZER).await?;
        Ok(Action::Done)
    }

    /// Kubernetes' `attemptToDeleteItem` for an object with ownerReferences.
    async fn attempt_to_delete(
        &self,
        def: &'static ResourceDef,
        obj: &Value,
    ) -> Result<(), ReconcileError> {
        let ns = object::namespace(obj);
        let mut solid = 0;
        let mut gone: Vec<String> = Vec::new();
        let mut waiting: Vec<String> = Vec::new();
        for r in owner_refs(obj) {
            let Some(uid) = ref_uid(r) else { continue };
            let Some((_, key)) = owner_key(r, ns) else {
                solid += 1;
                continue;
            };
            match self.objects.state().store.get(&key).await? {
                Some(o) if object::meta_str(&o, "uid") == Some(uid) => {
                    if object::is_terminating(&o) && has_finalizer(&o, FOREGROUND_FINALIZER) {
                        waiting.push(uid.to_string());
                    } else {
                        solid += 1;
                    }
                }
                _ => gone.push(uid.to_string()),
            }
        }
        if solid > 0 {
            // Still owned: only drop the references to owners that are gone or waiting on us.
            for uid in gone.iter().chain(&waiting) {
                claim::remove_owner(&self.objects, def, obj, uid).await?;
            }
            return Ok(());
        }
        if gone.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        let own_uid = object::meta_str(obj, "uid").unwrap_or("").to_string();
        let policy = if !waiting.is_empty() && !self.graph.dependents(&own_uid).is_empty() {
            "Foreground"
        } else if has_finalizer(obj, ORPHAN_FINALIZER) {
            "Orphan"
        } else if has_finalizer(obj, FOREGROUND_FINALIZER) {
            "Foreground"
        } else {
            "Background"
        };
        let opts = DeleteOptions {
            uid: Some(own_uid),
            propagation_policy: Some(policy.to_string()),
            ..DeleteOptions::default()
        };
        match self.objects.delete(def, ns, object::name(obj), opts).await {
            Ok(_) => {
                tracing::info!(
                    kind = def.kind,
                    name = object::name(obj),
                    policy,
                    "owner gone; deleted dependent"
                );
                Ok(())
            }
            Err(e) if e.code == http::StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl GarbageCollector {
    /// The watch of one stored resource: its changes feed the graph and the queue.
    pub fn trigger_for(&self, resource: &str) -> Trigger {
        let graph = self.graph.clone();
        Trigger::mapped(resource, move |e| {
            graph.observe(e);
            keys_for(&graph, e)
        })
    }
}

impl Reconciler for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    /// The built-in kinds; `controllers/crd.rs` adds a watch per custom resource
    /// ([`GarbageCollector::trigger_for`]) as CRDs come and go.
    fn triggers(&self) -> Vec<Trigger> {
        crate::api::resources::RESOURCES
            .iter()
            .map(|d| d.store_resource())
            .filter(|r| !SKIPPED_RESOURCES.contains(&r.as_str()))
            .map(|r| self.trigger_for(&r))
            .collect()
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(def) = def_of(&key.resource) else {
            return Ok(Action::Done);
        };
        let Some(obj) = self.objects.state().store.get(key).await? else {
            return Ok(Action::Done);
        };
        if object::is_terminating(&obj) {
            if has_finalizer(&obj, FOREGROUND_FINALIZER) {
                return self.process_foreground(def, &obj).await;
            }
            if has_finalizer(&obj, ORPHAN_FINALIZER) {
                return self.process_orphan(def, &obj).await;
            }
            return Ok(Action::Done);
        }
        if !owner_refs(&obj).is_empty() {
            self.attempt_to_delete(def, &obj).await?;
        }
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests;
