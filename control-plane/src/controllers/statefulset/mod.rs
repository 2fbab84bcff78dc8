//! The StatefulSet controller (Kubernetes' `pkg/controller/statefulset`): pods with stable
//! names `<set>-0..N-1` (`identity.rs`), each with its own PersistentVolumeClaims from
//! `volumeClaimTemplates` created before it and kept after it (`claims.rs`); OrderedReady
//! (`ordered.rs`) or Parallel (`parallel.rs`) pod management; RollingUpdate with `partition`
//! or OnDelete (`rolling.rs`); ControllerRevisions for `kubectl rollout history/undo`
//! (`controllers/revisions.rs`); and the status `kubectl rollout status` reads (`status.rs`).
//! Emits `SuccessfulCreate` / `SuccessfulDelete` (and `FailedCreate` / `FailedDelete`) with
//! Kubernetes' messages ("create Pod web-0 in StatefulSet web successful").

pub mod claims;
pub mod identity;
pub mod ordered;
pub mod parallel;
pub mod pods;
pub mod rolling;
pub mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::replicaset::claim::{self as claim, Claim};
use super::replicaset::{dependent_trigger, SelectorIndex};
use super::revisions;
use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{Objects, Subresource};
use crate::api::object;
use crate::api::resources::ResourceDef;
use crate::api::selectors::LabelSelector;
use crate::api::{ApiError, ApiResult};
use crate::events::{EventRecorder, EventType};
use crate::store::{ListScope, ObjectKey};
use pods::Pass;

/// The component name on Events, as Kubernetes' controller.
pub const COMPONENT: &str = "statefulset-controller";
/// Workers reconciling StatefulSets at once (Kubernetes' `--concurrent-statefulset-syncs` is 5;
/// two suffice on a small control plane and keep store writes batched).
pub const DEFAULT_WORKERS: usize = 2;

const STATEFULSETS: &str = "apps/statefulsets";
const PODS: &str = "core/pods";
const REVISIONS: &str = "apps/controllerrevisions";

pub struct StatefulSetController {
    objects: Objects,
    recorder: EventRecorder,
    index: Arc<SelectorIndex>,
    pods: &'static ResourceDef,
    pvcs: &'static ResourceDef,
    sets: &'static ResourceDef,
}

impl StatefulSetController {
    pub fn new(objects: Objects) -> Result<Self, ReconcileError> {
        let find = super::runner::served;
        Ok(StatefulSetController {
            recorder: EventRecorder::new(objects.state().store.clone(), COMPONENT),
            pods: find("", "pods")?,
            pvcs: find("", "persistentvolumeclaims")?,
            sets: find("apps", "statefulsets")?,
            objects,
            index: Arc::new(SelectorIndex::default()),
        })
    }

