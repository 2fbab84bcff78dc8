//! Capacity benchmark: what objects, watches and LISTs cost the API server, measured in one run
//! against one `skiff server --no-agent` (the control plane alone, so the embedded node agent's
//! memory does not blur the figures) on loopback, driven over HTTPS:
//!
//! - the idle control plane's RSS;
//! - 10,000 ConfigMaps of 1 KiB data created by 16 concurrent writers: the server's RSS growth
//!   per object, the object's size as served, and `state.redb`'s growth per object;
//! - 1,000 idle watches on a namespace without traffic, as client-go opens them (HTTP/2
//!   streams, up to the server's 200 per connection) and as the kube crate does (HTTP/1.1, a TLS
//!   connection each, opened while the HTTP/2 ones stay open): the RSS growth per watch;
//! - LIST of the 10,000 as JSON: latency p50/p90 of a full LIST and of a walk in `limit=500`
//!   pages, and the server's peak RSS during each (`VmHWM` after `echo 5 > /proc/PID/clear_refs`;
//!   needs root or the server's owner), also as a ratio to the response's size;
//! - writes/s (create, then update, of ConfigMaps) by 16 writers for 5 s: without watches, with
//!   the 1,000 idle watches open on another namespace, and with 1,000 watches on the written
//!   namespace (every write fanned out to all of them: the events they received are counted,
//!   and how long the last ones took after the writes ended); with the CPU time the server and
//!   this process (the writers, the watches' client) used, since they share the machine;
//! - the server's RSS at the end.
//!
//! The phases run in that order but for the watches, measured before the LISTs: memory a phase
//! frees stays with the server's allocator and would hide part of a later phase's growth, and
//! the LISTs free the most. Prints one table; asserts nothing but that each measurement
//! succeeded. Each HTTP/1.1 watch holds a descriptor here and one in the server, which inherits
//! this process's open-files limit: the soft limit is raised first.
//!
//! Run: `cargo bench --bench capacity` (release). `SKIFF_BENCH_QUICK=1` scales the counts and
//! durations down (1,000 objects, 100 watches, 2 s of writes, 3 LIST runs) for a check with the
//! debug build: `SKIFF_BENCH_QUICK=1 cargo test --bench capacity`.

#[path = "capacity/load.rs"]
mod load;
#[path = "capacity/report.rs"]
mod report;
mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use load::{deliveries, list_meta, lists, store_objects, writes};
use report::{Fanout, Report, WatchMemory};
use support::apiserver::{
    open_watches, raise_nofile, start_control_plane, status_kib, wait_open_watches,
};
use support::h2watch::{open_h2, Endpoint};
use support::watches::{open_h1, Counts, WatchSet};

/// Objects stored: the 10,000, a busy namespace's worth.
const OBJECTS: usize = 10_000;
const QUICK_OBJECTS: usize = 1_000;
/// Concurrent writers, for the objects and the writes/s phases: the 16.
const WRITERS: usize = 16;
/// Each ConfigMap's data: a small configuration file, the size the issue calls realistic.
const DATA_BYTES: usize = 1024;
/// Open watches: the 1,000 (a hundred nodes' or controllers' informers).
const WATCHES: usize = 1_000;
const QUICK_WATCHES: usize = 100;
/// HTTP/2 streams per connection: client-go fills a connection up to the server's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (hyper's default, 200) before opening another.
const STREAMS_PER_CONNECTION: usize = 200;
/// HTTP/1.1 watches opened at once (TLS handshakes in flight), so opening them does not
/// starve the server of CPU for seconds.
const OPEN_PARALLEL: usize = 32;
/// Open files beyond two per HTTP/1.1 watch: the store, listeners, the clients' connections.
const NOFILE_MARGIN: usize = 1024;
/// LIST runs per variant: about 10, so one slow run moves the p90 but not the p50.
const LIST_RUNS: usize = 10;
const QUICK_LIST_RUNS: usize = 3;
/// Page size of the paginated LIST: client-go's pager default (informers' initial LIST).
const PAGE: usize = 500;
/// Length of each writes/s phase: the issue's ~5 s.
const WRITE_TIME: Duration = Duration::from_secs(5);
const QUICK_WRITE_TIME: Duration = Duration::from_secs(2);
/// Pause before an RSS reading, so freed buffers and background work (controllers, batched
/// commits) have settled.
const SETTLE: Duration = Duration::from_secs(2);
/// Upper bound for the server's start, opening or closing a set of watches.
const WAIT: Duration = Duration::from_secs(120);
/// Fan-out deliveries still missing after the writes end are waited for until none has
/// arrived for this long.
const STALL: Duration = Duration::from_secs(15);
/// Upper bound for the fan-out deliveries after the writes end.
const DRAIN_WAIT: Duration = Duration::from_secs(600);
/// The watches' `timeoutSeconds`: longer than the run, so none ends on its own.
const WATCH_TIMEOUT_SECS: u64 = 3600;

