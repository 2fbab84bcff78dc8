//! Scale to zero, measured side by side in one run on one node (a release `skiff server` with
//! its embedded agent, the pod network and the node's activator on, and a managed containerd
//! when one is on PATH):
//! - cold start from zero: a Wasm Deployment (the hello component) and a busybox-httpd
//!   container Deployment, each `autoscaling.skiff.dev/min-scale: "0"` with a
//!   `DEFAULT_SCALE_DOWN_DELAY` and a ClusterIP Service. Each round waits until both are at
//!   zero (`spec.replicas` 0, no pod left, the Service marked `skiff.dev/activator: proxy` and
//!   the node's rules sending its ClusterIP to the activator), settles `DEFAULT_SETTLE`, then
//!   times one HTTP/1.1 GET on a new connection to the ClusterIP, from connect to the complete
//!   response (200 required; anything else is a failure, counted and printed). The first cold
//!   start of each (image pull and compile or unpack) is timed on its own, then
//!   `SKIFF_BENCH_COLD_STARTS` rounds (default `DEFAULT_COLD_STARTS`), Wasm then container in
//!   each, so drift hits both; p50, p99, max;
//! - warm latency: the same GET, `DEFAULT_WARM_REQUESTS` times one after another (a new
//!   connection each), against the pod a cold start brought up, after `DEFAULT_WARMUP` of the
//!   same traffic (so the Wasm Service's rules go straight to its pod again, as under steady
//!   traffic; container Services stay behind the activator, which counts their requests);
//! - density: `SKIFF_BENCH_DENSITY` (default `DEFAULT_DENSITY`) idle scale-to-zero Wasm
//!   Deployments with a ClusterIP Service each (`initial-scale: "0"`: no pod starts), created
//!   `DEFAULT_CREATE_CONCURRENCY` at a time; the time until all exist, until every Service is
//!   marked for the activator and until the node's rules send all of them to it; the skiff
//!   server's RSS (control plane and agent: one process) before and with all of them; then a
//!   cold start of the last one.
//!
//! Prints a table beside Knative's published cold start; asserts nothing. Needs root, `nft`,
//! `ip`, `nsenter` and `kubectl` (containerd, runc, the CNI plugins and busybox-static for the
//! container rows, which are skipped without containerd): run `scripts/bench-serverless.sh`.
//! Like benches/network.rs it creates a network namespace with loopback and an uplink
//! (`NODE_ADDR`/24, default route via a gateway that does not exist, so nothing leaves it),
//! runs itself again inside it (`nsenter --net`: the server, containerd, the node bridge, the
//! activator and the benchmark's client all live there) and deletes it at the end.
//! `HELLO_WASM=/path/hello_wasm.wasm` skips building the Wasm samples; `BENCH_SERVER_LOG=FILE`
//! keeps the server's log (level from `SKIFF_LOG`, default warn).

#[path = "serverless/cluster.rs"]
mod cluster;
#[path = "serverless/http.rs"]
mod http;
#[path = "serverless/report.rs"]
mod report;
mod support;

use cluster::*;
use support::{announce, rss_kib, BenchNode, Kind, Kubectl, LONG_WAIT, WAIT};

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

/// The label on everything the benchmark creates (`bench=serverless`), for its cleanup.
const BENCH_LABEL: &str = "serverless";
/// The namespace of the density phase's Deployments (the cold-start apps are in `default`).
const DENSITY_NS: &str = "density";
/// Every Service's port (→ containerPort 8080).
const SERVICE_PORT: u16 = 80;
/// The annotation the autoscaler puts on a Service for the nodes' activators.
const ACTIVATOR_ANNOTATION: &str = "skiff.dev/activator";

