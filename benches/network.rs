//! The pod network's cost, measured side by side in one run on one node (a release `skiff
//! server` with its embedded agent, the pod network on, and a managed containerd when one is
//! on PATH):
//! - a Wasm HTTP Service (the hello component, one replica) and a container Service (a busybox
//!   container running benches/fixtures/keepalive_httpd.rs, which keeps connections alive as
//!   the Wasm server does; one replica), each loaded by `wrk` from a client pod (a namespace
//!   on the node bridge with an address of the node's range) with the same settings
//!   (`CONNECTIONS` keep-alive connections, `THREADS` threads, `LOAD` per path after a
//!   `WARMUP`, `ROUNDS` interleaved rounds) on its pod IP, its ClusterIP and its NodePort on
//!   the node address; requests/s,
//!   p50/p99, the ClusterIP/direct throughput ratio and the p99 the Service path adds, with the
//!   CPU the skiff server and the whole machine used during each run;
//! - Wasm pod create → Ready (seen by a watch) for `READY_PODS` pods created one after another,
//!   with the pod network on (each pod gets an address on the node bridge);
//! - `MANY_PODS` Wasm pods (a Deployment) until all of them are Running on the one node, and
//!   the skiff server's RSS (`VmRSS`) then.
//!
//! Prints a table; asserts nothing. Needs root, `wrk`, `nft`, `ip` and `nsenter` (containerd,
//! runc, the CNI plugins and busybox-static for the container rows, which are skipped without
//! containerd): run `scripts/bench-network.sh`. The benchmark creates a network namespace with
//! loopback and an uplink (`NODE_ADDR`/24, default route via a gateway that does not exist, so
//! nothing leaves it), runs itself again inside it (`nsenter --net`: the server, containerd, the
//! pods' bridge and the kube client live there, `wrk` in the client pod's namespace on that
//! bridge) and deletes both at the end.
//! `HELLO_WASM=/path/hello_wasm.wasm` skips building the Wasm samples; `BENCH_SERVER_LOG=FILE`
//! keeps the server's log (level from `SKIFF_LOG`, default warn).

#[path = "network/cluster.rs"]
mod cluster;
#[path = "network/load.rs"]
mod load;
#[path = "network/report.rs"]
mod report;
mod support;

