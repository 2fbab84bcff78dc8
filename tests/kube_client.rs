//! The same API through the `kube` crate: typed get/list/watch/patch, conflicts, auth.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use common::Skiff;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::WatchStreamExt;
use serde_json::json;

fn deployment(name: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "hello:1"}]}}
        }
    }))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_get_list_watch_patch() -> Result<()> {
    let s = Skiff::control_plane()?;
    let client = s.client().await?;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &deployment("web")?)
        .await?;
    ensure!(
        created.spec.as_ref().and_then(|s| s.replicas) == Some(1),
        "replicas defaulted to 1"
    );
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await?
        .boxed();
    let patch = json!({"spec": {"replicas": 4}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    ensure!(patched.spec.and_then(|s| s.replicas) == Some(4));
    let ssa = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "a"}}});
    let applied = api
        .patch("web", &PatchParams::apply("test"), &Patch::Apply(&ssa))
        .await?;
    ensure!(
        applied
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str)
            == Some("a")
    );
    let got = api.get("web").await?;
    ensure!(
        got.metadata.generation == Some(2),
        "generation {:?}",
        got.metadata.generation
    );
    let list = api.list(&ListParams::default().labels("app=web")).await?;
    ensure!(list.items.len() == 1);
    let list = api
        .list(&ListParams::default().labels("app in (nope)"))
        .await?;
    ensure!(list.items.is_empty());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Modified(d)))) => {
                seen.push(d.metadata.resource_version.unwrap_or_default())
            }
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {}
            Ok(Ok(Some(other))) => bail!("unexpected event {other:?}"),
            Ok(Ok(None)) => bail!("watch ended early"),
            Ok(Err(e)) => bail!("watch error {e}"),
            Err(_) => bail!("no watch event within 10s"),
        }
    }
    ensure!(
        seen[0] < seen[1] || seen[0].len() < seen[1].len(),
        "revisions increase: {seen:?}"
    );
    // The runtime watcher (list + watch) sees the object too.
    let mut objects = kube::runtime::watcher(api.clone(), Default::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), objects.next()).await?;
    ensure!(matches!(first, Some(Ok(ref d)) if d.metadata.name.as_deref() == Some("web")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_resource_version_twice_is_one_conflict() -> Result<()> {
    let s = Skiff::control_plane()?;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"v": "0"}}))?;
    let cm = api.create(&PostParams::default(), &cm).await?;
    let mut a = cm.clone();
    a.data = Some([("v".to_string(), "a".to_string())].into());
    let mut b = cm.clone();
    b.data = Some([("v".to_string(), "b".to_string())].into());
    let pp = PostParams::default();
    let (ra, rb) = tokio::join!(api.replace("c", &pp, &a), api.replace("c", &pp, &b));
    let results = [ra, rb];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Err(kube::Error::Api(e)) if e.code == 409 => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    ensure!(
        ok == 1 && conflicts.len() == 1,
        "ok={ok} conflicts={conflicts:?}"
    );
    ensure!(
        conflicts[0].contains("the object has been modified"),
        "{}",
        conflicts[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required() -> Result<()> {
    let s = Skiff::control_plane()?;
    for token in [None, Some("wrong-token-0123456789")] {
        let api: Api<ConfigMap> = Api::namespaced(s.client_with_token(token).await?, "default");
        match api.list(&ListParams::default()).await {
            Err(kube::Error::Api(e)) => {
                ensure!(e.code == 401 && e.reason == "Unauthorized", "{e:?}")
            }
            other => bail!("expected 401, got {other:?}"),
        }
    }
    // Health and version stay open, as on Kubernetes.
    let anon = s.client_with_token(None).await?;
    let v = anon.apiserver_version().await?;
    ensure!(v.major == "1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_an_expired_revision_gets_410() -> Result<()> {
    let s = Skiff::start_with(&["--no-agent", "--watch-history", "5"])?;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    let first = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c0"}}))?,
        )
        .await?;
    for i in 1..12 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}}))?;
        api.create(&PostParams::default(), &cm).await?;
    }
    let rv = first.metadata.resource_version.unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await?
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await? {
        Ok(Some(WatchEvent::Error(e))) => ensure!(e.code == 410, "{e:?}"),
        other => bail!("expected a 410 ERROR event, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_honours_selectors() -> Result<()> {
    let s = Skiff::control_plane()?;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))?;
        api.create(&PostParams::default(), &cm).await?;
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=web"),
    )
    .await?;
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    ensure!(left == ["c"], "{left:?}");
    Ok(())
}
