//! The capacity benchmark's load: the objects, the LISTs and their peaks, the writers, the
//! fan-out's deliveries.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::api::{Api, PostParams};

use crate::report::{Lists, Objects, Writes};
use crate::support::apiserver::{cpu_time, get_text, reset_peak, status_kib};
use crate::support::watches::WatchSet;
use crate::{
    cm_path, settled_rss, Scale, DATA_BYTES, DRAIN_WAIT, OBJECTS_NS, PAGE, SETTLE, STALL, WRITERS,
};

/// A list's metadata and item count, read without decoding the items.
#[derive(serde::Deserialize)]
pub struct Page {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
}

pub async fn list_meta(client: &kube::Client, path: &str) -> Result<ListMeta> {
    let text = get_text(client, path).await?;
    Ok(serde_json::from_str::<Page>(&text)?.metadata)
}

/// ConfigMap `i` named `name`: about [`DATA_BYTES`] of properties and two labels.
pub fn config_map(name: &str, i: usize) -> ConfigMap {
    let mut props = String::with_capacity(DATA_BYTES + 80);
    let mut k = 0;
    while props.len() < DATA_BYTES {
        props.push_str(&format!(
            "service.{k}.endpoint=https://backend-{i}-{k}.example.internal:8443/v1\n"
        ));
        k += 1;
    }
    props.truncate(DATA_BYTES);
    let labels = BTreeMap::from([
        ("app".to_string(), "capacity".to_string()),
        ("shard".to_string(), (i % WRITERS).to_string()),
    ]);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("app.properties".to_string(), props)])),
        ..Default::default()
    }
}

pub fn redb_bytes(dir: &Path) -> Result<u64> {
    let path = dir.join("state.redb");
    Ok(std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

/// Creates `n` ConfigMaps in [`OBJECTS_NS`] with [`WRITERS`] concurrent writers.
pub async fn store_objects(
    client: &kube::Client,
    pid: u32,
    dir: &Path,
    n: usize,
) -> Result<Objects> {
    let rss_before = status_kib(pid, "VmRSS")?;
    let redb_before = redb_bytes(dir)?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), OBJECTS_NS);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (api, next) = (api.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let name = format!("object-{i:05}");
                api.create(&PostParams::default(), &config_map(&name, i))
                    .await
                    .with_context(|| format!("creating ConfigMap {name}"))?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let rss_after = settled_rss(pid).await?;
    let one = get_text(client, &format!("{}/object-00000", cm_path(OBJECTS_NS))).await?;
    Ok(Objects {
        elapsed,
        rss_before,
        rss_after,
        redb_before,
        redb_after: redb_bytes(dir)?,
        object_json: one.len(),
    })
}

/// A continue token as a query value.
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One walk through [`OBJECTS_NS`] in pages of [`PAGE`]: each page's latency; fails unless
/// it returned `n` items.
pub async fn walk(client: &kube::Client, n: usize) -> Result<Vec<Duration>> {
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    let mut items = 0;
    loop {
        let mut path = format!("{}?limit={PAGE}", cm_path(OBJECTS_NS));
        if let Some(t) = &token {
            path.push_str(&format!("&continue={}", query_escape(t)));
        }
        let t = Instant::now();
        let text = get_text(client, &path).await?;
        pages.push(t.elapsed());
        let page: Page = serde_json::from_str(&text).context("a LIST page")?;
        items += page.items.len();
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    if items != n {
        bail!("the paginated LIST returned {items} items, not {n}");
    }
    Ok(pages)
}

/// LIST latencies (full, paginated) and the server's peak RSS during each.
pub async fn lists(client: &kube::Client, pid: u32, scale: &Scale) -> Result<Lists> {
    let full_path = cm_path(OBJECTS_NS);
    // The peaks come from the first LISTs: memory a LIST frees stays with the allocator and
    // would hide part of the next one's growth. The smaller (paginated) goes first for that
    // reason too. They also warm what the timed runs use.
    let (walk_pages, walk_peak) = peak(pid, walk(client, scale.objects)).await?;
    let (response, full_peak) = peak(pid, get_text(client, &full_path)).await?;
    let count = serde_json::from_str::<Page>(&response)?.items.len();
    if count != scale.objects {
        bail!("the LIST returned {count} items, not {}", scale.objects);
    }
    let mut full = Vec::new();
    for _ in 0..scale.list_runs {
        let t = Instant::now();
        get_text(client, &full_path).await?;
        full.push(t.elapsed());
    }
    let (mut walks, mut pages) = (Vec::new(), Vec::new());
    for _ in 0..scale.list_runs {
        let t = Instant::now();
        pages.extend(walk(client, scale.objects).await?);
        walks.push(t.elapsed());
    }
    full.sort();
    walks.sort();
    pages.sort();
    Ok(Lists {
        full,
        walks,
        pages,
        pages_per_walk: walk_pages.len(),
        response_bytes: response.len(),
        full_peak,
        walk_peak,
    })
}

/// `run`'s outcome, with the server's RSS before it (after [`SETTLE`]) and its peak RSS during
/// it, in KiB.
pub async fn peak<T>(
    pid: u32,
    run: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, (u64, u64))> {
    tokio::time::sleep(SETTLE).await;
    reset_peak(pid)?;
    let before = status_kib(pid, "VmRSS")?;
    let out = run.await?;
    Ok((out, (before, status_kib(pid, "VmHWM")?)))
}

/// [`WRITERS`] writers creating, then updating, ConfigMaps in `ns` for `time`; with the CPU
/// time the server (`pid`) and this process used meanwhile.
pub async fn writes(client: &kube::Client, pid: u32, ns: &str, time: Duration) -> Result<Writes> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cpu = (cpu_time(pid)?, cpu_time(std::process::id())?);
    let start = Instant::now();
    let deadline = start + time;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut i = 0;
            while Instant::now() < deadline {
                let name = format!("writer-{w}-{i}");
                let mut cm = api
                    .create(&PostParams::default(), &config_map(&name, i))
                    .await
                    .with_context(|| format!("creating ConfigMap {name}"))?;
                cm.metadata.managed_fields = None;
                if let Some(data) = cm.data.as_mut() {
                    data.insert("revision".to_string(), "2".to_string());
                }
                api.replace(&name, &PostParams::default(), &cm)
                    .await
                    .with_context(|| format!("updating ConfigMap {name}"))?;
                n += 2;
                i += 1;
            }
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut writes = 0;
    for t in tasks {
        writes += t.await??;
    }
    let elapsed = start.elapsed();
    Ok(Writes {
        writes,
        elapsed,
        server_cpu: cpu_time(pid)?.saturating_sub(cpu.0),
        bench_cpu: cpu_time(std::process::id())?.saturating_sub(cpu.1),
    })
}

/// Waits for the fan-out's `expected` events, until they all arrived or none arrived for
/// [`STALL`] (a watch that fell behind gets a 410 instead), at most [`DRAIN_WAIT`]; returns the
/// time from now to the last event.
pub async fn deliveries(set: &WatchSet, expected: u64) -> Result<Duration> {
    let start = Instant::now();
    let (mut seen, mut last) = (set.counts.get().events, start);
    loop {
        if let Some(f) = set.counts.failure() {
            bail!("{f}");
        }
        let now = set.counts.get().events;
        if now != seen {
            (seen, last) = (now, Instant::now());
        }
        if now >= expected || last.elapsed() > STALL || start.elapsed() > DRAIN_WAIT {
            return Ok(last - start);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
