//! Deployment controller tests: the Deployment and ReplicaSet controllers against a real store
//! and admission, with a simulated kubelet (binds and readies pods, finishes deletions).

use serde_json::{json, Value};

use super::status::{AVAILABLE, PROGRESSING};
use super::util::{annotation, condition, CHANGE_CAUSE, HASH_LABEL, REVISION, REVISION_HISTORY};
use super::*;
use crate::api::handlers::{DeleteOptions, Subresource};
use crate::controllers::replicaset::{pods, spec_replicas, ReplicaSetController};
use crate::controllers::test_support::{deployments, pods as pod_def, replicasets, TestApi};

struct Env {
    api: TestApi,
    dc: DeploymentController,
    rc: ReplicaSetController,
    /// Pods the kubelet readies per round (a slow kubelet exercises maxUnavailable).
    ready_per_round: usize,
}

fn deployment(name: &str, replicas: i64, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    })
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// `kubectl rollout status` would report success.
fn rollout_done(d: &Value) -> bool {
    let st = &d["status"];
    let n = |f: &str| st.get(f).and_then(Value::as_i64).unwrap_or(0);
    let gen = d["metadata"]["generation"].as_i64().unwrap_or(0);
    gen <= n("observedGeneration")
        && n("updatedReplicas") == d["spec"]["replicas"].as_i64().unwrap_or(1)
        && n("replicas") == n("updatedReplicas")
        && n("availableReplicas") == n("updatedReplicas")
}

impl Env {
    async fn new() -> Env {
        let api = TestApi::new().await;
        Env {
            dc: DeploymentController::new(api.objects.clone()).unwrap(),
            rc: ReplicaSetController::new(api.objects.clone()).unwrap(),
            api,
            ready_per_round: usize::MAX,
        }
    }

    async fn deploy(&self, name: &str) -> Value {
        self.api.get(deployments(), "default", name).await.unwrap()
    }

    async fn rss(&self) -> Vec<Value> {
        let mut v = self.api.list(replicasets(), "default").await;
        v.sort_by(util::by_creation);
        v
    }

    async fn pods(&self) -> Vec<Value> {
        self.api.list(pod_def(), "default").await
    }

    async fn modify(&self, name: &str, change: impl Fn(&mut Value)) {
        self.api
            .objects
            .modify(deployments(), "default", name, Subresource::Main, |o| {
                change(o);
                Ok(())
            })
            .await
            .unwrap();
    }

    /// One kubelet round: finish terminating pods, bind and ready pending ones.
    async fn kubelet(&self) {
        let mut readied = 0;
        for p in self.pods().await {
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
            } else if !pods::is_ready(&p) && readied < self.ready_per_round {
                readied += 1;
                // With controllers running beside it (the watch test), the pod may be deleted
                // between the list and the bind, as on a real node: skip it then.
                match crate::binding::bind(&self.api.st.store, "default", &name, "node-a").await {
                    Ok(_) | Err(crate::binding::BindError::AlreadyBound { .. }) => {}
                    Err(
                        crate::binding::BindError::NotFound(_)
                        | crate::binding::BindError::Terminating(_),
                    ) => continue,
                    Err(e) => panic!("binding {name}: {e}"),
                }
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

    /// Runs controllers and the kubelet until the rollout is done, checking `min_ready`
    /// (non-terminating Ready pods) after every controller step.
    async fn settle(&self, name: &str, min_ready: usize) -> Value {
        let key = ObjectKey::new(DEPLOYMENTS, "default", name);
        for _ in 0..60 {
            let _ = self.dc.reconcile(&key).await;
            self.check(min_ready).await;
            for rs in self.rss().await {
                let k = ObjectKey::new(REPLICASETS, "default", object::name(&rs));
                let _ = self.rc.reconcile(&k).await;
                self.check(min_ready).await;
            }
            let _ = self.dc.reconcile(&key).await;
            let d = self.deploy(name).await;
            let terminating = self.pods().await.iter().any(object::is_terminating);
            if rollout_done(&d) && !terminating {
                return d;
            }
            self.kubelet().await;
        }
        panic!(
            "rollout of {name} did not finish: {:#?}",
            self.deploy(name).await["status"]
        );
    }

    async fn check(&self, min_ready: usize) {
        let ready = self
            .pods()
            .await
            .iter()
            .filter(|p| !object::is_terminating(p) && pods::is_ready(p))
            .count();
        assert!(
            ready >= min_ready,
            "only {ready} ready pods, want at least {min_ready}"
        );
    }
}

#[tokio::test]
async fn rolls_out_updates_undoes_and_scales() {
    let mut env = Env::new().await;
    env.api
        .create(
            deployments(),
            deployment("web", 3, "hello-wasm:v1", rolling(json!(1), json!(1))),
        )
        .await;
    let d = env.settle("web", 0).await;
    assert_eq!(annotation(&d, REVISION), Some("1"));
    assert_eq!(
        condition(&d["status"], AVAILABLE).unwrap()["reason"],
        "MinimumReplicasAvailable"
    );
    assert_eq!(
        condition(&d["status"], PROGRESSING).unwrap()["reason"],
        "NewReplicaSetAvailable"
    );
    let rss = env.rss().await;
    assert_eq!(rss.len(), 1);
    let v1 = rss[0].clone();
    let hash = v1["metadata"]["labels"][HASH_LABEL]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(object::name(&v1), format!("web-{hash}"));
    assert_eq!(
        v1["spec"]["selector"]["matchLabels"][HASH_LABEL],
        hash.as_str()
    );
    assert_eq!(env.pods().await.len(), 3);
    assert!(env
        .pods()
        .await
        .iter()
        .all(|p| p["metadata"]["labels"][HASH_LABEL] == hash.as_str()));

    // set image (slow kubelet): never fewer than replicas - maxUnavailable = 2 ready pods.
    env.ready_per_round = 1;
    env.modify("web", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hello-wasm:v2")
    })
    .await;
    env.modify("web", |o| {
        o["metadata"]["annotations"] = json!({CHANGE_CAUSE: "kubectl set image v2"})
    })
    .await;
    let d = env.settle("web", 2).await;
    assert_eq!(annotation(&d, REVISION), Some("2"));
    let rss = env.rss().await;
    assert_eq!(rss.len(), 2);
    assert_eq!(spec_replicas(&rss[0]), 0);
    assert_eq!(spec_replicas(&rss[1]), 3);
    assert_eq!(annotation(&rss[1], REVISION), Some("2"));
    assert_eq!(
        annotation(&rss[1], CHANGE_CAUSE),
        Some("kubectl set image v2")
    );
    assert!(env
        .pods()
        .await
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "hello-wasm:v2"));