/// Namespaces: the 10,000 objects, the one the idle watches watch (never written), and one per
/// writes/s phase, so each phase starts from an empty namespace.
const OBJECTS_NS: &str = "capacity-objects";
const QUIET_NS: &str = "capacity-quiet";
const WRITES_NONE_NS: &str = "capacity-writes";
const WRITES_IDLE_NS: &str = "capacity-writes-idle";
const WRITES_FAN_NS: &str = "capacity-writes-fanout";

/// The run's counts: the issue's, or `SKIFF_BENCH_QUICK=1`'s for the debug build.
struct Scale {
    quick: bool,
    objects: usize,
    watches: usize,
    list_runs: usize,
    write_time: Duration,
}

impl Scale {
    fn from_env() -> Scale {
        let quick = std::env::var("SKIFF_BENCH_QUICK").is_ok_and(|v| v == "1");
        Scale {
            quick,
            objects: if quick { QUICK_OBJECTS } else { OBJECTS },
            watches: if quick { QUICK_WATCHES } else { WATCHES },
            list_runs: if quick { QUICK_LIST_RUNS } else { LIST_RUNS },
            write_time: if quick { QUICK_WRITE_TIME } else { WRITE_TIME },
        }
    }
}

fn main() -> Result<()> {
    let scale = Scale::from_env();
    raise_nofile((2 * scale.watches + NOFILE_MARGIN) as u64)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(scale))
}

async fn run(scale: Scale) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let (server, client) = start_control_plane(dir, &[], WAIT).await?;
    eprintln!(
        "bench-capacity: server pid {}, data dir {}{}",
        server.pid(),
        dir.display(),
        if scale.quick { " (quick)" } else { "" }
    );
    let pid = server.pid();
    let measured = measure(&scale, &client, pid, dir);
    let report = server.run_bench(measured, async { Ok(()) }, WAIT).await?;
    report.print(&scale);
    Ok(())
}

async fn measure(scale: &Scale, client: &kube::Client, pid: u32, dir: &Path) -> Result<Report> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [
        OBJECTS_NS,
        QUIET_NS,
        WRITES_NONE_NS,
        WRITES_IDLE_NS,
        WRITES_FAN_NS,
    ] {
        let meta = ObjectMeta {
            name: Some(ns.to_string()),
            ..Default::default()
        };
        let obj = Namespace {
            metadata: meta,
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
    }
    let idle_kib = settled_rss(pid).await?;
    let objects = store_objects(client, pid, dir, scale.objects).await?;
    let kubeconfig = dir.join("kubeconfig.yaml");
    let endpoint = Endpoint::from_kubeconfig(&kubeconfig)?;
    let (h2, h1) = watch_memory(client, &kubeconfig, &endpoint, pid, scale.watches).await?;
    let list = lists(client, pid, scale).await?;
    let writes_none = writes(client, pid, WRITES_NONE_NS, scale.write_time).await?;

    let base = open_watches(client).await?;
    let quiet = quiet_path(client).await?;
    let idle = open_h2(
        &endpoint,
        &quiet,
        scale.watches,
        STREAMS_PER_CONNECTION,
        WAIT,
    )
    .await?;
    wait_open_watches(client, base + scale.watches as u64, WAIT).await?;
    let writes_idle = writes(client, pid, WRITES_IDLE_NS, scale.write_time).await?;
    tokio::time::sleep(SETTLE).await;
    let idle_counts = held(&idle)?;
    drop(idle);
    wait_open_watches(client, base, WAIT).await?;

    let rv = list_meta(client, &format!("{}?limit=1", cm_path(WRITES_FAN_NS)))
        .await?
        .resource_version
        .context("the fan-out namespace's list has no resourceVersion")?;
    let path = watch_path(WRITES_FAN_NS, &rv);
    let fan = open_h2(
        &endpoint,
        &path,
        scale.watches,
        STREAMS_PER_CONNECTION,
        WAIT,
    )
    .await?;
    wait_open_watches(client, base + scale.watches as u64, WAIT).await?;
    let writes_fan = writes(client, pid, WRITES_FAN_NS, scale.write_time).await?;
    let expected = writes_fan.writes * scale.watches as u64;
    let drain = deliveries(&fan, expected).await?;
    let fanout = Fanout {
        expected,
        counts: fan.counts.get(),
        drain,
    };
    drop(fan);
    wait_open_watches(client, base, WAIT).await?;
    Ok(Report {
        idle_kib,
        objects,
        h2,
        h1,
        list,
        writes_none,
        writes_idle,
        idle_counts,
        writes_fan,
        fan: fanout,
        end_kib: settled_rss(pid).await?,
    })
}

