//! Node lifecycle, as kube-controller-manager's node lifecycle controller and taint manager:
//! a node whose Lease (`kube-node-lease/<node>`) has not been renewed within the grace period
//! gets its conditions set to Unknown ("Kubelet stopped posting node status.") and the
//! `node.kubernetes.io/unreachable` NoExecute + NoSchedule taints (`not-ready` when the agent
//! itself reports Ready=False); the taints go again once the lease is fresh and the node Ready.
//! Pods on a node with a NoExecute taint are deleted (Event `TaintManagerEviction`) at once when
//! they do not tolerate it, else when their toleration's `tolerationSeconds` has elapsed since
//! the taint was added (pods get 300 s by default through DefaultTolerationSeconds admission).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::clock::{self, Clock};
use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::admission::tolerations::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::object;
use crate::api::ApiConfig;
use crate::events::{EventRecorder, EventType};
use crate::store::{ListScope, ObjectKey};

/// kube-controller-manager's `--node-monitor-grace-period` default: four missed 10 s lease renewals.
pub const DEFAULT_NODE_MONITOR_GRACE: Duration = Duration::from_secs(40);
/// kube-apiserver's `--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
/// Reconciles are cheap (one node, its lease, and pods only when tainted).
pub const DEFAULT_WORKERS: usize = 2;
/// Requeues land this long after a deadline, so the re-check sees it passed.
const REQUEUE_SLACK: Duration = Duration::from_millis(250);
/// Condition types the agent posts; all turn Unknown when it stops posting.
const NODE_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// Lease age after which the node is marked Unknown and tainted unreachable.
    pub monitor_grace: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            monitor_grace: DEFAULT_NODE_MONITOR_GRACE,
        }
    }
}

impl NodeLifecycleConfig {
    pub fn from_api(c: &ApiConfig) -> Self {
        NodeLifecycleConfig {
            monitor_grace: c.node_monitor_grace,
        }
    }
}

use super::runner::served as def;

pub struct NodeLifecycleController {
    objects: Objects,
    recorder: EventRecorder,
    config: NodeLifecycleConfig,
    clock: Clock,
    /// Leases are only judged from this time on, so a restarted control plane gives agents a
    /// full grace period to renew before marking their nodes Unknown.
    started: Timestamp,
    /// Nodes with a NoExecute taint (rebuilt by reconciles): pod changes there re-run the node.
    tainted: Arc<Mutex<HashSet<String>>>,
}

