//! DaemonSet controller tests against a real store and admission, with a simulated scheduler +
//! kubelet (binds pods to the node their affinity names, readies them, finishes deletions).

use serde_json::{json, Value};

use super::*;
use crate::api::patch::strategic::strategic_merge;
use crate::controllers::test_support::{def, pods as pod_def, TestApi};

fn daemonsets() -> &'static ResourceDef {
    def("apps", "daemonsets")
}

fn nodes_def() -> &'static ResourceDef {
    def("", "nodes")
}

struct Env {
    api: TestApi,
    dc: DaemonSetController,
}

fn daemonset(name: &str, image: &str, extra_spec: Value) -> Value {
    let mut ds = json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default", "annotations": {"kubernetes.io/change-cause": "v1"}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    });
    if let (Some(spec), Some(extra)) = (ds["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    ds
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

fn rollout_done(ds: &Value) -> bool {
    let st = &ds["status"];
    let n = |f: &str| st.get(f).and_then(Value::as_i64).unwrap_or(0);
    ds["metadata"]["generation"].as_i64().unwrap_or(0) <= n("observedGeneration")
        && n("updatedNumberScheduled") >= n("desiredNumberScheduled")
        && n("numberAvailable") >= n("desiredNumberScheduled")
}

impl Env {
    async fn new(nodes: &[(&str, Value, Value)]) -> Env {
        let api = TestApi::new().await;
        for (name, labels, taints) in nodes {
            api.create(
                nodes_def(),
                json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"taints": taints},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            )
            .await;
        }
        Env {
            dc: DaemonSetController::new(api.objects.clone()).unwrap(),
            api,
        }
    }

    async fn ds(&self, name: &str) -> Value {
        self.api.get(daemonsets(), "default", name).await.unwrap()
    }

    async fn live_pods(&self) -> Vec<Value> {
        let mut pods: Vec<Value> = self
            .api
            .list(pod_def(), "default")
            .await
            .into_iter()
            .filter(|p| !object::is_terminating(p))
            .collect();
        pods.sort_by(|a, b| placement::target_node(a).cmp(&placement::target_node(b)));
        pods
    }

    async fn modify(&self, name: &str, change: impl Fn(&mut Value)) {
        self.api
            .objects
            .modify(daemonsets(), "default", name, Subresource::Main, |o| {
                change(o);
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn reconcile(&self, name: &str) {
        let key = ObjectKey::new(DAEMONSETS, "default", name);
        let _ = self.dc.reconcile(&key).await;
    }

    /// One scheduler + kubelet round.
    async fn kubelet(&self) {
        for p in self.api.list(pod_def(), "default").await {
            let name = object::name(&p).to_string();
            if object::is_terminating(&p) {
                let opts = DeleteOptions {
                    grace_seconds: Some(0),
                    ..DeleteOptions::default()
                };
                self.api
                    .objects
                    .delete(pod_def(), "default", &name, opts)
                    .await
                    .unwrap();
                continue;
            }
            if p.pointer("/spec/nodeName").is_none() {
                let node = placement::target_node(&p).unwrap().to_string();
                crate::binding::bind(&self.api.st.store, "default", &name, &node)
                    .await
                    .unwrap();
            }
            if !pods::is_ready(&p) && pods::phase(&p) != "Failed" {
                let now = object::now_rfc3339();
                self.api
                    .objects
                    .modify(pod_def(), "default", &name, Subresource::Status, |o| {
                        o["status"]["phase"] = json!("Running");
                        o["status"]["conditions"] =
                            json!([{"type": "Ready", "status": "True", "lastTransitionTime": now}]);
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        }
    }

    /// Reconciles and runs the kubelet until `kubectl rollout status` would succeed, checking
    /// after each controller step that at least `min_ready` live pods are Ready.
    async fn settle(&self, name: &str, min_ready: usize) -> Value {
        for _ in 0..40 {
            self.reconcile(name).await;
            let ready = self
                .live_pods()
                .await
                .iter()
                .filter(|p| pods::is_ready(p))
                .count();
            assert!(ready >= min_ready, "{ready} ready, want ≥ {min_ready}");
            let ds = self.ds(name).await;
            let all = self.api.list(pod_def(), "default").await;
            if rollout_done(&ds) && !all.iter().any(object::is_terminating) {
                return ds;
            }
            self.kubelet().await;
        }
        panic!("{name} did not settle: {:#}", self.ds(name).await["status"]);
    }

    async fn revisions(&self, ds: &Value) -> Vec<Value> {
        revisions::list_owned(&self.api.objects, "default", ds)
            .await
            .unwrap()
    }

    async fn events(&self, reason: &str) -> Vec<String> {
        self.api
            .list(def("", "events"), "default")
            .await
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect()
    }
}

fn ready_node(name: &str) -> (&str, Value, Value) {
    (name, json!({"kubernetes.io/hostname": name}), json!([]))
}

#[tokio::test]
async fn one_pod_per_eligible_node() {
    let env = Env::new(&[
        ("a", json!({"disk": "ssd"}), json!([])),
        ("b", json!({"disk": "hdd"}), json!([])),
        (
            "cordoned",
            json!({}),
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        ),
        (
            "tainted",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        ),
    ])
    .await;
    env.api
        .create(daemonsets(), daemonset("agent", "v1", json!({})))
        .await;
    let ds = env.settle("agent", 0).await;
    let pods = env.live_pods().await;
    let on: Vec<&str> = pods
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert_eq!(on, ["a", "b", "cordoned"]);
    let st = &ds["status"];
    for f in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ] {
        assert_eq!(st[f], 3, "{f}: {st}");
    }
    assert_eq!(st["numberMisscheduled"], 0);
    let p = &pods[0];
    assert_eq!(p["metadata"]["generateName"], "agent-");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(
        p["metadata"]["labels"][placement::TEMPLATE_GENERATION_LABEL],
        "1"
    );
    let revs = env.revisions(&ds).await;
    assert_eq!(revs.len(), 1);
    assert_eq!(
        p["metadata"]["labels"][DAEMONSET_HASH_LABEL],
        revs[0]["metadata"]["labels"][DAEMONSET_HASH_LABEL]
    );
    assert_eq!(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
        "a"
    );
    assert!(p["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "node.kubernetes.io/unreachable"
            && t["effect"] == "NoExecute"
            && t.get("tolerationSeconds").is_none()));
    assert_eq!(env.events("SuccessfulCreate").await.len(), 3);

    // A nodeSelector DaemonSet follows node labels.
    env.api
        .create(
            daemonsets(),
            daemonset("ssd", "v1", json!({"template": {
                "metadata": {"labels": {"app": "ssd"}},
                "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "main", "image": "v1"}]},
            }})),
        )
        .await;
    env.settle("ssd", 0).await;
    let ssd = |pods: Vec<Value>| -> Vec<String> {
        pods.iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "ssd")
            .filter_map(|p| placement::target_node(p).map(str::to_string))
            .collect()
    };
    assert_eq!(ssd(env.live_pods().await), ["a"]);
    for (node, disk) in [("b", "ssd"), ("a", "hdd")] {
        env.api
            .objects
            .modify(nodes_def(), "", node, Subresource::Main, |n| {
                n["metadata"]["labels"]["disk"] = json!(disk);
                Ok(())
            })
            .await
            .unwrap();
    }
    let ds = env.settle("ssd", 0).await;
    assert_eq!(ssd(env.live_pods().await), ["b"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1);
    assert!(!env.events("SuccessfulDelete").await.is_empty());
}

#[tokio::test]
async fn rolling_update_history_and_undo() {
    let env = Env::new(&[ready_node("n1"), ready_node("n2"), ready_node("n3")]).await;
    let strategy = json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}});
    env.api
        .create(daemonsets(), daemonset("web", "v1", strategy))
        .await;
    let ds = env.settle("web", 0).await;
    let v1_hash = env.revisions(&ds).await[0]["metadata"]["labels"][DAEMONSET_HASH_LABEL].clone();

    // set image + env (an env entry undo must remove again), with a change cause.
    env.modify("web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
        d["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "VERSION", "value": "v2"}]);
        d["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!("v2");
    })
    .await;
    let ds = env.settle("web", 2).await;
    let pods = env.live_pods().await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| image(p) == "v2"), "{pods:#?}");
    let revs = env.revisions(&ds).await;
    assert_eq!(
        revs.iter()
            .map(revisions::revision_number)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        revs[1]["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "v2"
    );

    // `kubectl rollout undo`: revision 1's data as a strategic merge patch.
    let patched = strategic_merge(&env.ds("web").await, &revs[0]["data"], "DaemonSet").unwrap();
    env.api
        .objects
        .replace(daemonsets(), patched, Subresource::Main)
        .await
        .unwrap();
    let ds = env.settle("web", 2).await;
    let pods = env.live_pods().await;
    assert_eq!(pods.len(), 3);
    assert!(pods
        .iter()
        .all(|p| image(p) == "v1" && p["spec"]["containers"][0].get("env").is_none()));
    assert!(pods
        .iter()
        .all(|p| p["metadata"]["labels"][DAEMONSET_HASH_LABEL] == v1_hash));
    let revs = env.revisions(&ds).await;
    assert_eq!(
        revs.iter()
            .map(revisions::revision_number)
            .collect::<Vec<_>>(),
        [2, 3],
        "revision 1 re-numbered"
    );
    assert_eq!(revs[1]["metadata"]["labels"][DAEMONSET_HASH_LABEL], v1_hash);
}

#[tokio::test]
async fn surge_ondelete_failed_pods_and_history_limit() {
    let env = Env::new(&[ready_node("n1"), ready_node("n2")]).await;
    // maxSurge: the new pod comes up beside the old one; never fewer than 2 ready.
    let surge = json!({"revisionHistoryLimit": 1, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}});
    env.api
        .create(daemonsets(), daemonset("s", "v1", surge))
        .await;
    env.settle("s", 0).await;
    for v in ["v2", "v3"] {
        env.modify("s", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(v);
        })
        .await;
        env.settle("s", 2).await;
        assert!(env.live_pods().await.iter().all(|p| image(p) == v));
    }
    let ds = env.ds("s").await;
    let revs = env.revisions(&ds).await;
    assert_eq!(
        revs.iter()
            .map(revisions::revision_number)
            .collect::<Vec<_>>(),
        [2, 3],
        "revisionHistoryLimit 1 keeps one old revision"
    );

    // A failed pod is deleted and replaced.
    let victim = env.live_pods().await[0].clone();
    env.api
        .objects
        .modify(
            pod_def(),
            "default",
            object::name(&victim),
            Subresource::Status,
            |o| {
                o["status"]["phase"] = json!("Failed");
                Ok(())
            },
        )
        .await
        .unwrap();
    env.settle("s", 0).await;
    let pods = env.live_pods().await;
    assert_eq!(pods.len(), 2);
    assert!(pods
        .iter()
        .all(|p| object::name(p) != object::name(&victim)));
    assert_eq!(env.events("FailedDaemonPod").await.len(), 1);

    // OnDelete: a template change replaces pods only when they are deleted.
    env.modify("s", |d| {
        d["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v4");
    })
    .await;
    for _ in 0..3 {
        env.reconcile("s").await;
        env.kubelet().await;
    }
    let pods = env.live_pods().await;
    assert!(pods.iter().all(|p| image(p) == "v3"));
    let ds = env.ds("s").await;
    assert_eq!(
        ds["status"]["updatedNumberScheduled"].as_i64().unwrap_or(0),
        0
    );
    env.api
        .objects
        .delete(
            pod_def(),
            "default",
            object::name(&pods[0]),
            DeleteOptions {
                grace_seconds: Some(0),
                ..DeleteOptions::default()
            },
        )
        .await
        .unwrap();
    for _ in 0..3 {
        env.reconcile("s").await;
        env.kubelet().await;
    }
    let images: Vec<String> = env
        .live_pods()
        .await
        .iter()
        .map(|p| image(p).to_string())
        .collect();
    assert_eq!(images.len(), 2);
    assert!(images.contains(&"v4".to_string()) && images.contains(&"v3".to_string()));
}

#[test]
fn undo_patch_replaces_the_whole_template() {
    let ds = json!({"kind": "DaemonSet", "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
        "metadata": {"labels": {"app": "x"}, "annotations": {"restartedAt": "now"}},
        "spec": {"containers": [{"name": "c", "image": "v2", "env": [{"name": "A", "value": "1"}]}], "nodeSelector": {"a": "b"}}}}});
    let old = json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "v1"}]}}}});
    let data = revision_data(&old);
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    let out = strategic_merge(&ds, &data, "DaemonSet").unwrap();
    assert_eq!(out["spec"]["template"], old["spec"]["template"]);
    assert_eq!(out["spec"]["selector"], ds["spec"]["selector"]);
}

