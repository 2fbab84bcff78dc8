//! Taints and tolerations (kube-scheduler's TaintToleration and NodeUnschedulable plugins):
//! NoSchedule/NoExecute taints filter, PreferNoSchedule taints score (fewer is better).

use serde_json::Value;

use super::podinfo::PodInfo;

/// The taint a cordoned node is treated as having.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// The taints a node that is not Ready carries (added by the node lifecycle controller; the
/// scheduler assumes them right away, as kube's TaintNodesByCondition does at registration).
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    Other,
}

impl Effect {
    fn parse(s: &str) -> Effect {
        match s {
            "NoSchedule" => Effect::NoSchedule,
            "PreferNoSchedule" => Effect::PreferNoSchedule,
            "NoExecute" => Effect::NoExecute,
            _ => Effect::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
}

impl Taint {
    pub fn parse(v: &Value) -> Taint {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Taint {
            key: s("key"),
            value: s("value"),
            effect: Effect::parse(&s("effect")),
        }
    }

    pub fn new(key: &str, effect: Effect) -> Taint {
        Taint {
            key: key.into(),
            value: String::new(),
            effect,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub exists: bool,
    pub value: String,
    /// None tolerates every effect.
    pub effect: Option<Effect>,
}

impl Toleration {
    pub fn parse(v: &Value) -> Toleration {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        Toleration {
            key: s("key").to_string(),
            exists: s("operator") == "Exists",
            value: s("value").to_string(),
            effect: match s("effect") {
                "" => None,
                e => Some(Effect::parse(e)),
            },
        }
    }

    /// `v1.Toleration.ToleratesTaint`.
    pub fn tolerates(&self, t: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != t.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != t.key {
            return false;
        }
        // An empty key with Exists tolerates everything.
        if self.exists {
            return true;
        }
        self.key == t.key && self.value == t.value
    }
}

pub fn tolerated(pod: &PodInfo, taint: &Taint) -> bool {
    pod.tolerations.iter().any(|t| t.tolerates(taint))
}

/// The first NoSchedule/NoExecute taint the pod does not tolerate, as kube-scheduler reports
/// it: `node(s) had untolerated taint {key: value}`.
pub fn untolerated(pod: &PodInfo, taints: &[Taint]) -> Option<String> {
    taints
        .iter()
        .filter(|t| matches!(t.effect, Effect::NoSchedule | Effect::NoExecute))
        .find(|t| !tolerated(pod, t))
        .map(|t| format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value))
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating its taint.
pub fn unschedulable_ok(pod: &PodInfo) -> bool {
    tolerated(pod, &Taint::new(UNSCHEDULABLE_TAINT, Effect::NoSchedule))
}

/// Raw TaintToleration score: PreferNoSchedule taints the pod does not tolerate.
pub fn prefer_no_schedule_count(pod: &PodInfo, taints: &[Taint]) -> i64 {
    taints
        .iter()
        .filter(|t| t.effect == Effect::PreferNoSchedule && !tolerated(pod, t))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(tolerations: Value) -> PodInfo {
        PodInfo::from_pod(&json!({"spec": {"containers": [], "tolerations": tolerations}}))
    }

    #[test]
    fn toleration_matching() {
        let t = Taint::parse(&json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}));
        assert_eq!(
            untolerated(&pod(json!([])), std::slice::from_ref(&t)).as_deref(),
            Some("node(s) had untolerated taint {dedicated: gpu}")
        );
        for ok in [
            json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
            json!([{"key": "dedicated", "operator": "Exists"}]),
            json!([{"operator": "Exists"}]),
        ] {
            assert!(untolerated(&pod(ok), std::slice::from_ref(&t)).is_none());
        }
        for bad in [
            json!([{"key": "dedicated", "value": "cpu"}]),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
        ] {
            assert!(untolerated(&pod(bad), std::slice::from_ref(&t)).is_some());
        }
        let prefer = Taint::parse(&json!({"key": "k", "effect": "PreferNoSchedule"}));
        assert!(untolerated(&pod(json!([])), std::slice::from_ref(&prefer)).is_none());
        assert_eq!(prefer_no_schedule_count(&pod(json!([])), &[prefer]), 1);
    }

    #[test]
    fn cordoned_nodes() {
        assert!(!unschedulable_ok(&pod(json!([]))));
        assert!(unschedulable_ok(&pod(
            json!([{"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}])
        )));
    }
}
