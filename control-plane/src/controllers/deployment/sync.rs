//! One reconcile of a Deployment ([`Pass`]): finding or creating the new ReplicaSet and
//! keeping revisions (`getAllReplicaSetsAndSyncRevision`), scaling ReplicaSets with events,
//! `kubectl scale` (proportional while a rollout is in progress), `paused`, pruning old
//! ReplicaSets past `revisionHistoryLimit`, and writing the status.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::status::{self, FOUND_NEW_RS, NEW_RS_CREATED, PROGRESSING};
use super::util::{self, annotation, HASH_LABEL, REVISION};
use super::{DeploymentController, DEFAULT_WAIT_RECHECK};
use crate::api::handlers::{DeleteOptions, Subresource};
use crate::api::object;
use crate::api::ApiError;
use crate::controllers::replicaset::claim::{controller_ref_to, controller_uid};
use crate::controllers::replicaset::{spec_replicas, status_i64};
use crate::controllers::runner::{Action, ReconcileError};
use crate::events::EventType;

/// The state of one reconcile: the Deployment as last written and its ReplicaSets.
pub struct Pass<'a> {
    pub(crate) c: &'a DeploymentController,
    pub d: Value,
    /// Owned ReplicaSets, oldest first; updated in place as they are scaled.
    pub rss: Vec<Value>,
    pub now: Timestamp,
}

impl<'a> Pass<'a> {
    pub fn new(c: &'a DeploymentController, d: Value, mut rss: Vec<Value>) -> Self {
        rss.sort_by(util::by_creation);
        Pass {
            c,
            d,
            rss,
            now: Timestamp::now(),
        }
    }

