//! Garbage collector tests against a real store and the real delete path.

use serde_json::{json, Value};

use super::*;
use crate::controllers::test_support::{def, TestApi};

fn cm_def() -> &'static ResourceDef {
    def("", "configmaps")
}

fn cm(name: &str, owners: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "ownerReferences": owners}})
}

fn owner_ref(owner: &Value, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": object::name(owner), "uid": object::meta_str(owner, "uid").unwrap(), "blockOwnerDeletion": block})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("core/configmaps", "default", name)
}

async fn delete(api: &TestApi, name: &str, policy: &str) -> Option<Value> {
    let opts = DeleteOptions {
        propagation_policy: Some(policy.into()),
        ..DeleteOptions::default()
    };
    api.objects
        .delete(cm_def(), "default", name, opts)
        .await
        .unwrap();
    api.get(cm_def(), "default", name).await
}

#[tokio::test]
async fn background_deletes_dependents_whose_owners_are_all_gone() {
    let api = TestApi::new().await;
    let gc = GarbageCollector::new(api.objects.clone());
    let a = api.create(cm_def(), cm("a", json!([]))).await;
    let b = api.create(cm_def(), cm("b", json!([]))).await;
    api.create(cm_def(), cm("only-a", json!([owner_ref(&a, true)])))
        .await;
    api.create(
        cm_def(),
        cm(
            "a-and-b",
            json!([owner_ref(&a, false), owner_ref(&b, false)]),
        ),
    )
    .await;
    assert!(
        delete(&api, "a", "Background").await.is_none(),
        "owner goes at once"
    );
    for n in ["only-a", "a-and-b"] {
        assert_eq!(gc.reconcile(&key(n)).await.unwrap(), Action::Done);
    }
    assert!(api.get(cm_def(), "default", "only-a").await.is_none());
    let shared = api.get(cm_def(), "default", "a-and-b").await.unwrap();
    let refs = owner_refs(&shared);
    assert_eq!(refs.len(), 1, "only the dead owner's reference is dropped");
    assert_eq!(refs[0]["name"], "b");
}

#[tokio::test]
async fn owner_replaced_by_same_name_counts_as_gone() {
    let api = TestApi::new().await;
    let gc = GarbageCollector::new(api.objects.clone());
    let a = api.create(cm_def(), cm("a", json!([]))).await;
    api.create(cm_def(), cm("dep", json!([owner_ref(&a, true)])))
        .await;
    delete(&api, "a", "Background").await;
    api.create(cm_def(), cm("a", json!([]))).await;
    gc.reconcile(&key("dep")).await.unwrap();
    assert!(api.get(cm_def(), "default", "dep").await.is_none());
}

#[tokio::test]
async fn foreground_waits_for_blocking_dependents() {
    let api = TestApi::new().await;
    let gc = GarbageCollector::new(api.objects.clone());
    let owner = api.create(cm_def(), cm("owner", json!([]))).await;
    let mut held = cm("held", json!([owner_ref(&owner, true)]));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create(cm_def(), held).await;
    api.create(cm_def(), cm("loose", json!([owner_ref(&owner, false)])))
        .await;

    let o = delete(&api, "owner", "Foreground")
        .await
        .expect("owner kept while dependents exist");
    assert!(object::is_terminating(&o));
    assert_eq!(object::finalizers(&o), vec![FOREGROUND_FINALIZER]);
    assert_eq!(
        gc.reconcile(&key("owner")).await.unwrap(),
        Action::RequeueAfter(DEFAULT_FOREGROUND_RECHECK)
    );
    assert!(api.get(cm_def(), "default", "loose").await.is_none());
    let h = api.get(cm_def(), "default", "held").await.unwrap();
    assert!(object::is_terminating(&h));
    assert!(api.get(cm_def(), "default", "owner").await.is_some());

    // The blocking dependent finishes: the owner goes.
    api.objects
        .modify(cm_def(), "default", "held", Subresource::Main, |o| {
            o["metadata"]["finalizers"] = json!([]);
            Ok(())
        })
        .await
        .unwrap();
    assert!(api.get(cm_def(), "default", "held").await.is_none());
    assert_eq!(gc.reconcile(&key("owner")).await.unwrap(), Action::Done);
    assert!(api.get(cm_def(), "default", "owner").await.is_none());
}