impl NodeLifecycleController {
    pub fn new(objects: Objects, config: NodeLifecycleConfig, clock: Clock) -> Self {
        let recorder = EventRecorder::new(objects.state().store.clone(), "node-controller");
        NodeLifecycleController {
            objects,
            recorder,
            config,
            started: clock.now(),
            clock,
            tainted: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn set_tainted(&self, node: &str, tainted: bool) {
        let mut set = self.tainted.lock().unwrap_or_else(|e| e.into_inner());
        if tainted {
            set.insert(node.to_string());
        } else {
            set.remove(node);
        }
    }

    async fn event(&self, obj: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(obj, kind, reason, message).await {
            tracing::debug!(error = %e, "cannot record event");
        }
    }

    /// When the node last showed life: its lease renewal or Ready heartbeat, not before start.
    async fn last_seen(&self, node: &Value) -> Result<Timestamp, ReconcileError> {
        let name = object::name(node);
        let lease = self
            .objects
            .get(
                def("coordination.k8s.io", "leases")?,
                "kube-node-lease",
                name,
            )
            .await?;
        let renew = lease
            .as_ref()
            .and_then(|l| clock::parse_time(l.pointer("/spec/renewTime")));
        let heartbeat =
            condition(node, "Ready").and_then(|c| clock::parse_time(c.get("lastHeartbeatTime")));
        Ok([renew, heartbeat, Some(self.started)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.started))
    }

    async fn mark_unknown(&self, node: &Value) -> Result<Option<Value>, ReconcileError> {
        let now = clock::rfc3339(self.clock.now());
        let updated = self
            .objects
            .modify(
                def("", "nodes")?,
                "",
                object::name(node),
                Subresource::Status,
                |n| {
                    set_conditions_unknown(n, &now);
                    Ok(())
                },
            )
            .await?;
        if let Some(n) = &updated {
            let msg = format!("Node {} status is now: NodeNotReady", object::name(n));
            self.event(n, EventType::Normal, "NodeNotReady", &msg).await;
        }
        Ok(updated)
    }

    async fn set_taints(
        &self,
        name: &str,
        want: Option<&'static str>,
    ) -> Result<Option<Value>, ReconcileError> {
        let now = clock::rfc3339(self.clock.now());
        let r = self
            .objects
            .modify(def("", "nodes")?, "", name, Subresource::Main, |n| {
                apply_condition_taints(n, want, &now);
                Ok(())
            })
            .await?;
        Ok(r)
    }

    /// Deletes pods whose toleration of the node's NoExecute taints ran out; returns when the
    /// next one is due.
    async fn evict_pods(
        &self,
        node: &Value,
        taints: &[Value],
    ) -> Result<Option<Duration>, ReconcileError> {
        let name = object::name(node);
        let now = self.clock.now();
        let pods = self
            .objects
            .state()
            .store
            .list(&ListScope::new("core/pods", None))
            .await?;
        let mut next: Option<Duration> = None;
        for pod in pods.items {
            if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(name)
                || object::is_terminating(&pod)
            {
                continue;
            }
            let Some(due) = eviction_time(&pod, taints, now) else {
                continue;
            };
            if due > now {
                let wait = clock::until(now, due);
                next = Some(next.map_or(wait, |n| n.min(wait)));
                continue;
            }
            let (ns, pod_name) = (
                object::namespace(&pod).to_string(),
                object::name(&pod).to_string(),
            );
            let opts = DeleteOptions {
                uid: object::meta_str(&pod, "uid").map(str::to_string),
                ..DeleteOptions::default()
            };
            match self
                .objects
                .delete(def("", "pods")?, &ns, &pod_name, opts)
                .await
            {
                Ok(_) => {}
                // The pod was replaced or changed meanwhile: the next reconcile looks again.
                Err(e) if e.code == http::StatusCode::CONFLICT => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(pod = %format!("{ns}/{pod_name}"), node = %name, "evicting pod from tainted node");
            self.event(
                &pod,
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Marking for deletion Pod {ns}/{pod_name}"),
            )
            .await;
        }
        Ok(next)
    }
}

impl Reconciler for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "node-lifecycle"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let tainted = self.tainted.clone();
        vec![
            Trigger::own("core/nodes"),
            Trigger::mapped("coordination.k8s.io/leases", |e| {
                if e.key.namespace == "kube-node-lease" {
                    vec![ObjectKey::new("core/nodes", "", &e.key.name)]
                } else {
                    Vec::new()
                }
            }),
            Trigger::mapped("core/pods", move |e| {
                let set = tainted.lock().unwrap_or_else(|e| e.into_inner());
                match e.object.pointer("/spec/nodeName").and_then(Value::as_str) {
                    Some(n) if set.contains(n) => vec![ObjectKey::new("core/nodes", "", n)],
                    _ => Vec::new(),
                }
            }),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(mut node) = self.objects.get(def("", "nodes")?, "", &key.name).await? else {
            self.set_tainted(&key.name, false);
            return Ok(Action::Done);
        };
        let now = self.clock.now();
        let age = clock::until(self.last_seen(&node).await?, now);
        let stale = age > self.config.monitor_grace;
        let ready = condition(&node, "Ready")
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if stale && ready != "Unknown" {
            match self.mark_unknown(&node).await? {
                Some(n) => node = n,
                None => return Ok(Action::Done),
            }
        }
        let want = match (stale, ready.as_str()) {
            // A fresh lease with Ready still Unknown (our write) waits for the agent's next status.
            (true, _) | (false, "Unknown") => Some(TAINT_UNREACHABLE),
            (false, "False") => Some(TAINT_NOT_READY),
            _ => None,
        };
        if needs_taint_change(&node, want) {
            match self.set_taints(&key.name, want).await? {
                Some(n) => node = n,
                None => return Ok(Action::Done),
            }
        }
        let taints = no_execute_taints(&node);
        self.set_tainted(&key.name, !taints.is_empty());
        let mut next = if taints.is_empty() {
            None
        } else {
            self.evict_pods(&node, &taints).await?
        };
        if !stale {
            let until_stale = self.config.monitor_grace.saturating_sub(age);
            next = Some(next.map_or(until_stale, |n| n.min(until_stale)));
        }
        Ok(match next {
            Some(d) => Action::RequeueAfter(d + REQUEUE_SLACK),
            None => Action::Done,
        })
    }
}

fn condition<'a>(node: &'a Value, kind: &str) -> Option<&'a Value> {
    node.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Sets the agent-posted conditions to Unknown, as the node lifecycle controller does.
pub fn set_conditions_unknown(node: &mut Value, now: &str) {
    let Some(status) = node
        .as_object_mut()
        .map(|o| o.entry("status").or_insert_with(|| json!({})))
    else {
        return;
    };
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for kind in NODE_CONDITIONS {
        match conds.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
            Some(c) => {
                if c.get("status").and_then(Value::as_str) != Some("Unknown") {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now);
                }
            }
            None => conds.push(json!({
                "type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.", "lastHeartbeatTime": now, "lastTransitionTime": now,
            })),
        }
    }
}

