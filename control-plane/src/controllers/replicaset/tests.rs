//! ReplicaSet controller tests against a real store and admission.

use serde_json::{json, Value};

use super::*;
use crate::controllers::test_support::{pods as pod_def, replicasets, TestApi};

fn rs(name: &str, replicas: i64, selector: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "c", "image": "hello-wasm:v1"}]},
            },
        },
    })
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(REPLICASETS, "default", name)
}

async fn owned_pods(api: &TestApi, rs: &Value) -> Vec<Value> {
    let uid = object::meta_str(rs, "uid").unwrap();
    api.list(pod_def(), "default")
        .await
        .into_iter()
        .filter(|p| claim::controller_uid(p) == Some(uid))
        .collect()
}

/// Marks a pod scheduled, Running and Ready (since `since`), as an agent would.
async fn make_ready(api: &TestApi, pod: &Value, since: &str) {
    let since = since.to_string();
    crate::binding::bind(&api.st.store, "default", object::name(pod), "node-a")
        .await
        .unwrap();
    api.objects
        .modify(
            pod_def(),
            "default",
            object::name(pod),
            Subresource::Status,
            |p| {
                p["status"]["phase"] = json!("Running");
                p["status"]["conditions"] =
                    json!([{"type": "Ready", "status": "True", "lastTransitionTime": since}]);
                Ok(())
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn creates_scales_and_reports_status() {
    let api = TestApi::new().await;
    let c = ReplicaSetController::new(api.objects.clone()).unwrap();
    let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]});
    api.create(replicasets(), rs("web", 3, sel)).await;
    assert_eq!(c.reconcile(&key("web")).await.unwrap(), Action::Done);
    let rs1 = api.get(replicasets(), "default", "web").await.unwrap();
    let pods = owned_pods(&api, &rs1).await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(object::name(p).starts_with("web-"));
        let r = claim::controller_ref(p).unwrap();
        assert_eq!(r["kind"], "ReplicaSet");
        assert_eq!(r["blockOwnerDeletion"], true);
    }
    assert_eq!(rs1["status"]["replicas"], 3);
    assert_eq!(rs1["status"]["fullyLabeledReplicas"], 3);
    assert_eq!(rs1["status"]["observedGeneration"], 1);
    assert!(rs1["status"].get("readyReplicas").is_none());

    // Two become ready: ready/available follow.
    make_ready(&api, &pods[0], "2024-01-01T00:00:00Z").await;
    make_ready(&api, &pods[1], "2024-01-01T00:00:00Z").await;
    c.reconcile(&key("web")).await.unwrap();
    let rs1 = api.get(replicasets(), "default", "web").await.unwrap();
    assert_eq!(rs1["status"]["readyReplicas"], 2);
    assert_eq!(rs1["status"]["availableReplicas"], 2);

    // Scale down to 1: the not-ready (unscheduled) pod goes first, then the newest ready one.
    api.objects
        .modify(replicasets(), "default", "web", Subresource::Main, |o| {
            o["spec"]["replicas"] = json!(1);
            Ok(())
        })
        .await
        .unwrap();
    c.reconcile(&key("web")).await.unwrap();
    let rs1 = api.get(replicasets(), "default", "web").await.unwrap();
    assert_eq!(rs1["status"]["replicas"], 1);
    assert_eq!(rs1["status"]["observedGeneration"], 2);
    let left: Vec<Value> = owned_pods(&api, &rs1)
        .await
        .into_iter()
        .filter(pods::is_active)
        .collect();
    assert_eq!(left.len(), 1);
    assert!(pods::is_ready(&left[0]));
    // The deleted scheduled pod is terminating (graceful), the unscheduled one gone at once.
    let all = owned_pods(&api, &rs1).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(object::is_terminating));
}

