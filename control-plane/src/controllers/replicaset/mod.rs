//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector —
//! creates pods from the template (generateName `<rs>-`, controller ownerReference), deletes
//! the least valuable first (unscheduled, not ready, newest), adopts matching orphans and
//! releases pods that stopped matching — and reports `status` (replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas with `minReadySeconds`, observedGeneration). Emits
//! `SuccessfulCreate` / `SuccessfulDelete` (and `FailedCreate` / `FailedDelete`) events.

pub mod claim;
pub mod pods;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Map, Value};

use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::object;
use crate::api::resources::ResourceDef;
use crate::api::selectors::LabelSelector;
use crate::events::{EventRecorder, EventType};
use crate::store::{EventType as StoreEventType, ListScope, ObjectKey, StoreEvent};
use claim::Claim;

/// The component name on Events, as Kubernetes' controller.
pub const COMPONENT: &str = "replicaset-controller";
/// Most pods created or deleted in one reconcile (Kubernetes' `BurstReplicas`).
pub const DEFAULT_BURST_REPLICAS: usize = 500;
/// Pod creations start with a batch of this size and double while they succeed
/// (Kubernetes' slow start), so a failing template fails once, not `replicas` times.
pub const DEFAULT_SLOW_START_BATCH: usize = 1;
/// Workers reconciling ReplicaSets at once.
pub const DEFAULT_WORKERS: usize = 2;

const REPLICASETS: &str = "apps/replicasets";
const PODS: &str = "core/pods";

/// The label selectors of all ReplicaSets, kept from the watch, so an orphan pod's change
/// wakes the ReplicaSets that could adopt it.
#[derive(Default)]
pub struct SelectorIndex {
    selectors: Mutex<HashMap<ObjectKey, LabelSelector>>,
}

impl SelectorIndex {
    /// Records (or forgets, on deletion) the selector of the owner in `e`.
    pub fn observe(&self, e: &StoreEvent) {
        let Ok(mut m) = self.selectors.lock() else {
            return;
        };
        if e.kind == StoreEventType::Deleted {
            m.remove(&e.key);
            return;
        }
        match e
            .object
            .pointer("/spec/selector")
            .map(LabelSelector::from_k8s)
        {
            Some(Ok(sel)) => {
                m.insert(e.key.clone(), sel);
            }
            _ => {
                m.remove(&e.key);
            }
        }
    }

