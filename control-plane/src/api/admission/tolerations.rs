//! Kubernetes' DefaultTolerationSeconds admission plugin: every new pod tolerates the
//! `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` NoExecute taints for a
//! cluster-wide number of seconds (300 by default), unless it already tolerates them. That is
//! how long a pod stays bound to a node that stopped reporting before the node lifecycle
//! controller evicts it.

use serde_json::{json, Value};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Whether `tol` tolerates a taint with `key` and `effect` (any value).
fn covers(tol: &Value, key: &str, effect: &str) -> bool {
    let tk = tol.get("key").and_then(Value::as_str).unwrap_or("");
    let te = tol.get("effect").and_then(Value::as_str).unwrap_or("");
    let op = tol
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("Equal");
    let key_ok = tk == key || (tk.is_empty() && op == "Exists");
    key_ok && (te.is_empty() || te == effect)
}

/// Adds the default not-ready/unreachable tolerations to a pod that has none for them.
pub fn add_default_tolerations(pod: &mut Value, seconds: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tols = spec.entry("tolerations").or_insert_with(|| json!([]));
    if tols.is_null() {
        *tols = json!([]);
    }
    let Some(tols) = tols.as_array_mut() else {
        return;
    };
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        if !tols.iter().any(|t| covers(t, key, "NoExecute")) {
            tols.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_both_tolerations_once() {
        let mut pod = json!({"spec": {"containers": []}});
        add_default_tolerations(&mut pod, 300);
        add_default_tolerations(&mut pod, 300);
        let tols = pod
            .pointer("/spec/tolerations")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(tols.len(), 2);
        assert_eq!(tols[0]["key"], TAINT_NOT_READY);
        assert_eq!(tols[1]["tolerationSeconds"], 300);
    }

    #[test]
    fn keeps_existing_tolerations() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]}});
        add_default_tolerations(&mut pod, 300);
        let tols = pod
            .pointer("/spec/tolerations")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(tols.len(), 2);
        assert_eq!(tols[0]["tolerationSeconds"], 5);
        assert_eq!(tols[1]["key"], TAINT_NOT_READY);
        // A toleration of everything (DaemonSet style) needs nothing added.
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut all, 300);
        assert_eq!(
            all.pointer("/spec/tolerations")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
