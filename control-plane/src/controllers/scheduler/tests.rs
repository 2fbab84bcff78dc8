//! The scheduler against a real store: binds, assumes, explains, retries on change.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::*;
use crate::store::{ListScope, ObjectKey, Precondition};

fn node(name: &str, cpu: &str, extra: Value) -> Value {
    let mut n = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}});
    if let Some(spec) = extra.get("spec") {
        n["spec"] = spec.clone();
    }
    n
}

fn pod(name: &str, spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"), "labels": {"app": "web"},
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": "Pending"}});
    if let Some(o) = spec.as_object() {
        for (k, v) in o {
            p["spec"][k] = v.clone();
        }
    }
    p
}

struct Env {
    store: Store,
    _dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let (stop, rx) = watch::channel(false);
        tokio::spawn(Scheduler::new(store.clone()).run(rx));
        Env {
            store,
            _dir: dir,
            stop,
        }
    }

    async fn put(&self, resource: &str, obj: Value) {
        let key = ObjectKey::new(
            resource,
            crate::api::object::namespace(&obj),
            crate::api::object::name(&obj),
        );
        if self.store.get(&key).await.unwrap().is_some() {
            self.store
                .update(key, obj, Precondition::default())
                .await
                .unwrap();
        } else {
            self.store.create(key, obj).await.unwrap();
        }
    }

    async fn get(&self, name: &str) -> Value {
        self.store
            .get(&ObjectKey::new("core/pods", "d", name))
            .await
            .unwrap()
            .unwrap()
    }

    /// Waits until `f` holds for the pod.
    async fn until(&self, name: &str, f: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..500 {
            let p = self.get(name).await;
            if f(&p) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("pod {name} never got there: {}", self.get(name).await);
    }

    async fn bound(&self, name: &str) -> String {
        let p = self
            .until(name, |p| p.pointer("/spec/nodeName").is_some())
            .await;
        p["spec"]["nodeName"].as_str().unwrap().to_string()
    }

    async fn failed(&self, name: &str) -> String {
        let p = self
            .until(name, |p| {
                p.pointer("/status/conditions/0/reason")
                    .and_then(Value::as_str)
                    == Some("Unschedulable")
            })
            .await;
        p["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn events(&self, reason: &str) -> Vec<String> {
        let list = self
            .store
            .list(&ListScope::new("core/events", None))
            .await
            .unwrap();
        list.items
            .iter()
            .filter(|e| e["reason"] == reason)
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_explains_and_retries() {
    let env = Env::new().await;
    env.put("core/nodes", node("a", "2", json!({}))).await;
    env.put(
        "core/nodes",
        node(
            "b",
            "8",
            json!({"spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}}),
        ),
    )
    .await;
    env.put("core/pods", pod("p1", json!({}))).await;
    assert_eq!(env.bound("p1").await, "a");
    // Assumed room: the second 1-cpu pod still fits on a, the third fits nowhere.
    env.put("core/pods", pod("p2", json!({}))).await;
    env.put("core/pods", pod("p3", json!({}))).await;
    let (b2, _) = (env.bound("p2").await, ());
    assert_eq!(b2, "a");
    let msg = env.failed("p3").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {gpu: yes}."
    );
    assert!(env.events("FailedScheduling").await.contains(&msg));
    let scheduled = env.events("Scheduled").await;
    assert!(scheduled.contains(&"Successfully assigned d/p1 to a".to_string()));
    // Removing the taint wakes the pending pod up.
    env.put("core/nodes", node("b", "8", json!({}))).await;
    assert_eq!(env.bound("p3").await, "b");
    // The same failure is not written twice.
    env.put(
        "core/pods",
        pod(
            "big",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "64"}}}]}),
        ),
    )
    .await;
    env.failed("big").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.put("core/nodes", node("c", "1", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let msgs = env.events("FailedScheduling").await;
    assert_eq!(
        msgs.iter()
            .filter(|m| m.contains("0/2 nodes are available: 2 Insufficient cpu."))
            .count(),
        1,
        "{msgs:?}"
    );
    assert!(env
        .failed("big")
        .await
        .starts_with("0/3 nodes are available"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_claims_and_node_affinity() {
    let env = Env::new().await;
    for n in ["a", "b"] {
        env.put("core/nodes", node(n, "8", json!({}))).await;
    }
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    for p in ["w1", "w2", "w3"] {
        env.put("core/pods", pod(p, anti.clone())).await;
    }
    let mut nodes = Vec::new();
    let mut pending = Vec::new();
    for p in ["w1", "w2", "w3"] {
        let v = env
            .until(p, |v| {
                v.pointer("/spec/nodeName").is_some()
                    || v.pointer("/status/conditions/0/reason").is_some()
            })
            .await;
        match v.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) => nodes.push(n.to_string()),
            None => pending.push(v["status"]["conditions"][0]["message"].clone()),
        }
    }
    nodes.sort();
    assert_eq!(nodes, ["a", "b"]);
    assert_eq!(
        pending,
        [json!(
            "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
        )]
    );
    // Existing pods' anti-affinity keeps other matching pods away too.
    env.put("core/pods", pod("x1", json!({}))).await;
    assert_eq!(
        env.failed("x1").await,
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules."
    );
    let db = |name: &str, spec: Value| {
        let mut p = pod(name, spec);
        p["metadata"]["labels"] = json!({"app": "db"});
        p
    };
    // A claim pins pods; a missing claim explains itself; an unbound one gets pinned.
    env.put(
        "core/pods",
        db(
            "v1",
            json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
        ),
    )
    .await;
    assert_eq!(
        env.failed("v1").await,
        "0/2 nodes are available: persistentvolumeclaim \"data\" not found."
    );
    env.put(
        "core/persistentvolumeclaims",
        json!({"metadata": {"name": "data", "namespace": "d"}, "spec": {}, "status": {"phase": "Pending"}}),
    )
    .await;
    let on = env.bound("v1").await;
    let pvc = env
        .store
        .get(&ObjectKey::new("core/persistentvolumeclaims", "d", "data"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pvc["metadata"]["annotations"][cache::SELECTED_NODE_ANNOTATION],
        json!(on)
    );
    assert_eq!(pvc["status"]["phase"], "Bound");
    env.put(
        "core/pods",
        db(
            "v2",
            json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
        ),
    )
    .await;
    assert_eq!(env.bound("v2").await, on);
    // DaemonSet-style matchFields.
    let pin = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}});
    env.put("core/pods", db("ds", pin)).await;
    assert_eq!(env.bound("ds").await, "b");
}

#[test]
fn feasible_nodes_like_kube() {
    assert_eq!(feasible_nodes_to_find(50), 50);
    assert_eq!(feasible_nodes_to_find(100), 100);
    assert_eq!(feasible_nodes_to_find(1000), 420);
    assert_eq!(feasible_nodes_to_find(5000), 500);
}
