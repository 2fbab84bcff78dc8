//! Node affinity (nodeSelector, required and preferred node selector terms with
//! `matchExpressions` and `matchFields`) and inter-pod affinity / anti-affinity (required terms
//! filter, preferred terms score), on any node label as topology key — kube-scheduler's
//! NodeAffinity and InterPodAffinity plugins.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::cache::{Cache, NodeInfo};
use super::podinfo::PodInfo;
use crate::api::selectors::LabelSelector;

pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// kube-scheduler's `hardPodAffinityWeight`: existing pods' required affinity to the incoming
/// pod counts this much in scoring.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct NodeRequirement {
    key: String,
    op: NodeOp,
    values: Vec<String>,
}

impl NodeRequirement {
    fn parse(v: &Value) -> NodeRequirement {
        NodeRequirement {
            key: v.get("key").and_then(Value::as_str).unwrap_or("").into(),
            op: match v.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => NodeOp::In,
                "NotIn" => NodeOp::NotIn,
                "Exists" => NodeOp::Exists,
                "DoesNotExist" => NodeOp::DoesNotExist,
                "Gt" => NodeOp::Gt,
                "Lt" => NodeOp::Lt,
                _ => NodeOp::Unknown,
            },
            values: v
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        let num = |s: &str| s.parse::<i64>().ok();
        match self.op {
            NodeOp::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            NodeOp::NotIn => !value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            NodeOp::Exists => value.is_some(),
            NodeOp::DoesNotExist => value.is_none(),
            NodeOp::Gt | NodeOp::Lt => {
                let (Some(have), Some(want)) = (
                    value.and_then(num),
                    self.values.first().and_then(|s| num(s)),
                ) else {
                    return false;
                };
                if self.op == NodeOp::Gt {
                    have > want
                } else {
                    have < want
                }
            }
            NodeOp::Unknown => false,
        }
    }
}

/// One `nodeSelectorTerm`: all its expressions (on labels) and fields (`metadata.name`) hold.
#[derive(Debug, Clone, Default)]
pub struct NodeSelectorTerm {
    exprs: Vec<NodeRequirement>,
    fields: Vec<NodeRequirement>,
}

impl NodeSelectorTerm {
    pub fn parse(v: &Value) -> NodeSelectorTerm {
        let reqs = |k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(NodeRequirement::parse)
                .collect()
        };
        NodeSelectorTerm {
            exprs: reqs("matchExpressions"),
            fields: reqs("matchFields"),
        }
    }

    /// A term with no requirements matches no node (as in Kubernetes).
    pub fn matches(&self, node: &NodeInfo) -> bool {
        if self.exprs.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.exprs
            .iter()
            .all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self
                .fields
                .iter()
                .all(|r| r.key == "metadata.name" && r.matches(Some(node.name.as_str())))
    }
}

/// NodeAffinity filter: `nodeSelector` and the required terms (any of them) both hold.
pub fn node_affinity_ok(pod: &PodInfo, node: &NodeInfo) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .required_node_affinity
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
}

/// Raw NodeAffinity score: the weights of the preferred terms the node matches.
pub fn preferred_node_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|(_, t)| t.matches(node))
        .map(|(w, _)| *w)
        .sum()
}

/// A pod (anti-)affinity term: which pods (selector, namespaces) and the topology key.
#[derive(Debug, Clone)]
pub struct PodAffinityTerm {
    selector: LabelSelector,
    namespaces: Vec<String>,
    namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
}

impl PodAffinityTerm {
    pub fn parse(v: &Value, own_namespace: &str) -> PodAffinityTerm {
        // An absent labelSelector matches no pod.
        let selector = match v.get("labelSelector") {
            None | Some(Value::Null) => LabelSelector::nothing(),
            Some(s) => LabelSelector::from_k8s(s).unwrap_or_else(|_| LabelSelector::nothing()),
        };
        let namespace_selector = match v.get("namespaceSelector") {
            None | Some(Value::Null) => None,
            Some(s) => LabelSelector::from_k8s(s).ok(),
        };
        let mut namespaces: Vec<String> = v
            .get("namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(own_namespace.to_string());
        }
        PodAffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: v
                .get("topologyKey")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
        }
    }

    /// Whether `pod` is one of the pods this term selects. A namespaceSelector is evaluated
    /// against the namespace's `kubernetes.io/metadata.name` label.
    pub fn matches(&self, pod: &PodInfo) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                let mut labels = Map::new();
                labels.insert("kubernetes.io/metadata.name".into(), json!(pod.namespace));
                s.matches(Some(&labels))
            });
        ns_ok && self.selector.matches(Some(&pod.labels))
    }
}

type TopologyCounts = HashMap<(String, String), i64>;

fn bump(m: &mut TopologyCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels.get(key) {
        *m.entry((key.to_string(), v.clone())).or_default() += by;
    }
}

/// InterPodAffinity's PreFilter state: counts per topology domain.
#[derive(Debug, Default)]
pub struct AffinityState {
    /// Existing pods whose required anti-affinity selects the incoming pod.
    existing_anti: TopologyCounts,
    /// Existing pods matching all the incoming pod's required affinity terms.
    affinity: TopologyCounts,
    /// Existing pods matching each of the incoming pod's required anti-affinity terms.
    anti: TopologyCounts,
    self_match: bool,
}