/// Measured cold starts per runtime: 50 makes p99 the slowest but one of a sample small
/// enough to run in a few minutes (each round waits for both Deployments to reach zero).
const DEFAULT_COLD_STARTS: usize = 50;
/// Idle scale-to-zero Deployments of the density phase: the 1,000 functions one node should
/// hold idle (as 1,000 running Wasm pods fit, benches/network.rs).
const DEFAULT_DENSITY: usize = 1000;
/// Sequential warm requests per runtime: enough for a stable p99 in well under a second of
/// Wasm traffic.
const DEFAULT_WARM_REQUESTS: usize = 200;
/// The idle time before a scale to zero: short, so a round takes seconds (the autoscaler then
/// waits its 1 s zero grace and the pod terminates); it does not enter the figures.
const DEFAULT_SCALE_DOWN_DELAY: &str = "1s";
/// Pause between "at zero, rules on the activator" and the timed request, so the node is quiet
/// (the last pod's status writes, events and rule sync are done).
const DEFAULT_SETTLE: Duration = Duration::from_millis(300);
/// Traffic before the warm measurement: the autoscaler ticks every second, and a Wasm
/// Service goes back to `serve` (straight to its pod) at the first tick that sees it Ready.
const DEFAULT_WARMUP: Duration = Duration::from_secs(2);
/// Density objects created at a time: a few clients, as a deploy tool would, without making
/// the 2-core machine's API server the figure.
const DEFAULT_CREATE_CONCURRENCY: usize = 8;
/// The longest one request may take: beyond the activator's 60 s hold, so its 503 (with the
/// reason) arrives first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(65);
/// Upper bound for the apps to reach zero (the delay, the zero grace, pod termination).
const ZERO_WAIT: Duration = Duration::from_secs(120);
/// Pause before reading RSS, so the last writes and events are done.
const RSS_SETTLE: Duration = Duration::from_secs(3);
/// Knative Serving's published cold start (a container, from zero): 2–4 s.
const KNATIVE_COLD_MIN: Duration = Duration::from_secs(2);
const KNATIVE_COLD_MAX: Duration = Duration::from_secs(4);
/// Targets (printed, not asserted).
const WASM_COLD_P50_TARGET: Duration = Duration::from_millis(25);
const WASM_COLD_P99_TARGET: Duration = Duration::from_millis(100);
const CONTAINER_COLD_P50_TARGET: Duration = Duration::from_millis(1500);

/// Outside the namespace: check for root and the tools, create the namespace, run the
/// benchmark again in it (there: [`inside`]), delete it.
fn main() -> Result<()> {
    let outside = || {
        let install = "apt-get install nftables iproute2 util-linux; kubectl 1.32";
        support::outside("serverless", &["nft", "ip", "nsenter", "kubectl"], install)
    };
    support::main(inside, outside)
}

/// `name` from the environment, else `default`.
fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{name}={v:?}: a positive number, please"),
        },
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// The two cold-start apps.

impl Kind {
    fn app(self) -> &'static str {
        match self {
            Kind::Wasm => "cold-wasm",
            Kind::Container => "cold-httpd",
        }
    }

    fn runtime_class(self) -> &'static str {
        match self {
            Kind::Wasm => "wasm",
            Kind::Container => "oci",
        }
    }
}

/// One timed GET to `addr`: its time if answered 200, else what went wrong.
async fn timed_get(addr: &str) -> std::result::Result<Duration, String> {
    let t = Instant::now();
    match http::get(addr, REQUEST_TIMEOUT).await {
        Ok(a) if a.status == 200 => Ok(a.elapsed),
        Ok(a) => Err(format!(
            "{} after {}: {}",
            a.status,
            report::ms(a.elapsed),
            a.first_line
        )),
        Err(e) => Err(format!("{e:#} after {}", report::ms(t.elapsed()))),
    }
}

/// One runtime's figures.
struct KindRun {
    /// The first cold start (image pull, compile or unpack).
    first: std::result::Result<Duration, String>,
    /// The measured cold starts, sorted.
    cold: Vec<Duration>,
    cold_failures: Vec<String>,
    /// The warm requests, sorted.
    warm: Vec<Duration>,
    warm_failures: Vec<String>,
    /// The Service's `skiff.dev/activator` after the warm requests.
    warm_mode: String,
}

