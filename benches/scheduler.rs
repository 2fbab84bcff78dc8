//! Scheduler benchmark: the real scheduler against a real (durable, group-committing) store,
//! in process. For 100 and 1,000 Node objects (no agent) it creates 5,000 pending pods with
//! the scheduler stopped, starts it, and measures pods bound per second until all are bound
//! (seen through a store watch). Then, with the scheduler idle, create → bound latency of
//! single pods. Prints a table beside kube-scheduler's reference figure; asserts nothing.
//!
//! Run: `cargo bench --bench scheduler` (or `scripts/bench-scheduler.sh`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::future::join_all;
use serde_json::{json, Value};
use skiff_control_plane::controllers::scheduler::Scheduler;
use skiff_control_plane::store::{ListScope, ObjectKey, Store};
use tokio::sync::watch;

const PODS: usize = 5_000;
/// kube-scheduler's scheduler_perf CI: SchedulingBasic, 5,000 fake nodes, ≥ 680 pods/s.
const KUBE_REFERENCE: f64 = 680.0;
const LATENCY_SAMPLES: usize = 50;
const CHUNK: usize = 256;

fn node(i: usize) -> Value {
    let name = format!("node-{i}");
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": "2025-01-01T00:00:00Z",
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {"capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}})
}

/// kube-scheduler_perf's pod-default: one container requesting 100m cpu and 500Mi memory.
fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2025-01-01T00:00:00Z", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                 "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}],
                 "schedulerName": "default-scheduler", "restartPolicy": "Always"},
        "status": {"phase": "Pending"}})
}

async fn create_all(store: &Store, resource: &str, objs: Vec<Value>) -> Result<()> {
    let mut objs = objs.into_iter().peekable();
    while objs.peek().is_some() {
        let chunk: Vec<Value> = objs.by_ref().take(CHUNK).collect();
        let writes = chunk.into_iter().map(|o| {
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            store.create(ObjectKey::new(resource, &ns, &name), o)
        });
        for r in join_all(writes).await {
            r?;
        }
    }
    Ok(())
}

fn is_bound(p: &Value) -> bool {
    p.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// Waits until `want` pods are bound; counts through a watch, re-listing if it falls behind.
async fn wait_bound(store: &Store, from: u64, want: usize) -> Result<()> {
    let scope = ListScope::new("core/pods", None);
    let mut bound: HashSet<String> = HashSet::new();
    let mut watcher = store.watch(scope.clone(), from).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while bound.len() < want {
        if Instant::now() > deadline {
            bail!("only {} of {want} pods bound", bound.len());
        }
        match tokio::time::timeout(Duration::from_secs(5), watcher.next()).await {
            Ok(Ok(ev)) => {
                if is_bound(&ev.object) {
                    bound.insert(ev.key.name.clone());
                }
            }
            Ok(Err(_)) | Err(_) => {
                let list = store.list(&scope).await?;
                bound = list
                    .items
                    .iter()
                    .filter(|p| is_bound(p))
                    .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
                    .collect();
                watcher = store.watch(scope.clone(), list.revision).await?;
            }
        }
    }
    Ok(())
}

struct Row {
    nodes: usize,
    secs: f64,
    events_secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run(nodes: usize) -> Result<Row> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("state.redb")).await?;
    create_all(&store, "core/nodes", (0..nodes).map(node).collect()).await?;
    create_all(
        &store,
        "core/pods",
        (0..PODS).map(|i| pod(&format!("pod-{i}"))).collect(),
    )
    .await?;
    let from = store.current_revision().await?;
    let (stop, rx) = watch::channel(false);
    let started = Instant::now();
    let sched = tokio::spawn(Scheduler::new(store.clone()).run(rx));
    wait_bound(&store, from, PODS).await?;
    let secs = started.elapsed().as_secs_f64();
    // Let the Scheduled events drain (written in the background), then single pods on an
    // idle scheduler.
    let drain = Instant::now() + Duration::from_secs(60);
    while store
        .list(&ListScope::new("core/events", None))
        .await?
        .items
        .len()
        < PODS
        && Instant::now() < drain
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events_secs = started.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let from = store.current_revision().await?;
        let mut watcher = store
            .watch(ListScope::new("core/pods", Some("bench")), from)
            .await?;
        let name = format!("single-{i}");
        let t = Instant::now();
        store
            .create(ObjectKey::new("core/pods", "bench", &name), pod(&name))
            .await?;
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), watcher.next()).await??;
            if ev.key.name == name && is_bound(&ev.object) {
                break;
            }
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let _ = stop.send(true);
    let _ = sched.await;
    store.close().await;
    Ok(Row {
        nodes,
        secs,
        events_secs,
        p50_ms: ms(lat[lat.len() / 2]),
        p99_ms: ms(lat[(lat.len() * 99 / 100).min(lat.len() - 1)]),
    })
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for nodes in [100, 1_000] {
        rows.push(rt.block_on(run(nodes))?);
    }
    println!();
    println!("| nodes | pods | seconds | pods/s | kube-scheduler reference | ratio | + Scheduled events written | create→bound p50 / p99 (idle) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let rate = PODS as f64 / r.secs;
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.0} pods/s (5,000 fake nodes, its CI) | {:.2}× | {:.2} s | {:.2} ms / {:.2} ms |",
            r.nodes,
            PODS,
            r.secs,
            rate,
            KUBE_REFERENCE,
            rate / KUBE_REFERENCE,
            r.events_secs,
            r.p50_ms,
            r.p99_ms
        );
    }
    Ok(())
}
