//! PodDisruptionBudgets, as kube-controller-manager's disruption controller and the
//! `pods/eviction` check: a budget's desired healthy count comes from `minAvailable` or
//! `maxUnavailable` (ints or percents of the expected pods — the replicas of the matching pods'
//! controllers), its current healthy count from the Ready matching pods, and evictions are
//! allowed while current − desired > 0. The controller keeps the status kubectl shows;
//! evictions compute from live pods (so they never act on a stale status).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::runner::{selector_fanout, Action, ReconcileError, Reconciler, SelectorKind, Trigger};
use crate::api::handlers::{Objects, Subresource};
use crate::api::object;
use crate::api::resources::{self, ResourceDef};
use crate::api::selectors::LabelSelector;
use crate::api::{ApiError, ApiState};
use crate::store::{ListScope, ObjectKey};

/// Few budgets, cheap reconciles.
pub const DEFAULT_WORKERS: usize = 1;

/// Serializes evictions in this process, so two concurrent evictions (kubectl drain sends them
/// in parallel) cannot both spend the same allowed disruption.
pub static EVICTION_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A budget's counts, as PodDisruptionBudgetStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub expected: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
}

/// An int-or-percent scaled against `total` (percents round up, as Kubernetes').
pub fn scaled(v: &Value, total: i64) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid value {n}")),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let pct: i64 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid value for IntOrString: invalid value \"{s}\""))?;
                Ok((pct * total + 99) / 100)
            }
            None => s
                .trim()
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: invalid value \"{s}\"")),
        },
        _ => Err(format!("invalid value {v}")),
    }
}

/// The budget for `pdb` given the expected pod count and how many matching pods are healthy.
pub fn compute(pdb: &Value, expected: i64, healthy: i64) -> Result<Budget, String> {
    let spec = pdb.get("spec").cloned().unwrap_or(Value::Null);
    let desired = if let Some(min) = spec.get("minAvailable").filter(|v| !v.is_null()) {
        scaled(min, expected)?
    } else if let Some(max) = spec.get("maxUnavailable").filter(|v| !v.is_null()) {
        (expected - scaled(max, expected)?).max(0)
    } else {
        // Neither set: Kubernetes defaults minAvailable to 1.
        1
    };
    Ok(Budget {
        expected,
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: (healthy - desired).max(0),
    })
}

/// Ready and not being deleted.
pub fn is_healthy(pod: &Value) -> bool {
    !object::is_terminating(pod)
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

fn selector_of(pdb: &Value) -> Option<LabelSelector> {
    // policy/v1: an empty selector selects every pod of the namespace; a missing one none.
    let sel = pdb.pointer("/spec/selector")?;
    LabelSelector::from_k8s(sel).ok()
}

fn def(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    resources::find(group, "v1", plural)
}

/// Expected pods: the replicas of each distinct controller of the matching pods (a pod without
/// a scalable controller counts as one), as the disruption controller's getExpectedScale.
async fn expected_count(st: &ApiState, ns: &str, pods: &[Value]) -> i64 {
    let mut controllers: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut loose = 0;
    for pod in pods {
        let owner = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            });
        let store_res = owner.and_then(|o| match o.get("kind").and_then(Value::as_str) {
            Some("ReplicaSet") => Some("apps/replicasets"),
            Some("StatefulSet") => Some("apps/statefulsets"),
            Some("ReplicationController") => Some("core/replicationcontrollers"),
            _ => None,
        });
        let (Some(o), Some(res)) = (owner, store_res) else {
            loose += 1;
            continue;
        };
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if controllers.contains_key(&(res.to_string(), name.clone())) {
            continue;
        }
        let replicas = match st.store.get(&ObjectKey::new(res, ns, &name)).await {
            Ok(Some(c)) => c
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            _ => 1,
        };
        controllers.insert((res.to_string(), name), replicas);
    }
    loose + controllers.values().sum::<i64>()
}

