//! The DaemonSet controller, after Kubernetes' `pkg/controller/daemon`: one daemon pod on every
//! node that should run it (`placement.rs`: nodeName, nodeSelector, required node affinity,
//! NoSchedule/NoExecute taints against the template's and the default DaemonSet tolerations).
//! Pods are created with a `matchFields metadata.name In [node]` node affinity so the default
//! scheduler binds them, labelled `controller-revision-hash` and `pod-template-generation`.
//! Pods on nodes that no longer fit, extra pods and failed pods (with backoff) are deleted.
//! Every template is snapshotted as a ControllerRevision (`revisions.rs`, data
//! `{"spec":{"template":{…,"$patch":"replace"}}}`) so `kubectl rollout history/undo ds` work;
//! RollingUpdate (`rolling.rs`: maxUnavailable, maxSurge) replaces old pods, OnDelete only
//! when they are deleted. `status.rs` computes what `kubectl rollout status ds` reads. Emits
//! SuccessfulCreate / SuccessfulDelete (FailedCreate / FailedDelete / FailedDaemonPod).

pub mod placement;
pub mod rolling;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Map, Value};

use super::replicaset::claim::{self, Claim};
use super::replicaset::{dependent_trigger, pods, SelectorIndex};
use super::revisions::{self, DAEMONSET_HASH_LABEL};
use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::object;
use crate::api::resources::ResourceDef;
use crate::api::selectors::LabelSelector;
use crate::events::{EventRecorder, EventType};
use crate::store::{EventType as StoreEventType, ListScope, ObjectKey, StoreEvent};

/// The component name on Events, as Kubernetes' controller.
pub const COMPONENT: &str = "daemonset-controller";
/// Workers reconciling DaemonSets at once.
pub const DEFAULT_WORKERS: usize = 2;
/// Pod creations start with a batch of this size and double while they succeed (Kubernetes'
/// slow start), so a broken template fails once per node batch, not once per node.
pub const DEFAULT_SLOW_START_BATCH: usize = 1;
/// First and longest wait before deleting another failed daemon pod on the same node
/// (Kubernetes' `failedPodsBackoff`: 1 s doubling to 15 min), so the controller does not
/// hot-loop against a node that keeps failing the pod.
pub const DEFAULT_FAILED_POD_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_FAILED_POD_BACKOFF: Duration = Duration::from_secs(15 * 60);

const DAEMONSETS: &str = "apps/daemonsets";
const PODS: &str = "core/pods";
const NODES: &str = "core/nodes";

pub use crate::controllers::revisions::template_data as revision_data;

/// Whether a node change can change where daemon pods run (not just a heartbeat).
fn node_changed(e: &StoreEvent) -> bool {
    let Some(prev) = &e.prev else { return true };
    if e.kind == StoreEventType::Deleted {
        return true;
    }
    let conditions = |n: &Value| -> Vec<(String, String)> {
        n.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                (f("type"), f("status"))
            })
            .collect()
    };
    object::labels(prev) != object::labels(&e.object)
        || prev.get("spec") != e.object.get("spec")
        || conditions(prev) != conditions(&e.object)
}

/// Failed-pod backoff per DaemonSet and node (`flowcontrol.Backoff`). A rebuildable cache.
#[derive(Default)]
struct Backoff {
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Backoff {
    /// `None` = go ahead (and the backoff grows); `Some(wait)` = still backing off.
    fn check(&self, key: &str) -> Option<Duration> {
        let Ok(mut m) = self.entries.lock() else {
            return None;
        };
        let now = Instant::now();
        match m.get(key).copied() {
            Some((wait, since)) if now.duration_since(since) < wait => {
                Some(wait - now.duration_since(since))
            }
            Some((wait, since))
                if now.duration_since(since) < 2 * DEFAULT_MAX_FAILED_POD_BACKOFF =>
            {
                m.insert(
                    key.to_string(),
                    ((wait * 2).min(DEFAULT_MAX_FAILED_POD_BACKOFF), now),
                );
                None
            }
            _ => {
                m.insert(key.to_string(), (DEFAULT_FAILED_POD_BACKOFF, now));
                None
            }
        }
    }

    fn forget(&self, prefix: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|k, _| !k.starts_with(prefix));
        }
    }
}