use cluster::*;
use load::{clock_ticks, load, ClientPod, Load};
use report::print;
use support::{
    announce, met, mib, ms, pct, rss_kib, run_ok, BenchNode, Kind, LONG_WAIT, NODE_ADDR, WAIT,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The load comes from client pods: one as a pod of another node would be (an address of
/// the next node range, on a link of its own into the node, which holds `ROUTED_NODE_ADDR`),
/// one on this node's bridge (an address at the end of the node's range, which pods take
/// from its start; the bridge, at the range's first address, is its gateway).
const ROUTED_CLIENT_ADDR: &str = "10.42.8.2";
const ROUTED_NODE_ADDR: &str = "10.42.8.1";
const BRIDGED_CLIENT_ADDR: &str = "10.42.7.250/21";
const BRIDGE_ADDR: &str = "10.42.0.1";
/// The node's pod range is a /21 of the cluster CIDR (2,046 addresses) and it takes
/// `MAX_PODS` pods, so `MANY_PODS` fit.
const NODE_CIDR_MASK_SIZE: &str = "21";
const MAX_PODS: usize = 1100;
/// Wasm pods created one after another, each timed from create to Ready.
const READY_PODS: usize = 100;
/// Wasm pods of the Deployment timed until all are Running.
const MANY_PODS: usize = 1000;
/// The load: `wrk -t THREADS -c CONNECTIONS -d LOAD` after a `WARMUP` run of the same, on
/// each path in turn, `ROUNDS` times; each path's median req/s, p50 and p99 are reported. wrk and
/// the server share 2 cores, so one run of a path varies by ±15 %; interleaved rounds keep
/// slow drifts from favouring one path.
const THREADS: usize = 2;
const CONNECTIONS: usize = 16;
const LOAD: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;
const WARMUP: Duration = Duration::from_secs(2);
/// Pause before reading RSS, so the last status writes and events are done.
const SETTLE: Duration = Duration::from_secs(3);
/// README's Wasm create → Ready p50 without the pod network (benches/wasm.rs), and the most
/// the pod network may add to it.
const README_READY_P50_MS: f64 = 7.5;
const READY_BUDGET_MS: f64 = 2.0;
/// Targets of the Service path against the direct path.
const CLUSTERIP_RATIO_TARGET: f64 = 0.90;
const ADDED_P99_TARGET_MS: f64 = 0.5;

/// Outside the namespace: check for root and the tools, create the namespace, run the
/// benchmark again in it (there: [`inside`]), delete it.
fn main() -> Result<()> {
    let outside = || {
        let install = "apt-get install wrk nftables iproute2 util-linux";
        support::outside("network", &["wrk", "nft", "ip", "nsenter"], install)
    };
    support::main(inside, outside)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// 12345.6 → "12,346".
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One HTTP/1.0 GET of `/` on `addr`: Ok once it answers 200.
async fn http_get(addr: &str) -> Result<()> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .map_err(|_| anyhow!("GET http://{addr}/ timed out"))??;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
    if !(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")) {
        bail!("GET http://{addr}/: {head:?}");
    }
    Ok(())
}

async fn wait_http(addr: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        match http_get(addr).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("not answering within {WAIT:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1 + 2: a Service per runtime, loaded on its three paths.

impl Kind {
    fn app(self) -> &'static str {
        match self {
            Kind::Wasm => "web-wasm",
            Kind::Container => "web-httpd",
        }
    }

    fn port(self) -> u16 {
        match self {
            Kind::Wasm => 8080,
            Kind::Container => 80,
        }
    }
}

/// The three paths to one Service's single backend, and their loads.
struct ServiceRun {
    /// From a pod of another node (every path routed by the node).
    direct: Load,
    cluster_ip: Load,
    node_port: Load,
    /// From a pod on the same bridge (direct is bridged, the Service path routed).
    bridged_direct: Load,
    bridged_cluster_ip: Load,
    urls: [String; 3],
}

/// Where the load comes from.
struct Clients {
    routed: ClientPod,
    bridged: ClientPod,
}

async fn run_service(
    client: &kube::Client,
    kind: Kind,
    server_pid: u32,
    hz: f64,
    bin_dir: &Path,
    clients: &Arc<Clients>,
) -> Result<ServiceRun> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let app = kind.app();
    let labels = json!({"app": app, "bench": "service"});
    let pod = match kind {
        Kind::Wasm => wasm_pod(app, labels)?,
        Kind::Container => container_pod(app, labels, bin_dir)?,
    };
    create_until_ready(&pods, &pod).await?;
    let pod_ip = pods
        .get(app)
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .filter(|ip| !ip.is_empty())
        .with_context(|| format!("pod {app} is Ready without an IP"))?;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": app},
        "spec": {"type": "NodePort", "selector": {"app": app},
                 "ports": [{"port": 80, "targetPort": kind.port()}]},
    }))?;
    let svc = services.create(&PostParams::default(), &svc).await?;
    let spec = svc.spec.context("Service without spec")?;
    let cluster_ip = spec.cluster_ip.context("Service without a clusterIP")?;
    let node_port = spec
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| p.node_port)
        .context("NodePort Service without a nodePort")?;
    let addrs = [
        format!("{pod_ip}:{}", kind.port()),
        format!("{cluster_ip}:80"),
        format!("{NODE_ADDR}:{node_port}"),
    ];
    for a in &addrs {
        wait_http(a).await?;
    }
    let urls = addrs.map(|a| format!("http://{a}/"));
    // (client, url) per measured path; wrk blocks: run it off the runtime's threads.
    let paths = [(false, 0), (false, 1), (false, 2), (true, 0), (true, 1)];
    let mut runs: [Vec<Load>; 5] = Default::default();
    for _ in 0..ROUNDS {
        for ((bridged, u), runs) in paths.iter().zip(runs.iter_mut()) {
            let (url, clients, bridged) = (urls[*u].clone(), clients.clone(), *bridged);
            runs.push(
                tokio::task::spawn_blocking(move || {
                    let client = if bridged {
                        &clients.bridged
                    } else {
                        &clients.routed
                    };
                    load(client, &url, server_pid, hz)
                })
                .await??,
            );
        }
    }
    // Each figure's median over the rounds (a saturated 2-core machine gives any one run's p99
    // a scheduling spike now and then); CPU and counters from the median-throughput run.
    let loads = runs.map(|mut r| {
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let p50 = median(r.iter().map(|l| l.p50).collect());
        let p99 = median(r.iter().map(|l| l.p99).collect());
        r.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        Load {
            p50,
            p99,
            ..r[r.len() / 2]
        }
    });
    services.delete(app, &DeleteParams::default()).await?;
    delete_pods(&pods, &format!("app={app}")).await?;
    Ok(ServiceRun {
        direct: loads[0],
        cluster_ip: loads[1],
        node_port: loads[2],
        bridged_direct: loads[3],
        bridged_cluster_ip: loads[4],
        urls,
    })
}

