//! topologySpreadConstraints (kube-scheduler's PodTopologySpread): `DoNotSchedule` filters
//! nodes whose domain would exceed `maxSkew` over the least-loaded domain; `ScheduleAnyway`
//! scores nodes with fewer matching pods in their domain higher. Nodes count only when they
//! have every constraint's topology key and match the pod's node affinity (the default
//! `nodeAffinityPolicy: Honor`); `matchLabelKeys` and `minDomains` are honoured.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::affinity::node_affinity_ok;
use super::cache::{Cache, NodeInfo};
use super::podinfo::PodInfo;
use crate::api::selectors::LabelSelector;

pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `whenUnsatisfiable: DoNotSchedule` (the default).
    pub hard: bool,
    pub min_domains: i64,
    selector: LabelSelector,
}

impl SpreadConstraint {
    pub fn parse(v: &Value, pod_labels: &Map<String, Value>) -> SpreadConstraint {
        // matchLabelKeys: the pod's own values for those keys join the selector.
        let mut sel = v.get("labelSelector").cloned().unwrap_or(Value::Null);
        let keys: Vec<&str> = v
            .get("matchLabelKeys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !keys.is_empty() && sel.is_object() {
            if let Some(ml) = sel
                .as_object_mut()
                .map(|o| {
                    o.entry("matchLabels")
                        .or_insert_with(|| Value::Object(Map::new()))
                })
                .and_then(Value::as_object_mut)
            {
                for k in keys {
                    if let Some(val) = pod_labels.get(k) {
                        ml.insert(k.to_string(), val.clone());
                    }
                }
            }
        }
        SpreadConstraint {
            max_skew: v.get("maxSkew").and_then(Value::as_i64).unwrap_or(1).max(1),
            topology_key: v
                .get("topologyKey")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            hard: v.get("whenUnsatisfiable").and_then(Value::as_str) != Some("ScheduleAnyway"),
            min_domains: v.get("minDomains").and_then(Value::as_i64).unwrap_or(1),
            selector: match sel {
                Value::Null => LabelSelector::nothing(),
                s => LabelSelector::from_k8s(&s).unwrap_or_else(|_| LabelSelector::nothing()),
            },
        }
    }

    fn counts(&self, pod: &PodInfo, existing: &PodInfo) -> bool {
        existing.namespace == pod.namespace
            && !existing.terminating
            && self.selector.matches(Some(&existing.labels))
    }
}

/// Matching pods per domain of each constraint (hard or soft), over eligible nodes.
#[derive(Debug, Default)]
pub struct SpreadState {
    /// Per constraint index: domain value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    hard: Vec<usize>,
    soft: Vec<usize>,
}

fn eligible(pod: &PodInfo, node: &NodeInfo, keys: &[&SpreadConstraint]) -> bool {
    keys.iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
        && node_affinity_ok(pod, node)
}

impl SpreadState {
    pub fn compute(pod: &PodInfo, cache: &Cache) -> SpreadState {
        let mut st = SpreadState::default();
        for (i, c) in pod.spread.iter().enumerate() {
            if c.hard {
                st.hard.push(i);
            } else {
                st.soft.push(i);
            }
        }
        st.counts = vec![HashMap::new(); pod.spread.len()];
        let all: Vec<&SpreadConstraint> = pod.spread.iter().collect();
        for node in cache.nodes() {
            if !eligible(pod, node, &all) {
                continue;
            }
            for (i, c) in pod.spread.iter().enumerate() {
                let n = node.pods.values().filter(|e| c.counts(pod, e)).count() as i64;
                if let Some(v) = node.labels.get(&c.topology_key) {
                    *st.counts[i].entry(v.clone()).or_default() += n;
                }
            }
        }
        st
    }

    /// The PodTopologySpread filter for `DoNotSchedule` constraints.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), &'static str> {
        for &i in &self.hard {
            let c = &pod.spread[i];
            let Some(v) = node.labels.get(&c.topology_key) else {
                return Err(ERR_SPREAD_LABEL);
            };
            let counts = &self.counts[i];
            let mut min = counts.values().copied().min().unwrap_or(0);
            if (counts.len() as i64) < c.min_domains {
                min = 0;
            }
            let self_match = i64::from(c.selector.matches(Some(&pod.labels)));
            let here = counts.get(v).copied().unwrap_or(0);
            if here + self_match - min > c.max_skew {
                return Err(ERR_SPREAD);
            }
        }
        Ok(())
    }

    pub fn has_soft(&self) -> bool {
        !self.soft.is_empty()
    }

    /// Raw `ScheduleAnyway` score (lower is better); None when the node lacks a key.
    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> Option<f64> {
        let mut s = 0.0;
        for &i in &self.soft {
            let c = &pod.spread[i];
            let v = node.labels.get(&c.topology_key)?;
            let weight = ((self.counts[i].len() + 2) as f64).ln();
            let n = self.counts[i].get(v).copied().unwrap_or(0) as f64;
            s += (n + (c.max_skew - 1) as f64) * weight;
        }
        Some(s)
    }
}

/// kube-scheduler's PodTopologySpread normalization: the emptiest domains get 100.
pub fn normalize(raw: &[Option<f64>]) -> Vec<i64> {
    let present = raw.iter().flatten().copied();
    let max = present.clone().fold(f64::MIN, f64::max);
    let min = present.fold(f64::MAX, f64::min);
    raw.iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max <= 0.0 => 100,
            Some(s) => (100.0 * (max + min - s) / max) as i64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skew_and_scores() {
        let mut cache = Cache::default();
        for (n, zone) in [("a", "z1"), ("b", "z2"), ("c", "z2")] {
            cache.set_node(&json!({"metadata": {"name": n, "labels": {"zone": zone}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"pods": "10"}}}));
        }
        let mk = |name: &str, node: &str, how: &str| {
            json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": "w"}},
                "spec": {"nodeName": node, "containers": [], "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": how, "labelSelector": {"matchLabels": {"app": "w"}}}]}})
        };
        cache.set_pod(super::super::cache::pod_event(mk(
            "p1",
            "b",
            "DoNotSchedule",
        )));
        let pod = PodInfo::from_pod(&mk("new", "", "DoNotSchedule"));
        let st = SpreadState::compute(&pod, &cache);
        assert_eq!(st.filter(&pod, cache.node("a").unwrap()), Ok(()));
        assert_eq!(st.filter(&pod, cache.node("b").unwrap()), Err(ERR_SPREAD));
        cache.set_pod(super::super::cache::pod_event(mk(
            "p2",
            "a",
            "DoNotSchedule",
        )));
        let st = SpreadState::compute(&pod, &cache);
        assert_eq!(st.filter(&pod, cache.node("c").unwrap()), Ok(()));
        cache.set_pod(super::super::cache::pod_event(mk(
            "p3",
            "a",
            "DoNotSchedule",
        )));
        let soft = PodInfo::from_pod(&mk("s", "", "ScheduleAnyway"));
        let st = SpreadState::compute(&soft, &cache);
        assert!(st.has_soft());
        let raw: Vec<_> = ["a", "b"]
            .iter()
            .map(|n| st.score(&soft, cache.node(n).unwrap()))
            .collect();
        let norm = normalize(&raw);
        assert!(norm[1] > norm[0], "{norm:?}");
    }
}