/// The budget of `pdb` from the live pods of its namespace.
pub async fn live_budget(st: &ApiState, pdb: &Value) -> Result<Budget, ReconcileError> {
    let ns = object::namespace(pdb);
    let pods = st
        .store
        .list(&ListScope::new("core/pods", Some(ns)))
        .await?;
    let Some(sel) = selector_of(pdb) else {
        return compute(pdb, 0, 0).map_err(ReconcileError::Invalid);
    };
    let matching: Vec<Value> = pods
        .items
        .into_iter()
        .filter(|p| !is_terminal(p) && sel.matches_object(p))
        .collect();
    let healthy = matching.iter().filter(|p| is_healthy(p)).count() as i64;
    let active: Vec<Value> = matching
        .into_iter()
        .filter(|p| !object::is_terminating(p))
        .collect();
    let expected = expected_count(st, ns, &active).await;
    compute(pdb, expected, healthy).map_err(ReconcileError::Invalid)
}

/// Whether evicting `pod` is allowed by the budgets of its namespace (hold [`EVICTION_LOCK`]
/// across this check and the delete). Errors are the API's answer (429 when a budget forbids it).
pub async fn check_eviction(st: &ApiState, pod: &Value) -> Result<(), ApiError> {
    if is_terminal(pod) || object::is_terminating(pod) {
        return Ok(());
    }
    let ns = object::namespace(pod);
    let pdbs = st
        .store
        .list(&ListScope::new("policy/poddisruptionbudgets", Some(ns)))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let matching: Vec<Value> = pdbs
        .items
        .into_iter()
        .filter(|p| selector_of(p).is_some_and(|s| s.matches_object(pod)))
        .collect();
    let pdb = match matching.as_slice() {
        [] => return Ok(()),
        [one] => one,
        _ => return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")),
    };
    let budget = live_budget(st, pdb)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // An unhealthy pod may go while the budget holds (unhealthyPodEvictionPolicy IfHealthyBudget);
    // a healthy one needs a disruption to spend.
    let allowed = if is_healthy(pod) {
        budget.disruptions_allowed > 0
    } else {
        budget.current_healthy >= budget.desired_healthy
    };
    if allowed {
        return Ok(());
    }
    let pdb_name = object::name(pdb);
    let mut e = ApiError::new(
        http::StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.details = Some(json!({"causes": [{
        "reason": "DisruptionBudget",
        "message": format!("The disruption budget {pdb_name} needs {} healthy pods and has {} currently", budget.desired_healthy, budget.current_healthy),
    }]}));
    Err(e)
}

/// Keeps `status` of PodDisruptionBudgets current.
pub struct DisruptionController {
    objects: Objects,
}

impl DisruptionController {
    pub fn new(objects: Objects) -> Self {
        DisruptionController { objects }
    }
}

/// The status Kubernetes' disruption controller writes.
pub fn status_of(pdb: &Value, b: &Budget, now: &str) -> Value {
    let allowed = b.disruptions_allowed > 0;
    let (status, reason, message) = if allowed {
        ("True", "SufficientPods", "")
    } else {
        ("False", "InsufficientPods", "")
    };
    let old = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "DisruptionAllowed"));
    let transition = match old {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => {
            c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
        }
        _ => json!(now),
    };
    json!({
        "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "disruptionsAllowed": b.disruptions_allowed,
        "currentHealthy": b.current_healthy,
        "desiredHealthy": b.desired_healthy,
        "expectedPods": b.expected,
        "conditions": [{
            "type": "DisruptionAllowed", "status": status, "reason": reason, "message": message,
            "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "lastTransitionTime": transition,
        }],
    })
}

