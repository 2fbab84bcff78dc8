//! The Deployment controller, after Kubernetes': a Deployment owns one ReplicaSet per pod
//! template (named `<deployment>-<pod-template-hash>`, the hash also a label and selector
//! term), and rolls from the old ones to the new one with the RollingUpdate (`rolling.rs`,
//! maxSurge/maxUnavailable) or Recreate (`recreate.rs`) strategy. `sync.rs` finds or creates the
//! new ReplicaSet, numbers revisions (a reused ReplicaSet — `kubectl rollout undo` — gets the
//! next one), scales (`kubectl scale`, proportionally during a rollout), pauses and prunes
//! history (`revisionHistoryLimit`); `status.rs` computes what `kubectl rollout status` reads.

pub mod recreate;
pub mod rolling;
pub mod status;
pub mod sync;
pub mod util;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::replicaset::claim::{self, Claim};
use super::replicaset::{dependent_trigger, SelectorIndex};
use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::Objects;
use crate::api::object;
use crate::api::resources::ResourceDef;
use crate::api::selectors::LabelSelector;
use crate::events::{EventRecorder, EventType};
use crate::store::{EventType as StoreEventType, ListScope, ObjectKey};
use sync::Pass;

/// The component name on Events, as Kubernetes' controller.
pub const COMPONENT: &str = "deployment-controller";
/// Workers reconciling Deployments at once.
pub const DEFAULT_WORKERS: usize = 2;
/// While a step waits on something no event announces for sure (old pods of a Recreate
/// finishing, a ReplicaSet's status catching up), look again this soon.
pub const DEFAULT_WAIT_RECHECK: Duration = Duration::from_secs(1);

const DEPLOYMENTS: &str = "apps/deployments";
const REPLICASETS: &str = "apps/replicasets";

pub struct DeploymentController {
    objects: Objects,
    recorder: EventRecorder,
    index: Arc<SelectorIndex>,
    replicasets: &'static ResourceDef,
    deployments: &'static ResourceDef,
}

impl DeploymentController {
    pub fn new(objects: Objects) -> Result<Self, ReconcileError> {
        let find = |p: &str| super::runner::served("apps", p);
        Ok(DeploymentController {
            recorder: EventRecorder::new(objects.state().store.clone(), COMPONENT),
            replicasets: find("replicasets")?,
            deployments: find("deployments")?,
            objects,
            index: Arc::new(SelectorIndex::default()),
        })
    }

    pub(crate) async fn event(&self, d: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(d, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "cannot record event");
        }
    }

    /// The ReplicaSets `d` controls, after adopting matching orphans and releasing the rest.
    async fn claim_replica_sets(
        &self,
        d: &Value,
        selector: &LabelSelector,
    ) -> Result<Vec<Value>, ReconcileError> {
        let ns = object::namespace(d);
        let all = self
            .objects
            .state()
            .store
            .list(&ListScope::new(REPLICASETS, Some(ns)))
            .await?
            .items;
        let mut owned = Vec::new();
        for rs in all {
            match claim::classify(d, selector, &rs) {
                Claim::Owned => owned.push(rs),
                Claim::Adopt => {
                    if let Some(rs) = claim::adopt(&self.objects, self.replicasets, &rs, d).await? {
                        owned.push(rs);
                    }
                }
                Claim::Release => {
                    claim::remove_owner(
                        &self.objects,
                        self.replicasets,
                        &rs,
                        object::meta_str(d, "uid").unwrap_or(""),
                    )
                    .await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }

    /// Pods of the Deployment's ReplicaSets (any state), for Recreate's "old pods gone" check.
    pub(crate) async fn pods_of(&self, rss: &[Value]) -> Result<Vec<Value>, ReconcileError> {
        let Some(first) = rss.first() else {
            return Ok(Vec::new());
        };
        let uids: Vec<&str> = rss
            .iter()
            .filter_map(|r| object::meta_str(r, "uid"))
            .collect();
        let pods = self
            .objects
            .state()
            .store
            .list(&ListScope::new("core/pods", Some(object::namespace(first))))
            .await?
            .items;
        Ok(pods
            .into_iter()
            .filter(|p| claim::controller_uid(p).is_some_and(|u| uids.contains(&u)))
            .collect())
    }
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let index = self.index.clone();
        vec![
            Trigger::mapped(DEPLOYMENTS, move |e| {
                index.observe(e);
                vec![e.key.clone()]
            }),
            dependent_trigger(REPLICASETS, "Deployment", DEPLOYMENTS, self.index.clone()),
            // A deleted pod may be the last old one a Recreate waits for. Its ReplicaSet is
            // named `<deployment>-<hash>`.
            Trigger::mapped("core/pods", |e| {
                if e.kind != StoreEventType::Deleted {
                    return Vec::new();
                }
                match claim::controller_ref(&e.object) {
                    Some(r) if r.get("kind").and_then(Value::as_str) == Some("ReplicaSet") => r
                        .get("name")
                        .and_then(Value::as_str)
                        .and_then(|n| n.rsplit_once('-'))
                        .map(|(d, _)| vec![ObjectKey::new(DEPLOYMENTS, &e.key.namespace, d)])
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            }),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(d) = self.objects.state().store.get(key).await? else {
            return Ok(Action::Done);
        };
        let selector =
            match LabelSelector::from_k8s(d.pointer("/spec/selector").unwrap_or(&Value::Null)) {
                Ok(s) if !s.is_empty() && !s.is_nothing() => s,
                Ok(_) => {
                    self.event(
                        &d,
                        EventType::Warning,
                        "SelectingAll",
                        "This deployment is selecting all pods. A non-empty selector is required.",
                    )
                    .await;
                    return Ok(Action::Done);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "invalid selector; not managing replica sets");
                    return Ok(Action::Done);
                }
            };
        let rss = self.claim_replica_sets(&d, &selector).await?;
        let mut pass = Pass::new(self, d, rss);
        if object::is_terminating(&pass.d) {
            return pass.sync_status_only().await;
        }
        pass.check_paused_conditions().await?;
        if pass.paused() || pass.is_scaling_event() {
            return pass.sync().await;
        }
        if util::is_rolling(&pass.d) {
            rolling::rollout(&mut pass).await
        } else {
            recreate::rollout(&mut pass).await
        }
    }
}

#[cfg(test)]
mod tests;