// ---------------------------------------------------------------------------------------------
// 3: create → Ready with the pod network.

struct ReadyRun {
    first: Duration,
    ready: Vec<Duration>,
}

async fn run_ready(pods: &Api<Pod>) -> Result<ReadyRun> {
    // The first pod compiles the component (a cold cache): timed on its own.
    let first =
        create_until_ready(pods, &wasm_pod("ready-first", json!({"bench": "ready"}))?).await?;
    delete_pods(pods, "bench=ready").await?;
    let mut ready = Vec::with_capacity(READY_PODS);
    for i in 0..READY_PODS {
        let pod = wasm_pod(&format!("ready-{i}"), json!({"bench": "ready"}))?;
        ready.push(create_until_ready(pods, &pod).await?);
    }
    delete_pods(pods, "bench=ready").await?;
    ready.sort();
    Ok(ReadyRun { first, ready })
}

// ---------------------------------------------------------------------------------------------
// 4: `MANY_PODS` Wasm pods of a Deployment until all are Running, and the server's RSS.

struct ManyRun {
    elapsed: Duration,
    rss_before: u64,
    rss_running: u64,
    rss_settled: u64,
    addresses: usize,
}

/// The pods of `selector` that are Running now, and the list's resourceVersion.
async fn running_now(pods: &Api<Pod>, selector: &str) -> Result<(HashSet<String>, String)> {
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    let running = list
        .items
        .iter()
        .filter(|p| is_running(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    Ok((running, list.metadata.resource_version.unwrap_or_default()))
}

async fn run_many(client: &kube::Client, server_pid: u32) -> Result<ManyRun> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let selector = "app=many";
    tokio::time::sleep(SETTLE).await;
    let rss_before = rss_kib(server_pid);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "many"},
        "spec": {
            "replicas": MANY_PODS,
            "selector": {"matchLabels": {"app": "many"}},
            "template": {
                "metadata": {"labels": {"app": "many"}},
                "spec": {
                    "runtimeClassName": "wasm", "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "hello", "image": "hello-wasm:v1",
                                    "imagePullPolicy": "IfNotPresent"}]
                }
            }
        }
    }))?;
    let (mut running, mut rv) = running_now(&pods, selector).await?;
    let t = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let deadline = tokio::time::Instant::now() + LONG_WAIT;
    'outer: while running.len() < MANY_PODS {
        let wp = WatchParams::default().labels(selector).timeout(240);
        let from = rv.clone();
        let mut stream = pods.watch(&wp, &from).await?.boxed();
        loop {
            let ev = tokio::time::timeout_at(deadline, stream.next())
                .await
                .map_err(|_| {
                    anyhow!(
                        "{} of {MANY_PODS} pods Running after {LONG_WAIT:?}",
                        running.len()
                    )
                })?;
            match ev {
                Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if is_running(&p) {
                        running.insert(name);
                    } else {
                        running.remove(&name);
                    }
                    if running.len() >= MANY_PODS {
                        break 'outer;
                    }
                }
                Some(Ok(WatchEvent::Deleted(p))) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    running.remove(&p.metadata.name.unwrap_or_default());
                }
                Some(Ok(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                // The watch ended or fell behind: list again and resume from there.
                Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => {
                    (running, rv) = running_now(&pods, selector).await?;
                    continue 'outer;
                }
            }
        }
    }
    let elapsed = t.elapsed();
    let rss_running = rss_kib(server_pid);
    tokio::time::sleep(SETTLE).await;
    let rss_settled = rss_kib(server_pid);
    let addresses = run_ok(Command::new("ip").args(["-4", "-o", "addr", "show", "dev", "skiff0"]))
        .map(|s| s.lines().filter(|l| l.contains("/32")).count())
        .unwrap_or(0);
    deployments.delete("many", &DeleteParams::default()).await?;
    delete_pods(&pods, selector).await?;
    Ok(ManyRun {
        elapsed,
        rss_before,
        rss_running,
        rss_settled,
        addresses,
    })
}