/// An app at zero for the waits: (namespace, name, ClusterIP).
type ZeroApp<'a> = (&'a str, &'a str, &'a str);

/// The first cold start of each kind, then `rounds` rounds of one cold start per kind, each
/// with every app at zero first.
async fn run_cold(
    client: &kube::Client,
    kinds: &[(Kind, String)],
    rounds: usize,
) -> Result<Vec<KindRun>> {
    let zero: Vec<ZeroApp> = kinds
        .iter()
        .map(|(k, ip)| ("default", k.app(), ip.as_str()))
        .collect();
    let mut runs = Vec::new();
    for (_, ip) in kinds {
        wait_zero(client, &zero).await?;
        runs.push(KindRun {
            first: timed_get(&format!("{ip}:{SERVICE_PORT}")).await,
            cold: Vec::with_capacity(rounds),
            cold_failures: Vec::new(),
            warm: Vec::new(),
            warm_failures: Vec::new(),
            warm_mode: String::new(),
        });
    }
    for round in 1..=rounds {
        let mut line = format!("bench-serverless: cold start {round}/{rounds}:");
        for ((kind, ip), run) in kinds.iter().zip(runs.iter_mut()) {
            wait_zero(client, &zero).await?;
            let r = timed_get(&format!("{ip}:{SERVICE_PORT}")).await;
            line.push_str(&format!(" {} ", kind.app()));
            match r {
                Ok(d) => {
                    line.push_str(&report::ms(d));
                    run.cold.push(d);
                }
                Err(e) => {
                    line.push_str("FAILED");
                    run.cold_failures.push(format!("round {round}: {e}"));
                }
            }
        }
        eprintln!("{line}");
    }
    for run in &mut runs {
        run.cold.sort();
    }
    Ok(runs)
}