/// The watches: a new node and a deleted pod wake the DaemonSet (runner + real triggers).
#[tokio::test]
async fn node_and_pod_changes_trigger_reconciles() {
    let env = Env::new(&[ready_node("n1")]).await;
    let (tx, shutdown) = tokio::sync::watch::channel(false);
    let dc = DaemonSetController::new(env.api.objects.clone()).unwrap();
    let tasks =
        crate::controllers::runner::spawn(Arc::new(dc), env.api.st.store.clone(), 1, shutdown);
    env.api
        .create(daemonsets(), daemonset("w", "v1", json!({})))
        .await;
    let wait_nodes = |want: Vec<&'static str>| {
        let env = &env;
        async move {
            for _ in 0..100 {
                let mut on: Vec<String> = env
                    .live_pods()
                    .await
                    .iter()
                    .filter_map(|p| placement::target_node(p).map(str::to_string))
                    .collect();
                on.sort();
                if on == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("pods never on {want:?}");
        }
    };
    wait_nodes(vec!["n1"]).await;
    env.api
        .create(
            nodes_def(),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}),
        )
        .await;
    wait_nodes(vec!["n1", "n2"]).await;
    let victim = env.live_pods().await[0].clone();
    let opts = DeleteOptions {
        grace_seconds: Some(0),
        ..DeleteOptions::default()
    };
    env.api
        .objects
        .delete(pod_def(), "default", object::name(&victim), opts)
        .await
        .unwrap();
    wait_nodes(vec!["n1", "n2"]).await;
    assert!(env
        .live_pods()
        .await
        .iter()
        .all(|p| object::name(p) != object::name(&victim)));
    tx.send(true).unwrap();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
}
