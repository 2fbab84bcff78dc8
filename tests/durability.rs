//! Acknowledged writes survive restarts and `kill -9`; revisions keep increasing.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Result};
use common::Skiff;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

fn cm(name: &str) -> Result<ConfigMap> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "data": {"k": name}}),
    )?)
}

fn rv(c: &ConfigMap) -> u64 {
    c.metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_revisions_survive_a_clean_restart() -> Result<()> {
    let mut s = Skiff::control_plane()?;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    let a = api.create(&PostParams::default(), &cm("a")?).await?;
    let b = api.create(&PostParams::default(), &cm("b")?).await?;
    s.restart()?;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    ensure!(rv(&api.get("a").await?) == rv(&a));
    ensure!(rv(&api.get("b").await?) == rv(&b));
    let c = api.create(&PostParams::default(), &cm("c")?).await?;
    ensure!(
        rv(&c) > rv(&b),
        "revision went backwards: {} after {}",
        rv(&c),
        rv(&b)
    );
    ensure!(
        s.log().contains("skiff control plane stopped"),
        "clean shutdown logged"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() -> Result<()> {
    let mut s = Skiff::control_plane()?;
    let client = s.client().await?;
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let name = format!("w{w}-{i}");
                let Ok(obj) = cm(&name) else { return };
                match api.create(&PostParams::default(), &obj).await {
                    Ok(created) => {
                        if let Ok(mut m) = acked.lock() {
                            m.insert(name, rv(&created));
                        }
                    }
                    // The server died mid-request: this write was never acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let acked = acked.lock().map(|m| m.clone()).unwrap_or_default();
    ensure!(
        acked.len() > 20,
        "too few writes acknowledged before the kill: {}",
        acked.len()
    );
    s.crash_and_restart()?;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    let stored: BTreeMap<String, u64> = api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|c| (c.metadata.name.clone().unwrap_or_default(), rv(c)))
        .collect();
    for (name, rev) in &acked {
        ensure!(
            stored.get(name) == Some(rev),
            "acknowledged {name}@{rev} lost after kill -9"
        );
    }
    let max = acked.values().copied().max().unwrap_or(0);
    let after = api.create(&PostParams::default(), &cm("after")?).await?;
    ensure!(rv(&after) > max, "revision {} not above {max}", rv(&after));
    Ok(())
}
