//! The scheduler: binds pods without `spec.nodeName` to a Ready node with room (requests vs
//! allocatable, pod count, host ports), matching `nodeSelector` (including what a
//! RuntimeClass adds) and tolerating taints; least-allocated nodes win. Writes `Scheduled` /
//! `FailedScheduling` events and the `PodScheduled` condition. Level-triggered: every pass
//! reads the latest pods and nodes; passes run when either changes, or on a timer while pods
//! wait.

pub mod filters;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::api::object;
use crate::binding::{self, set_condition, BindError};
use crate::events::{EventRecorder, EventType};
use crate::store::{object_revision, ListScope, ObjectKey, Precondition, Store, StoreError};
use filters::{pod_demand, reject_reason, score, summarize, NodeState};

/// The scheduler name pods get by default; pods naming another scheduler are left alone.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// How soon pods that fit nowhere are tried again even without a change.
pub const DEFAULT_UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(5);
/// Full pass even when nothing changed, so nothing waits on a missed event.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
/// Binds written at once: they share group commits in the store.
const BIND_CONCURRENCY: usize = 64;

pub struct Scheduler {
    store: Store,
    recorder: Arc<EventRecorder>,
    /// Last FailedScheduling message per pod uid, so repeats don't rewrite the same thing.
    last_failure: HashMap<String, String>,
}

impl Scheduler {
    pub fn new(store: Store) -> Self {
        Scheduler {
            recorder: Arc::new(EventRecorder::new(store.clone(), SCHEDULER_NAME)),
            store,
            last_failure: HashMap::new(),
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let span = tracing::info_span!("reconcile", controller = "scheduler");
            let (waiting, revision) = match self.pass().instrument(span).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduling pass failed; retrying");
                    (true, 0)
                }
            };
            let wait = if waiting {
                DEFAULT_UNSCHEDULABLE_RETRY
            } else {
                DEFAULT_RESYNC
            };
            let pods = self
                .store
                .watch(ListScope::new("core/pods", None), revision)
                .await;
            let nodes = self
                .store
                .watch(ListScope::new("core/nodes", None), revision)
                .await;
            let (Ok(mut pods), Ok(mut nodes)) = (pods, nodes) else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            };
            tokio::select! {
                _ = pods.next() => {}
                _ = nodes.next() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Schedules every pending pod once. Returns whether some still wait, and the revision
    /// the pods were read at.
    pub async fn pass(&mut self) -> Result<(bool, u64), StoreError> {
        let nodes = self.store.list(&ListScope::new("core/nodes", None)).await?;
        let pods = self.store.list(&ListScope::new("core/pods", None)).await?;
        let mut states: Vec<NodeState> = nodes.items.iter().map(NodeState::from_node).collect();
        let index: HashMap<String, usize> = states
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut pending = Vec::new();
        for pod in &pods.items {
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let phase = pod
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            if phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            if !node.is_empty() {
                if let Some(i) = index.get(node) {
                    states[*i].add(&pod_demand(pod));
                }
                continue;
            }
            let scheduler = pod
                .pointer("/spec/schedulerName")
                .and_then(Value::as_str)
                .unwrap_or(SCHEDULER_NAME);
            if scheduler == SCHEDULER_NAME && !object::is_terminating(pod) {
                pending.push(pod);
            }
        }
        pending.sort_by(|a, b| {
            let ka = (
                object::meta_str(a, "creationTimestamp").unwrap_or(""),
                object::name(a),
            );
            let kb = (
                object::meta_str(b, "creationTimestamp").unwrap_or(""),
                object::name(b),
            );
            ka.cmp(&kb)
        });
        let mut binds = Vec::new();
        let mut failures = Vec::new();
        for pod in pending {
            let demand = pod_demand(pod);
            let mut reasons = Vec::new();
            let mut best: Option<(i64, usize)> = None;
            for (i, node) in states.iter().enumerate() {
                match reject_reason(pod, &demand, node) {
                    Some(r) => reasons.push(r),
                    None => {
                        let s = score(&demand, node);
                        let better = match best {
                            None => true,
                            Some((bs, bi)) => {
                                s > bs || (s == bs && node.used_pods < states[bi].used_pods)
                            }
                        };
                        if better {
                            best = Some((s, i));
                        }
                    }
                }
            }
            match best {
                Some((_, i)) => {
                    states[i].add(&demand);
                    binds.push((pod.clone(), states[i].name.clone()));
                }
                None => failures.push((pod.clone(), summarize(states.len(), &reasons))),
            }
        }
        let waiting = !failures.is_empty();
        for chunk in binds.chunks(BIND_CONCURRENCY) {
            join_all(chunk.iter().map(|(pod, node)| self.bind(pod, node))).await;
        }
        for (pod, message) in failures {
            self.unschedulable(&pod, &message).await;
        }
        Ok((waiting, pods.revision))
    }

    async fn bind(&self, pod: &Value, node: &str) {
        let (ns, name) = (object::namespace(pod), object::name(pod));
        match binding::bind(&self.store, ns, name, node).await {
            Ok(bound) => {
                tracing::info!(pod = %format!("{ns}/{name}"), %node, "scheduled");
                let msg = format!("Successfully assigned {ns}/{name} to {node}");
                if let Err(e) = self
                    .recorder
                    .record(&bound, EventType::Normal, "Scheduled", &msg)
                    .await
                {
                    tracing::warn!(error = %e, "cannot record Scheduled event");
                }
            }
            // Someone else bound or deleted it meanwhile: the next pass sees the truth.
            Err(
                BindError::AlreadyBound { .. } | BindError::NotFound(_) | BindError::Terminating(_),
            ) => {}
            Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "bind failed"),
        }
    }

    async fn unschedulable(&mut self, pod: &Value, message: &str) {
        let uid = object::meta_str(pod, "uid").unwrap_or("").to_string();
        if self.last_failure.get(&uid).map(String::as_str) == Some(message) {
            return;
        }
        tracing::info!(pod = %format!("{}/{}", object::namespace(pod), object::name(pod)), %message, "unschedulable");
        if let Err(e) = self
            .recorder
            .record(pod, EventType::Warning, "FailedScheduling", message)
            .await
        {
            tracing::warn!(error = %e, "cannot record FailedScheduling event");
        }
        let mut updated = pod.clone();
        set_condition(
            &mut updated,
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                   "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()}),
        );
        let key = ObjectKey::new("core/pods", object::namespace(pod), object::name(pod));
        let pre = Precondition {
            resource_version: object_revision(pod),
            uid: None,
        };
        match self.store.update(key, updated, pre).await {
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {
                self.last_failure.insert(uid, message.to_string());
            }
            Err(e) => tracing::warn!(error = %e, "cannot mark pod unschedulable"),
        }
        // Forget pods that are gone, so the map does not grow without bound.
        if self.last_failure.len() > 10_000 {
            self.last_failure.clear();
        }
    }
}
