//! The scheduler's in-memory view of the cluster, fed by watches: nodes with what their pods
//! request, every pod (parsed once), and PersistentVolumeClaims' selected nodes. A pod being
//! bound is *assumed*: counted on its node as soon as the bind is sent, before the store
//! confirms it, so the next pod sees the room it took (kube-scheduler's assume cache).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::podinfo::{quantity, HostPort, PodInfo, Resources};
use super::taints::{Effect, Taint, NOT_READY_TAINT, UNREACHABLE_TAINT};
use crate::api::object;
use crate::store::{EventType, ObjectKey, StoreEvent};

/// Pods a node takes when its allocatable does not say (the kubelet's default `maxPods`).
pub const DEFAULT_MAX_PODS: i64 = 110;
/// The PVC annotation naming the node its (node-local) volume lives on.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";

/// A node, its scheduling-relevant spec, and what the pods on it take.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: HashMap<String, String>,
    /// The node's taints, plus `not-ready`/`unreachable` when it is not Ready.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub requested: Resources,
    pub nonzero_requested: Resources,
    pub used_ports: Vec<HostPort>,
    pub pods: HashMap<String, Arc<PodInfo>>,
    /// Pods here with any inter-pod (anti-)affinity term, and with required anti-affinity.
    pub with_affinity: usize,
    pub with_anti_affinity: usize,
    /// The images the node reports holding (`status.images[].names`, normalized).
    pub images: std::collections::HashSet<String>,
}

impl NodeInfo {
    pub fn from_node(node: &Value) -> NodeInfo {
        let labels = object::labels(node)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        let mut taints: Vec<Taint> = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Taint::parse)
            .collect();
        let ready = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            .and_then(|c| c.get("status").and_then(Value::as_str));
        let implicit = match ready {
            Some("True") => None,
            Some("Unknown") => Some(UNREACHABLE_TAINT),
            _ => Some(NOT_READY_TAINT),
        };
        if let Some(key) = implicit {
            if !taints.iter().any(|t| t.key == key) {
                taints.push(Taint::new(key, Effect::NoSchedule));
            }
        }
        let alloc = node.pointer("/status/allocatable");
        NodeInfo {
            name: object::name(node).to_string(),
            labels,
            taints,
            unschedulable: node
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            allocatable: Resources::from_list(alloc),
            allowed_pods: alloc
                .and_then(|a| a.get("pods"))
                .and_then(quantity)
                .map(|q| (q.millis() / 1000) as i64)
                .unwrap_or(DEFAULT_MAX_PODS),
            images: node
                .pointer("/status/images")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("names").and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .map(super::podinfo::normalize_image)
                .collect(),
            ..NodeInfo::default()
        }
    }

    /// Whether the parts filters and scores read differ (heartbeats do not count).
    pub fn spec_differs(&self, o: &NodeInfo) -> bool {
        self.labels != o.labels
            || self.taints != o.taints
            || self.unschedulable != o.unschedulable
            || self.allocatable != o.allocatable
            || self.allowed_pods != o.allowed_pods
            || self.images != o.images
    }

    fn add_pod(&mut self, key: &str, p: &Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.nonzero_requested.add(&p.nonzero);
        self.used_ports.extend(p.host_ports.iter().cloned());
        if p.has_pod_topology() {
            self.with_affinity += 1;
        }
        if !p.anti_affinity.is_empty() {
            self.with_anti_affinity += 1;
        }
        self.pods.insert(key.to_string(), p.clone());
    }

    fn remove_pod(&mut self, key: &str) {
        let Some(p) = self.pods.remove(key) else {
            return;
        };
        self.requested.sub(&p.requests);
        self.nonzero_requested.sub(&p.nonzero);
        for hp in &p.host_ports {
            if let Some(i) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(i);
            }
        }
        if p.has_pod_topology() {
            self.with_affinity -= 1;
        }
        if !p.anti_affinity.is_empty() {
            self.with_anti_affinity -= 1;
        }
    }
}

/// A pod in the cache: its parsed view, its latest stored JSON, and the node it is counted on.
#[derive(Debug, Clone)]
pub struct CachedPod {
    pub info: Arc<PodInfo>,
    /// The change that carried the latest state (shared with the watch, never copied).
    pub obj: Arc<StoreEvent>,
    pub node: Option<String>,
    /// Counted on `node` by the scheduler while its bind is in flight.
    pub assumed: bool,
}

/// A PersistentVolumeClaim's scheduling view.
#[derive(Debug, Clone)]
pub struct Pvc {
    pub selected_node: Option<String>,
}

#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, CachedPod>,
    pvcs: HashMap<String, Pvc>,
}

/// What a node event changed, for requeueing unschedulable pods.
#[derive(Debug, PartialEq, Eq)]
pub enum NodeChange {
    Added,
    Changed,
    Unchanged,
}

impl Cache {
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    pub fn pod(&self, key: &str) -> Option<&CachedPod> {
        self.pods.get(key)
    }

    pub fn pods(&self) -> impl Iterator<Item = (&String, &CachedPod)> {
        self.pods.iter()
    }

    pub fn pvc(&self, namespace: &str, name: &str) -> Option<&Pvc> {
        self.pvcs.get(&format!("{namespace}/{name}"))
    }

    pub fn clear(&mut self) {
        *self = Cache::default();
    }

