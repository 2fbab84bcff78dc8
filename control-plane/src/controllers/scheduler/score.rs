//! Scoring the feasible nodes as kube-scheduler's default profile does: each plugin scores
//! 0–100 per node (normalized over the feasible nodes), then a weighted sum; ties are broken
//! at random. Plugins (weight): least-allocated cpu+memory (1), balanced allocation (1),
//! preferred node affinity (2), inter-pod affinity (2), topology spread `ScheduleAnyway` (2),
//! PreferNoSchedule taints (3).

use rand::Rng;

use super::affinity::{preferred_node_affinity, AffinityScore};
use super::cache::NodeInfo;
use super::podinfo::{PodInfo, Resources};
use super::spread::{self, SpreadState};
use super::taints::{prefer_no_schedule_count, Effect};

pub const MAX_NODE_SCORE: i64 = 100;
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
pub const WEIGHT_BALANCED: i64 = 1;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
pub const WEIGHT_SPREAD: i64 = 2;
pub const WEIGHT_TAINTS: i64 = 3;
/// Nodes that already hold a pod's images (for Wasm: compiled and pre-instantiated, the
/// scale-from-zero fast path) are preferred about as much as an empty node over a full one:
/// kube-scheduler's ImageLocality, scored by the share of the pod's images present rather
/// than their size (components are kilobytes; the compile they save is what counts).
pub const WEIGHT_IMAGE_LOCALITY: i64 = 1;

/// The share of the pod's images the node holds, 0–100.
pub fn image_locality(pod: &PodInfo, node: &NodeInfo) -> i64 {
    if pod.images.is_empty() {
        return 0;
    }
    let present = pod
        .images
        .iter()
        .filter(|i| node.images.contains(*i))
        .count();
    (present * 100 / pod.images.len()) as i64
}

fn fractions(pod: &PodInfo, node: &NodeInfo) -> (f64, f64) {
    let mut used = node.nonzero_requested;
    used.add(&pod.nonzero);
    let frac = |used: i64, alloc: i64| {
        if alloc <= 0 {
            1.0
        } else {
            (used as f64 / alloc as f64).min(1.0)
        }
    };
    let a: &Resources = &node.allocatable;
    (
        frac(used.milli_cpu, a.milli_cpu),
        frac(used.memory, a.memory),
    )
}

/// NodeResourcesFit `LeastAllocated` over cpu and memory (equal weights).
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let (c, m) = fractions(pod, node);
    (((1.0 - c) + (1.0 - m)) / 2.0 * MAX_NODE_SCORE as f64) as i64
}

/// NodeResourcesBalancedAllocation: 100 × (1 − standard deviation of the fractions).
pub fn balanced(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let (c, m) = fractions(pod, node);
    ((1.0 - (c - m).abs() / 2.0) * MAX_NODE_SCORE as f64) as i64
}

/// `helper.DefaultNormalizeScore`: scale to 0–100 by the maximum, optionally reversed.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// InterPodAffinity's normalization: min–max scaling (all equal → 0).
pub fn min_max_normalize(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    let min = scores.iter().copied().min().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max > min {
            (MAX_NODE_SCORE as f64 * (*s - min) as f64 / (max - min) as f64) as i64
        } else {
            0
        };
    }
}

/// Total score of every feasible node.
pub fn score_nodes(
    pod: &PodInfo,
    nodes: &[&NodeInfo],
    affinity: Option<&AffinityScore>,
    spread: Option<&SpreadState>,
) -> Vec<i64> {
    let mut total: Vec<i64> = nodes
        .iter()
        .map(|n| {
            WEIGHT_LEAST_ALLOCATED * least_allocated(pod, n) + WEIGHT_BALANCED * balanced(pod, n)
        })
        .collect();
    let mut add = |scores: Vec<i64>, weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += weight * s;
        }
    };
    if !pod.preferred_node_affinity.is_empty() {
        let mut s: Vec<i64> = nodes
            .iter()
            .map(|n| preferred_node_affinity(pod, n))
            .collect();
        default_normalize(&mut s, false);
        add(s, WEIGHT_NODE_AFFINITY);
    }
    // Equal scores on every node change no ranking, so the plugins below only run when
    // something can differ.
    if nodes.iter().any(|n| {
        n.taints
            .iter()
            .any(|t| t.effect == Effect::PreferNoSchedule)
    }) {
        let mut s: Vec<i64> = nodes
            .iter()
            .map(|n| prefer_no_schedule_count(pod, &n.taints))
            .collect();
        default_normalize(&mut s, true);
        add(s, WEIGHT_TAINTS);
    }
    if let Some(a) = affinity.filter(|a| !a.is_empty()) {
        let mut s: Vec<i64> = nodes.iter().map(|n| a.score(n)).collect();
        min_max_normalize(&mut s);
        add(s, WEIGHT_INTER_POD_AFFINITY);
    }
    if nodes.iter().any(|n| !n.images.is_empty()) {
        let s: Vec<i64> = nodes.iter().map(|n| image_locality(pod, n)).collect();
        add(s, WEIGHT_IMAGE_LOCALITY);
    }
    if let Some(sp) = spread.filter(|s| s.has_soft()) {
        let raw: Vec<Option<f64>> = nodes.iter().map(|n| sp.score(pod, n)).collect();
        add(spread::normalize(&raw), WEIGHT_SPREAD);
    }
    total
}

