//! CustomResourceDefinitions, as apiextensions-apiserver's controllers keep them:
//!
//! - the registry (`api/crd/registry.rs`) is re-read at every CRD change, so what the store
//!   defines is what the API serves (the API also re-reads it after each CRD write it answers);
//! - status: `acceptedNames`, `NamesAccepted` (`NoConflicts`, or why not) and `Established`
//!   (`InitialNamesAccepted`) from the registry's naming decision;
//! - deletion: a deleted CRD carries the `customresourcecleanup.apiextensions.k8s.io`
//!   finalizer (added by the API's delete); its objects are deleted (their own finalizers
//!   honoured), the `Terminating` condition tells how far it got, then the finalizer goes and
//!   so does the CRD;
//! - the garbage collector watches every custom resource too (one watch per CRD, started and
//!   stopped here).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gc::GarbageCollector;
use super::queue::WorkQueue;
use super::runner::{self, served, Action, ReconcileError, Reconciler, Trigger};
use crate::api::crd::registry::{self, CRD_RESOURCE};
use crate::api::crd::CLEANUP_FINALIZER;
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::object;
use crate::api::resources::ResourceDef;
use crate::store::{ListScope, ObjectKey, Store};

pub const DEFAULT_WORKERS: usize = 2;
/// How soon a deleting CRD whose objects are still going (their finalizers) is looked at again.
pub const DEFAULT_CLEANUP_RECHECK: Duration = Duration::from_secs(1);