// ---------------------------------------------------------------------------------------------
// The run and its table.

struct Results {
    ready: ReadyRun,
    wasm: ServiceRun,
    container: std::result::Result<ServiceRun, String>,
    many: ManyRun,
}

async fn bench(
    client: &kube::Client,
    server_pid: u32,
    containers: Result<PathBuf, String>,
) -> Result<Results> {
    let hz = clock_ticks();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eprintln!("bench-network: {READY_PODS} Wasm pods create → Ready");
    let ready = run_ready(&pods).await?;
    // The node bridge exists once pods have addresses on it.
    let clients = Arc::new(Clients {
        routed: ClientPod::routed(ROUTED_CLIENT_ADDR, ROUTED_NODE_ADDR)?,
        bridged: ClientPod::on_bridge(BRIDGED_CLIENT_ADDR, BRIDGE_ADDR)?,
    });
    eprintln!("bench-network: the Wasm Service");
    let wasm = run_service(client, Kind::Wasm, server_pid, hz, Path::new(""), &clients).await?;
    let container = match containers {
        Ok(bin_dir) => {
            eprintln!("bench-network: the container Service");
            Ok(run_service(client, Kind::Container, server_pid, hz, &bin_dir, &clients).await?)
        }
        Err(reason) => Err(reason),
    };
    eprintln!("bench-network: {MANY_PODS} Wasm pods");
    let many = run_many(client, server_pid).await?;
    Ok(Results {
        ready,
        wasm,
        container,
        many,
    })
}

// ---------------------------------------------------------------------------------------------
// Inside the namespace.

async fn inside(ns: String) -> Result<()> {
    // A pod range and a pod limit for the node that `MANY_PODS` fit in.
    let max_pods = MAX_PODS.to_string();
    let extra = [
        "--node-cidr-mask-size",
        NODE_CIDR_MASK_SIZE,
        "--max-pods",
        &max_pods,
    ];
    let node = BenchNode::start(&extra, WAIT).await?;
    let containers = match &node.containers {
        Ok(()) => {
            let bin_dir = node.dir().join("bin");
            build_keepalive_httpd(&bin_dir)?;
            Ok(bin_dir)
        }
        Err(reason) => Err(reason.clone()),
    };
    announce("network", &ns, &node.server, node.dir());

    let client = &node.client;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Clean up whatever happened: the Deployment, Services and pods, then the server (SIGTERM:
    // the agent stops containerd).
    let cleanup = async {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let _ = deployments.delete("many", &DeleteParams::default()).await;
        for k in [Kind::Wasm, Kind::Container] {
            let _ = services.delete(k.app(), &DeleteParams::default()).await;
        }
        delete_pods(&pods, "").await
    };
    let server_pid = node.server.pid();
    let run = bench(client, server_pid, containers);
    let results = node.server.run_bench(run, cleanup, LONG_WAIT).await?;
    print(&results);
    Ok(())
}