/// The index of the best score; ties broken uniformly at random (reservoir sampling).
pub fn select(scores: &[i64], rng: &mut impl Rng) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut ties = 0u32;
    for (i, s) in scores.iter().enumerate() {
        match best {
            Some(b) if *s < scores[b] => {}
            Some(b) if *s == scores[b] => {
                ties += 1;
                if rng.random_range(0..ties + 1) == 0 {
                    best = Some(i);
                }
            }
            _ => {
                best = Some(i);
                ties = 0;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, taints: serde_json::Value) -> NodeInfo {
        NodeInfo::from_node(
            &json!({"metadata": {"name": name, "labels": {"zone": name}},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}),
        )
    }

    #[test]
    fn plugins_rank_nodes() {
        let pod = PodInfo::from_pod(
            &json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}),
        );
        let (big, small) = (node("a", "8", json!([])), node("b", "2", json!([])));
        assert!(least_allocated(&pod, &big) > least_allocated(&pod, &small));
        let s = score_nodes(&pod, &[&big, &small], None, None);
        assert!(s[0] > s[1]);
        // A PreferNoSchedule taint outweighs a small resource difference.
        let tainted = node(
            "c",
            "8",
            json!([{"key": "k", "effect": "PreferNoSchedule"}]),
        );
        let plain = node("d", "7", json!([]));
        let s = score_nodes(&pod, &[&tainted, &plain], None, None);
        assert!(s[1] > s[0], "{s:?}");
        // Preferred node affinity.
        let pref = PodInfo::from_pod(
            &json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}}}),
        );
        let s = score_nodes(&pref, &[&big, &small], None, None);
        assert!(s[1] > s[0], "{s:?}");
        // Existing pods' preferred anti-affinity pushes the pod away.
        let mut cache = super::super::cache::Cache::default();
        for n in ["a", "b"] {
            cache.set_node(&json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                "status": {"allocatable": {"cpu": "8", "memory": "4Gi"}, "conditions": [{"type": "Ready", "status": "True"}]}}));
        }
        cache.set_pod(super::super::cache::pod_event(
            json!({"metadata": {"name": "e", "namespace": "d", "labels": {"app": "w"}},
            "spec": {"nodeName": "a", "containers": []}}),
        ));
        let anti = PodInfo::from_pod(
            &json!({"metadata": {"name": "n", "namespace": "d"}, "spec": {"containers": [],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": "kubernetes.io/hostname"}}]}}}}),
        );
        let a = AffinityScore::compute(&anti, &cache);
        let nodes: Vec<&NodeInfo> = cache.nodes().iter().collect();
        let s = score_nodes(&anti, &nodes, Some(&a), None);
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn nodes_holding_the_pods_images_are_preferred() {
        let pod = PodInfo::from_pod(&json!({"spec": {"containers": [{"image": "hello-wasm:v1"}]}}));
        let cold = node("a", "8", json!([]));
        let warm = NodeInfo::from_node(&json!({"metadata": {"name": "b"},
            "status": {"allocatable": {"cpu": "8", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "images": [{"names": ["hello-wasm:v1", "registry/hello-wasm@sha256:ab"], "sizeBytes": 1000}]}}));
        assert_eq!(image_locality(&pod, &warm), 100);
        assert_eq!(image_locality(&pod, &cold), 0);
        let s = score_nodes(&pod, &[&cold, &warm], None, None);
        assert!(s[1] > s[0], "{s:?}");
        // Untagged means :latest on both sides.
        let latest = PodInfo::from_pod(&json!({"spec": {"containers": [{"image": "web"}]}}));
        let node_latest = NodeInfo::from_node(&json!({"metadata": {"name": "c"},
            "status": {"images": [{"names": ["web:latest"]}]}}));
        assert_eq!(image_locality(&latest, &node_latest), 100);
    }

    #[test]
    fn normalization_and_ties() {
        let mut s = vec![0, 2, 4];
        default_normalize(&mut s, true);
        assert_eq!(s, [100, 50, 0]);
        let mut s = vec![-5, 5];
        min_max_normalize(&mut s);
        assert_eq!(s, [0, 100]);
        let mut rng = rand::rng();
        let picks: std::collections::HashSet<usize> = (0..200)
            .filter_map(|_| select(&[1, 3, 3, 2], &mut rng))
            .collect();
        assert_eq!(picks, [1, 2].into_iter().collect());
    }
}