pub struct DaemonSetController {
    objects: Objects,
    recorder: EventRecorder,
    index: Arc<SelectorIndex>,
    /// Every DaemonSet's key, so a node change wakes them all.
    keys: Arc<Mutex<HashSet<ObjectKey>>>,
    backoff: Backoff,
    pods: &'static ResourceDef,
    daemonsets: &'static ResourceDef,
    /// Also set `spec.nodeName` on new pods instead of leaving the binding to the scheduler.
    bind_directly: bool,
}

/// Daemon pods by the node they are for.
fn by_node(owned: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in owned {
        // Finished pods already being deleted are nothing to act on.
        if object::is_terminating(p) && matches!(pods::phase(p), "Succeeded" | "Failed") {
            continue;
        }
        let node = placement::target_node(p).unwrap_or("").to_string();
        m.entry(node).or_default().push(p);
    }
    m
}

impl DaemonSetController {
    pub fn new(objects: Objects) -> Result<Self, ReconcileError> {
        let find = super::runner::served;
        Ok(DaemonSetController {
            recorder: EventRecorder::new(objects.state().store.clone(), COMPONENT),
            pods: find("", "pods")?,
            daemonsets: find("apps", "daemonsets")?,
            objects,
            index: Arc::new(SelectorIndex::default()),
            keys: Arc::new(Mutex::new(HashSet::new())),
            backoff: Backoff::default(),
            bind_directly: false,
        })
    }

    /// New pods get `spec.nodeName` directly (for clusters whose scheduler cannot bind by
    /// `matchFields`); off by default, as in Kubernetes.
    pub fn bind_directly(mut self, on: bool) -> Self {
        self.bind_directly = on;
        self
    }