    // rollout undo: kubectl writes revision 1's template back; that ReplicaSet is reused.
    let old_template = {
        let mut t = v1["spec"]["template"].clone();
        t["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(HASH_LABEL);
        t
    };
    env.modify("web", |o| o["spec"]["template"] = old_template.clone())
        .await;
    let d = env.settle("web", 2).await;
    assert_eq!(annotation(&d, REVISION), Some("3"));
    let rss = env.rss().await;
    assert_eq!(rss.len(), 2, "no new ReplicaSet for an old template");
    let reused = rss
        .iter()
        .find(|r| object::name(r) == object::name(&v1))
        .unwrap();
    assert_eq!(annotation(reused, REVISION), Some("3"));
    assert_eq!(annotation(reused, REVISION_HISTORY), Some("1"));
    assert_eq!(spec_replicas(reused), 3);
    assert!(env
        .pods()
        .await
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "hello-wasm:v1"));

    // kubectl scale 5 then 1: the active ReplicaSet takes it.
    env.modify("web", |o| o["spec"]["replicas"] = json!(5))
        .await;
    env.ready_per_round = usize::MAX;
    let d = env.settle("web", 0).await;
    assert_eq!(d["status"]["availableReplicas"], 5);
    env.modify("web", |o| o["spec"]["replicas"] = json!(1))
        .await;
    let d = env.settle("web", 0).await;
    assert_eq!(d["status"]["replicas"], 1);
    assert_eq!(env.pods().await.len(), 1);
    let events = env
        .api
        .list(
            crate::controllers::test_support::def("", "events"),
            "default",
        )
        .await;
    assert!(events.iter().any(|e| e["reason"] == "ScalingReplicaSet"
        && e["message"]
            .as_str()
            .unwrap()
            .starts_with("Scaled down replica set web-")));
}

#[tokio::test]
async fn restart_replaces_every_pod_and_history_is_pruned() {
    let env = Env::new().await;
    let mut d = deployment(
        "api",
        2,
        "hello-wasm:v1",
        rolling(json!("25%"), json!("25%")),
    );
    d["spec"]["revisionHistoryLimit"] = json!(1);
    env.api.create(deployments(), d).await;
    env.settle("api", 0).await;
    let before: Vec<String> = env
        .pods()
        .await
        .iter()
        .map(|p| object::name(p).to_string())
        .collect();
    for i in 0..2 {
        env.modify("api", move |o| {
            o["spec"]["template"]["metadata"]["annotations"] =
                json!({"kubectl.kubernetes.io/restartedAt": format!("2024-01-01T00:00:0{i}Z")})
        })
        .await;
        env.settle("api", 1).await;
    }
    let after: Vec<String> = env
        .pods()
        .await
        .iter()
        .map(|p| object::name(p).to_string())
        .collect();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every pod replaced"
    );
    // One settle more lets the controller prune: 3 revisions, limit 1 old.
    let key = ObjectKey::new(DEPLOYMENTS, "default", "api");
    env.dc.reconcile(&key).await.unwrap();
    let rss = env.rss().await;
    assert_eq!(
        rss.len(),
        2,
        "{:?}",
        rss.iter().map(object::name).collect::<Vec<_>>()
    );
    assert_eq!(annotation(&rss[1], REVISION), Some("3"));
}

