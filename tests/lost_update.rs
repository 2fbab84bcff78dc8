//! No lost update: 32 clients increment one ConfigMap field at once, each by reading it and
//! writing it back under a precondition (GET + PUT with the resourceVersion read; a merge
//! patch carrying that resourceVersion; a JSON patch whose `test` operation checks the value
//! read). Every write that succeeds counts exactly once: the final value is the number of
//! successes, and the losers got 409 (or 422 for a failed `test`), never a silent overwrite.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, ensure, Result};
use common::Skiff;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

const CLIENTS: usize = 32;
const ATTEMPTS_PER_CLIENT: usize = 15;

#[derive(Clone, Copy, Debug)]
enum Method {
    Put,
    MergePatch,
    JsonPatchTest,
}

fn value(c: &ConfigMap) -> u64 {
    c.data
        .as_ref()
        .and_then(|d| d.get("n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One read-modify-write; `Ok(true)` when it was written, `Ok(false)` when a precondition
/// refused it (someone else wrote first).
async fn increment(
    client: &Client,
    api: &Api<ConfigMap>,
    name: &str,
    method: Method,
) -> Result<bool> {
    let current = api.get(name).await?;
    let n = value(&current);
    let rv = current
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let written = match method {
        Method::Put => {
            let mut next = current.clone();
            next.data
                .get_or_insert_with(Default::default)
                .insert("n".into(), (n + 1).to_string());
            api.replace(name, &PostParams::default(), &next)
                .await
                .map(|_| ())
        }
        Method::MergePatch => {
            let patch =
                json!({"metadata": {"resourceVersion": rv}, "data": {"n": (n + 1).to_string()}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
        Method::JsonPatchTest => {
            let ops = json!([
                {"op": "test", "path": "/data/n", "value": n.to_string()},
                {"op": "replace", "path": "/data/n", "value": (n + 1).to_string()},
            ]);
            let req = http::Request::patch(format!("/api/v1/namespaces/default/configmaps/{name}"))
                .header("content-type", "application/json-patch+json")
                .body(serde_json::to_vec(&ops)?)?;
            client.request_text(req).await.map(|_| ())
        }
    };
    match written {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => Ok(false),
        Err(e) => bail!("{method:?}: {e}"),
    }
}

async fn race(s: &Skiff, method: Method) -> Result<()> {
    let name = format!("counter-{}", format!("{method:?}").to_lowercase());
    let client = s.client().await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"n": "0"}}))?;
    api.create(&PostParams::default(), &cm).await?;
    let wins = Arc::new(AtomicU64::new(0));
    let losses = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, api, name) = (client.clone(), api.clone(), name.clone());
            let (wins, losses) = (wins.clone(), losses.clone());
            tokio::spawn(async move {
                for _ in 0..ATTEMPTS_PER_CLIENT {
                    if increment(&client, &api, &name, method).await? {
                        wins.fetch_add(1, Ordering::SeqCst);
                    } else {
                        losses.fetch_add(1, Ordering::SeqCst);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let (wins, losses) = (wins.load(Ordering::SeqCst), losses.load(Ordering::SeqCst));
    let last = value(&api.get(&name).await?);
    eprintln!("{method:?}: {wins} writes won, {losses} refused, final value {last}");
    ensure!(
        last == wins,
        "{method:?}: final value {last}, but {wins} writes succeeded"
    );
    ensure!(
        losses > 0,
        "{method:?}: no write ever raced another; the test proved nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_writes_never_lose_an_update() -> Result<()> {
    let s = Skiff::control_plane()?;
    for method in [Method::Put, Method::MergePatch, Method::JsonPatchTest] {
        race(&s, method).await?;
    }
    Ok(())
}