    async fn event(&self, ds: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(ds, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "cannot record event");
        }
    }

    /// Pods `ds` controls (any state), after adopting matching orphans and releasing the rest.
    async fn claim_pods(
        &self,
        ds: &Value,
        selector: &LabelSelector,
    ) -> Result<Vec<Value>, ReconcileError> {
        let all = self.list_pods(ds).await?;
        let mut owned = Vec::new();
        for pod in all {
            match claim::classify(ds, selector, &pod) {
                Claim::Owned => owned.push(pod),
                Claim::Adopt => {
                    if let Some(p) = claim::adopt(&self.objects, self.pods, &pod, ds).await? {
                        owned.push(p);
                    }
                }
                Claim::Release => {
                    let uid = object::meta_str(ds, "uid").unwrap_or("");
                    claim::remove_owner(&self.objects, self.pods, &pod, uid).await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }

    async fn list_pods(&self, ds: &Value) -> Result<Vec<Value>, ReconcileError> {
        let scope = ListScope::new(PODS, Some(object::namespace(ds)));
        Ok(self.objects.state().store.list(&scope).await?.items)
    }

    /// Deletes `victims` and creates a pod on each of `nodes` (slow start). Returns the first
    /// error message.
    async fn sync_nodes(
        &self,
        ds: &Value,
        victims: &[String],
        nodes: &[String],
        hash: &str,
    ) -> Option<String> {
        let ns = object::namespace(ds).to_string();
        let mut error = None;
        let results = join_all(victims.iter().map(|name| {
            self.objects
                .delete(self.pods, &ns, name, DeleteOptions::default())
        }))
        .await;
        for (name, r) in victims.iter().zip(results) {
            match r {
                Ok(Some(_)) => {
                    let msg = format!("Deleted pod: {name}");
                    self.event(ds, EventType::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                Ok(None) => {}
                Err(e) if e.code == http::StatusCode::CONFLICT => {}
                Err(e) => {
                    let msg = format!("Error deleting: {}", e.message);
                    self.event(ds, EventType::Warning, "FailedDelete", &msg)
                        .await;
                    error.get_or_insert(e.message);
                }
            }
        }
        let mut rest = nodes;
        let mut batch = DEFAULT_SLOW_START_BATCH.max(1);
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let results = join_all(now.iter().map(|node| {
                let pod = placement::pod_for_node(ds, node, hash, self.bind_directly);
                self.objects.create(self.pods, &ns, pod)
            }))
            .await;
            let mut failed = false;
            for r in results {
                match r {
                    Ok(pod) => {
                        let msg = format!("Created pod: {}", object::name(&pod));
                        self.event(ds, EventType::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    Err(e) => {
                        let msg = format!("Error creating: {}", e.message);
                        self.event(ds, EventType::Warning, "FailedCreate", &msg)
                            .await;
                        error.get_or_insert(e.message);
                        failed = true;
                    }
                }
            }
            if failed {
                break;
            }
            rest = later;
            batch = batch.saturating_mul(2);
        }
        error
    }

    /// The current revision (created or re-numbered as needed) and the existing history.
    async fn history(
        &self,
        ds: &Value,
        selector: &LabelSelector,
    ) -> Result<(Value, Vec<Value>), ReconcileError> {
        let existing = revisions::claim_owned(&self.objects, ds, selector).await?;
        let labels: Map<String, Value> = ds
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (current, _) = revisions::ensure_current(
            &self.objects,
            ds,
            revision_data(ds),
            &labels,
            DAEMONSET_HASH_LABEL,
            &existing,
        )
        .await?;
        Ok((current, existing))
    }

    /// Deletes old revisions no pod uses beyond `revisionHistoryLimit`.
    async fn cleanup_history(
        &self,
        ds: &Value,
        current: &Value,
        existing: &[Value],
        owned: &[Value],
    ) -> Result<(), ReconcileError> {
        let hashes: HashSet<&str> = owned
            .iter()
            .filter_map(|p| object::labels(p)?.get(DAEMONSET_HASH_LABEL)?.as_str())
            .collect();
        let mut live: HashSet<String> = existing
            .iter()
            .filter(|cr| {
                object::labels(cr)
                    .and_then(|l| l.get(DAEMONSET_HASH_LABEL))
                    .and_then(Value::as_str)
                    .is_some_and(|h| hashes.contains(h))
            })
            .map(|cr| object::name(cr).to_string())
            .collect();
        live.insert(object::name(current).to_string());
        revisions::truncate(&self.objects, existing, &live, revisions::history_limit(ds)).await?;
        Ok(())
    }

    /// The manage loop (`manage` + `podsShouldBeOnNode`): (pods to delete, nodes needing a pod,
    /// requeue for a failed-pod backoff).
    async fn manage(
        &self,
        ds: &Value,
        nodes: &[Value],
        node_pods: &BTreeMap<String, Vec<&Value>>,
        hash: &str,
    ) -> (Vec<String>, Vec<String>, Option<Duration>) {
        let surge = rolling::allows_surge(ds);
        let min_ready = ds
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let now = jiff::Timestamp::now();
        let uid = object::meta_str(ds, "uid").unwrap_or("");
        let (mut delete, mut create, mut wait) = (Vec::new(), Vec::new(), None::<Duration>);
        for node in nodes {
            let name = object::name(node);
            let (run, keep) = placement::should_run(ds, node);
            let here: &[&Value] = node_pods.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let acts = placement::node_actions(run, keep, here, hash, surge, |p| {
                pods::is_available(p, min_ready, now)
            });
            if acts.create {
                create.push(name.to_string());
            }
            for victim in acts.delete {
                if acts.failed.contains(&victim) {
                    if let Some(d) = self.backoff.check(&format!("{uid}/{name}")) {
                        wait = Some(wait.map_or(d, |w| w.min(d)));
                        continue;
                    }
                    let msg = format!(
                        "Found failed daemon pod {}/{victim} on node {name}, will try to kill it",
                        object::namespace(ds)
                    );
                    self.event(ds, EventType::Warning, "FailedDaemonPod", &msg)
                        .await;
                }
                delete.push(victim);
            }
        }
        // Unbound pods for nodes that no longer exist would never be scheduled: delete them.
        let names: HashSet<&str> = nodes.iter().map(object::name).collect();
        for (node, pods_for) in node_pods {
            if names.contains(node.as_str()) {
                continue;
            }
            for p in pods_for {
                let bound = p
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                if !bound && !object::is_terminating(p) {
                    delete.push(object::name(p).to_string());
                }
            }
        }
        (delete, create, wait)
    }

    async fn write_status(&self, ds: &Value, st: Value) -> Result<(), ReconcileError> {
        if ds.get("status") == Some(&st) {
            return Ok(());
        }
        let uid = object::meta_str(ds, "uid").unwrap_or("").to_string();
        let name = object::name(ds).to_string();
        self.objects
            .modify(
                self.daemonsets,
                object::namespace(ds),
                &name,
                Subresource::Status,
                |o| {
                    if object::meta_str(o, "uid") != Some(uid.as_str()) {
                        return Err(crate::api::ApiError::conflict("daemonsets", "apps", &name));
                    }
                    o["status"] = st.clone();
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }
}

impl Reconciler for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let (index, keys) = (self.index.clone(), self.keys.clone());
        let all = self.keys.clone();
        vec![
            Trigger::mapped(DAEMONSETS, move |e| {
                index.observe(e);
                if let Ok(mut k) = keys.lock() {
                    if e.kind == StoreEventType::Deleted {
                        k.remove(&e.key);
                    } else {
                        k.insert(e.key.clone());
                    }
                }
                vec![e.key.clone()]
            }),
            dependent_trigger(PODS, "DaemonSet", DAEMONSETS, self.index.clone()),
            Trigger::mapped(NODES, move |e| {
                if !node_changed(e) {
                    return Vec::new();
                }
                all.lock()
                    .map(|k| k.iter().cloned().collect())
                    .unwrap_or_default()
            }),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let store = &self.objects.state().store;
        let Some(ds) = store.get(key).await? else {
            return Ok(Action::Done);
        };
        let selector =
            match LabelSelector::from_k8s(ds.pointer("/spec/selector").unwrap_or(&Value::Null)) {
                Ok(s) if !s.is_empty() => s,
                Ok(_) => {
                    let msg =
                        "This daemon set is selecting all pods. A non-empty selector is required.";
                    self.event(&ds, EventType::Warning, "SelectingAll", msg)
                        .await;
                    return Ok(Action::Done);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "invalid selector; not managing pods");
                    return Ok(Action::Done);
                }
            };
        let uid = object::meta_str(&ds, "uid").unwrap_or("").to_string();
        if object::is_terminating(&ds) {
            // Its revisions may be going already: do not create or update pods.
            self.backoff.forget(&uid);
            return Ok(Action::Done);
        }
        let nodes = store.list(&ListScope::new(NODES, None)).await?.items;
        let (current, existing) = self.history(&ds, &selector).await?;
        let hash = object::labels(&current)
            .and_then(|l| l.get(DAEMONSET_HASH_LABEL))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generation = placement::template_generation(&ds);
        let owned = self.claim_pods(&ds, &selector).await?;
        let node_pods = by_node(&owned);
        let (delete, create, mut wait) = self.manage(&ds, &nodes, &node_pods, &hash).await;
        let mut error = None;
        if !delete.is_empty() || !create.is_empty() {
            error = self.sync_nodes(&ds, &delete, &create, &hash).await;
        } else if rolling::is_rolling(&ds) {
            let runs: HashMap<&str, bool> = nodes
                .iter()
                .map(|n| (object::name(n), placement::should_run(&ds, n).0))
                .collect();
            let desired = runs.values().filter(|r| **r).count();
            let step = rolling::plan(
                &ds,
                &node_pods,
                |n| runs.get(n).copied().unwrap_or(false),
                &hash,
                generation,
                i64::try_from(desired).unwrap_or(i64::MAX),
                jiff::Timestamp::now(),
            );
            if !step.delete.is_empty() || !step.create_on.is_empty() {
                error = self
                    .sync_nodes(&ds, &step.delete, &step.create_on, &hash)
                    .await;
            }
        }
        self.cleanup_history(&ds, &current, &existing, &owned)
            .await?;

        // Status from the pods as they are now.
        let now_owned: Vec<Value> = self
            .list_pods(&ds)
            .await?
            .into_iter()
            .filter(|p| claim::controller_uid(p) == Some(uid.as_str()))
            .collect();
        let node_runs: Vec<(String, bool)> = nodes
            .iter()
            .map(|n| (object::name(n).to_string(), placement::should_run(&ds, n).0))
            .collect();
        let (counts, next) = status::count(
            &ds,
            &node_runs,
            &by_node(&now_owned),
            &hash,
            generation,
            jiff::Timestamp::now(),
        );
        let observed = ds
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.write_status(&ds, status::status(ds.get("status"), counts, observed))
            .await?;
        if let Some(message) = error {
            return Err(ReconcileError::Invalid(message));
        }
        // Look again when a ready pod passes minReadySeconds (a moment late, so it has), or
        // when a failed pod's backoff ends.
        if let Some(d) = next {
            let d = d + Duration::from_millis(500);
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        Ok(wait.map_or(Action::Done, Action::RequeueAfter))
    }
}

#[cfg(test)]
mod tests;
