//! StatefulSet controller tests against a real store and admission: ordered creation, reverse
//! scale-down, partitioned rolling updates, claims, Parallel, failed pods, revisions.

use serde_json::{json, Value};

use super::*;
use crate::api::handlers::DeleteOptions;
use crate::controllers::test_support::{def, pods as pod_def, TestApi};

fn sts() -> &'static ResourceDef {
    def("apps", "statefulsets")
}

fn pvcs() -> &'static ResourceDef {
    def("", "persistentvolumeclaims")
}

fn set_yaml(name: &str, replicas: i64, policy: &str, extra: Value) -> Value {
    let mut s = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "counter:v1",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    });
    if let (Some(spec), Some(extra)) = (s["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    s
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(STATEFULSETS, "default", name)
}

async fn pod_names(api: &TestApi) -> Vec<String> {
    let mut names: Vec<String> = api
        .list(pod_def(), "default")
        .await
        .iter()
        .map(|p| object::name(p).to_string())
        .collect();
    names.sort();
    names
}

async fn pod(api: &TestApi, name: &str) -> Value {
    api.get(pod_def(), "default", name).await.expect("pod")
}

async fn set_of(api: &TestApi, name: &str) -> Value {
    api.get(sts(), "default", name).await.expect("statefulset")
}

/// Marks a pod scheduled, Running and Ready, as an agent would.
async fn make_ready(api: &TestApi, name: &str) {
    crate::binding::bind(&api.st.store, "default", name, "node-a")
        .await
        .unwrap();
    api.objects
        .modify(pod_def(), "default", name, Subresource::Status, |p| {
            p["status"]["phase"] = json!("Running");
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]);
            Ok(())
        })
        .await
        .unwrap();
}

/// Finishes a graceful deletion, as the agent does once the pod stopped.
async fn finish_deletion(api: &TestApi, name: &str) {
    api.objects
        .delete(
            pod_def(),
            "default",
            name,
            DeleteOptions {
                grace_seconds: Some(0),
                ..DeleteOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(api.get(pod_def(), "default", name).await.is_none());
}

async fn modify_spec(api: &TestApi, name: &str, change: impl Fn(&mut Value) + Send + Sync) {
    api.objects
        .modify(sts(), "default", name, Subresource::Main, |o| {
            change(o);
            Ok(())
        })
        .await
        .unwrap();
}

/// Creates `web` (3 replicas, OrderedReady) and brings all its pods up in order.
async fn three_ready(api: &TestApi, c: &StatefulSetController, extra: Value) {
    api.create(sts(), set_yaml("web", 3, "OrderedReady", extra))
        .await;
    for i in 0..3 {
        c.reconcile(&key("web")).await.unwrap();
        make_ready(api, &format!("web-{i}")).await;
    }
    c.reconcile(&key("web")).await.unwrap();
}

#[tokio::test]
async fn ordered_creation_waits_for_ready_predecessors() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    api.create(sts(), set_yaml("web", 3, "OrderedReady", json!({})))
        .await;

    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["web-0"]);
    // Not ready yet: web-1 must not appear however often we reconcile.
    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["web-0"]);

    let p = pod(&api, "web-0").await;
    let labels = &p["metadata"]["labels"];
    assert_eq!(labels[identity::POD_NAME_LABEL], "web-0");
    assert_eq!(labels[identity::POD_INDEX_LABEL], "0");
    assert_eq!(p["spec"]["hostname"], "web-0");
    assert_eq!(p["spec"]["subdomain"], "web");
    assert_eq!(
        p["spec"]["volumes"][0],
        json!({"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}})
    );
    let claim = api.get(pvcs(), "default", "data-web-0").await.unwrap();
    assert_eq!(claim["metadata"]["labels"]["app"], "web");
    assert_eq!(claim["status"]["phase"], "Pending");
    assert!(claim["metadata"].get("ownerReferences").is_none(), "Retain");

    let set = set_of(&api, "web").await;
    let rev = set["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(labels[identity::REVISION_LABEL], json!(rev));
    assert_eq!(set["status"]["replicas"], 1);
    assert_eq!(set["status"]["observedGeneration"], 1);
    assert_eq!(set["status"]["collisionCount"], 0);
    let cr = api
        .get(def("apps", "controllerrevisions"), "default", &rev)
        .await
        .unwrap();
    assert_eq!(cr["revision"], 1);
    assert_eq!(cr["data"]["spec"]["template"]["$patch"], "replace");
    assert!(cr["metadata"]["labels"][revisions::HISTORY_HASH_LABEL].is_string());

    make_ready(&api, "web-0").await;
    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["web-0", "web-1"]);
    make_ready(&api, "web-1").await;
    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["web-0", "web-1", "web-2"]);
    make_ready(&api, "web-2").await;
    c.reconcile(&key("web")).await.unwrap();

    let set = set_of(&api, "web").await;
    let st = &set["status"];
    assert_eq!(st["replicas"], 3);
    assert_eq!(st["readyReplicas"], 3);
    assert_eq!(st["availableReplicas"], 3);
    assert_eq!(st["currentReplicas"], 3);
    assert_eq!(st["updatedReplicas"], 3);
    assert_eq!(st["currentRevision"], st["updateRevision"]);
    assert_eq!(api.list(pvcs(), "default").await.len(), 3);
    let events = api.list(def("", "events"), "default").await;
    assert!(events
        .iter()
        .any(|e| e["message"] == "create Pod web-1 in StatefulSet web successful"));
    assert!(events
        .iter()
        .any(|e| e["message"] == "create Claim data-web-2 Pod web-2 in StatefulSet web success"));
}