    /// Owners in `namespace` whose selector matches any of `objs` (labels now or before).
    pub fn matching(&self, namespace: &str, objs: &[&Value]) -> Vec<ObjectKey> {
        let Ok(m) = self.selectors.lock() else {
            return Vec::new();
        };
        m.iter()
            .filter(|(k, sel)| {
                k.namespace == namespace && objs.iter().any(|o| sel.matches_object(o))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Maps a change of a dependent to its controller of `owner_kind`, or — for an orphan — to
/// every owner whose selector matches it.
pub fn dependent_trigger(
    resource: &str,
    owner_kind: &'static str,
    owner_resource: &'static str,
    index: Arc<SelectorIndex>,
) -> Trigger {
    Trigger::mapped(resource, move |e| {
        let mut keys = Vec::new();
        let mut orphans = Vec::new();
        for obj in std::iter::once(&e.object).chain(e.prev.as_ref()) {
            match claim::controller_ref(obj) {
                Some(r) => {
                    if r.get("kind").and_then(Value::as_str) == Some(owner_kind) {
                        if let Some(name) = r.get("name").and_then(Value::as_str) {
                            let key = ObjectKey::new(owner_resource, &e.key.namespace, name);
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                }
                None => orphans.push(obj),
            }
        }
        if !orphans.is_empty() {
            for key in index.matching(&e.key.namespace, &orphans) {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    })
}

pub struct ReplicaSetController {
    objects: Objects,
    recorder: EventRecorder,
    index: Arc<SelectorIndex>,
    pods: &'static ResourceDef,
    replicasets: &'static ResourceDef,
}

impl ReplicaSetController {
    pub fn new(objects: Objects) -> Result<Self, ReconcileError> {
        let find = super::runner::served;
        Ok(ReplicaSetController {
            recorder: EventRecorder::new(objects.state().store.clone(), COMPONENT),
            pods: find("", "pods")?,
            replicasets: find("apps", "replicasets")?,
            objects,
            index: Arc::new(SelectorIndex::default()),
        })
    }

    async fn event(&self, rs: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(rs, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "cannot record event");
        }
    }

    /// Creates `count` pods in slow-start batches; returns the created pods and the first error.
    async fn create_pods(
        &self,
        rs: &Value,
        template: &Value,
        count: usize,
    ) -> (Vec<Value>, Option<String>) {
        let ns = object::namespace(rs).to_string();
        let mut created = Vec::new();
        let mut remaining = count;
        let mut batch = DEFAULT_SLOW_START_BATCH.max(1);
        while remaining > 0 {
            let n = batch.min(remaining);
            let results = join_all((0..n).map(|_| {
                self.objects
                    .create(self.pods, &ns, pods::pod_from_template(rs, template))
            }))
            .await;
            let mut error = None;
            for r in results {
                match r {
                    Ok(pod) => {
                        self.event(
                            rs,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {}", object::name(&pod)),
                        )
                        .await;
                        created.push(pod);
                    }
                    Err(e) => {
                        self.event(
                            rs,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {}", e.message),
                        )
                        .await;
                        error.get_or_insert(e.message);
                    }
                }
            }
            if error.is_some() {
                return (created, error);
            }
            remaining -= n;
            batch = batch.saturating_mul(2);
        }
        (created, None)
    }

    /// Deletes `victims`; returns the names that are gone (or going) and the first error.
    async fn delete_pods(&self, rs: &Value, victims: &[Value]) -> (Vec<String>, Option<String>) {
        let results = join_all(victims.iter().map(|p| {
            let opts = DeleteOptions {
                uid: object::meta_str(p, "uid").map(str::to_string),
                ..DeleteOptions::default()
            };
            self.objects
                .delete(self.pods, object::namespace(p), object::name(p), opts)
        }))
        .await;
        let mut gone = Vec::new();
        let mut error = None;
        for (pod, r) in victims.iter().zip(results) {
            let name = object::name(pod).to_string();
            match r {
                Ok(Some(_)) => {
                    self.event(
                        rs,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
                    gone.push(name);
                }
                Ok(None) => gone.push(name),
                Err(e) if e.code == http::StatusCode::CONFLICT => {}
                Err(e) => {
                    self.event(
                        rs,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {}", e.message),
                    )
                    .await;
                    error.get_or_insert(e.message);
                }
            }
        }
        (gone, error)
    }

    /// The active pods `rs` controls after adopting orphans and releasing non-matching pods.
    async fn claim_pods(
        &self,
        rs: &Value,
        selector: &LabelSelector,
    ) -> Result<Vec<Value>, ReconcileError> {
        let ns = object::namespace(rs);
        let all = self
            .objects
            .state()
            .store
            .list(&ListScope::new(PODS, Some(ns)))
            .await?
            .items;
        let mut owned = Vec::new();
        for pod in all.into_iter().filter(pods::is_active) {
            match claim::classify(rs, selector, &pod) {
                Claim::Owned => owned.push(pod),
                Claim::Adopt => {
                    if let Some(p) = claim::adopt(&self.objects, self.pods, &pod, rs).await? {
                        owned.push(p);
                    }
                }
                Claim::Release => {
                    claim::remove_owner(
                        &self.objects,
                        self.pods,
                        &pod,
                        object::meta_str(rs, "uid").unwrap_or(""),
                    )
                    .await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }
}

/// `spec.replicas` (defaulted to 1, as the API does).
pub fn spec_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub fn status_i64(obj: &Value, field: &str) -> i64 {
    obj.get("status")
        .and_then(|s| s.get(field))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

pub fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The ReplicaSet status for `owned` active pods at `now`, and how long until the next ready
/// pod becomes available (for `minReadySeconds`).
pub fn compute_status(
    rs: &Value,
    owned: &[Value],
    failure: Option<(&str, &str)>,
    now: jiff::Timestamp,
) -> (Value, Option<Duration>) {
    let min_ready = rs
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    let mut ready = 0;
    let mut available = 0;
    let mut labeled = 0;
    let mut next: Option<Duration> = None;
    for p in owned {
        if pods::fully_labeled(p, template_labels) {
            labeled += 1;
        }
        if pods::is_ready(p) {
            ready += 1;
        }
        match pods::available_in(p, min_ready, now) {
            Some(Duration::ZERO) => available += 1,
            Some(d) => next = Some(next.map_or(d, |n: Duration| n.min(d))),
            None => {}
        }
    }
    let mut status = Map::new();
    status.insert("replicas".into(), json!(owned.len()));
    for (k, v) in [
        ("fullyLabeledReplicas", labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        if v > 0 {
            status.insert(k.into(), json!(v));
        }
    }
    let gen = generation(rs);
    if gen > 0 {
        status.insert("observedGeneration".into(), json!(gen));
    }
    let old_conditions = rs
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<Value> = old_conditions
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) != Some("ReplicaFailure"))
        .cloned()
        .collect();
    if let Some((reason, message)) = failure {
        let previous = old_conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("ReplicaFailure"));
        let since = previous
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(object::now_rfc3339()));
        conditions.push(json!({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": since, "reason": reason, "message": message}));
    }
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    (Value::Object(status), next)
}

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let index = self.index.clone();
        vec![
            Trigger::mapped(REPLICASETS, move |e| {
                index.observe(e);
                vec![e.key.clone()]
            }),
            dependent_trigger(PODS, "ReplicaSet", REPLICASETS, self.index.clone()),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(rs) = self.objects.state().store.get(key).await? else {
            return Ok(Action::Done);
        };
        let selector =
            match LabelSelector::from_k8s(rs.pointer("/spec/selector").unwrap_or(&Value::Null)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "invalid selector; not managing pods");
                    return Ok(Action::Done);
                }
            };
        let mut owned = self.claim_pods(&rs, &selector).await?;
        let mut failure: Option<(&str, String)> = None;
        if !object::is_terminating(&rs) {
            let want = usize::try_from(spec_replicas(&rs)).unwrap_or(0);
            if owned.len() < want {
                let template = rs
                    .pointer("/spec/template")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let n = (want - owned.len()).min(DEFAULT_BURST_REPLICAS);
                let (created, error) = self.create_pods(&rs, &template, n).await;
                owned.extend(created);
                failure = error.map(|e| ("FailedCreate", e));
            } else if owned.len() > want {
                let n = (owned.len() - want).min(DEFAULT_BURST_REPLICAS);
                let victims = pods::pods_to_delete(&owned, n);
                let (gone, error) = self.delete_pods(&rs, &victims).await;
                owned.retain(|p| !gone.iter().any(|g| g == object::name(p)));
                failure = error.map(|e| ("FailedDelete", e));
            }
        }
        let (status, next) = compute_status(
            &rs,
            &owned,
            failure.as_ref().map(|(r, m)| (*r, m.as_str())),
            jiff::Timestamp::now(),
        );
        if rs.get("status") != Some(&status) {
            let uid = object::meta_str(&rs, "uid").unwrap_or("").to_string();
            self.objects
                .modify(
                    self.replicasets,
                    &key.namespace,
                    &key.name,
                    Subresource::Status,
                    |o| {
                        if object::meta_str(o, "uid") != Some(uid.as_str()) {
                            return Err(crate::api::ApiError::conflict(
                                "replicasets",
                                "apps",
                                &key.name,
                            ));
                        }
                        o["status"] = status.clone();
                        Ok(())
                    },
                )
                .await?;
        }
        if let Some((_, message)) = failure {
            return Err(ReconcileError::Invalid(message));
        }
        // Re-check when the next ready pod passes minReadySeconds (a second late, so it has).
        Ok(match next {
            Some(d) => Action::RequeueAfter(d + Duration::from_millis(500)),
            None => Action::Done,
        })
    }
}

#[cfg(test)]
mod tests;