    pub fn paused(&self) -> bool {
        self.d
            .pointer("/spec/paused")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn now_str(&self) -> String {
        status::rfc3339(self.now)
    }

    /// The new ReplicaSet (the oldest one whose template is the Deployment's) and the others.
    pub fn new_and_old(&self) -> (Option<usize>, Vec<usize>) {
        let template = self.d.pointer("/spec/template").unwrap_or(&Value::Null);
        let new = self.rss.iter().position(|rs| {
            util::equal_ignore_hash(
                rs.pointer("/spec/template").unwrap_or(&Value::Null),
                template,
            )
        });
        let old = (0..self.rss.len()).filter(|i| Some(*i) != new).collect();
        (new, old)
    }

    pub fn refs(&self, idx: &[usize]) -> Vec<&Value> {
        idx.iter().map(|i| &self.rss[*i]).collect()
    }

    pub fn all(&self, new: Option<usize>, old: &[usize]) -> Vec<usize> {
        old.iter().copied().chain(new).collect()
    }

    pub fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| spec_replicas(&self.rss[*i]) > 0)
            .collect()
    }

    /// An active ReplicaSet was sized for another `spec.replicas` (`isScalingEvent`).
    pub fn is_scaling_event(&self) -> bool {
        let replicas = spec_replicas(&self.d).to_string();
        self.rss
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .filter_map(|rs| annotation(rs, util::DESIRED_REPLICAS))
            .any(|desired| desired != replicas)
    }

    /// The new ReplicaSet with its revision synced, created when `create` and missing
    /// (`getAllReplicaSetsAndSyncRevision` + `getNewReplicaSet`).
    pub async fn sync_revision(
        &mut self,
        create: bool,
    ) -> Result<(Option<usize>, Vec<usize>), ReconcileError> {
        let (new, old) = self.new_and_old();
        let new_revision = util::max_revision(&self.refs(&old)) + 1;
        if let Some(i) = new {
            self.sync_existing(i, new_revision).await?;
            return Ok((Some(i), old));
        }
        if !create {
            return Ok((None, old));
        }
        let i = self.create_new(&old, new_revision).await?;
        Ok((Some(i), old))
    }

    async fn sync_existing(&mut self, i: usize, new_revision: i64) -> Result<(), ReconcileError> {
        let mut rs = self.rss[i].clone();
        let changed = util::set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
        let min_ready = self
            .d
            .pointer("/spec/minReadySeconds")
            .cloned()
            .unwrap_or(json!(0));
        let min_ready_changed = rs
            .pointer("/spec/minReadySeconds")
            .cloned()
            .unwrap_or(json!(0))
            != min_ready;
        if changed || min_ready_changed {
            let annotations = rs
                .pointer("/metadata/annotations")
                .cloned()
                .unwrap_or_else(|| json!({}));
            if let Some(updated) = self
                .modify_rs(i, |o| {
                    object::meta_mut(o).insert("annotations".into(), annotations.clone());
                    o["spec"]["minReadySeconds"] = min_ready.clone();
                })
                .await?
            {
                self.rss[i] = updated;
            }
        }
        let revision = annotation(&self.rss[i], REVISION).unwrap_or("").to_string();
        let mut needs_update = self.set_deployment_revision(&revision);
        let mut st = self.d.get("status").cloned().unwrap_or_else(|| json!({}));
        if status::progress_deadline(&self.d).is_some()
            && util::condition(&st, PROGRESSING).is_none()
        {
            let msg = format!("Found new replica set \"{}\"", object::name(&self.rss[i]));
            util::set_condition(
                &mut st,
                util::new_condition(PROGRESSING, "True", FOUND_NEW_RS, &msg, &self.now_str()),
            );
            needs_update = true;
        }
        if needs_update {
            self.write_status(st).await?;
        }
        Ok(())
    }

    fn set_deployment_revision(&mut self, revision: &str) -> bool {
        if revision.is_empty() || annotation(&self.d, REVISION) == Some(revision) {
            return false;
        }
        util::set_annotation(&mut self.d, REVISION, revision);
        true
    }

    async fn create_new(
        &mut self,
        old: &[usize],
        new_revision: i64,
    ) -> Result<usize, ReconcileError> {
        let collision = self
            .d
            .pointer("/status/collisionCount")
            .and_then(Value::as_i64);
        let mut template = self
            .d
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = util::template_hash(&template, collision);
        if !template.get("metadata").is_some_and(Value::is_object) {
            template["metadata"] = json!({});
        }
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = self
            .d
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let name = format!("{}-{hash}", object::name(&self.d));
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": object::namespace(&self.d),
                "labels": template["metadata"]["labels"].clone(),
                "ownerReferences": [controller_ref_to(&self.d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": self.d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                "selector": selector,
                "template": template,
            },
        });
        let replicas = {
            let mut all = self.refs(old);
            all.push(&rs);
            util::new_rs_new_replicas(&self.d, &all, &rs)
        };
        rs["spec"]["replicas"] = json!(replicas);
        util::set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        let ns = object::namespace(&self.d).to_string();
        let created = match self.c.objects.create(self.c.replicasets, &ns, rs).await {
            Ok(rs) => {
                if replicas > 0 {
                    let msg = format!("Scaled up replica set {name} from 0 to {replicas}");
                    self.c
                        .event(&self.d, EventType::Normal, "ScalingReplicaSet", &msg)
                        .await;
                }
                let mut st = self.d.get("status").cloned().unwrap_or_else(|| json!({}));
                if status::progress_deadline(&self.d).is_some() {
                    let msg = format!("Created new replica set \"{name}\"");
                    util::set_condition(
                        &mut st,
                        util::new_condition(
                            PROGRESSING,
                            "True",
                            NEW_RS_CREATED,
                            &msg,
                            &self.now_str(),
                        ),
                    );
                }
                self.set_deployment_revision(&new_revision.to_string());
                self.d["status"] = st;
                rs
            }
            Err(e) if e.reason == "AlreadyExists" => {
                let existing = self.c.objects.get(self.c.replicasets, &ns, &name).await?;
                let ours = existing.filter(|rs| {
                    controller_uid(rs) == object::meta_str(&self.d, "uid")
                        && util::equal_ignore_hash(
                            rs.pointer("/spec/template").unwrap_or(&Value::Null),
                            self.d.pointer("/spec/template").unwrap_or(&Value::Null),
                        )
                });
                match ours {
                    Some(rs) => rs,
                    None => {
                        // A hash collision: bump collisionCount so the next name differs.
                        let mut st = self.d.get("status").cloned().unwrap_or_else(|| json!({}));
                        st["collisionCount"] = json!(collision.unwrap_or(0) + 1);
                        self.write_status(st).await?;
                        return Err(ReconcileError::Api(e));
                    }
                }
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{name}\": {}", e.message);
                self.c
                    .event(&self.d, EventType::Warning, "FailedCreate", &msg)
                    .await;
                if status::progress_deadline(&self.d).is_some()
                    && e.code != http::StatusCode::FORBIDDEN
                {
                    let mut st = self.d.get("status").cloned().unwrap_or_else(|| json!({}));
                    util::set_condition(
                        &mut st,
                        util::new_condition(
                            PROGRESSING,
                            "False",
                            "ReplicaSetCreateError",
                            &msg,
                            &self.now_str(),
                        ),
                    );
                    self.write_status(st).await?;
                }
                return Err(ReconcileError::Api(e));
            }
        };
        let st = self.d.get("status").cloned().unwrap_or_else(|| json!({}));
        self.write_status(st).await?;
        self.rss.push(created);
        Ok(self.rss.len() - 1)
    }

    /// Changes ReplicaSet `i` with `change` on its latest version (uid-checked).
    pub async fn modify_rs(
        &self,
        i: usize,
        change: impl Fn(&mut Value),
    ) -> Result<Option<Value>, ReconcileError> {
        let rs = &self.rss[i];
        let uid = object::meta_str(rs, "uid").unwrap_or("").to_string();
        let def = self.c.replicasets;
        let updated = self
            .c
            .objects
            .modify(
                def,
                object::namespace(rs),
                object::name(rs),
                Subresource::Main,
                |o| {
                    if object::meta_str(o, "uid") != Some(uid.as_str()) {
                        return Err(ApiError::conflict(def.plural, def.group, object::name(o)));
                    }
                    change(o);
                    Ok(())
                },
            )
            .await?;
        Ok(updated)
    }

    /// Sets ReplicaSet `i` to `new_scale` replicas (and the Deployment's replica annotations),
    /// recording `ScalingReplicaSet`. Returns whether the size changed.
    pub async fn scale_rs(&mut self, i: usize, new_scale: i64) -> Result<bool, ReconcileError> {
        let old_scale = spec_replicas(&self.rss[i]);
        let replicas = spec_replicas(&self.d);
        let max = replicas + util::max_surge(&self.d);
        let mut probe = self.rss[i].clone();
        let annotations_changed = util::set_replicas_annotations(&mut probe, replicas, max);
        let size_changed = old_scale != new_scale;
        if !size_changed && !annotations_changed {
            return Ok(false);
        }
        let Some(updated) = self
            .modify_rs(i, |o| {
                o["spec"]["replicas"] = json!(new_scale);
                util::set_replicas_annotations(o, replicas, max);
            })
            .await?
        else {
            return Ok(false);
        };
        self.rss[i] = updated;
        if size_changed {
            let dir = if new_scale > old_scale { "up" } else { "down" };
            let msg = format!(
                "Scaled {dir} replica set {} from {old_scale} to {new_scale}",
                object::name(&self.rss[i])
            );
            self.c
                .event(&self.d, EventType::Normal, "ScalingReplicaSet", &msg)
                .await;
        }
        Ok(size_changed)
    }

    /// Writes `status` (and the revision annotation) when they changed.
    pub async fn write_status(&mut self, status: Value) -> Result<(), ReconcileError> {
        let current = self
            .c
            .objects
            .state()
            .store
            .get(&crate::store::ObjectKey::new(
                super::DEPLOYMENTS,
                object::namespace(&self.d),
                object::name(&self.d),
            ))
            .await?;
        let revision = annotation(&self.d, REVISION).map(str::to_string);
        let unchanged = current.as_ref().is_some_and(|c| {
            c.get("status") == Some(&status)
                && annotation(c, REVISION).map(str::to_string) == revision
        });
        self.d["status"] = status.clone();
        if unchanged {
            return Ok(());
        }
        let uid = object::meta_str(&self.d, "uid").unwrap_or("").to_string();
        let def = self.c.deployments;
        self.c
            .objects
            .modify(
                def,
                object::namespace(&self.d),
                object::name(&self.d),
                Subresource::Status,
                |o| {
                    if object::meta_str(o, "uid") != Some(uid.as_str()) {
                        return Err(ApiError::conflict(def.plural, def.group, object::name(o)));
                    }
                    o["status"] = status.clone();
                    if let Some(r) = &revision {
                        util::set_annotation(o, REVISION, r);
                    }
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }

    /// Status from the ReplicaSets with the Progressing condition moved on; the action
    /// requeues for the progress deadline.
    pub async fn sync_rollout_status(
        &mut self,
        new: Option<usize>,
        old: &[usize],
    ) -> Result<Action, ReconcileError> {
        let all = self.all(new, old);
        let (st, requeue) = status::rollout(
            &self.refs(&all),
            new.map(|i| &self.rss[i]),
            &self.d,
            self.now,
        );
        self.write_status(st).await?;
        Ok(self.after(requeue))
    }

    /// Status without moving the Progressing condition (`syncDeploymentStatus`).
    async fn sync_deployment_status(
        &mut self,
        new: Option<usize>,
        old: &[usize],
    ) -> Result<Action, ReconcileError> {
        let all = self.all(new, old);
        let st = status::calculate(
            &self.refs(&all),
            new.map(|i| &self.rss[i]),
            &self.d,
            &self.now_str(),
        );
        self.write_status(st).await?;
        Ok(self.after(None))
    }

    /// Done, or a recheck while a ReplicaSet's status lags its spec.
    fn after(&self, requeue: Option<Duration>) -> Action {
        let stale = self.rss.iter().any(|rs| !util::status_fresh(rs));
        let wait = if stale {
            Some(DEFAULT_WAIT_RECHECK)
        } else {
            None
        };
        match (requeue, wait) {
            (Some(a), Some(b)) => Action::RequeueAfter(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Action::RequeueAfter(a),
            (None, None) => Action::Done,
        }
    }

    /// A Deployment being deleted only reports status.
    pub async fn sync_status_only(&mut self) -> Result<Action, ReconcileError> {
        let (new, old) = self.sync_revision(false).await?;
        self.sync_deployment_status(new, &old).await
    }

    pub async fn check_paused_conditions(&mut self) -> Result<(), ReconcileError> {
        let now = self.now_str();
        if status::paused_conditions(&mut self.d, &now) {
            let st = self.d["status"].clone();
            self.write_status(st).await?;
        }
        Ok(())
    }

    /// Paused or scaled Deployments: scale, prune when paused, report (`sync`).
    pub async fn sync(&mut self) -> Result<Action, ReconcileError> {
        let (new, old) = self.sync_revision(false).await?;
        self.scale(new, &old).await?;
        if self.paused() {
            self.cleanup(&old).await?;
        }
        self.sync_deployment_status(new, &old).await
    }

    /// Kubernetes' `scale`: a single active (or the latest) ReplicaSet takes the whole change;
    /// a saturated new one means old ones go to 0; otherwise the change is spread in
    /// proportion to sizes (RollingUpdate).
    async fn scale(&mut self, new: Option<usize>, old: &[usize]) -> Result<(), ReconcileError> {
        let replicas = spec_replicas(&self.d);
        let mut newest_first: Vec<usize> = old.to_vec();
        newest_first.sort_by(|a, b| util::by_creation(&self.rss[*b], &self.rss[*a]));
        let active = self.active(&self.all(new, &newest_first));
        let target = match active.as_slice() {
            [] => new.or(newest_first.first().copied()),
            [one] => Some(*one),
            _ => None,
        };
        if let Some(i) = target {
            if spec_replicas(&self.rss[i]) != replicas {
                self.scale_rs(i, replicas).await?;
            }
            return Ok(());
        }
        if util::is_saturated(&self.d, new.map(|i| &self.rss[i])) {
            for i in self.active(old) {
                self.scale_rs(i, 0).await?;
            }
            return Ok(());
        }
        if !util::is_rolling(&self.d) {
            return Ok(());
        }
        let mut all = active;
        let allowed = if replicas > 0 {
            replicas + util::max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - util::spec_total(&self.refs(&all));
        // Scale up: the biggest (then newest) first; down: the biggest (then oldest) first.
        all.sort_by(|a, b| {
            let (ra, rb) = (&self.rss[*a], &self.rss[*b]);
            let size = spec_replicas(rb).cmp(&spec_replicas(ra));
            if to_add > 0 {
                size.then_with(|| util::by_creation(rb, ra))
            } else {
                size.then_with(|| util::by_creation(ra, rb))
            }
        });
        let mut sizes = Vec::new();
        let mut added = 0;
        for i in &all {
            let p = if to_add != 0 {
                util::proportion(&self.rss[*i], &self.d, to_add, added)
            } else {
                0
            };
            added += p;
            sizes.push(spec_replicas(&self.rss[*i]) + p);
        }
        if let Some(first) = sizes.first_mut() {
            if to_add != 0 {
                *first = (*first + to_add - added).max(0);
            }
        }
        for (i, size) in all.into_iter().zip(sizes) {
            self.scale_rs(i, size).await?;
        }
        Ok(())
    }

    /// Deletes the oldest fully scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    pub async fn cleanup(&mut self, old: &[usize]) -> Result<(), ReconcileError> {
        let Some(limit) = self
            .d
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
        else {
            return Ok(());
        };
        let mut alive: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| !object::is_terminating(&self.rss[*i]))
            .collect();
        let diff = alive.len() as i64 - limit;
        if diff <= 0 {
            return Ok(());
        }
        alive.sort_by(|a, b| {
            util::revision(&self.rss[*a])
                .cmp(&util::revision(&self.rss[*b]))
                .then_with(|| util::by_creation(&self.rss[*a], &self.rss[*b]))
        });
        for i in alive.into_iter().take(usize::try_from(diff).unwrap_or(0)) {
            let rs = &self.rss[i];
            if status_i64(rs, "replicas") != 0 || spec_replicas(rs) != 0 || !util::status_fresh(rs)
            {
                continue;
            }
            let opts = DeleteOptions {
                uid: object::meta_str(rs, "uid").map(str::to_string),
                ..DeleteOptions::default()
            };
            tracing::info!(
                replicaset = object::name(rs),
                "pruning old replica set (revisionHistoryLimit)"
            );
            match self
                .c
                .objects
                .delete(
                    self.c.replicasets,
                    object::namespace(rs),
                    object::name(rs),
                    opts,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == http::StatusCode::CONFLICT => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