#[tokio::test]
async fn scale_down_in_reverse_one_at_a_time_keeping_claims() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    three_ready(&api, &c, json!({})).await;
    modify_spec(&api, "web", |o| o["spec"]["replicas"] = json!(1)).await;

    c.reconcile(&key("web")).await.unwrap();
    assert!(object::is_terminating(&pod(&api, "web-2").await));
    assert!(!object::is_terminating(&pod(&api, "web-1").await));
    // web-2 still terminating: web-1 waits.
    c.reconcile(&key("web")).await.unwrap();
    assert!(!object::is_terminating(&pod(&api, "web-1").await));

    finish_deletion(&api, "web-2").await;
    c.reconcile(&key("web")).await.unwrap();
    assert!(object::is_terminating(&pod(&api, "web-1").await));
    finish_deletion(&api, "web-1").await;
    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["web-0"]);
    assert_eq!(
        api.list(pvcs(), "default").await.len(),
        3,
        "claims are kept"
    );
    let st = set_of(&api, "web").await["status"].clone();
    assert_eq!(st["replicas"], 1);
    assert_eq!(st["readyReplicas"], 1);

    // Scaling up again reuses the claims.
    modify_spec(&api, "web", |o| o["spec"]["replicas"] = json!(2)).await;
    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["web-0", "web-1"]);
    assert_eq!(api.list(pvcs(), "default").await.len(), 3);
}

#[tokio::test]
async fn partitioned_rolling_update_goes_in_reverse_above_the_partition() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    three_ready(&api, &c, json!({})).await;
    let old = set_of(&api, "web").await["status"]["currentRevision"]
        .as_str()
        .unwrap()
        .to_string();
    modify_spec(&api, "web", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("counter:v2");
        o["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
    })
    .await;

    c.reconcile(&key("web")).await.unwrap();
    let set = set_of(&api, "web").await;
    let new = set["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);
    assert_eq!(set["status"]["currentRevision"], json!(old));
    assert!(object::is_terminating(&pod(&api, "web-2").await));
    assert!(!object::is_terminating(&pod(&api, "web-1").await));

    finish_deletion(&api, "web-2").await;
    c.reconcile(&key("web")).await.unwrap();
    let p2 = pod(&api, "web-2").await;
    assert_eq!(
        p2["metadata"]["labels"][identity::REVISION_LABEL],
        json!(new)
    );
    assert_eq!(p2["spec"]["containers"][0]["image"], "counter:v2");
    // web-2 not ready yet: web-1 keeps running.
    c.reconcile(&key("web")).await.unwrap();
    assert!(!object::is_terminating(&pod(&api, "web-1").await));
    make_ready(&api, "web-2").await;
    c.reconcile(&key("web")).await.unwrap();
    assert!(object::is_terminating(&pod(&api, "web-1").await));
    finish_deletion(&api, "web-1").await;
    c.reconcile(&key("web")).await.unwrap();
    make_ready(&api, "web-1").await;
    c.reconcile(&key("web")).await.unwrap();

    // web-0 is below the partition: it stays at the old revision.
    let p0 = pod(&api, "web-0").await;
    assert!(!object::is_terminating(&p0));
    assert_eq!(
        p0["metadata"]["labels"][identity::REVISION_LABEL],
        json!(old)
    );
    let st = set_of(&api, "web").await["status"].clone();
    assert_eq!(st["updatedReplicas"], 2);
    assert_eq!(st["currentReplicas"], 1);
    assert_eq!(st["currentRevision"], json!(old));

    // Partition 0 finishes the rollout; the update revision becomes current.
    modify_spec(&api, "web", |o| {
        o["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(0)
    })
    .await;
    c.reconcile(&key("web")).await.unwrap();
    assert!(object::is_terminating(&pod(&api, "web-0").await));
    finish_deletion(&api, "web-0").await;
    c.reconcile(&key("web")).await.unwrap();
    make_ready(&api, "web-0").await;
    c.reconcile(&key("web")).await.unwrap();
    let st = set_of(&api, "web").await["status"].clone();
    assert_eq!(st["updatedReplicas"], 3);
    assert_eq!(st["currentReplicas"], 3);
    assert_eq!(st["currentRevision"], json!(new));
    let revs = revisions::list_owned(&api.objects, "default", &set_of(&api, "web").await)
        .await
        .unwrap();
    assert_eq!(revs.len(), 2);
}

#[tokio::test]
async fn on_delete_updates_only_deleted_pods() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    three_ready(&api, &c, json!({"updateStrategy": {"type": "OnDelete"}})).await;
    modify_spec(&api, "web", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("counter:v2")
    })
    .await;
    c.reconcile(&key("web")).await.unwrap();
    for i in 0..3 {
        assert!(!object::is_terminating(
            &pod(&api, &format!("web-{i}")).await
        ));
    }
    finish_deletion(&api, "web-1").await;
    c.reconcile(&key("web")).await.unwrap();
    assert_eq!(
        pod(&api, "web-1").await["spec"]["containers"][0]["image"],
        "counter:v2"
    );
    assert_eq!(
        pod(&api, "web-2").await["spec"]["containers"][0]["image"],
        "counter:v1"
    );
}