fn is_condition_taint(t: &Value) -> bool {
    matches!(t.get("key").and_then(Value::as_str), Some(k) if k == TAINT_UNREACHABLE || k == TAINT_NOT_READY)
        && matches!(
            t.get("effect").and_then(Value::as_str),
            Some("NoExecute" | "NoSchedule")
        )
}

fn needs_taint_change(node: &Value, want: Option<&str>) -> bool {
    let have: Vec<(String, String)> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| is_condition_taint(t))
        .map(|t| {
            (
                t["key"].as_str().unwrap_or("").to_string(),
                t["effect"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let wanted: Vec<(String, String)> = want
        .into_iter()
        .flat_map(|k| {
            [
                (k.to_string(), "NoSchedule".to_string()),
                (k.to_string(), "NoExecute".to_string()),
            ]
        })
        .collect();
    have.len() != wanted.len() || wanted.iter().any(|w| !have.contains(w))
}

/// Makes the node's not-ready/unreachable taints exactly `want`'s NoSchedule + NoExecute pair
/// (or none), keeping other taints and the `timeAdded` of ones already present.
pub fn apply_condition_taints(node: &mut Value, want: Option<&str>, now: &str) {
    let Some(spec) = node
        .as_object_mut()
        .map(|o| o.entry("spec").or_insert_with(|| json!({})))
    else {
        return;
    };
    let mut taints: Vec<Value> = spec
        .get("taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    taints.retain(|t| !is_condition_taint(t) || t.get("key").and_then(Value::as_str) == want);
    if let Some(key) = want {
        for effect in ["NoSchedule", "NoExecute"] {
            let present = taints.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    && t.get("effect").and_then(Value::as_str) == Some(effect)
            });
            if !present {
                let mut t = json!({"key": key, "effect": effect});
                if effect == "NoExecute" {
                    t["timeAdded"] = json!(now);
                }
                taints.push(t);
            }
        }
    }
    if taints.is_empty() {
        if let Some(o) = spec.as_object_mut() {
            o.remove("taints");
        }
    } else {
        spec["taints"] = Value::Array(taints);
    }
}

pub fn no_execute_taints(node: &Value) -> Vec<Value> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("effect").and_then(Value::as_str) == Some("NoExecute"))
        .cloned()
        .collect()
}

/// Whether toleration `tol` matches `taint` (key, operator Equal/Exists, value, effect).
pub fn tolerates(tol: &Value, taint: &Value) -> bool {
    let s = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let (tk, te, op) = (s(tol, "key"), s(tol, "effect"), s(tol, "operator"));
    if !te.is_empty() && te != s(taint, "effect") {
        return false;
    }
    if !tk.is_empty() && tk != s(taint, "key") {
        return false;
    }
    match op.as_str() {
        "Exists" => true,
        "" | "Equal" => !tk.is_empty() && s(tol, "value") == s(taint, "value"),
        _ => false,
    }
}

