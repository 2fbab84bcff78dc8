//! Where daemon pods run, after Kubernetes' `daemon_controller.go` / `daemon/util`: which nodes
//! should run one (`NodeShouldRunDaemonPod`: nodeName, nodeSelector, required node affinity,
//! NoSchedule/NoExecute taints against the template's tolerations plus the default DaemonSet
//! tolerations), which node a pod targets, the pod stamped out for a node, and what the manage
//! loop does on one node (`podsShouldBeOnNode`). Pure functions.

use std::cmp::Ordering;

use serde_json::{json, Value};

use crate::api::object;
use crate::controllers::replicaset::pods;
use crate::controllers::revisions::DAEMONSET_HASH_LABEL;

/// The label carrying the template generation a pod was created from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation the API server keeps the template generation in (when it does).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): it stays on
/// not-ready/unreachable nodes forever, and ignores pressure and cordoning.
pub const DEFAULT_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added too for `hostNetwork` pods.
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Adds the default DaemonSet tolerations to a pod spec (replacing one with the same key and
/// effect, as `AddOrUpdateTolerationInPodSpec` does).
pub fn add_daemon_tolerations(spec: &mut Value) {
    if !spec.is_object() {
        *spec = json!({});
    }
    let host_network = spec
        .get("hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let tols = &mut spec["tolerations"];
    if !tols.is_array() {
        *tols = json!([]);
    }
    let Some(tols) = tols.as_array_mut() else {
        return;
    };
    let extra = host_network.then_some((NETWORK_UNAVAILABLE, "NoSchedule"));
    for (key, effect) in DEFAULT_TOLERATIONS.iter().copied().chain(extra) {
        let want = json!({"key": key, "operator": "Exists", "effect": effect});
        match tols
            .iter_mut()
            .find(|t| s(t, "key") == key && s(t, "effect") == effect)
        {
            Some(t) => *t = want,
            None => tols.push(want),
        }
    }
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(tol: &Value, taint: &Value) -> bool {
    let effect = s(tol, "effect");
    if !effect.is_empty() && effect != s(taint, "effect") {
        return false;
    }
    let key = s(tol, "key");
    if !key.is_empty() && key != s(taint, "key") {
        return false;
    }
    match s(tol, "operator") {
        "Exists" => true,
        "" | "Equal" => s(tol, "value") == s(taint, "value"),
        _ => false,
    }
}

/// The first taint with one of `effects` that no toleration in `spec` tolerates.
fn untolerated<'a>(node: &'a Value, spec: &Value, effects: &[&str]) -> Option<&'a Value> {
    let tols = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| effects.contains(&s(t, "effect")))
        .find(|t| !tols.iter().any(|tol| tolerates(tol, t)))
}

