//! One sync pass over a StatefulSet's pods (Kubernetes' `updateStatefulSet`): pods sorted into
//! `replicas` (ordinals in `[start, start+replicas)`, with a name-only entry for each ordinal whose
//! pod does not exist yet, created at the current or update revision as the partition says) and `condemned` (ordinals beyond,
//! highest first), and the per-pod steps both pod management policies share
//! (`processReplica`, `processCondemned`). `ordered.rs` and `parallel.rs` decide how the steps
//! are run; `rolling.rs` replaces pods of old revisions afterwards.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::identity::{self, ordinal_of};
use super::status::{
    is_created, is_failed, is_healthy, is_pending, is_running_and_available, is_running_and_ready,
    is_succeeded,
};
use super::{claims, StatefulSetController};
use crate::api::handlers::{DeleteOptions, Subresource};
use crate::api::object;
use crate::controllers::runner::ReconcileError;
use crate::events::EventType;

/// What a step did: whether the pass must stop here (in monotonic mode), and the pod's new
/// local state when it changed (created, terminating, or the name-only entry of a pod that no longer exists).
#[derive(Debug, Default)]
pub struct Step {
    pub exit: bool,
    pub pod: Option<Value>,
}

impl Step {
    fn exit() -> Step {
        Step {
            exit: true,
            pod: None,
        }
    }
}

pub struct Pass<'a> {
    pub c: &'a StatefulSetController,
    pub set: &'a Value,
    pub current_revision: String,
    pub update_revision: String,
    current_template: Value,
    update_template: Value,
    /// Index `i` holds ordinal `start + i`; never-created entries have no status.
    pub replicas: Vec<Value>,
    /// Pods with ordinals outside the range, highest ordinal first.
    pub condemned: Vec<Value>,
    /// The first unhealthy pod: replicas in order, then condemned from the lowest ordinal.
    first_unhealthy: Option<String>,
    pub min_ready_seconds: i64,
    pub now: Timestamp,
}

/// A pod that was never created (or is gone): only its name, so it counts for nothing.
fn not_created(name: &str) -> Value {
    json!({"metadata": {"name": name}})
}