#[tokio::test]
async fn recreate_stops_old_pods_before_starting_new_ones() {
    let env = Env::new().await;
    env.api
        .create(
            deployments(),
            deployment("db", 2, "hello-wasm:v1", json!({"type": "Recreate"})),
        )
        .await;
    env.settle("db", 0).await;
    env.modify("db", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hello-wasm:v2")
    })
    .await;
    let key = ObjectKey::new(DEPLOYMENTS, "default", "db");
    env.dc.reconcile(&key).await.unwrap();
    assert_eq!(
        env.rss().await.len(),
        1,
        "no new ReplicaSet while old pods run"
    );
    assert_eq!(spec_replicas(&env.rss().await[0]), 0);
    let d = env.settle("db", 0).await;
    assert_eq!(annotation(&d, REVISION), Some("2"));
    assert!(env
        .pods()
        .await
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "hello-wasm:v2"));
}

#[tokio::test]
async fn paused_deployments_do_not_roll_out() {
    let env = Env::new().await;
    env.api
        .create(
            deployments(),
            deployment("p", 1, "hello-wasm:v1", rolling(json!(1), json!(0))),
        )
        .await;
    env.settle("p", 0).await;
    env.modify("p", |o| {
        o["spec"]["paused"] = json!(true);
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hello-wasm:v2");
    })
    .await;
    let key = ObjectKey::new(DEPLOYMENTS, "default", "p");
    env.dc.reconcile(&key).await.unwrap();
    env.dc.reconcile(&key).await.unwrap();
    assert_eq!(env.rss().await.len(), 1);
    let d = env.deploy("p").await;
    assert_eq!(
        condition(&d["status"], PROGRESSING).unwrap()["reason"],
        "DeploymentPaused"
    );
    env.modify("p", |o| o["spec"]["paused"] = json!(false))
        .await;
    let d = env.settle("p", 1).await;
    assert_eq!(annotation(&d, REVISION), Some("2"));
}

/// The controllers wired through their watches (as `spawn_all` runs them): a rollout and a
/// cascading delete complete with nothing but store events driving them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_run_from_watches_and_cascade_deletes() {
    let env = Env::new().await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let store = env.api.st.store.clone();
    let mut tasks = Vec::new();
    let objects = env.api.objects.clone();
    tasks.extend(crate::controllers::runner::spawn(
        Arc::new(DeploymentController::new(objects.clone()).unwrap()),
        store.clone(),
        1,
        stop.clone(),
    ));
    tasks.extend(crate::controllers::runner::spawn(
        Arc::new(ReplicaSetController::new(objects.clone()).unwrap()),
        store.clone(),
        1,
        stop.clone(),
    ));
    tasks.extend(crate::controllers::runner::spawn(
        Arc::new(crate::controllers::gc::GarbageCollector::new(
            objects.clone(),
        )),
        store.clone(),
        1,
        stop.clone(),
    ));

    env.api
        .create(
            deployments(),
            deployment("w", 2, "hello-wasm:v1", rolling(json!(1), json!(0))),
        )
        .await;
    let until = |what: &'static str, deadline_s: u64| {
        (
            what,
            std::time::Instant::now() + Duration::from_secs(deadline_s),
        )
    };
    let (what, deadline) = until("rollout", 20);
    loop {
        env.kubelet().await;
        if rollout_done(&env.deploy("w").await) && env.pods().await.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} timed out: {:#?}",
            env.deploy("w").await["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Foreground: the Deployment waits for its ReplicaSet, which waits for its pods.
    let opts = DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        ..DeleteOptions::default()
    };
    env.api
        .objects
        .delete(deployments(), "default", "w", opts)
        .await
        .unwrap();
    let (what, deadline) = until("foreground delete", 20);
    let mut saw_waiting = false;
    loop {
        let d = env.api.get(deployments(), "default", "w").await;
        if d.is_none() {
            break;
        }
        saw_waiting |= !env.pods().await.is_empty();
        env.kubelet().await;
        assert!(std::time::Instant::now() < deadline, "{what} timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_waiting, "the deployment outlived its pods");
    assert!(env.rss().await.is_empty() && env.pods().await.is_empty());

    // Background: the Deployment goes at once, the GC removes the rest.
    env.api
        .create(
            deployments(),
            deployment("b", 1, "hello-wasm:v1", rolling(json!(1), json!(0))),
        )
        .await;
    let (what, deadline) = until("second rollout", 20);
    while env.pods().await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "{what} timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.api
        .objects
        .delete(deployments(), "default", "b", DeleteOptions::default())
        .await
        .unwrap();
    assert!(env.api.get(deployments(), "default", "b").await.is_none());
    let (what, deadline) = until("background cascade", 20);
    while !(env.rss().await.is_empty() && env.pods().await.is_empty()) {
        env.kubelet().await;
        assert!(std::time::Instant::now() < deadline, "{what} timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
}