impl Reconciler for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption"
    }

    fn triggers(&self) -> Vec<Trigger> {
        selector_fanout(
            "policy/poddisruptionbudgets",
            "core/pods",
            "/spec/selector",
            SelectorKind::LabelSelector,
        )
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let pdb_def = def("policy", "poddisruptionbudgets")
            .ok_or_else(|| ReconcileError::Invalid("poddisruptionbudgets not served".into()))?;
        let Some(pdb) = self.objects.get(pdb_def, &key.namespace, &key.name).await? else {
            return Ok(Action::Done);
        };
        let budget = live_budget(self.objects.state(), &pdb).await?;
        let now = object::now_rfc3339();
        let status = status_of(&pdb, &budget, &now);
        if pdb.get("status") == Some(&status) {
            return Ok(Action::Done);
        }
        self.objects
            .modify(
                pdb_def,
                &key.namespace,
                &key.name,
                Subresource::Status,
                |p| {
                    let fresh = status_of(p, &budget, &now);
                    p["status"] = fresh;
                    Ok(())
                },
            )
            .await?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::test_support::{def as tdef, pods, TestApi};

    fn pdb(spec: Value) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn budgets_from_ints_and_percents() {
        let b = compute(&pdb(json!({"minAvailable": 2})), 3, 3).unwrap();
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (2, 1));
        let b = compute(&pdb(json!({"minAvailable": "50%"})), 3, 2).unwrap();
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (2, 0));
        let b = compute(&pdb(json!({"maxUnavailable": 1})), 3, 3).unwrap();
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (2, 1));
        let b = compute(&pdb(json!({"maxUnavailable": "34%"})), 3, 3).unwrap();
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (1, 2));
        assert!(compute(&pdb(json!({"minAvailable": "x%"})), 3, 3).is_err());
    }

    async fn ready_pod(api: &TestApi, name: &str) -> Value {
        let p = api
            .create(pods(), json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
                                   "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "hello-wasm:v1"}]}}))
            .await;
        api.objects
            .modify(pods(), "default", name, Subresource::Status, |p| {
                p["status"]["phase"] = json!("Running");
                p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
                Ok(())
            })
            .await
            .unwrap();
        p
    }

    #[tokio::test]
    async fn eviction_honours_budget_and_controller_writes_status() {
        let api = TestApi::new().await;
        for n in ["a", "b"] {
            ready_pod(&api, n).await;
        }
        let pdb_def = tdef("policy", "poddisruptionbudgets");
        api.create(
            pdb_def,
            pdb(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}})),
        )
        .await;
        let pod = api.get(pods(), "default", "a").await.unwrap();
        let err = check_eviction(&api.st, &pod).await.unwrap_err();
        assert_eq!(err.code, http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            err.message,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        assert_eq!(
            err.details.unwrap()["causes"][0]["reason"],
            "DisruptionBudget"
        );

        let c = DisruptionController::new(api.objects.clone());
        c.reconcile(&ObjectKey::new(
            "policy/poddisruptionbudgets",
            "default",
            "web",
        ))
        .await
        .unwrap();
        let st = api.get(pdb_def, "default", "web").await.unwrap()["status"].clone();
        assert_eq!(
            (
                st["currentHealthy"].clone(),
                st["desiredHealthy"].clone(),
                st["disruptionsAllowed"].clone()
            ),
            (json!(2), json!(2), json!(0))
        );
        assert_eq!(st["expectedPods"], 2);
        assert_eq!(st["conditions"][0]["reason"], "InsufficientPods");

        // Relaxed: one disruption allowed.
        api.objects
            .modify(pdb_def, "default", "web", Subresource::Main, |p| {
                p["spec"]["minAvailable"] = json!(1);
                Ok(())
            })
            .await
            .unwrap();
        check_eviction(&api.st, &pod).await.unwrap();
        c.reconcile(&ObjectKey::new(
            "policy/poddisruptionbudgets",
            "default",
            "web",
        ))
        .await
        .unwrap();
        let st = api.get(pdb_def, "default", "web").await.unwrap()["status"].clone();
        assert_eq!(st["disruptionsAllowed"], 1);
        assert_eq!(st["conditions"][0]["status"], "True");
        assert_eq!(st["observedGeneration"], 2);
    }
}
