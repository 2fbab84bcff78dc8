//! The scheduler's writes, run off the scheduling loop: claims + bind + `Scheduled` event for a
//! placed pod; `FailedScheduling` event + `PodScheduled=False` for an unschedulable one.

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::podinfo::PodInfo;
use super::volumes;
use super::BindOutcome;
use crate::api::object;
use crate::binding::{self, set_condition, BindError};
use crate::events::{EventRecorder, EventType};
use crate::store::{object_revision, ObjectKey, Precondition, Store, StoreError};

/// `Scheduled` events written at once.
pub const DEFAULT_EVENT_CONCURRENCY: usize = 16;
/// Conflicting writes tolerated while setting the PodScheduled condition.
const CONDITION_RETRIES: usize = 5;

/// Pins the pod's unbound claims to `node`, binds the pod, tells the scheduler, then records
/// the `Scheduled` event.
#[allow(clippy::too_many_arguments)]
pub(super) async fn bind(
    store: &Store,
    events: &mpsc::UnboundedSender<(Value, String)>,
    pod: &Value,
    info: &PodInfo,
    node: &str,
    claims: &[String],
    tx: &mpsc::UnboundedSender<BindOutcome>,
    key: String,
) {
    let mut result = Ok(None);
    for claim in claims {
        if let Err(e) = volumes::pin_claim(store, &info.namespace, claim, node).await {
            result = Err(BindError::Store(e));
            break;
        }
    }
    if result.is_ok() {
        result = binding::bind_from(store, pod, node).await.map(Some);
    }
    let (outcome, bound) = match result {
        Ok(v) => (Ok(()), v),
        Err(e) => (Err(e), None),
    };
    let _ = tx.send(BindOutcome {
        key,
        result: outcome,
    });
    if let Some(bound) = bound {
        let msg = format!(
            "Successfully assigned {}/{} to {node}",
            info.namespace, info.name
        );
        let _ = events.send((bound, msg));
    }
}

/// Writes `Scheduled` events in the background, a few at a time, so binds keep most of the
/// store's commits (kube-scheduler's event broadcaster is asynchronous too).
pub(super) async fn scheduled_events(
    recorder: std::sync::Arc<EventRecorder>,
    mut rx: mpsc::UnboundedReceiver<(Value, String)>,
) {
    let mut inflight = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = rx.recv(), if inflight.len() < DEFAULT_EVENT_CONCURRENCY => {
                let Some((pod, msg)) = next else { break };
                let recorder = recorder.clone();
                inflight.push(async move {
                    if let Err(e) = recorder.record(&pod, EventType::Normal, "Scheduled", &msg).await {
                        tracing::warn!(error = %e, "cannot record Scheduled event");
                    }
                });
            }
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
        }
    }
    while inflight.next().await.is_some() {}
}

/// Records `FailedScheduling` and sets `PodScheduled=False` (reason Unschedulable).
pub(super) async fn unschedulable(store: &Store, recorder: &EventRecorder, pod: &Value, msg: &str) {
    if let Err(e) = recorder
        .record(pod, EventType::Warning, "FailedScheduling", msg)
        .await
    {
        tracing::warn!(error = %e, "cannot record FailedScheduling event");
    }
    let key = ObjectKey::new("core/pods", object::namespace(pod), object::name(pod));
    let mut current = pod.clone();
    for _ in 0..CONDITION_RETRIES {
        let assigned = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if assigned || object::meta_str(&current, "uid") != object::meta_str(pod, "uid") {
            return;
        }
        let mut updated = current.clone();
        set_condition(
            &mut updated,
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg,
                   "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()}),
        );
        if updated == current {
            return;
        }
        let pre = Precondition {
            resource_version: object_revision(&current),
            uid: None,
        };
        match store.update(key.clone(), updated, pre).await {
            Ok(_) | Err(StoreError::NotFound) => return,
            Err(StoreError::Conflict) => match store.get(&key).await {
                Ok(Some(v)) => current = v,
                _ => return,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark pod unschedulable");
                return;
            }
        }
    }
}