#[tokio::test]
async fn parallel_creates_and_deletes_all_at_once() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    api.create(sts(), set_yaml("db", 3, "Parallel", json!({})))
        .await;
    c.reconcile(&key("db")).await.unwrap();
    assert_eq!(pod_names(&api).await, ["db-0", "db-1", "db-2"]);
    assert_eq!(api.list(pvcs(), "default").await.len(), 3);
    modify_spec(&api, "db", |o| o["spec"]["replicas"] = json!(0)).await;
    c.reconcile(&key("db")).await.unwrap();
    // Unscheduled pods go at once.
    assert!(pod_names(&api).await.is_empty());
    assert_eq!(set_of(&api, "db").await["status"]["replicas"], 0);
}

#[tokio::test]
async fn failed_pods_are_recreated() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    api.create(sts(), set_yaml("web", 1, "OrderedReady", json!({})))
        .await;
    c.reconcile(&key("web")).await.unwrap();
    let first = object::meta_str(&pod(&api, "web-0").await, "uid")
        .unwrap()
        .to_string();
    api.objects
        .modify(pod_def(), "default", "web-0", Subresource::Status, |p| {
            p["status"]["phase"] = json!("Failed");
            Ok(())
        })
        .await
        .unwrap();
    c.reconcile(&key("web")).await.unwrap();
    c.reconcile(&key("web")).await.unwrap();
    let again = pod(&api, "web-0").await;
    assert_ne!(object::meta_str(&again, "uid"), Some(first.as_str()));
    assert_eq!(again["status"]["phase"], "Pending");
}

#[tokio::test]
async fn retention_policy_delete_sets_owner_references() {
    let api = TestApi::new().await;
    let c = StatefulSetController::new(api.objects.clone()).unwrap();
    let policy = json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}});
    three_ready(&api, &c, policy).await;
    let set = set_of(&api, "web").await;
    let claim = api.get(pvcs(), "default", "data-web-2").await.unwrap();
    assert_eq!(
        claim["metadata"]["ownerReferences"][0]["uid"],
        set["metadata"]["uid"]
    );
    modify_spec(&api, "web", |o| o["spec"]["replicas"] = json!(2)).await;
    c.reconcile(&key("web")).await.unwrap();
    let claim = api.get(pvcs(), "default", "data-web-2").await.unwrap();
    let refs = claim["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["kind"], "Pod");
    assert_eq!(refs[0]["name"], "web-2");
    // A new web-2 waits while the old claim still belongs to the old pod.
    finish_deletion(&api, "web-2").await;
    modify_spec(&api, "web", |o| o["spec"]["replicas"] = json!(3)).await;
    c.reconcile(&key("web")).await.unwrap();
    assert!(api.get(pod_def(), "default", "web-2").await.is_none());
}

#[tokio::test]
async fn claims_and_claim_volumes_pass_admission() {
    let api = TestApi::new().await;
    // A pod mounting a claim is admitted.
    api.create(
        pod_def(),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    )
    .await;
    // A claim needs access modes and a storage request.
    let bad = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": "bad", "namespace": "default"}, "spec": {}});
    let err = api
        .objects
        .create(pvcs(), "default", bad)
        .await
        .unwrap_err();
    assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err.message.contains("spec.accessModes"), "{}", err.message);
    assert!(
        err.message.contains("spec.resources[storage]"),
        "{}",
        err.message
    );
    // So does a StatefulSet's claim template.
    let mut set = set_yaml("x", 1, "OrderedReady", json!({}));
    set["spec"]["volumeClaimTemplates"][0]["spec"] = json!({"accessModes": ["ReadWriteOnce"]});
    let err = api.objects.create(sts(), "default", set).await.unwrap_err();
    assert!(
        err.message
            .contains("spec.volumeClaimTemplates[0].spec.resources[storage]"),
        "{}",
        err.message
    );
}
