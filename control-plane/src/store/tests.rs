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
    let store = Store::open_with(
        &dir.path().join("db"),
        StoreOptions {
            watch_history: 3,
            ..Default::default()
        },
    )
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

// ---- paged lists ----

use std::collections::BTreeMap;

fn cm(name: &str, generation: u64) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"gen": generation.to_string()}})
}

fn scope() -> ListScope {
    ListScope::new("core/configmaps", Some("default"))
}

fn page_req(limit: usize) -> PageRequest {
    PageRequest {
        scope: scope(),
        at: ReadAt::Latest,
        from: None,
        limit: Some(limit),
        count_remaining: true,
        encoded: false,
    }
}

/// The page after `token` (verified for the default namespace).
async fn next_page(store: &Store, token: &str, limit: usize) -> Result<Page, ListError> {
    let from = store
        .verify_continue(token, &scope())
        .expect("a valid token");
    store
        .list_page(
            PageRequest {
                from: Some(from),
                ..page_req(limit)
            },
            |_| true,
        )
        .await
}

/// (name, data.gen) of each item.
fn summary(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o["data"]["gen"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn update_gen(store: &Store, name: &str, generation: u64) -> Value {
    store
        .update(key(name), cm(name, generation), Precondition::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_stay_at_the_first_pages_revision_across_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    for i in 0..20 {
        let name = format!("o{i:02}");
        store.create(key(&name), cm(&name, 0)).await.unwrap();
    }
    // Another namespace and a resource sharing the prefix's start stay out of the list.
    store
        .create(
            ObjectKey::new("core/configmaps", "other", "o03x"),
            cm("o03x", 0),
        )
        .await
        .unwrap();
    store
        .create(
            ObjectKey::new("core/configmapsx", "default", "o03y"),
            cm("o03y", 0),
        )
        .await
        .unwrap();
    let expected: Vec<(String, String)> = (0..20)
        .map(|i| (format!("o{i:02}"), "0".to_string()))
        .collect();

    let first = store.list_page(page_req(5), |_| true).await.unwrap();
    let revision = first.revision;
    assert_eq!(revision, 22);
    assert_eq!(summary(&first.items), expected[..5]);
    assert_eq!(first.remaining_item_count, Some(15));
    let mut pages = vec![first];

    // Every kind of change, in and around the ranges of the pages to come.
    update_gen(&store, "o07", 1).await;
    store
        .delete(key("o10"), Precondition::default())
        .await
        .unwrap();
    store.create(key("o05a"), cm("o05a", 0)).await.unwrap();
    store.create(key("o99"), cm("o99", 0)).await.unwrap();
    store
        .delete(key("o02"), Precondition::default())
        .await
        .unwrap();
    update_gen(&store, "o15", 1).await;
    update_gen(&store, "o15", 2).await;
    store
        .delete(key("o12"), Precondition::default())
        .await
        .unwrap();
    store.create(key("o12"), cm("o12", 9)).await.unwrap();
    store.create(key("o13a"), cm("o13a", 0)).await.unwrap();
    store
        .delete(key("o13a"), Precondition::default())
        .await
        .unwrap();

    while let Some(token) = pages.last().unwrap().continue_token.clone() {
        let page = next_page(&store, &token, 5).await.unwrap();
        assert_eq!(
            page.revision, revision,
            "every page is read at the first one's revision"
        );
        // More changes between every two pages, including to the next page's keys.
        let n = pages.len() as u64;
        if 5 * n + 7 < 20 {
            update_gen(&store, &format!("o{:02}", 5 * n + 6), 7).await;
            store
                .delete(key(&format!("o{:02}", 5 * n + 7)), Precondition::default())
                .await
                .unwrap();
        }
        pages.push(page);
    }
    assert_eq!(pages.len(), 4);
    let remaining: Vec<Option<u64>> = pages.iter().map(|p| p.remaining_item_count).collect();
    assert_eq!(remaining, vec![Some(15), Some(10), Some(5), None]);
    let all: Vec<(String, String)> = pages.iter().flat_map(|p| summary(&p.items)).collect();
    assert_eq!(all, expected, "the list as it was at the first page");
    // Objects come back with the resourceVersion they had then.
    let o07 = &pages[1].items[2];
    assert_eq!(o07["metadata"]["name"], "o07");
    assert_eq!(object_revision(o07), Some(8));

    // A new list sees the present.
    let now = store
        .list_page(
            PageRequest {
                limit: None,
                ..page_req(0)
            },
            |_| true,
        )
        .await
        .unwrap();
    let names: Vec<String> = summary(&now.items).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"o05a".to_string()) && !names.contains(&"o10".to_string()));
    assert!(now.continue_token.is_none() && now.remaining_item_count.is_none());
}

#[tokio::test]
async fn filtered_pages_scan_until_the_limit_is_filled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    for i in 0..30 {
        let name = format!("o{i:02}");
        store.create(key(&name), cm(&name, i % 3)).await.unwrap();
    }
    let only_zero = |o: &Value| o["data"]["gen"] == "0";
    let req = PageRequest {
        count_remaining: false,
        encoded: false,
        ..page_req(4)
    };
    let first = store.list_page(req.clone(), only_zero).await.unwrap();
    let names: Vec<String> = summary(&first.items).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["o00", "o03", "o06", "o09"]);
    assert_eq!(
        first.remaining_item_count, None,
        "not counted with a selector"
    );
    // The last matching item ends a page; a token still follows while keys remain (as etcd3).
    let from = store
        .verify_continue(first.continue_token.as_deref().unwrap(), &scope())
        .unwrap();
    let mut names = names;
    let mut next = Some(from);
    let mut pages = 1;
    while let Some(from) = next.take() {
        let page = store
            .list_page(
                PageRequest {
                    from: Some(from),
                    ..req.clone()
                },
                only_zero,
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 4);
        names.extend(summary(&page.items).into_iter().map(|(n, _)| n));
        next = page
            .continue_token
            .map(|t| store.verify_continue(&t, &scope()).unwrap());
        pages += 1;
    }
    let want: Vec<String> = (0..30).step_by(3).map(|i| format!("o{i:02}")).collect();
    assert_eq!(names, want);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn a_continue_token_older_than_the_log_is_expired_with_a_restart_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        &dir.path().join("db"),
        StoreOptions {
            watch_history: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..6 {
        let name = format!("o{i:02}");
        store.create(key(&name), cm(&name, 0)).await.unwrap();
    }
    let first = store.list_page(page_req(2), |_| true).await.unwrap();
    let token = first.continue_token.unwrap();
    // Within the log's reach the next page is consistent…
    update_gen(&store, "o03", 1).await;
    let page = next_page(&store, &token, 2).await.unwrap();
    assert_eq!(summary(&page.items)[1], ("o03".into(), "0".into()));
    // …once the log has moved past the first page's revision it is not.
    for _ in 0..4 {
        update_gen(&store, "o05", 1).await;
    }
    store.create(key("o02a"), cm("o02a", 0)).await.unwrap();
    let err = next_page(&store, &token, 2).await.unwrap_err();
    let ListError::ContinueExpired { revision, restart } = err else {
        panic!("expected ContinueExpired, got {err:?}");
    };
    assert_eq!(revision, 6);
    // The restart token continues from the same key at the newest revision (inconsistently).
    let rest = next_page(&store, &restart.unwrap(), 10).await.unwrap();
    assert_eq!(rest.revision, store.current_revision().await.unwrap());
    assert_eq!(
        summary(&rest.items),
        [
            ("o02", "0"),
            ("o02a", "0"),
            ("o03", "1"),
            ("o04", "0"),
            ("o05", "1")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[tokio::test]
async fn exact_revisions_are_read_from_the_log_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        &dir.path().join("db"),
        StoreOptions {
            watch_history: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.create(key("a"), cm("a", 0)).await.unwrap(); // 1
    store.create(key("b"), cm("b", 0)).await.unwrap(); // 2
    update_gen(&store, "a", 1).await; // 3
    store
        .delete(key("b"), Precondition::default())
        .await
        .unwrap(); // 4
    store.create(key("c"), cm("c", 0)).await.unwrap(); // 5
    let at = |rev| PageRequest {
        at: ReadAt::Exact(rev),
        limit: None,
        ..page_req(0)
    };
    let p = store.list_page(at(2), |_| true).await.unwrap();
    assert_eq!(p.revision, 2);
    assert_eq!(
        summary(&p.items),
        [("a", "0"), ("b", "0")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(matches!(
        store.list_page(at(6), |_| true).await,
        Err(ListError::TooLarge {
            requested: 6,
            current: 5
        })
    ));
    let not_older = PageRequest {
        at: ReadAt::NotOlderThan(3),
        ..at(0)
    };
    assert_eq!(
        store.list_page(not_older, |_| true).await.unwrap().revision,
        5
    );
    store.create(key("d"), cm("d", 0)).await.unwrap(); // 6: the log now starts at 2
    store.create(key("e"), cm("e", 0)).await.unwrap(); // 7: at 3
    assert!(store.list_page(at(2), |_| true).await.is_ok());
    assert!(matches!(
        store.list_page(at(1), |_| true).await,
        Err(ListError::Expired { requested: 1, .. })
    ));
}

#[tokio::test]
async fn continue_tokens_are_tamper_evident_and_outlive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = || StoreOptions {
        continue_key: Some(ContinueKey::new([3; 32])),
        ..Default::default()
    };
    let token = {
        let store = Store::open_with(&path, options()).await.unwrap();
        for i in 0..4 {
            let name = format!("o{i}");
            store.create(key(&name), cm(&name, 0)).await.unwrap();
        }
        let token = store
            .list_page(page_req(2), |_| true)
            .await
            .unwrap()
            .continue_token
            .unwrap();
        // Not for another namespace, all namespaces or another resource.
        for other in [
            ListScope::new("core/configmaps", Some("kube-system")),
            ListScope::new("core/configmaps", None),
            ListScope::new("core/secrets", Some("default")),
        ] {
            let why = store.verify_continue(&token, &other).unwrap_err();
            assert!(why.contains("another list"), "{why}");
        }
        // Garbage, and every single-character change of the token.
        assert!(store.verify_continue("not a token", &scope()).is_err());
        assert!(store.verify_continue("", &scope()).is_err());
        for i in 0..token.len() {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            if t != token {
                assert!(
                    store.verify_continue(&t, &scope()).is_err(),
                    "altered at {i}"
                );
            }
        }
        store.close().await;
        token
    };
    // The same key after a restart: the token still works, at its revision.
    let store = Store::open_with(&path, options()).await.unwrap();
    store
        .delete(key("o3"), Precondition::default())
        .await
        .unwrap();
    let page = next_page(&store, &token, 10).await.unwrap();
    assert_eq!(page.revision, 4);
    let names: Vec<String> = summary(&page.items).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["o2", "o3"]);
    // Another server's key: refused.
    let stranger = Store::open(&dir.path().join("db2")).await.unwrap();
    assert!(stranger.verify_continue(&token, &scope()).is_err());
}

/// Pages taken while another task keeps creating, updating and deleting in the same range
/// equal the state at the first page's revision, rebuilt from the writer's own record of
/// what each write's revision was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_under_concurrent_writes_equal_the_first_revision() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    // revision -> (name, Some(gen) | None for a deletion)
    let mut initial = BTreeMap::new();
    for i in 0..300 {
        let name = format!("o{i:03}");
        let o = store.create(key(&name), cm(&name, 0)).await.unwrap();
        initial.insert(object_revision(&o).unwrap(), (name, Some(0u64)));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(18);
            let mut log = Vec::new();
            let mut generation = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("o{:03}", rng.random_range(0..330));
                let existing = store.get(&key(&name)).await.unwrap();
                let (result, deleted) = match (existing.is_some(), rng.random_range(0..3)) {
                    (false, _) => (store.create(key(&name), cm(&name, generation)).await, false),
                    (true, 0) => (
                        store.delete(key(&name), Precondition::default()).await,
                        true,
                    ),
                    (true, _) => (
                        store
                            .update(key(&name), cm(&name, generation), Precondition::default())
                            .await,
                        false,
                    ),
                };
                if let Ok(o) = result {
                    log.push((
                        object_revision(&o).unwrap(),
                        (name, (!deleted).then_some(generation)),
                    ));
                }
                generation += 1;
                tokio::task::yield_now().await;
            }
            log
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut items = Vec::new();
    let mut page = store.list_page(page_req(25), |_| true).await.unwrap();
    let revision = page.revision;
    loop {
        items.extend(summary(&page.items));
        let Some(token) = page.continue_token.take() else {
            break;
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        page = next_page(&store, &token, 25).await.unwrap();
        assert_eq!(page.revision, revision);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let log = writer.await.unwrap();
    assert!(
        log.iter().any(|(rev, _)| *rev > revision),
        "writes went on during the paging"
    );
    let mut state: BTreeMap<String, u64> = BTreeMap::new();
    let mut history: BTreeMap<u64, (String, Option<u64>)> = initial;
    history.extend(log);
    for (_, (name, generation)) in history.range(..=revision) {
        match generation {
            Some(g) => state.insert(name.clone(), *g),
            None => state.remove(name),
        };
    }
    let want: Vec<(String, String)> = state.into_iter().map(|(n, g)| (n, g.to_string())).collect();
    assert_eq!(items, want);
}