#[tokio::test]
async fn foreground_cascades_through_levels() {
    let api = TestApi::new().await;
    let gc = GarbageCollector::new(api.objects.clone());
    let top = api.create(cm_def(), cm("top", json!([]))).await;
    let mid = api
        .create(cm_def(), cm("mid", json!([owner_ref(&top, true)])))
        .await;
    let mut leaf = cm("leaf", json!([owner_ref(&mid, true)]));
    leaf["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let leaf = api.create(cm_def(), leaf).await;
    // The graph learns who has dependents from the watch.
    for o in [&top, &mid, &leaf] {
        let k = key(object::name(o));
        gc.graph
            .observe(&StoreEvent::new(1, EventType::Added, k, o.clone(), None));
    }
    delete(&api, "top", "Foreground").await;
    gc.reconcile(&key("top")).await.unwrap();
    let m = api
        .get(cm_def(), "default", "mid")
        .await
        .expect("mid waits for leaf");
    assert_eq!(object::finalizers(&m), vec![FOREGROUND_FINALIZER]);
    gc.reconcile(&key("mid")).await.unwrap();
    assert!(object::is_terminating(
        &api.get(cm_def(), "default", "leaf").await.unwrap()
    ));
    assert!(api.get(cm_def(), "default", "top").await.is_some());
    api.objects
        .modify(cm_def(), "default", "leaf", Subresource::Main, |o| {
            o["metadata"]["finalizers"] = json!([]);
            Ok(())
        })
        .await
        .unwrap();
    gc.reconcile(&key("mid")).await.unwrap();
    assert!(api.get(cm_def(), "default", "mid").await.is_none());
    gc.reconcile(&key("top")).await.unwrap();
    assert!(api.get(cm_def(), "default", "top").await.is_none());
}

#[tokio::test]
async fn orphan_strips_references_then_releases_the_owner() {
    let api = TestApi::new().await;
    let gc = GarbageCollector::new(api.objects.clone());
    let owner = api.create(cm_def(), cm("owner", json!([]))).await;
    let other = api.create(cm_def(), cm("other", json!([]))).await;
    api.create(cm_def(), cm("d1", json!([owner_ref(&owner, true)])))
        .await;
    api.create(
        cm_def(),
        cm(
            "d2",
            json!([owner_ref(&owner, true), owner_ref(&other, false)]),
        ),
    )
    .await;
    let o = delete(&api, "owner", "Orphan").await.unwrap();
    assert_eq!(object::finalizers(&o), vec![ORPHAN_FINALIZER]);
    gc.reconcile(&key("owner")).await.unwrap();
    assert!(api.get(cm_def(), "default", "owner").await.is_none());
    let d1 = api.get(cm_def(), "default", "d1").await.unwrap();
    assert!(owner_refs(&d1).is_empty());
    let d2 = api.get(cm_def(), "default", "d2").await.unwrap();
    assert_eq!(owner_refs(&d2).len(), 1);
    // Orphans are left alone afterwards.
    gc.reconcile(&key("d1")).await.unwrap();
    assert!(api.get(cm_def(), "default", "d1").await.is_some());
}

#[test]
fn watch_events_wake_the_right_objects() {
    let graph = Graph::default();
    let owner = json!({"metadata": {"name": "o", "namespace": "default", "uid": "u-o"}});
    let dep = json!({"metadata": {"name": "d", "namespace": "default", "uid": "u-d",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-o"}]}});
    let added = StoreEvent::new(1, EventType::Added, key("d"), dep.clone(), None);
    graph.observe(&added);
    assert_eq!(keys_for(&graph, &added), vec![key("d")]);
    // A status-only change of a dependent is not a reason to look.
    let touched = StoreEvent::new(
        2,
        EventType::Modified,
        key("d"),
        dep.clone(),
        Some(dep.clone()),
    );
    assert!(keys_for(&graph, &touched).is_empty());
    // The owner going wakes its dependents.
    let gone = StoreEvent::new(3, EventType::Deleted, key("o"), owner, None);
    assert_eq!(keys_for(&graph, &gone), vec![key("d")]);
    // The dependent going wakes its owner (a foreground deletion may be waiting).
    let dep_gone = StoreEvent::new(4, EventType::Deleted, key("d"), dep, None);
    graph.observe(&dep_gone);
    assert_eq!(keys_for(&graph, &dep_gone), vec![key("o")]);
    assert!(graph.dependents("u-o").is_empty());
}