/// The garbage collector's watches of custom resources: one per CRD's storage resource.
pub struct GcWatches {
    gc: Arc<GarbageCollector>,
    queue: Arc<WorkQueue>,
    store: Store,
    shutdown: watch::Receiver<bool>,
    running: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl GcWatches {
    pub fn new(
        gc: Arc<GarbageCollector>,
        queue: Arc<WorkQueue>,
        store: Store,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        GcWatches {
            gc,
            queue,
            store,
            shutdown,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Watches exactly the custom resources the registry serves now.
    fn sync(&self) {
        let wanted: Vec<String> = registry::stored_defs()
            .iter()
            .map(|d| d.store_resource())
            .collect();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|resource, task| {
            let keep = wanted.contains(resource) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for resource in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(resource) {
                let task = runner::spawn_watch(
                    "garbage-collector",
                    self.gc.trigger_for(slot.key()),
                    self.store.clone(),
                    self.queue.clone(),
                    self.shutdown.clone(),
                );
                slot.insert(task);
            }
        }
    }
}

pub struct CrdController {
    objects: Objects,
    gc: Option<GcWatches>,
}

impl CrdController {
    pub fn new(objects: Objects, gc: Option<GcWatches>) -> Self {
        CrdController { objects, gc }
    }

    fn store(&self) -> &Store {
        &self.objects.state().store
    }

    /// Writes `status` when it differs from the stored one.
    async fn write_status(
        &self,
        def: &'static ResourceDef,
        crd: &Value,
        status: Value,
    ) -> Result<(), ReconcileError> {
        if crd.get("status") == Some(&status) {
            return Ok(());
        }
        let uid = object::meta_str(crd, "uid").unwrap_or("").to_string();
        self.objects
            .modify(def, "", object::name(crd), Subresource::Status, |o| {
                if object::meta_str(o, "uid") != Some(uid.as_str()) {
                    return Err(crate::api::ApiError::conflict(
                        def.plural,
                        def.group,
                        object::name(o),
                    ));
                }
                if let Some(m) = o.as_object_mut() {
                    m.insert("status".into(), status.clone());
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Names, conditions and stored versions of a live CRD.
    fn desired_status(crd: &Value) -> Value {
        let mut status = crd.get("status").cloned().unwrap_or(json!({}));
        if !status.is_object() {
            status = json!({});
        }
        let Some(state) = registry::names_state(object::name(crd)) else {
            return status;
        };
        if state.accepted {
            status["acceptedNames"] = state.accepted_names.clone();
        } else if status.get("acceptedNames").is_none() {
            status["acceptedNames"] = json!({"plural": "", "kind": ""});
        }
        let names = if state.accepted {
            condition("NamesAccepted", "True", "NoConflicts", "no conflicts found")
        } else {
            condition("NamesAccepted", "False", &state.reason, &state.message)
        };
        let established = if state.accepted {
            condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            )
        } else {
            condition(
                "Established",
                "False",
                "NotAccepted",
                "not all names are accepted",
            )
        };
        set_condition(&mut status, names);
        // Once established, a CRD stays served under the names it was accepted with.
        if state.accepted || !is_true(&status, "Established") {
            set_condition(&mut status, established);
        }
        status
    }

    /// Deletes the CRD's objects, then lets the CRD go.
    async fn cleanup(
        &self,
        def: &'static ResourceDef,
        crd: &Value,
    ) -> Result<Action, ReconcileError> {
        let name = object::name(crd).to_string();
        let instances = registry::stored_defs()
            .into_iter()
            .find(|d| registry::lookup(d).is_some_and(|c| c.crd_name == name));
        let mut status = crd.get("status").cloned().unwrap_or(json!({}));
        if let Some(cr) = instances {
            set_condition(
                &mut status,
                condition(
                    "Terminating",
                    "True",
                    "InstanceDeletionInProgress",
                    "CustomResource deletion is in progress",
                ),
            );
            self.write_status(def, crd, status.clone()).await?;
            let items = self
                .store()
                .list(&ListScope::new(&cr.store_resource(), None))
                .await?
                .items;
            let mut failed = Vec::new();
            for item in &items {
                if object::is_terminating(item) {
                    continue;
                }
                let opts = DeleteOptions {
                    uid: object::meta_str(item, "uid").map(str::to_string),
                    ..DeleteOptions::default()
                };
                if let Err(e) = self
                    .objects
                    .delete(cr, object::namespace(item), object::name(item), opts)
                    .await
                {
                    if e.code != http::StatusCode::CONFLICT {
                        failed.push(e.message.clone());
                    }
                }
            }
            if !failed.is_empty() {
                let crd_now = self
                    .objects
                    .get(def, "", &name)
                    .await?
                    .unwrap_or(crd.clone());
                let mut st = crd_now.get("status").cloned().unwrap_or(json!({}));
                set_condition(
                    &mut st,
                    condition(
                        "Terminating",
                        "True",
                        "InstanceDeletionFailed",
                        &format!("could not issue all deletes: {}", failed.join("; ")),
                    ),
                );
                self.write_status(def, &crd_now, st).await?;
                return Ok(Action::RequeueAfter(DEFAULT_CLEANUP_RECHECK));
            }
            let left = self
                .store()
                .list(&ListScope::new(&cr.store_resource(), None))
                .await?
                .items
                .len();
            if left > 0 {
                tracing::debug!(crd = %name, left, "waiting for custom resources to go");
                return Ok(Action::RequeueAfter(DEFAULT_CLEANUP_RECHECK));
            }
            let crd_now = self
                .objects
                .get(def, "", &name)
                .await?
                .unwrap_or(crd.clone());
            let mut st = crd_now.get("status").cloned().unwrap_or(json!({}));
            set_condition(
                &mut st,
                condition(
                    "Terminating",
                    "False",
                    "InstanceDeletionCompleted",
                    "removed all instances",
                ),
            );
            self.write_status(def, &crd_now, st).await?;
        }
        let uid = object::meta_str(crd, "uid").unwrap_or("").to_string();
        let result = self
            .objects
            .modify(def, "", &name, Subresource::Main, |o| {
                if object::meta_str(o, "uid") != Some(uid.as_str()) {
                    return Err(crate::api::ApiError::conflict(
                        def.plural,
                        def.group,
                        object::name(o),
                    ));
                }
                let kept: Vec<String> = object::finalizers(o)
                    .into_iter()
                    .filter(|f| f != CLEANUP_FINALIZER)
                    .collect();
                object::meta_mut(o).insert("finalizers".into(), json!(kept));
                Ok(())
            })
            .await;
        match result {
            Ok(_) => {
                tracing::info!(crd = %name, "custom resources deleted; definition released");
                Ok(Action::Done)
            }
            Err(e) if e.code == http::StatusCode::CONFLICT => Ok(Action::Done),
            Err(e) => Err(e.into()),
        }
    }
}

fn condition(ty: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": ty, "status": status, "lastTransitionTime": object::now_rfc3339(),
           "reason": reason, "message": message})
}

fn is_true(status: &Value, ty: &str) -> bool {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Sets a condition, keeping its `lastTransitionTime` when its status does not change (and the
/// whole condition when nothing does).
fn set_condition(status: &mut Value, mut c: Value) {
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|x| x.get("type") == c.get("type")) {
        Some(old) => {
            if old.get("status") == c.get("status") {
                c["lastTransitionTime"] = old
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            *old = c;
        }
        None => list.push(c),
    }
}

impl Reconciler for CrdController {
    fn name(&self) -> &'static str {
        "customresourcedefinitions"
    }

    /// A CRD's changes reconcile it; a deleted or renamed one also reconciles the other CRDs
    /// of its group (names it held may be free now), as Kubernetes' naming controller does.
    fn triggers(&self) -> Vec<Trigger> {
        let groups: Mutex<HashMap<String, HashSet<String>>> = Mutex::default();
        vec![Trigger::mapped(CRD_RESOURCE, move |e| {
            let group = |o: &Value| {
                o.pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let names = |o: &Value| o.pointer("/spec/names").cloned().unwrap_or(Value::Null);
            let mut g = groups.lock().unwrap_or_else(|e| e.into_inner());
            let mut keys = vec![e.key.clone()];
            let freed = e.kind == crate::store::EventType::Deleted
                || e.prev
                    .as_ref()
                    .is_some_and(|p| names(p) != names(&e.object));
            let own = group(&e.object);
            if freed {
                for name in g.get(&own).into_iter().flatten() {
                    if *name != e.key.name {
                        keys.push(ObjectKey::new(CRD_RESOURCE, "", name));
                    }
                }
            }
            let members = g.entry(own).or_default();
            if e.kind == crate::store::EventType::Deleted {
                members.remove(&e.key.name);
            } else {
                members.insert(e.key.name.clone());
            }
            keys
        })]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        registry::sync(self.store()).await?;
        if let Some(gc) = &self.gc {
            gc.sync();
        }
        let def = served("apiextensions.k8s.io", "customresourcedefinitions")?;
        let Some(crd) = self.objects.get(def, "", &key.name).await? else {
            return Ok(Action::Done);
        };
        if object::is_terminating(&crd) {
            if object::finalizers(&crd)
                .iter()
                .any(|f| f == CLEANUP_FINALIZER)
            {
                return self.cleanup(def, &crd).await;
            }
            return Ok(Action::Done);
        }
        self.write_status(def, &crd, Self::desired_status(&crd))
            .await?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut st = json!({});
        let mut first = condition("Established", "True", "InitialNamesAccepted", "x");
        first["lastTransitionTime"] = json!("2024-01-01T00:00:00Z");
        set_condition(&mut st, first);
        set_condition(
            &mut st,
            condition("Established", "True", "InitialNamesAccepted", "x"),
        );
        assert_eq!(
            st["conditions"][0]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
        set_condition(
            &mut st,
            condition("Established", "False", "NotAccepted", "y"),
        );
        assert_ne!(
            st["conditions"][0]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(st["conditions"].as_array().unwrap().len(), 1);
        assert!(!is_true(&st, "Established"));
    }
}