    async fn event(&self, set: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(set, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "cannot record event");
        }
    }

    /// Every pod (terminating and finished ones too) the set controls after adopting matching
    /// orphans named `<set>-<n>` and releasing pods that stopped matching (Kubernetes'
    /// `getPodsForStatefulSet`).
    async fn claim_pods(
        &self,
        set: &Value,
        selector: &LabelSelector,
    ) -> Result<Vec<Value>, ReconcileError> {
        let ns = object::namespace(set);
        let set_uid = object::meta_str(set, "uid").unwrap_or("");
        let all = self
            .objects
            .state()
            .store
            .list(&ListScope::new(PODS, Some(ns)))
            .await?
            .items;
        let mut owned = Vec::new();
        for pod in all {
            let decision = if identity::ordinal_of(set, &pod).is_some() {
                claim::classify(set, selector, &pod)
            } else if claim::controller_uid(&pod) == Some(set_uid) && !object::is_terminating(set) {
                Claim::Release
            } else {
                Claim::Ignore
            };
            match decision {
                Claim::Owned => owned.push(pod),
                Claim::Adopt => {
                    if let Some(p) = claim::adopt(&self.objects, self.pods, &pod, set).await? {
                        owned.push(p);
                    }
                }
                Claim::Release => {
                    claim::remove_owner(&self.objects, self.pods, &pod, set_uid).await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }

    /// The current and update revisions and the collision count (Kubernetes'
    /// `getStatefulSetRevisions`): the update revision holds the set's template now (created,
    /// or an equal older one re-numbered, as after `rollout undo`); the current one is
    /// `status.currentRevision`, or the update revision when there is none yet.
    async fn revisions(&self, set: &Value, existing: &[Value]) -> ApiResult<(Value, Value, i64)> {
        let data = identity::revision_data(set);
        let labels: Map<String, Value> = set
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let count = set
            .pointer("/status/collisionCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        // Kubernetes always hashes with the collision count (0 when unset).
        let mut owner = set.clone();
        owner["status"]["collisionCount"] = json!(count);
        let (update, _) = revisions::ensure_current(
            &self.objects,
            &owner,
            data.clone(),
            &labels,
            revisions::HISTORY_HASH_LABEL,
            existing,
        )
        .await?;
        let collision_count = (count..count + 16)
            .find(|c| {
                revisions::revision_name(object::name(set), &revisions::hash_data(&data, Some(*c)))
                    == object::name(&update)
            })
            .unwrap_or(count);
        let current_name = set
            .pointer("/status/currentRevision")
            .and_then(Value::as_str)
            .unwrap_or("");
        let current = existing
            .iter()
            .find(|r| !current_name.is_empty() && object::name(r) == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    async fn write_status(&self, set: &Value, status: Value) -> ApiResult<()> {
        if set.get("status") == Some(&status) {
            return Ok(());
        }
        let uid = object::meta_str(set, "uid").unwrap_or("").to_string();
        self.objects
            .modify(
                self.sets,
                object::namespace(set),
                object::name(set),
                Subresource::Status,
                |o| {
                    if object::meta_str(o, "uid") != Some(uid.as_str()) {
                        return Err(ApiError::conflict("statefulsets", "apps", object::name(o)));
                    }
                    o["status"] = status.clone();
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }
}

impl Reconciler for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let index = self.index.clone();
        vec![
            Trigger::mapped(STATEFULSETS, move |e| {
                index.observe(e);
                vec![e.key.clone()]
            }),
            dependent_trigger(PODS, "StatefulSet", STATEFULSETS, self.index.clone()),
            Trigger::owner(REVISIONS, "StatefulSet", STATEFULSETS),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(set) = self.objects.state().store.get(key).await? else {
            return Ok(Action::Done);
        };
        let selector =
            match LabelSelector::from_k8s(set.pointer("/spec/selector").unwrap_or(&Value::Null)) {
                Ok(s) if !s.is_empty() => s,
                Ok(_) => {
                    tracing::warn!("empty selector; not managing pods");
                    return Ok(Action::Done);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "invalid selector; not managing pods");
                    return Ok(Action::Done);
                }
            };
        let pods = self.claim_pods(&set, &selector).await?;
        let existing = revisions::list_owned(&self.objects, &key.namespace, &set).await?;
        let (current, update, collision_count) = self.revisions(&set, &existing).await?;
        let now = jiff::Timestamp::now();
        let mut pass = Pass::new(self, &set, &current, &update, pods, now);
        let result = if object::is_terminating(&set) {
            Ok(())
        } else {
            run(&mut pass).await
        };

        let (counts, next) = status::count(
            pass.all_pods(),
            pass.min_ready_seconds,
            &pass.current_revision,
            &pass.update_revision,
            now,
        );
        let revs = status::Revisions {
            current: &pass.current_revision,
            update: &pass.update_revision,
            collision_count,
        };
        let new_status = status::status(&set, &counts, &revs);
        let mut live: HashSet<String> = pass
            .all_pods()
            .map(|p| identity::pod_revision(p).to_string())
            .filter(|r| !r.is_empty())
            .collect();
        live.insert(pass.current_revision.clone());
        live.insert(pass.update_revision.clone());
        drop(pass);
        self.write_status(&set, new_status).await?;
        let history = revisions::list_owned(&self.objects, &key.namespace, &set).await?;
        revisions::truncate(
            &self.objects,
            &history,
            &live,
            revisions::history_limit(&set),
        )
        .await?;
        result?;
        // Re-check when the next ready pod passes minReadySeconds (a little late, so it has).
        Ok(match next {
            Some(d) => Action::RequeueAfter(d + Duration::from_millis(500)),
            None => Action::Done,
        })
    }
}

/// Scaling by the pod management policy, then (when not blocked) the update strategy.
async fn run(pass: &mut Pass<'_>) -> Result<(), ReconcileError> {
    let blocked = if pass.monotonic() {
        ordered::scale(pass).await?
    } else {
        parallel::scale(pass).await?
    };
    if !blocked {
        rolling::update(pass).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