impl<'a> Pass<'a> {
    pub fn new(
        c: &'a StatefulSetController,
        set: &'a Value,
        current: &Value,
        update: &Value,
        pods: Vec<Value>,
        now: Timestamp,
    ) -> Pass<'a> {
        let update_template = identity::revision_template(update)
            .or_else(|| set.pointer("/spec/template").cloned())
            .unwrap_or_else(|| json!({}));
        let current_template =
            identity::revision_template(current).unwrap_or_else(|| update_template.clone());
        let start = identity::start_ordinal(set);
        let count = usize::try_from(identity::replicas(set)).unwrap_or(0);
        let mut slots: Vec<Option<Value>> = vec![None; count];
        let mut condemned = Vec::new();
        for pod in pods {
            let Some(ord) = ordinal_of(set, &pod) else {
                continue;
            };
            if identity::in_range(set, ord) {
                if let Some(slot) = usize::try_from(ord - start)
                    .ok()
                    .and_then(|i| slots.get_mut(i))
                {
                    *slot = Some(pod);
                }
            } else {
                condemned.push(pod);
            }
        }
        condemned.sort_by_key(|p| std::cmp::Reverse(ordinal_of(set, p).unwrap_or(0)));
        let mut pass = Pass {
            c,
            set,
            current_revision: object::name(current).to_string(),
            update_revision: object::name(update).to_string(),
            current_template,
            update_template,
            replicas: Vec::new(),
            condemned,
            first_unhealthy: None,
            min_ready_seconds: set
                .pointer("/spec/minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            now,
        };
        pass.replicas = slots
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.unwrap_or_else(|| pass.versioned_pod(start + i as i64)))
            .collect();
        pass.first_unhealthy = pass
            .replicas
            .iter()
            .chain(pass.condemned.iter().rev())
            .find(|p| !is_healthy(p))
            .map(|p| object::name(p).to_string());
        pass
    }

    /// Kubernetes' `newVersionedStatefulSetPod`: below the partition (RollingUpdate) the pod
    /// is made at the current revision, otherwise at the update revision.
    fn versioned_pod(&self, ordinal: i64) -> Value {
        let spec = self.set.get("spec").cloned().unwrap_or_default();
        let rolling = spec
            .pointer("/updateStrategy/type")
            .and_then(Value::as_str)
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        let start = identity::start_ordinal(self.set);
        let below = match spec.pointer("/updateStrategy/rollingUpdate") {
            Some(ru) if ru.is_object() => {
                ordinal < start + ru.get("partition").and_then(Value::as_i64).unwrap_or(0)
            }
            _ => {
                let current = self
                    .set
                    .pointer("/status/currentReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                ordinal < start + current
            }
        };
        if rolling && below {
            identity::new_pod(
                self.set,
                &self.current_template,
                &self.current_revision,
                ordinal,
            )
        } else {
            identity::new_pod(
                self.set,
                &self.update_template,
                &self.update_revision,
                ordinal,
            )
        }
    }

    pub fn monotonic(&self) -> bool {
        self.set
            .pointer("/spec/podManagementPolicy")
            .and_then(Value::as_str)
            != Some("Parallel")
    }

    fn ordinal(&self, pod: &Value) -> i64 {
        ordinal_of(self.set, pod).unwrap_or(0)
    }

    /// Every pod the pass knows (for the status).
    pub fn all_pods(&self) -> impl Iterator<Item = &Value> {
        self.replicas.iter().chain(self.condemned.iter())
    }

    /// Running, Ready and past minReadySeconds.
    pub fn is_available(&self, pod: &Value) -> bool {
        is_running_and_available(pod, self.min_ready_seconds, self.now)
    }

    /// Kubernetes' `processReplica` for replica slot `i`.
    pub async fn process_replica(&self, i: usize, monotonic: bool) -> Result<Step, ReconcileError> {
        let Some(pod) = self.replicas.get(i) else {
            return Ok(Step::default());
        };
        let ordinal = self.ordinal(pod);
        let name = object::name(pod).to_string();
        // Pods that finished (failed, or succeeded: evicted or stopped) are deleted and made anew.
        if is_created(pod) && (is_failed(pod) || is_succeeded(pod)) {
            let mut step = Step::exit();
            if !object::is_terminating(pod) {
                step.pod = Some(self.delete_pod(pod).await?);
            }
            return Ok(step);
        }
        let mut created = None;
        if !is_created(pod) {
            if self.c.claim_is_stale(self.set, ordinal, &name).await? {
                return Ok(Step::exit());
            }
            let new = self.create_pod(pod, ordinal).await?;
            if monotonic {
                return Ok(Step {
                    exit: true,
                    pod: Some(new),
                });
            }
            created = Some(new);
        }
        let pod = created.as_ref().unwrap_or(pod);
        if is_pending(pod) && claims::has_templates(self.set) {
            self.c
                .create_claims(self.set, ordinal, &name)
                .await
                .map_err(ReconcileError::Invalid)?;
        }
        if monotonic && (!is_running_and_ready(pod) || !self.is_available(pod)) {
            return Ok(Step {
                exit: true,
                pod: created,
            });
        }
        // The invariants: identity labels and the claims' retention ownerReferences.
        let mut pod_now = created.clone();
        if !object::is_terminating(pod) && !identity::identity_matches(self.set, pod) {
            let updated = self
                .c
                .objects
                .modify(
                    self.c.pods,
                    object::namespace(pod),
                    &name,
                    Subresource::Main,
                    |p| {
                        identity::update_identity(p, ordinal);
                        Ok(())
                    },
                )
                .await?;
            pod_now = updated.or(pod_now);
        }
        if claims::has_templates(self.set) && !object::is_terminating(pod) {
            self.c.sync_retention(self.set, pod, ordinal, false).await?;
        }
        Ok(Step {
            exit: false,
            pod: pod_now,
        })
    }

    /// Sets scaled-down pods' claims' ownerReferences for `whenScaled` before they go.
    pub async fn fix_condemned_claims(&self) -> Result<(), ReconcileError> {
        if !claims::has_templates(self.set) {
            return Ok(());
        }
        for pod in self.condemned.iter().filter(|p| is_created(p)) {
            self.c
                .sync_retention(self.set, pod, self.ordinal(pod), true)
                .await?;
        }
        Ok(())
    }

    /// Kubernetes' `processCondemned` for condemned pod `i`: in monotonic mode wait for it to
    /// terminate, and only delete a Running+Ready one (or the first unhealthy pod).
    pub async fn process_condemned(
        &self,
        i: usize,
        monotonic: bool,
    ) -> Result<Step, ReconcileError> {
        let Some(pod) = self.condemned.get(i) else {
            return Ok(Step::default());
        };
        if !is_created(pod) {
            return Ok(Step::default());
        }
        if object::is_terminating(pod) {
            return Ok(Step {
                exit: monotonic,
                pod: None,
            });
        }
        let first_unhealthy = self.first_unhealthy.as_deref() == Some(object::name(pod));
        if monotonic && !first_unhealthy && (!is_running_and_ready(pod) || !self.is_available(pod))
        {
            return Ok(Step::exit());
        }
        Ok(Step {
            exit: true,
            pod: Some(self.delete_pod(pod).await?),
        })
    }

    /// Creates the pod's claims, then the pod (Kubernetes' `CreateStatefulPod`). Returns it.
    async fn create_pod(&self, pod: &Value, ordinal: i64) -> Result<Value, ReconcileError> {
        let name = object::name(pod).to_string();
        let set_name = object::name(self.set);
        if claims::has_templates(self.set) {
            if let Err(e) = self.c.create_claims(self.set, ordinal, &name).await {
                let msg = format!("create Pod {name} in StatefulSet {set_name} failed error: {e}");
                self.c
                    .event(self.set, EventType::Warning, "FailedCreate", &msg)
                    .await;
                return Err(ReconcileError::Invalid(e));
            }
        }
        match self
            .c
            .objects
            .create(self.c.pods, object::namespace(self.set), pod.clone())
            .await
        {
            Ok(created) => {
                let msg = format!("create Pod {name} in StatefulSet {set_name} successful");
                self.c
                    .event(self.set, EventType::Normal, "SuccessfulCreate", &msg)
                    .await;
                if claims::has_templates(self.set) {
                    self.c
                        .sync_retention(self.set, &created, ordinal, false)
                        .await?;
                }
                Ok(created)
            }
            Err(e) if e.reason == "AlreadyExists" => Err(e.into()),
            Err(e) => {
                let msg = format!(
                    "create Pod {name} in StatefulSet {set_name} failed error: {}",
                    e.message
                );
                self.c
                    .event(self.set, EventType::Warning, "FailedCreate", &msg)
                    .await;
                Err(e.into())
            }
        }
    }

    /// Deletes a pod (this uid only); returns its new local state: terminating, or the
    /// name-only entry of a pod that does not exist once it is gone.
    pub async fn delete_pod(&self, pod: &Value) -> Result<Value, ReconcileError> {
        let name = object::name(pod).to_string();
        let opts = DeleteOptions {
            uid: object::meta_str(pod, "uid").map(str::to_string),
            ..DeleteOptions::default()
        };
        let result = self
            .c
            .objects
            .delete(self.c.pods, object::namespace(pod), &name, opts)
            .await;
        let set_name = object::name(self.set);
        match result {
            Ok(last) => {
                if last.is_some() {
                    let msg = format!("delete Pod {name} in StatefulSet {set_name} successful");
                    self.c
                        .event(self.set, EventType::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                Ok(match last {
                    Some(p) if object::is_terminating(&p) => p,
                    _ => not_created(&name),
                })
            }
            Err(e) if e.code == http::StatusCode::CONFLICT => Ok(pod.clone()),
            Err(e) => {
                let msg = format!(
                    "delete Pod {name} in StatefulSet {set_name} failed error: {}",
                    e.message
                );
                self.c
                    .event(self.set, EventType::Warning, "FailedDelete", &msg)
                    .await;
                Err(e.into())
            }
        }
    }

    /// Records a step's new pod state in replica slot `i`.
    pub fn apply_replica(&mut self, i: usize, step: &mut Step) {
        if let (Some(p), Some(slot)) = (step.pod.take(), self.replicas.get_mut(i)) {
            *slot = p;
        }
    }

    /// Records a step's new pod state for condemned pod `i`.
    pub fn apply_condemned(&mut self, i: usize, step: &mut Step) {
        if let (Some(p), Some(slot)) = (step.pod.take(), self.condemned.get_mut(i)) {
            *slot = p;
        }
    }
}