#[tokio::test]
async fn deleted_pods_are_replaced_and_events_recorded() {
    let api = TestApi::new().await;
    let c = ReplicaSetController::new(api.objects.clone()).unwrap();
    api.create(
        replicasets(),
        rs("web", 2, json!({"matchLabels": {"app": "web"}})),
    )
    .await;
    c.reconcile(&key("web")).await.unwrap();
    let rs1 = api.get(replicasets(), "default", "web").await.unwrap();
    let pods = owned_pods(&api, &rs1).await;
    api.objects
        .delete(
            pod_def(),
            "default",
            object::name(&pods[0]),
            DeleteOptions::default(),
        )
        .await
        .unwrap();
    c.reconcile(&key("web")).await.unwrap();
    let now = owned_pods(&api, &rs1).await;
    assert_eq!(now.len(), 2);
    assert!(!now
        .iter()
        .any(|p| object::name(p) == object::name(&pods[0])));
    let events = api
        .list(
            crate::controllers::test_support::def("", "events"),
            "default",
        )
        .await;
    let created = events
        .iter()
        .filter(|e| e["reason"] == "SuccessfulCreate")
        .count();
    assert_eq!(created, 3, "{events:#?}");
    assert!(events
        .iter()
        .all(|e| e["involvedObject"]["kind"] == "ReplicaSet"));
    assert!(events[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("Created pod: web-"));
}

#[tokio::test]
async fn adopts_orphans_and_releases_non_matching() {
    let api = TestApi::new().await;
    let c = ReplicaSetController::new(api.objects.clone()).unwrap();
    let orphan = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "hello-wasm:v1"}]},
    });
    api.create(pod_def(), orphan).await;
    api.create(
        replicasets(),
        rs("web", 2, json!({"matchLabels": {"app": "web"}})),
    )
    .await;
    c.reconcile(&key("web")).await.unwrap();
    let rs1 = api.get(replicasets(), "default", "web").await.unwrap();
    let owned = owned_pods(&api, &rs1).await;
    assert_eq!(owned.len(), 2, "one adopted, one created");
    assert!(owned.iter().any(|p| object::name(p) == "stray"));

    // Relabel the adopted pod: it is released (no ownerReference) and replaced.
    api.objects
        .modify(pod_def(), "default", "stray", Subresource::Main, |p| {
            p["metadata"]["labels"] = json!({"app": "debug"});
            Ok(())
        })
        .await
        .unwrap();
    c.reconcile(&key("web")).await.unwrap();
    let stray = api.get(pod_def(), "default", "stray").await.unwrap();
    assert!(claim::owner_refs(&stray).is_empty());
    assert_eq!(owned_pods(&api, &rs1).await.len(), 2);
}

#[tokio::test]
async fn min_ready_seconds_requeues_until_available() {
    let api = TestApi::new().await;
    let c = ReplicaSetController::new(api.objects.clone()).unwrap();
    let mut obj = rs("slow", 1, json!({"matchLabels": {"app": "web"}}));
    obj["spec"]["minReadySeconds"] = json!(30);
    api.create(replicasets(), obj).await;
    c.reconcile(&key("slow")).await.unwrap();
    let rs1 = api.get(replicasets(), "default", "slow").await.unwrap();
    let pods = owned_pods(&api, &rs1).await;
    make_ready(&api, &pods[0], &object::now_rfc3339()).await;
    match c.reconcile(&key("slow")).await.unwrap() {
        Action::RequeueAfter(d) => assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(31),
            "{d:?}"
        ),
        other => panic!("expected a requeue, got {other:?}"),
    }
    let rs1 = api.get(replicasets(), "default", "slow").await.unwrap();
    assert_eq!(rs1["status"]["readyReplicas"], 1);
    assert!(rs1["status"].get("availableReplicas").is_none());
}

#[test]
fn selector_index_wakes_matching_owners_for_orphans() {
    let index = Arc::new(SelectorIndex::default());
    let rs_obj = rs("web", 1, json!({"matchLabels": {"app": "web"}}));
    index.observe(&StoreEvent::new(
        1,
        StoreEventType::Added,
        key("web"),
        rs_obj,
        None,
    ));
    let trigger = dependent_trigger(PODS, "ReplicaSet", REPLICASETS, index.clone());
    let orphan =
        json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}}});
    let e = StoreEvent::new(
        2,
        StoreEventType::Added,
        ObjectKey::new(PODS, "default", "p"),
        orphan,
        None,
    );
    assert_eq!((trigger.map)(&e), vec![key("web")]);
    let owned = json!({"metadata": {"name": "q", "namespace": "default", "ownerReferences": [{"kind": "ReplicaSet", "name": "other", "uid": "x", "controller": true}]}});
    let e = StoreEvent::new(
        3,
        StoreEventType::Added,
        ObjectKey::new(PODS, "default", "q"),
        owned,
        None,
    );
    assert_eq!((trigger.map)(&e), vec![key("other")]);
}
