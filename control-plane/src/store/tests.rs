use super::*;
use serde_json::json;

fn obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("core/configmaps", "default", name)
}

#[tokio::test]
async fn create_get_update_delete_with_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    let a = store.create(key("a"), obj("a")).await.unwrap();
    assert_eq!(object_revision(&a), Some(1));
    assert!(matches!(
        store.create(key("a"), obj("a")).await,
        Err(StoreError::AlreadyExists)
    ));
    let pre = Precondition {
        resource_version: Some(1),
        uid: None,
    };
    let b = store.update(key("a"), obj("a"), pre.clone()).await.unwrap();
    assert_eq!(object_revision(&b), Some(2));
    // The same stale revision again: conflict.
    assert!(matches!(
        store.update(key("a"), obj("a"), pre).await,
        Err(StoreError::Conflict)
    ));
    let got = store.get(&key("a")).await.unwrap().unwrap();
    assert_eq!(object_revision(&got), Some(2));
    let d = store
        .delete(key("a"), Precondition::default())
        .await
        .unwrap();
    assert_eq!(object_revision(&d), Some(3));
    assert!(store.get(&key("a")).await.unwrap().is_none());
    assert_eq!(store.current_revision().await.unwrap(), 3);
    store.close().await;
}

#[tokio::test]
async fn list_is_scoped_by_resource_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    store.create(key("a"), obj("a")).await.unwrap();
    store
        .create(ObjectKey::new("core/configmaps", "other", "b"), obj("b"))
        .await
        .unwrap();
    store
        .create(ObjectKey::new("core/configmapsx", "default", "c"), obj("c"))
        .await
        .unwrap();
    let all = store
        .list(&ListScope::new("core/configmaps", None))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.revision, 3);
    let ns = store
        .list(&ListScope::new("core/configmaps", Some("default")))
        .await
        .unwrap();
    assert_eq!(ns.items.len(), 1);
}

#[tokio::test]
async fn state_and_history_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).await.unwrap();
        store.create(key("a"), obj("a")).await.unwrap();
        store.create(key("b"), obj("b")).await.unwrap();
        store.close().await;
    }
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 2);
    let c = store.create(key("c"), obj("c")).await.unwrap();
    assert_eq!(object_revision(&c), Some(3));
    let mut w = store
        .watch(ListScope::new("core/configmaps", None), 0)
        .await
        .unwrap();
    let names: Vec<u64> = vec![
        w.next().await.unwrap().revision,
        w.next().await.unwrap().revision,
        w.next().await.unwrap().revision,
    ];
    assert_eq!(names, vec![1, 2, 3]);
}

#[tokio::test]
async fn watch_follows_live_changes_in_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    store.create(key("a"), obj("a")).await.unwrap();
    let mut w = store
        .watch(ListScope::new("core/configmaps", Some("default")), 1)
        .await
        .unwrap();
    store
        .create(ObjectKey::new("core/configmaps", "other", "x"), obj("x"))
        .await
        .unwrap();
    store.create(key("b"), obj("b")).await.unwrap();
    store
        .delete(key("a"), Precondition::default())
        .await
        .unwrap();
    let e1 = w.next().await.unwrap();
    assert_eq!((e1.kind, e1.key.name.as_str()), (EventType::Added, "b"));
    let e2 = w.next().await.unwrap();
    assert_eq!((e2.kind, e2.key.name.as_str()), (EventType::Deleted, "a"));
    assert_eq!(e2.revision, 4);
}

#[tokio::test]
async fn concurrent_writers_get_distinct_increasing_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..64 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            let name = format!("o{i}");
            s.create(key(&name), obj(&name)).await.unwrap()
        }));
    }
    let mut revs = Vec::new();
    for h in handles {
        revs.push(object_revision(&h.await.unwrap()).unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 64);
    assert_eq!(*revs.last().unwrap(), 64);
}

#[tokio::test]
async fn watch_from_a_pruned_revision_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(&dir.path().join("db"), StoreOptions { watch_history: 3 })
        .await
        .unwrap();
    for i in 0..10 {
        store.create(key(&format!("o{i}")), obj("x")).await.unwrap();
    }
    let scope = ListScope::new("core/configmaps", None);
    assert!(matches!(
        store.watch(scope.clone(), 2).await,
        Err(StoreError::Gone { .. })
    ));
    // Revisions 8..10 are still in the log.
    let mut w = store.watch(scope, 7).await.unwrap();
    assert_eq!(w.next().await.unwrap().revision, 8);
}

#[tokio::test]
async fn a_watcher_behind_the_broadcast_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    let mut w = store
        .watch(ListScope::new("core/configmaps", Some("default")), 0)
        .await
        .unwrap();
    // Far more changes than the broadcast holds, none read meanwhile.
    let n = DEFAULT_WATCH_BUFFER as u64 * 3;
    for i in 0..n {
        store
            .create(key(&format!("c{i}")), obj(&format!("c{i}")))
            .await
            .unwrap();
    }
    for i in 0..n {
        let e = w.next().await.expect("no Gone: the log has them");
        assert_eq!(e.revision, i + 1);
        assert_eq!(e.key.name, format!("c{i}"));
    }
}