/// The server's RSS after [`SETTLE`].
async fn settled_rss(pid: u32) -> Result<u64> {
    tokio::time::sleep(SETTLE).await;
    status_kib(pid, "VmRSS")
}

fn cm_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

/// A watch of `ns`'s ConfigMaps from `rv`, with bookmarks (as informers ask).
fn watch_path(ns: &str, rv: &str) -> String {
    format!(
        "{}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={WATCH_TIMEOUT_SECS}",
        cm_path(ns)
    )
}

/// The watch of the quiet namespace, from its current revision.
async fn quiet_path(client: &kube::Client) -> Result<String> {
    let meta = list_meta(client, &format!("{}?limit=1", cm_path(QUIET_NS))).await?;
    let rv = meta
        .resource_version
        .context("the quiet namespace's list has no resourceVersion")?;
    Ok(watch_path(QUIET_NS, &rv))
}

/// RSS per idle watch on [`QUIET_NS`]: `n` HTTP/2 watches, then `n` HTTP/1.1 watches on top of
/// them (so neither reuses memory the other freed); all closed afterwards.
async fn watch_memory(
    client: &kube::Client,
    kubeconfig: &Path,
    endpoint: &Endpoint,
    pid: u32,
    n: usize,
) -> Result<(WatchMemory, WatchMemory)> {
    let base = open_watches(client).await?;
    let path = quiet_path(client).await?;
    let before = settled_rss(pid).await?;
    let h2 = open_h2(endpoint, &path, n, STREAMS_PER_CONNECTION, WAIT).await?;
    wait_open_watches(client, base + n as u64, WAIT).await?;
    let after_h2 = settled_rss(pid).await?;
    // A client of its own, so its connections are the watches' alone.
    let h1_client = support::kube_client(kubeconfig).await?;
    let h1 = open_h1(&h1_client, &path, n, OPEN_PARALLEL, WAIT).await?;
    wait_open_watches(client, base + 2 * n as u64, WAIT).await?;
    let after_h1 = settled_rss(pid).await?;
    held(&h2)?;
    held(&h1)?;
    let memory = (
        WatchMemory {
            rss_before: before,
            rss_after: after_h2,
            connections: h2.connections,
        },
        WatchMemory {
            rss_before: after_h2,
            rss_after: after_h1,
            connections: h1.connections,
        },
    );
    drop(h1);
    drop(h2);
    wait_open_watches(client, base, WAIT).await?;
    Ok(memory)
}

/// The counts of watches that must still be open: fails if one broke or ended.
fn held(set: &WatchSet) -> Result<Counts> {
    if let Some(f) = set.counts.failure() {
        bail!("{f}");
    }
    let c = set.counts.get();
    if c.ended > 0 {
        bail!("{} of the held watches ended", c.ended);
    }
    Ok(c)
}