    pub fn set_node(&mut self, node: &Value) -> NodeChange {
        let fresh = NodeInfo::from_node(node);
        if let Some(&i) = self.index.get(&fresh.name) {
            let n = &mut self.nodes[i];
            if !n.spec_differs(&fresh) {
                return NodeChange::Unchanged;
            }
            n.labels = fresh.labels;
            n.taints = fresh.taints;
            n.unschedulable = fresh.unschedulable;
            n.allocatable = fresh.allocatable;
            n.allowed_pods = fresh.allowed_pods;
            n.images = fresh.images;
            return NodeChange::Changed;
        }
        let mut fresh = fresh;
        for (key, p) in &self.pods {
            if p.node.as_deref() == Some(fresh.name.as_str()) {
                fresh.add_pod(key, &p.info);
            }
        }
        self.index.insert(fresh.name.clone(), self.nodes.len());
        self.nodes.push(fresh);
        NodeChange::Added
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    fn account(&mut self, key: &str, node: Option<&str>, add: Option<&Arc<PodInfo>>) {
        let Some(i) = node.and_then(|n| self.index.get(n)).copied() else {
            return;
        };
        match add {
            Some(p) => self.nodes[i].add_pod(key, p),
            None => self.nodes[i].remove_pod(key),
        }
    }

    /// Takes the latest state of a pod; returns its parsed view and the previous one.
    pub fn set_pod(&mut self, obj: Arc<StoreEvent>) -> (Arc<PodInfo>, Option<CachedPod>) {
        let info = Arc::new(PodInfo::from_pod(&obj.object));
        let key = info.key();
        let prev = self.pods.remove(&key);
        if let Some(p) = &prev {
            self.account(&key, p.node.as_deref(), None);
        }
        let assumed_on = prev
            .as_ref()
            .filter(|p| p.assumed)
            .and_then(|p| p.node.clone());
        let (node, assumed) = if info.terminal {
            (None, false)
        } else if !info.node_name.is_empty() {
            (Some(info.node_name.clone()), false)
        } else if info.terminating {
            (None, false)
        } else {
            let a = assumed_on.is_some();
            (assumed_on, a)
        };
        self.account(&key, node.as_deref(), Some(&info));
        self.pods.insert(
            key,
            CachedPod {
                info: info.clone(),
                obj,
                node,
                assumed,
            },
        );
        (info, prev)
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<CachedPod> {
        let p = self.pods.remove(key)?;
        self.account(key, p.node.as_deref(), None);
        Some(p)
    }

    /// Counts a pending pod on `node` while its bind is in flight.
    pub fn assume(&mut self, key: &str, node: &str) {
        let Some(p) = self.pods.get_mut(key) else {
            return;
        };
        if p.node.is_some() {
            return;
        }
        p.node = Some(node.to_string());
        p.assumed = true;
        let info = p.info.clone();
        self.account(key, Some(node), Some(&info));
    }

    /// Undoes `assume` after a failed bind. Returns whether the pod still waits for a node.
    pub fn forget(&mut self, key: &str) -> bool {
        let Some(p) = self.pods.get_mut(key) else {
            return false;
        };
        if !p.assumed {
            return false;
        }
        let node = p.node.take();
        p.assumed = false;
        self.account(key, node.as_deref(), None);
        true
    }

    pub fn set_pvc(&mut self, pvc: &Value) {
        let key = format!("{}/{}", object::namespace(pvc), object::name(pvc));
        let selected_node = pvc
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(SELECTED_NODE_ANNOTATION))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        self.pvcs.insert(key, Pvc { selected_node });
    }

    pub fn remove_pvc(&mut self, namespace: &str, name: &str) {
        self.pvcs.remove(&format!("{namespace}/{name}"));
    }

    /// Records the node chosen for a PVC before the write lands, so pods sharing it follow.
    pub fn assume_pvc(&mut self, namespace: &str, name: &str, node: &str) {
        self.pvcs.insert(
            format!("{namespace}/{name}"),
            Pvc {
                selected_node: Some(node.to_string()),
            },
        );
    }
}

/// Wraps a listed pod as the change that carried it.
pub fn pod_event(obj: Value) -> Arc<StoreEvent> {
    let key = ObjectKey::new("core/pods", object::namespace(&obj), object::name(&obj));
    Arc::new(StoreEvent::new(0, EventType::Added, key, obj, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str) -> Arc<StoreEvent> {
        pod_event(json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": "1"}}}]}}))
    }

    #[test]
    fn accounting_assume_and_forget() {
        let mut c = Cache::default();
        c.set_pod(pod("early", "n1"));
        assert_eq!(
            c.set_node(
                &json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"},
                "conditions": [{"type": "Ready", "status": "True"}]}})
            ),
            NodeChange::Added
        );
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        c.set_pod(pod("p", ""));
        c.assume("d/p", "n1");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 2000);
        // A status update of the still-unbound pod keeps the assumption.
        c.set_pod(pod("p", ""));
        assert_eq!(c.node("n1").unwrap().pods.len(), 2);
        assert!(c.forget("d/p"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        c.assume("d/p", "n1");
        c.set_pod(pod("p", "n1"));
        assert!(!c.pod("d/p").unwrap().assumed);
        assert!(!c.forget("d/p"));
        c.remove_pod("d/early");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        // Heartbeats change nothing the scheduler reads; a NotReady node gets the taint.
        assert_eq!(
            c.set_node(
                &json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "x"}]}})
            ),
            NodeChange::Unchanged
        );
        c.set_node(&json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}}));
        assert_eq!(c.node("n1").unwrap().taints[0].key, NOT_READY_TAINT);
        c.remove_node("n1");
        assert!(c.node("n1").is_none());
    }
}