/// When `pod` must leave a node with NoExecute `taints`: now when a taint is not tolerated,
/// `timeAdded + min(tolerationSeconds)` when tolerated for a while, `None` when forever.
pub fn eviction_time(pod: &Value, taints: &[Value], now: Timestamp) -> Option<Timestamp> {
    let tols: Vec<&Value> = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut due: Option<Timestamp> = None;
    for taint in taints {
        let matching: Vec<&&Value> = tols.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        let Some(secs) = matching
            .iter()
            .filter_map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
            .min()
        else {
            continue;
        };
        let added = clock::parse_time(taint.get("timeAdded")).unwrap_or(now);
        let at = added
            .checked_add(jiff::SignedDuration::from_secs(secs.max(0)))
            .unwrap_or(Timestamp::MAX);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::test_support::{def, pods, TestApi};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod(name: &str, tolerations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
               "spec": {"nodeName": "n1", "tolerations": tolerations, "containers": [{"name": "c", "image": "hello-wasm:v1"}]}})
    }

    fn gone_or_terminating(p: Option<Value>) -> bool {
        p.is_none_or(|p| object::is_terminating(&p))
    }

    async fn set_ready(api: &TestApi, status: &str, at: &str) {
        let at = at.to_string();
        let status = status.to_string();
        api.objects
            .modify(def("", "nodes"), "", "n1", Subresource::Status, |n| {
                n["status"]["conditions"] = json!([{"type": "Ready", "status": status, "reason": "KubeletReady",
                    "lastHeartbeatTime": at, "lastTransitionTime": at}]);
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn renew(api: &TestApi, at: &str) {
        let at = at.to_string();
        api.objects
            .modify(
                def("coordination.k8s.io", "leases"),
                "kube-node-lease",
                "n1",
                Subresource::Main,
                |l| {
                    l["spec"]["renewTime"] = json!(at);
                    Ok(())
                },
            )
            .await
            .unwrap();
    }

    #[test]
    fn toleration_matching_and_eviction_time() {
        let now = t("2025-01-01T00:00:00Z");
        let taint = json!({"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"});
        let none = json!({"spec": {}});
        assert_eq!(
            eviction_time(&none, std::slice::from_ref(&taint), now),
            Some(now)
        );
        let forever =
            json!({"spec": {"tolerations": [{"key": TAINT_UNREACHABLE, "operator": "Exists"}]}});
        assert_eq!(
            eviction_time(&forever, std::slice::from_ref(&taint), now),
            None
        );
        let timed = json!({"spec": {"tolerations": [
            {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"operator": "Exists", "tolerationSeconds": 60}]}});
        assert_eq!(
            eviction_time(&timed, std::slice::from_ref(&taint), now),
            Some(t("2025-01-01T00:01:00Z"))
        );
        let other =
            json!({"spec": {"tolerations": [{"key": "x", "operator": "Equal", "value": "y"}]}});
        assert_eq!(eviction_time(&other, &[taint], now), Some(now));
    }

    #[test]
    fn condition_taints_swap_and_clear() {
        let mut node = json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}});
        apply_condition_taints(&mut node, Some(TAINT_NOT_READY), "2025-01-01T00:00:00Z");
        assert!(!needs_taint_change(&node, Some(TAINT_NOT_READY)));
        assert_eq!(node["spec"]["taints"].as_array().unwrap().len(), 3);
        apply_condition_taints(&mut node, Some(TAINT_UNREACHABLE), "2025-01-01T00:00:05Z");
        let taints = node["spec"]["taints"].as_array().unwrap();
        assert_eq!(taints.len(), 3);
        assert!(taints.iter().all(|t| t["key"] != TAINT_NOT_READY));
        assert_eq!(
            no_execute_taints(&node)[0]["timeAdded"],
            "2025-01-01T00:00:05Z"
        );
        apply_condition_taints(&mut node, None, "2025-01-01T00:00:09Z");
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        );
        assert!(needs_taint_change(&node, Some(TAINT_UNREACHABLE)));
    }

    #[tokio::test]
    async fn stale_lease_taints_node_and_evicts_after_toleration() {
        let api = TestApi::new().await;
        let t0 = "2025-01-01T00:00:00Z";
        api.create(
            def("", "nodes"),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        )
        .await;
        set_ready(&api, "True", t0).await;
        api.create(
            def("coordination.k8s.io", "leases"),
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"},
                   "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2025-01-01T00:00:00.000000Z"}}),
        )
        .await;
        // Default tolerations (300 s) come from admission; `quick` tolerates for 0 s.
        let slow = api.create(pods(), pod("slow", json!([]))).await;
        assert!(slow["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == TAINT_UNREACHABLE && t["tolerationSeconds"] == 300));
        api.create(pods(), pod("quick", json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]))).await;

        let clock = Clock::manual(t(t0));
        let c = NodeLifecycleController::new(
            api.objects.clone(),
            NodeLifecycleConfig::default(),
            clock.clone(),
        );
        let key = ObjectKey::new("core/nodes", "", "n1");
        clock.advance(Duration::from_secs(10));
        match c.reconcile(&key).await.unwrap() {
            Action::RequeueAfter(d) => assert!(
                d > Duration::from_secs(29) && d < Duration::from_secs(31),
                "{d:?}"
            ),
            a => panic!("{a:?}"),
        }
        assert!(api
            .get(def("", "nodes"), "", "n1")
            .await
            .unwrap()
            .pointer("/spec/taints")
            .is_none());

        clock.advance(Duration::from_secs(31));
        let action = c.reconcile(&key).await.unwrap();
        let node = api.get(def("", "nodes"), "", "n1").await.unwrap();
        let ready = condition(&node, "Ready").unwrap();
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], "NodeStatusUnknown");
        assert_eq!(ready["message"], "Kubelet stopped posting node status.");
        let taints = node["spec"]["taints"].as_array().unwrap();
        assert_eq!(taints.len(), 2);
        assert!(taints.iter().all(|t| t["key"] == TAINT_UNREACHABLE));
        assert!(gone_or_terminating(
            api.get(pods(), "default", "quick").await
        ));
        assert!(!gone_or_terminating(
            api.get(pods(), "default", "slow").await
        ));
        assert!(
            matches!(action, Action::RequeueAfter(d) if d > Duration::from_secs(299)),
            "{action:?}"
        );
        let events = api.list(def("", "events"), "default").await;
        assert!(events.iter().any(|e| e["reason"] == "TaintManagerEviction"
            && e["message"] == "Marking for deletion Pod default/quick"));

        clock.advance(Duration::from_secs(300));
        c.reconcile(&key).await.unwrap();
        assert!(gone_or_terminating(
            api.get(pods(), "default", "slow").await
        ));

        // The agent comes back: fresh lease and Ready=True clear the taints.
        let now = clock::rfc3339(clock.now());
        renew(&api, &now).await;
        c.reconcile(&key).await.unwrap();
        assert!(
            api.get(def("", "nodes"), "", "n1")
                .await
                .unwrap()
                .pointer("/spec/taints")
                .is_some(),
            "still Unknown"
        );
        set_ready(&api, "True", &now).await;
        c.reconcile(&key).await.unwrap();
        assert!(api
            .get(def("", "nodes"), "", "n1")
            .await
            .unwrap()
            .pointer("/spec/taints")
            .is_none());
    }

    #[tokio::test]
    async fn not_ready_node_gets_not_ready_taint() {
        let api = TestApi::new().await;
        let now = object::now_rfc3339();
        api.create(
            def("", "nodes"),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        )
        .await;
        set_ready(&api, "False", &now).await;
        let c = NodeLifecycleController::new(
            api.objects.clone(),
            NodeLifecycleConfig::default(),
            Clock::System,
        );
        c.reconcile(&ObjectKey::new("core/nodes", "", "n1"))
            .await
            .unwrap();
        let node = api.get(def("", "nodes"), "", "n1").await.unwrap();
        assert_eq!(condition(&node, "Ready").unwrap()["status"], "False");
        let taints = node["spec"]["taints"].as_array().unwrap();
        assert!(taints.iter().all(|t| t["key"] == TAINT_NOT_READY) && taints.len() == 2);
    }
}