impl AffinityState {
    pub fn compute(pod: &PodInfo, cache: &Cache) -> AffinityState {
        let mut st = AffinityState {
            self_match: !pod.affinity.is_empty() && pod.affinity.iter().all(|t| t.matches(pod)),
            ..AffinityState::default()
        };
        let incoming = !pod.affinity.is_empty() || !pod.anti_affinity.is_empty();
        for node in cache.nodes() {
            if node.with_anti_affinity == 0 && !incoming {
                continue;
            }
            for existing in node.pods.values() {
                for t in &existing.anti_affinity {
                    if t.matches(pod) {
                        bump(&mut st.existing_anti, node, &t.topology_key, 1);
                    }
                }
                if !incoming {
                    continue;
                }
                if !pod.affinity.is_empty() && pod.affinity.iter().all(|t| t.matches(existing)) {
                    for t in &pod.affinity {
                        bump(&mut st.affinity, node, &t.topology_key, 1);
                    }
                }
                for t in &pod.anti_affinity {
                    if t.matches(existing) {
                        bump(&mut st.anti, node, &t.topology_key, 1);
                    }
                }
            }
        }
        st
    }

    fn count(m: &TopologyCounts, node: &NodeInfo, key: &str) -> Option<i64> {
        let v = node.labels.get(key)?;
        Some(m.get(&(key.to_string(), v.clone())).copied().unwrap_or(0))
    }

    /// The InterPodAffinity filter; Err carries kube-scheduler's reason.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), &'static str> {
        let mut pods_exist = true;
        for t in &pod.affinity {
            match Self::count(&self.affinity, node, &t.topology_key) {
                None => return Err(ERR_AFFINITY),
                Some(n) if n <= 0 => pods_exist = false,
                Some(_) => {}
            }
        }
        // The first of a group of pods with affinity to each other may go anywhere.
        let first_of_group = self.affinity.is_empty() && self.self_match;
        if !(pods_exist || first_of_group) {
            return Err(ERR_AFFINITY);
        }
        for t in &pod.anti_affinity {
            if Self::count(&self.anti, node, &t.topology_key).unwrap_or(0) > 0 {
                return Err(ERR_ANTI_AFFINITY);
            }
        }
        for ((k, v), n) in &self.existing_anti {
            if *n > 0 && node.labels.get(k) == Some(v) {
                return Err(ERR_EXISTING_ANTI_AFFINITY);
            }
        }
        Ok(())
    }
}

/// InterPodAffinity's PreScore state: a score per topology domain from the incoming pod's
/// preferred terms and existing pods' terms about the incoming pod.
#[derive(Debug, Default)]
pub struct AffinityScore {
    domains: HashMap<String, HashMap<String, i64>>,
}

impl AffinityScore {
    pub fn compute(pod: &PodInfo, cache: &Cache) -> AffinityScore {
        let mut s = AffinityScore::default();
        let incoming =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        let mut add = |node: &NodeInfo, key: &str, w: i64| {
            if let Some(v) = node.labels.get(key) {
                *s.domains
                    .entry(key.to_string())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += w;
            }
        };
        for node in cache.nodes() {
            if node.with_affinity == 0 && !incoming {
                continue;
            }
            for existing in node.pods.values() {
                for (w, t) in &pod.preferred_affinity {
                    if t.matches(existing) {
                        add(node, &t.topology_key, *w);
                    }
                }
                for (w, t) in &pod.preferred_anti_affinity {
                    if t.matches(existing) {
                        add(node, &t.topology_key, -*w);
                    }
                }
                for t in &existing.affinity {
                    if t.matches(pod) {
                        add(node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                for (w, t) in &existing.preferred_affinity {
                    if t.matches(pod) {
                        add(node, &t.topology_key, *w);
                    }
                }
                for (w, t) in &existing.preferred_anti_affinity {
                    if t.matches(pod) {
                        add(node, &t.topology_key, -*w);
                    }
                }
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Raw score of a node: the sum over topology keys of its domain's score.
    pub fn score(&self, node: &NodeInfo) -> i64 {
        self.domains
            .iter()
            .filter_map(|(k, m)| node.labels.get(k).and_then(|v| m.get(v)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: Value) -> NodeInfo {
        NodeInfo::from_node(&json!({"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    }

    fn pod(spec: Value) -> PodInfo {
        PodInfo::from_pod(
            &json!({"metadata": {"name": "p", "namespace": "d", "labels": {"app": "web"}}, "spec": spec}),
        )
    }

    #[test]
    fn node_selector_terms() {
        let n = node("n1", json!({"zone": "a", "gen": "5"}));
        let affinity = |terms: Value| {
            pod(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
            )
        };
        let cases = [
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "ssd", "operator": "DoesNotExist"}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]}]),
                false,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}, {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]),
                true,
            ),
            (json!([{}]), false),
        ];
        for (terms, want) in cases {
            assert_eq!(
                node_affinity_ok(&affinity(terms.clone()), &n),
                want,
                "{terms}"
            );
        }
        assert!(!node_affinity_ok(
            &pod(json!({"nodeSelector": {"zone": "b"}})),
            &n
        ));
        let pref = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}}),
        );
        assert_eq!(preferred_node_affinity(&pref, &n), 10);
    }

    #[test]
    fn pod_affinity_terms() {
        let t = PodAffinityTerm::parse(
            &json!({"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}),
            "d",
        );
        let mut other = pod(json!({}));
        assert!(t.matches(&other));
        other.namespace = "e".into();
        assert!(!t.matches(&other));
        let all = PodAffinityTerm::parse(
            &json!({"labelSelector": {"matchLabels": {"app": "web"}}, "namespaceSelector": {}, "topologyKey": "k"}),
            "d",
        );
        assert!(all.matches(&other));
        let none = PodAffinityTerm::parse(&json!({"topologyKey": "k"}), "d");
        assert!(!none.matches(&other));
    }
}
