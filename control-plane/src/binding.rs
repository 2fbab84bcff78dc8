//! Binding a pod to a node: what `pods/binding` does, shared by the HTTP handler and the
//! in-process scheduler. Sets `spec.nodeName` and the `PodScheduled` condition in one write.

use serde_json::{json, Value};

use crate::api::object;
use crate::store::{object_revision, ObjectKey, Precondition, Store, StoreError};

const MAX_RETRIES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("pods \"{0}\" not found")]
    NotFound(String),
    #[error("pod {pod} is already assigned to node \"{node}\"")]
    AlreadyBound { pod: String, node: String },
    #[error("pod {0} is being deleted")]
    Terminating(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replaces (or adds) the condition of `cond["type"]` in `status.conditions`, keeping
/// `lastTransitionTime` when the status did not change.
pub fn set_condition(pod: &mut Value, cond: Value) {
    let Some(kind) = cond.get("type").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let Some(map) = pod.as_object_mut() else {
        return;
    };
    let status = map.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let conds = status
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(conds) = conds.and_then(Value::as_array_mut) else {
        return;
    };
    let mut cond = cond;
    if let Some(existing) = conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind.as_str()))
    {
        if existing.get("status") == cond.get("status") {
            if let Some(t) = existing.get("lastTransitionTime").cloned() {
                cond["lastTransitionTime"] = t;
            }
        }
        *existing = cond;
    } else {
        conds.push(cond);
    }
}

/// `pod` with `spec.nodeName` and `PodScheduled=True` set.
fn bound_copy(pod: &Value, node: &str) -> Value {
    let mut updated = pod.clone();
    if let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("nodeName".into(), json!(node));
    }
    set_condition(
        &mut updated,
        json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()}),
    );
    updated
}

/// Binds starting from a copy of the pod the caller already holds (the scheduler's cache):
/// one write when that copy is current, the re-reading [`bind`] when it is not.
pub async fn bind_from(store: &Store, pod: &Value, node: &str) -> Result<Value, BindError> {
    let (namespace, name) = (object::namespace(pod), object::name(pod));
    let assigned = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if assigned.is_empty() && !object::is_terminating(pod) {
        let key = ObjectKey::new("core/pods", namespace, name);
        let pre = Precondition {
            resource_version: object_revision(pod),
            uid: None,
        };
        match store.update(key, bound_copy(pod, node), pre).await {
            Ok(v) => return Ok(v),
            Err(StoreError::Conflict) => {}
            Err(StoreError::NotFound) => return Err(BindError::NotFound(name.to_string())),
            Err(e) => return Err(e.into()),
        }
    }
    bind(store, namespace, name, node).await
}

pub async fn bind(
    store: &Store,
    namespace: &str,
    name: &str,
    node: &str,
) -> Result<Value, BindError> {
    let key = ObjectKey::new("core/pods", namespace, name);
    for _ in 0..MAX_RETRIES {
        let pod = store
            .get(&key)
            .await?
            .ok_or_else(|| BindError::NotFound(name.to_string()))?;
        let assigned = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !assigned.is_empty() {
            return Err(BindError::AlreadyBound {
                pod: name.to_string(),
                node: assigned.to_string(),
            });
        }
        if object::is_terminating(&pod) {
            return Err(BindError::Terminating(name.to_string()));
        }
        let updated = bound_copy(&pod, node);
        let pre = Precondition {
            resource_version: object_revision(&pod),
            uid: None,
        };
        match store.update(key.clone(), updated, pre).await {
            Ok(v) => return Ok(v),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(BindError::Store(StoreError::Conflict))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": []}, "status": {"phase": "Pending"}});
        store
            .create(ObjectKey::new("core/pods", "d", "p"), pod)
            .await
            .unwrap();
        let bound = bind(&store, "d", "p", "n1").await.unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
        assert!(matches!(
            bind(&store, "d", "p", "n2").await,
            Err(BindError::AlreadyBound { .. })
        ));
        assert!(matches!(
            bind(&store, "d", "x", "n2").await,
            Err(BindError::NotFound(_))
        ));
        // From a stale copy: falls back to re-reading, and sees the pod is bound.
        let stale = store
            .create(
                ObjectKey::new("core/pods", "d", "q"),
                json!({"metadata": {"name": "q", "namespace": "d"}, "spec": {}}),
            )
            .await
            .unwrap();
        let mut newer = stale.clone();
        newer["metadata"]["labels"] = json!({"a": "b"});
        store
            .update(
                ObjectKey::new("core/pods", "d", "q"),
                newer,
                Precondition::default(),
            )
            .await
            .unwrap();
        let bound = bind_from(&store, &stale, "n3").await.unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n3");
        assert_eq!(bound["metadata"]["labels"]["a"], "b");
        assert!(matches!(
            bind_from(&store, &stale, "n4").await,
            Err(BindError::AlreadyBound { .. })
        ));
    }
}