fn values(req: &Value) -> Vec<&str> {
    req.get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// One `NodeSelectorRequirement` against a value that may be absent.
fn requirement_matches(req: &Value, value: Option<&str>) -> bool {
    let vals = values(req);
    match s(req, "operator") {
        "In" => value.is_some_and(|v| vals.contains(&v)),
        "NotIn" => value.is_none_or(|v| !vals.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(have), Some(want)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                vals.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// A `NodeSelectorTerm`: every expression (labels) and field (`metadata.name`) matches; a term
/// without requirements matches nothing.
fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = term.get("matchExpressions").and_then(Value::as_array);
    let fields = term.get("matchFields").and_then(Value::as_array);
    if exprs.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
        return false;
    }
    let labels = object::labels(node);
    exprs.into_iter().flatten().all(|r| {
        let v = labels
            .and_then(|l| l.get(s(r, "key")))
            .and_then(Value::as_str);
        requirement_matches(r, v)
    }) && fields.into_iter().flatten().all(|r| {
        let v = match s(r, "key") {
            "metadata.name" => Some(object::name(node)),
            _ => None,
        };
        v.is_some() && requirement_matches(r, v)
    })
}

/// `GetRequiredNodeAffinity(pod).Match(node)`: `nodeSelector` and the required node affinity.
pub fn affinity_matches(spec: &Value, node: &Value) -> bool {
    if let Some(sel) = spec.get("nodeSelector").and_then(Value::as_object) {
        let labels = object::labels(node);
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    match spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    {
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// `NodeShouldRunDaemonPod`: (should run a pod now, may keep running one). An untolerated
/// NoSchedule taint only stops new pods; an untolerated NoExecute taint evicts.
pub fn should_run(ds: &Value, node: &Value) -> (bool, bool) {
    let mut spec = ds
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let node_name = object::name(node);
    let wanted = s(&spec, "nodeName");
    if !wanted.is_empty() && wanted != node_name {
        return (false, false);
    }
    if !affinity_matches(&spec, node) {
        return (false, false);
    }
    add_daemon_tolerations(&mut spec);
    if untolerated(node, &spec, &["NoSchedule", "NoExecute"]).is_some() {
        return (false, untolerated(node, &spec, &["NoExecute"]).is_none());
    }
    (true, true)
}

/// The node a daemon pod is for (`GetTargetNodeName`): `spec.nodeName`, else the node its
/// `matchFields metadata.name In [node]` affinity names.
pub fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(n);
    }
    pod.pointer(
        "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    )?
    .as_array()?
    .iter()
    .filter_map(|t| t.get("matchFields")?.as_array())
    .flatten()
    .find(|r| s(r, "key") == "metadata.name" && s(r, "operator") == "In")
    .and_then(|r| values(r).first().copied())
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the single
/// term `matchFields metadata.name In [node]` (the controller already checked the rest).
pub fn set_node_affinity(spec: &mut Value, node: &str) {
    let term =
        json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]});
    if !spec.is_object() {
        *spec = json!({});
    }
    let affinity = &mut spec["affinity"];
    if !affinity.is_object() {
        *affinity = json!({});
    }
    let na = &mut affinity["nodeAffinity"];
    if !na.is_object() {
        *na = json!({});
    }
    let req = &mut na["requiredDuringSchedulingIgnoredDuringExecution"];
    if !req.is_object() {
        *req = json!({});
    }
    req["nodeSelectorTerms"] = json!([term]);
}

/// The template generation of the DaemonSet (the API server's annotation, else
/// `metadata.generation`).
pub fn template_generation(ds: &Value) -> Option<i64> {
    ds.pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .or_else(|| ds.pointer("/metadata/generation").and_then(Value::as_i64))
}

/// `IsPodUpdated`: the pod carries the current hash or template generation.
pub fn is_updated(pod: &Value, hash: &str, generation: Option<i64>) -> bool {
    let label = |k: &str| {
        object::labels(pod)
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    let hash_ok = !hash.is_empty() && label(DAEMONSET_HASH_LABEL) == Some(hash);
    let gen_ok = generation
        .is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
    hash_ok || gen_ok
}

/// The pod for `node` (`CreatePodTemplate` + `ReplaceDaemonSetPodNodeNameNodeAffinity`):
/// template labels plus the hash and generation labels, default tolerations, node affinity;
/// with `bind` also `spec.nodeName`.
pub fn pod_for_node(ds: &Value, node: &str, hash: &str, bind: bool) -> Value {
    let mut template = ds
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let meta = object::meta_mut(&mut template);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(g) = template_generation(ds) {
        labels[TEMPLATE_GENERATION_LABEL] = json!(g.to_string());
    }
    labels[DAEMONSET_HASH_LABEL] = json!(hash);
    let mut pod = pods::pod_from_template(ds, &template);
    add_daemon_tolerations(&mut pod["spec"]);
    set_node_affinity(&mut pod["spec"], node);
    if bind {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

/// `podByCreationTimestampAndPhase`: scheduled first, then oldest, then by name.
pub fn oldest_first(a: &Value, b: &Value) -> Ordering {
    let scheduled = |p: &Value| {
        p.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    };
    let created = |p: &Value| {
        object::meta_str(p, "creationTimestamp").and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| object::name(a).cmp(object::name(b)))
}

/// What the manage loop does on one node.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NodeActions {
    /// A daemon pod must be created here.
    pub create: bool,
    /// Pods to delete (names).
    pub delete: Vec<String>,
    /// Failed pods among `delete` (they get a FailedDaemonPod warning and back off).
    pub failed: Vec<String>,
}

/// `podsShouldBeOnNode` for one node and its daemon pods. `surge` = maxSurge allowed;
/// `available(pod)` = available for minReadySeconds.
pub fn node_actions(
    should_run: bool,
    keep_running: bool,
    daemon_pods: &[&Value],
    hash: &str,
    surge: bool,
    available: impl Fn(&Value) -> bool,
) -> NodeActions {
    let mut out = NodeActions::default();
    let exists = !daemon_pods.is_empty();
    if should_run && !exists {
        out.create = true;
        return out;
    }
    if !keep_running {
        out.delete = daemon_pods
            .iter()
            .filter(|p| !object::is_terminating(p))
            .map(|p| object::name(p).to_string())
            .collect();
        return out;
    }
    let mut running: Vec<&Value> = Vec::new();
    for p in daemon_pods.iter().filter(|p| !object::is_terminating(p)) {
        match pods::phase(p) {
            "Failed" => {
                out.failed.push(object::name(p).to_string());
                out.delete.push(object::name(p).to_string());
            }
            "Succeeded" => out.delete.push(object::name(p).to_string()),
            _ => running.push(p),
        }
    }
    running.sort_by(|a, b| oldest_first(a, b));
    if !surge {
        out.delete
            .extend(running.iter().skip(1).map(|p| object::name(p).to_string()));
        return out;
    }
    if running.len() <= 1 {
        out.create = running.is_empty() && should_run;
        return out;
    }
    // Surging: keep the oldest new and the oldest old pod; the old one goes once it is not
    // ready or the new one is available.
    let is_new = |p: &Value| {
        object::labels(p)
            .and_then(|l| l.get(DAEMONSET_HASH_LABEL))
            .and_then(Value::as_str)
            == Some(hash)
    };
    let (mut oldest_new, mut oldest_old) = (None, None);
    for p in running {
        let slot = if is_new(p) {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if slot.is_none() {
            *slot = Some(p);
        } else {
            out.delete.push(object::name(p).to_string());
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
        if !pods::is_ready(old) || available(new) {
            out.delete.push(object::name(old).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    fn ds(spec: Value) -> Value {
        json!({"metadata": {"name": "ds", "namespace": "default", "uid": "u", "generation": 2},
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": spec}}})
    }

    #[test]
    fn selectors_affinity_and_taints() {
        let a = node("a", json!({"disk": "ssd", "n": "5"}), json!([]));
        let b = node("b", json!({"disk": "hdd"}), json!([]));
        let plain = ds(json!({"containers": []}));
        assert_eq!(should_run(&plain, &a), (true, true));
        let sel = ds(json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(should_run(&sel, &a), (true, true));
        assert_eq!(should_run(&sel, &b), (false, false));
        let aff = ds(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["3"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
            ]}}}}),
        );
        assert!(should_run(&aff, &a).0 && should_run(&aff, &b).0);
        assert!(!should_run(&aff, &node("c", json!({"n": "1"}), json!([]))).0);
        let not_in = ds(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}, {"key": "gone", "operator": "DoesNotExist"}]},
            ]}}}}),
        );
        assert!(should_run(&not_in, &a).0 && !should_run(&not_in, &b).0);

        // NoSchedule stops new pods but keeps old ones; NoExecute evicts; defaults tolerate
        // cordoned, pressured and unreachable nodes.
        let ns = node(
            "t",
            json!({}),
            json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&plain, &ns), (false, true));
        let ne = node("t", json!({}), json!([{"key": "k", "effect": "NoExecute"}]));
        assert_eq!(should_run(&plain, &ne), (false, false));
        let tolerant = ds(json!({"tolerations": [{"key": "k", "operator": "Exists"}]}));
        assert_eq!(should_run(&tolerant, &ne), (true, true));
        let sick = node(
            "s",
            json!({}),
            json!([
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
                {"key": "soft", "effect": "PreferNoSchedule"},
            ]),
        );
        assert_eq!(should_run(&plain, &sick), (true, true));
        let pinned = ds(json!({"nodeName": "a"}));
        assert_eq!(should_run(&pinned, &b), (false, false));
    }

    #[test]
    fn pods_for_nodes() {
        let d = ds(
            json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}}),
        );
        let pod = pod_for_node(&d, "node-b", "h1", false);
        assert_eq!(pod["metadata"]["generateName"], "ds-");
        assert_eq!(pod["metadata"]["labels"][DAEMONSET_HASH_LABEL], "h1");
        assert_eq!(pod["metadata"]["labels"][TEMPLATE_GENERATION_LABEL], "2");
        assert_eq!(pod["metadata"]["labels"]["app"], "x");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(target_node(&pod), Some("node-b"));
        assert!(pod["spec"].get("nodeName").is_none());
        let terms = &pod["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        assert_eq!(terms.as_array().unwrap().len(), 1, "replaced");
        let tols = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tols.len(), DEFAULT_TOLERATIONS.len());
        assert!(
            tols.iter().all(|t| t.get("tolerationSeconds").is_none()),
            "{tols:?}"
        );
        let bound = pod_for_node(&d, "node-b", "h1", true);
        assert_eq!(bound["spec"]["nodeName"], "node-b");
        assert!(is_updated(&pod, "h1", None));
        assert!(is_updated(&pod, "other", Some(2)));
        assert!(!is_updated(&pod, "other", Some(3)));
    }

    fn pod(name: &str, hash: &str, phase: &str, ready: bool, created: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created, "labels": {DAEMONSET_HASH_LABEL: hash}},
            "spec": {"nodeName": "n"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn manage_one_node() {
        let yes = |_: &Value| true;
        assert!(node_actions(true, true, &[], "h", false, yes).create);
        assert_eq!(
            node_actions(false, true, &[], "h", false, yes),
            NodeActions::default()
        );
        let a = pod("a", "h", "Running", true, "2026-01-01T00:00:00Z");
        let b = pod("b", "h", "Running", true, "2026-01-01T00:00:05Z");
        let f = pod("f", "h", "Failed", false, "2026-01-01T00:00:01Z");
        let out = node_actions(true, true, &[&b, &a, &f], "h", false, yes);
        assert_eq!(out.delete, ["f", "b"], "failed and extra pods go");
        assert_eq!(out.failed, ["f"]);
        assert!(!out.create);
        let gone = node_actions(false, false, &[&a], "h", false, yes);
        assert_eq!(gone.delete, ["a"]);
        // Surge: old stays until the new one is available.
        let old = pod("old", "h0", "Running", true, "2026-01-01T00:00:00Z");
        let new = pod("new", "h", "Running", false, "2026-01-01T00:00:09Z");
        assert!(
            node_actions(true, true, &[&old, &new], "h", true, |_| false)
                .delete
                .is_empty()
        );
        assert_eq!(
            node_actions(true, true, &[&old, &new], "h", true, yes).delete,
            ["old"]
        );
    }
}
