//! Node-local PersistentVolumeClaims (kube-scheduler's VolumeBinding plugin with a local-path
//! provisioner): a claim annotated `volume.kubernetes.io/selected-node` pins its pods to that
//! node; a missing claim makes the pod unschedulable; claims without the annotation get the
//! chosen node and `status.phase: Bound` just before the pod is bound.

use serde_json::{json, Value};

use super::cache::{Cache, SELECTED_NODE_ANNOTATION};
use super::podinfo::PodInfo;
use crate::api::object;
use crate::store::{object_revision, ObjectKey, Precondition, Store, StoreError};

pub const ERR_VOLUME_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// Where claims live in the store.
pub const PVC_RESOURCE: &str = "core/persistentvolumeclaims";
const MAX_RETRIES: usize = 8;

/// PreFilter result of the pod's claims.
#[derive(Debug, Default)]
pub struct VolumeState {
    /// The one node the pod's bound claims allow (None = any).
    pub required: Option<String>,
    /// Claims pinned to different nodes: no node fits.
    pub conflict: bool,
    /// Claims to pin to the chosen node.
    pub unbound: Vec<String>,
}

impl VolumeState {
    /// Err is the unschedulable message for a missing claim.
    pub fn compute(pod: &PodInfo, cache: &Cache) -> Result<VolumeState, String> {
        let mut st = VolumeState::default();
        for name in &pod.pvcs {
            let Some(pvc) = cache.pvc(&pod.namespace, name) else {
                return Err(format!("persistentvolumeclaim \"{name}\" not found"));
            };
            match (&pvc.selected_node, &st.required) {
                (None, _) if !st.unbound.contains(name) => st.unbound.push(name.clone()),
                (None, _) => {}
                (Some(n), None) => st.required = Some(n.clone()),
                (Some(n), Some(r)) if n != r => st.conflict = true,
                _ => {}
            }
        }
        Ok(st)
    }

    pub fn node_ok(&self, node: &str) -> bool {
        !self.conflict && self.required.as_deref().is_none_or(|r| r == node)
    }
}

/// Pins a claim to `node` (annotation + `status.phase: Bound`), unless it already is.
pub async fn pin_claim(
    store: &Store,
    namespace: &str,
    name: &str,
    node: &str,
) -> Result<(), StoreError> {
    let key = ObjectKey::new(PVC_RESOURCE, namespace, name);
    for _ in 0..MAX_RETRIES {
        let Some(pvc) = store.get(&key).await? else {
            return Err(StoreError::NotFound);
        };
        let current = pvc
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(SELECTED_NODE_ANNOTATION))
            .and_then(Value::as_str);
        let phase = pvc.pointer("/status/phase").and_then(Value::as_str);
        if current.is_some_and(|c| c != node) {
            // Another pod pinned it first; the pod's bind will be retried against that node.
            return Err(StoreError::Conflict);
        }
        if current == Some(node) && phase == Some("Bound") {
            return Ok(());
        }
        let mut updated = pvc.clone();
        let meta = object::meta_mut(&mut updated);
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        annotations[SELECTED_NODE_ANNOTATION] = json!(node);
        if !updated.get("status").is_some_and(Value::is_object) {
            updated["status"] = json!({});
        }
        updated["status"]["phase"] = json!("Bound");
        let pre = Precondition {
            resource_version: object_revision(&pvc),
            uid: None,
        };
        match store.update(key.clone(), updated, pre).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with(claims: &[&str]) -> PodInfo {
        let vols: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        PodInfo::from_pod(
            &json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [], "volumes": vols}}),
        )
    }

    #[test]
    fn claims_pin_pods() {
        let mut cache = Cache::default();
        assert_eq!(
            VolumeState::compute(&pod_with(&["x"]), &cache).unwrap_err(),
            "persistentvolumeclaim \"x\" not found"
        );
        cache.set_pvc(&json!({"metadata": {"name": "x", "namespace": "d"}}));
        let st = VolumeState::compute(&pod_with(&["x"]), &cache).unwrap();
        assert_eq!(st.unbound, vec!["x".to_string()]);
        assert!(st.node_ok("any"));
        cache.set_pvc(&json!({"metadata": {"name": "y", "namespace": "d", "annotations": {SELECTED_NODE_ANNOTATION: "n1"}}}));
        let st = VolumeState::compute(&pod_with(&["x", "y"]), &cache).unwrap();
        assert!(st.node_ok("n1") && !st.node_ok("n2"));
        cache.assume_pvc("d", "x", "n2");
        let st = VolumeState::compute(&pod_with(&["x", "y"]), &cache).unwrap();
        assert!(!st.node_ok("n1") && !st.node_ok("n2"));
    }

    #[tokio::test]
    async fn pins_a_claim_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let key = ObjectKey::new(PVC_RESOURCE, "d", "data");
        store
            .create(key.clone(), json!({"metadata": {"name": "data", "namespace": "d"}, "spec": {}, "status": {"phase": "Pending"}}))
            .await
            .unwrap();
        pin_claim(&store, "d", "data", "n1").await.unwrap();
        let pvc = store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            pvc["metadata"]["annotations"][SELECTED_NODE_ANNOTATION],
            "n1"
        );
        assert_eq!(pvc["status"]["phase"], "Bound");
        pin_claim(&store, "d", "data", "n1").await.unwrap();
        assert!(matches!(
            pin_claim(&store, "d", "data", "n2").await,
            Err(StoreError::Conflict)
        ));
    }
}