/// From zero once more, `DEFAULT_WARMUP` of traffic (until the Service's path is the steady
/// one), then `DEFAULT_WARM_REQUESTS` timed GETs one after another.
async fn run_warm(
    client: &kube::Client,
    kinds: &[(Kind, String)],
    runs: &mut [KindRun],
) -> Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let zero: Vec<ZeroApp> = kinds
        .iter()
        .map(|(k, ip)| ("default", k.app(), ip.as_str()))
        .collect();
    for ((kind, ip), run) in kinds.iter().zip(runs.iter_mut()) {
        wait_zero(client, &zero).await?;
        let addr = format!("{ip}:{SERVICE_PORT}");
        timed_get(&addr)
            .await
            .map_err(|e| anyhow!("{}: the warm phase's cold start failed: {e}", kind.app()))?;
        let steady = match kind {
            Kind::Wasm => "serve",
            Kind::Container => "proxy",
        };
        let t = Instant::now();
        loop {
            // The result does not matter here; a failure shows in the measured requests.
            let _ = timed_get(&addr).await;
            if t.elapsed() < DEFAULT_WARMUP {
                continue;
            }
            let svc = services.get(kind.app()).await?;
            let mode_ok = annotation(&svc, ACTIVATOR_ANNOTATION) == Some(steady);
            if mode_ok && (*kind == Kind::Container || !rules_point_at_activator(ip)) {
                break;
            }
            if t.elapsed() > WAIT {
                bail!(
                    "{}: not on its steady path ({steady}) within {WAIT:?} of traffic",
                    kind.app()
                );
            }
        }
        for i in 0..DEFAULT_WARM_REQUESTS {
            match timed_get(&addr).await {
                Ok(d) => run.warm.push(d),
                Err(e) => run.warm_failures.push(format!("request {i}: {e}")),
            }
        }
        run.warm.sort();
        let svc = services.get(kind.app()).await?;
        run.warm_mode = annotation(&svc, ACTIVATOR_ANNOTATION)
            .unwrap_or("none")
            .to_string();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Density: many idle scale-to-zero Deployments.

struct DensityRun {
    count: usize,
    /// Until every Deployment and Service was created (API answers).
    created: Duration,
    /// Until every Service was marked `skiff.dev/activator: proxy`.
    marked: Duration,
    /// Until the node's rules sent every one of their ClusterIPs to the activator.
    rules: Duration,
    /// Service addresses the node's rules send to the activator then (all Services at zero).
    activator_addresses: usize,
    rss_before: u64,
    rss_at_count: u64,
    /// A cold start from zero of the last Service.
    last_cold: std::result::Result<Duration, String>,
    last_name: String,
}

fn density_name(i: usize) -> String {
    format!("fn-{i:05}")
}

async fn run_density(client: &kube::Client, server_pid: u32, count: usize) -> Result<DensityRun> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), DENSITY_NS);
    let services: Api<Service> = Api::namespaced(client.clone(), DENSITY_NS);
    tokio::time::sleep(RSS_SETTLE).await;
    let rss_before = rss_kib(server_pid);
    let t = Instant::now();
    let ips: Vec<String> = futures::stream::iter(0..count)
        .map(|i| {
            let (deployments, services) = (deployments.clone(), services.clone());
            async move {
                let name = density_name(i);
                let [d, s] = app(Kind::Wasm, &name);
                let pp = PostParams::default();
                deployments
                    .create(&pp, &serde_json::from_value(d)?)
                    .await
                    .with_context(|| format!("creating Deployment {DENSITY_NS}/{name}"))?;
                let svc = services
                    .create(&pp, &serde_json::from_value(s)?)
                    .await
                    .with_context(|| format!("creating Service {DENSITY_NS}/{name}"))?;
                svc.spec
                    .and_then(|s| s.cluster_ip)
                    .with_context(|| format!("Service {DENSITY_NS}/{name} has no clusterIP"))
            }
        })
        .buffered(DEFAULT_CREATE_CONCURRENCY)
        .try_collect()
        .await?;
    let created = t.elapsed();
    let deadline = Instant::now() + LONG_WAIT;
    let lp = ListParams::default().labels(&format!("bench={BENCH_LABEL}"));
    loop {
        let list = services.list(&lp).await?;
        let marked = list
            .items
            .iter()
            .filter(|s| annotation(s, ACTIVATOR_ANNOTATION) == Some("proxy"))
            .count();
        if marked >= count {
            break;
        }
        if Instant::now() > deadline {
            bail!("{marked} of {count} Services marked for the activator after {LONG_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let marked = t.elapsed();
    loop {
        let sent = activator_ips();
        let missing = ips.iter().filter(|ip| !sent.contains(*ip)).count();
        if missing == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{missing} of {count} ClusterIPs not sent to the activator by the node's rules after {LONG_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rules = t.elapsed();
    let activator_addresses = activator_ips().len();
    tokio::time::sleep(RSS_SETTLE).await;
    let rss_at_count = rss_kib(server_pid);
    let last_name = density_name(count - 1);
    let last_ip = ips.last().context("no density Service")?;
    let last_cold = timed_get(&format!("{last_ip}:{SERVICE_PORT}")).await;
    Ok(DensityRun {
        count,
        created,
        marked,
        rules,
        activator_addresses,
        rss_before,
        rss_at_count,
        last_cold,
        last_name,
    })
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Results {
    rounds: usize,
    /// The cold-start stages' mean and count over the cold phase (both runtimes), from the
    /// control plane's and the node's `skiff_cold_start_stage_seconds`; or why not.
    stages: std::result::Result<Vec<(String, Duration, u64)>, String>,
    wasm: KindRun,
    container: std::result::Result<KindRun, String>,
    density: DensityRun,
}

async fn bench(
    client: &kube::Client,
    kubectl: &Kubectl,
    server_pid: u32,
    containers: std::result::Result<(), String>,
) -> Result<Results> {
    let rounds = env_count("SKIFF_BENCH_COLD_STARTS", DEFAULT_COLD_STARTS)?;
    let density = env_count("SKIFF_BENCH_DENSITY", DEFAULT_DENSITY)?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut kinds = vec![Kind::Wasm];
    if containers.is_ok() {
        kinds.push(Kind::Container);
    }
    let mut apps = Vec::new();
    for kind in kinds {
        apply_app(kubectl, kind)?;
        apps.push((kind, cluster_ip(&services, kind.app()).await?));
    }
    eprintln!(
        "bench-serverless: {rounds} cold starts of {}",
        apps.iter()
            .map(|(k, ip)| format!("{} ({ip})", k.app()))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let mut runs = run_cold(client, &apps, rounds).await?;
    let stages = stage_means(kubectl).map_err(|e| format!("{e:#}"));
    eprintln!("bench-serverless: warm requests");
    run_warm(client, &apps, &mut runs).await?;
    // Back to zero before the density phase, so its RSS "before" is an idle node's.
    let zero: Vec<ZeroApp> = apps
        .iter()
        .map(|(k, ip)| ("default", k.app(), ip.as_str()))
        .collect();
    wait_zero(client, &zero).await?;
    eprintln!("bench-serverless: {density} idle scale-to-zero Deployments");
    let density = run_density(client, server_pid, density).await?;
    let mut runs = runs.into_iter();
    let wasm = runs.next().context("no Wasm run")?;
    let container = match containers {
        Ok(()) => Ok(runs.next().context("no container run")?),
        Err(reason) => Err(reason),
    };
    Ok(Results {
        rounds,
        stages,
        wasm,
        container,
        density,
    })
}

/// Each cold-start stage's mean and count so far: `schedule` from the control plane's
/// `/metrics`, the others from the node's (through the API server's node proxy).
fn stage_means(kubectl: &Kubectl) -> Result<Vec<(String, Duration, u64)>> {
    let mut text = kubectl.run(&["get", "--raw", "/metrics"])?;
    text.push_str(&kubectl.run(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{}/proxy/metrics", support::NODE),
    ])?);
    let value = |line: &str, prefix: &str| -> Option<(String, f64)> {
        let rest = line.strip_prefix(prefix)?.strip_prefix("{stage=\"")?;
        let (stage, rest) = rest.split_once("\"}")?;
        Some((stage.to_string(), rest.trim().parse().ok()?))
    };
    let mut sums = std::collections::BTreeMap::new();
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some((stage, v)) = value(line, "skiff_cold_start_stage_seconds_sum") {
            sums.insert(stage, v);
        } else if let Some((stage, v)) = value(line, "skiff_cold_start_stage_seconds_count") {
            counts.insert(stage, v as u64);
        }
    }
    let order = [
        "schedule",
        "pull",
        "compile",
        "disk_cache",
        "warm",
        "instantiate",
        "first_byte",
    ];
    Ok(order
        .iter()
        .filter_map(|stage| {
            let n = *counts.get(*stage)?;
            let sum = sums.get(*stage)?;
            (n > 0).then(|| {
                (
                    stage.to_string(),
                    Duration::from_secs_f64(sum / n as f64),
                    n,
                )
            })
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Inside the namespace.

async fn inside(ns: String) -> Result<()> {
    let node = BenchNode::start(&[], WAIT).await?;
    let client = &node.client;
    let kubectl = Kubectl::new(&node.kubeconfig)?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": DENSITY_NS}}))?,
        )
        .await?;
    announce("serverless", &ns, &node.server, node.dir());

    // Clean up whatever happened: the Deployments, Services and their pods, then the server
    // (SIGTERM: the agent stops containerd and removes its rules).
    let cleanup = delete_all(client, &["default", DENSITY_NS]);
    let server_pid = node.server.pid();
    let run = bench(client, &kubectl, server_pid, node.containers.clone());
    let results = node.server.run_bench(run, cleanup, LONG_WAIT).await?;
    report::print(&results);
    Ok(())
}
