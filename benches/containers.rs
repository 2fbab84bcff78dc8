//! Container pods beside Wasm pods, measured side by side in one run on the same node (a
//! release `skiff server` with its embedded agent and managed containerd):
//! - create → Ready (seen by a watch) for `PODS` busybox container pods (`runtimeClassName:
//!   oci`, `httpd -f -p 80`, no probes) and `PODS` Wasm HTTP pods (the hello component),
//!   each created one after another and left running, p50/p99 and their ratio;
//! - memory per running pod: the RSS of the server process, its containerd child and every
//!   containerd-shim of this data dir with `PODS` pods running minus with none, divided by
//!   `PODS` (the pause and httpd processes inside the containers are shown on their own),
//!   also as PSS, which splits the shims' shared binary pages among them;
//! - the floor under the container figure: the same sandbox + container started directly
//!   through CRI (RunPodSandbox, CreateContainer, StartContainer) on the same containerd.
//!
//! Prints a table; asserts nothing. Needs root, `containerd`, `runc`, the CNI plugins and
//! busybox-static: run `scripts/bench-containers.sh`. The benchmark creates a network namespace
//! and runs itself again inside it (`nsenter --net`, so the server, containerd, the pods' bridge
//! and the kube client all live there and only loopback is used); the namespace is deleted at
//! the end. `HELLO_WASM=/path/hello_wasm.wasm` skips building the Wasm samples;
//! `BENCH_SERVER_LOG=FILE` keeps the server's log (level from `SKIFF_LOG`, default warn).

mod support;

use support::{
    announce, busybox, header, hello_component, import, is_root, ms_with, on_path, pct, row,
    rss_kib, Kind, NetNs, Server, NODE, WAIT,
};

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use skiff_node_runtime::cri::{api as cri_api, CriClient};
use skiff_node_runtime::images::PullPolicy;
use skiff_node_runtime::oci::{ContainerSpec, OciRuntime, LABEL_MANAGED_BY};

/// Pods of each kind timed for create → Ready and kept running for the memory figure.
const PODS: usize = 50;
/// Upper bound for a batch of pods to be gone after a delete.
const GONE_WAIT: Duration = Duration::from_secs(180);
/// Pause before reading RSS, so the last pod's status write and events are done.
const SETTLE: Duration = Duration::from_secs(3);
/// The node label of the sandboxes this benchmark starts directly through CRI (not the
/// agent's, so neither removes the other's).
const CRI_NODE: &str = "bench-cri";

fn main() -> Result<()> {
    support::main(inside, outside)
}

// ---------------------------------------------------------------------------------------------
// Outside the namespace: create it, run the benchmark in it, delete it.

fn outside() -> Result<()> {
    let root = is_root()?;
    let containerd = on_path("containerd");
    if !root || !containerd {
        bail!("the container benchmark needs root (network namespaces) and containerd on PATH (root: {root}, containerd: {containerd})");
    }
    support::run_in_netns(NetNs::new(None)?)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Milliseconds, with one decimal below 100 ms.
fn ms(d: Duration) -> String {
    ms_with(d, 1)
}

fn mib(kib: f64) -> String {
    format!("{:.2} MiB", kib / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// The server.

/// Waits until the server answers and its node is Ready, running container pods; returns a
/// client.
async fn wait_node(server: &mut Server, kubeconfig: &Path) -> Result<kube::Client> {
    let (client, oci) = support::wait_node(server, kubeconfig, WAIT).await?;
    if !oci {
        bail!(
            "node {NODE} runs no container pods (containerd did not start); {}",
            server.log_tail()
        );
    }
    Ok(client)
}

// ---------------------------------------------------------------------------------------------
// Pods.

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Wasm => "wasm",
        }
    }
}

fn pod(kind: Kind, name: &str) -> Result<Pod> {
    let spec = match kind {
        Kind::Container => json!({
            "runtimeClassName": "oci", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "httpd", "image": "busybox:1.35",
                            "command": ["httpd", "-f", "-p", "80"],
                            "ports": [{"containerPort": 80}]}]
        }),
        Kind::Wasm => json!({
            "runtimeClassName": "wasm", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "hello", "image": "hello-wasm:v1",
                            "ports": [{"containerPort": 8080}]}]
        }),
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": kind.label()}},
        "spec": spec,
    }))?)
}

/// Creates the pod and waits (by watch) until it is Ready; returns the elapsed time.
async fn create_until_ready(pods: &Api<Pod>, kind: Kind, name: &str) -> Result<Duration> {
    support::create_until_ready(pods, &pod(kind, name)?, WAIT).await
}

/// Deletes every pod in the namespace and waits until they are gone from the API, every
/// sandbox is gone from containerd (its network torn down, not just its shim exited) and no
/// shim of this data dir is left.
async fn delete_all(pods: &Api<Pod>, data_dir: &Path) -> Result<()> {
    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    let cri = CriClient::new(&data_dir.join("agent/containerd/containerd.sock"))?;
    let deadline = Instant::now() + GONE_WAIT;
    loop {
        let left = pods.list(&ListParams::default()).await?.items.len();
        let sandboxes = cri
            .list_pod_sandbox(Default::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(usize::MAX);
        let shims = processes(data_dir).shims.len();
        if left == 0 && sandboxes == 0 && shims == 0 {
            return Ok(());
        }
        if sandboxes > 0 {
            // Left by an interrupted `run_cri`.
            remove_cri_sandboxes(&cri).await;
        }
        if Instant::now() > deadline {
            bail!("{GONE_WAIT:?} after deleting them, {left} pods, {sandboxes} sandboxes and {shims} containerd shims are still there");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: RSS from /proc.

struct Proc {
    pid: u32,
    ppid: u32,
    argv: Vec<String>,
}

fn all_processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            // Processes may exit while we read: skip those.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid …; comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some(Proc { pid, ppid, argv })
        })
        .collect()
}

/// The containerd and shim processes of the server whose data dir is `data_dir`, and the
/// processes the shims run (pause, the containers' processes).
#[derive(Default)]
struct Procs {
    containerd: Vec<u32>,
    shims: Vec<u32>,
    workload: Vec<u32>,
}

fn processes(data_dir: &Path) -> Procs {
    let config = data_dir.join("agent/containerd/config.toml");
    let socket = data_dir.join("agent/containerd/containerd.sock");
    let (config, socket) = (
        config.to_string_lossy().into_owned(),
        socket.to_string_lossy().into_owned(),
    );
    let all = all_processes();
    let base = |p: &Proc| {
        p.argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_default()
    };
    let mut out = Procs::default();
    for p in &all {
        let name = base(p);
        if name == "containerd" && p.argv.contains(&config) {
            out.containerd.push(p.pid);
        } else if name.starts_with("containerd-shim") && p.argv.contains(&socket) {
            out.shims.push(p.pid);
        }
    }
    let shims: HashSet<u32> = out.shims.iter().copied().collect();
    out.workload = all
        .iter()
        .filter(|p| shims.contains(&p.ppid))
        .map(|p| p.pid)
        .collect();
    out
}

/// Pss in KiB (resident pages, each shared one divided among the processes mapping it), from
/// /proc/<pid>/smaps_rollup; 0 for a process that is gone.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Memory in KiB of each part: VmRSS, and the Pss of server + containerd + shims.
#[derive(Default, Clone, Copy)]
struct Rss {
    server: u64,
    containerd: u64,
    shims: u64,
    shim_count: usize,
    workload: u64,
    pss: u64,
}

impl Rss {
    fn read(server_pid: u32, data_dir: &Path) -> Rss {
        let p = processes(data_dir);
        let sum = |pids: &[u32]| pids.iter().map(|p| rss_kib(*p)).sum();
        let pss = std::iter::once(server_pid)
            .chain(p.containerd.iter().copied())
            .chain(p.shims.iter().copied())
            .map(pss_kib)
            .sum();
        Rss {
            server: rss_kib(server_pid),
            containerd: sum(&p.containerd),
            shims: sum(&p.shims),
            shim_count: p.shims.len(),
            workload: sum(&p.workload),
            pss,
        }
    }

    /// What the figure counts: server + containerd + shims.
    fn total(&self) -> u64 {
        self.server + self.containerd + self.shims
    }
}

/// Per-pod growth in KiB: (with `PODS` running − with none) / `PODS`.
fn per_pod(loaded: u64, base: u64) -> f64 {
    (loaded as f64 - base as f64) / PODS as f64
}

// ---------------------------------------------------------------------------------------------
// The runs.

struct Run {
    first: Duration,
    ready: Vec<Duration>,
    base: Rss,
    loaded: Rss,
}

/// `PODS` pods of `kind` created one after another (each timed to Ready) and left running;
/// RSS with none and with all of them; then all deleted.
async fn run_kind(pods: &Api<Pod>, kind: Kind, server_pid: u32, dir: &Path) -> Result<Run> {
    // The first pod of a kind pays one-time costs (containerd pulls and unpacks busybox and
    // the pause image; wasmtime compiles the component): timed on its own.
    let first = create_until_ready(pods, kind, &format!("{}-first", kind.label())).await?;
    delete_all(pods, dir).await?;
    tokio::time::sleep(SETTLE).await;
    let base = Rss::read(server_pid, dir);
    let mut ready = Vec::with_capacity(PODS);
    for i in 0..PODS {
        ready.push(create_until_ready(pods, kind, &format!("{}-{i}", kind.label())).await?);
    }
    tokio::time::sleep(SETTLE).await;
    let loaded = Rss::read(server_pid, dir);
    delete_all(pods, dir).await?;
    ready.sort();
    Ok(Run {
        first,
        ready,
        base,
        loaded,
    })
}

/// containerd alone: `PODS` sandboxes, each with a busybox httpd container, started directly
/// through CRI one after another (the same calls, configs and images the agent uses), then
/// removed. Returns (sandbox, container create + start, total) durations, sorted.
async fn run_cri(dir: &Path, cluster_host: &str) -> Result<[Vec<Duration>; 3]> {
    let cri = CriClient::new(&dir.join("agent/containerd/containerd.sock"))?;
    let oci = OciRuntime::new(cri.clone(), cluster_host, CRI_NODE);
    // Pulled by the container pods already; pulled here if this runs first.
    let image = oci
        .ensure_image("busybox:1.35", PullPolicy::IfNotPresent, None)
        .await?
        .cri_ref;
    let (mut sb_t, mut c_t, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let result = async {
        for i in 0..PODS {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("cri-{i}"), "namespace": "default",
                             "uid": format!("00000000-0000-4000-8000-{i:012}")},
                "spec": {"containers": [{"name": "httpd", "image": "busybox:1.35"}]}
            }))?;
            let log_dir = dir.join("cri-logs").join(i.to_string());
            std::fs::create_dir_all(log_dir.join("httpd"))?;
            let t = Instant::now();
            let sb = oci.run_sandbox(&p, &log_dir, None).await?;
            let t_sb = t.elapsed();
            let spec = ContainerSpec {
                name: "httpd".into(),
                restart_count: 0,
                image: image.clone(),
                command: vec!["httpd".into(), "-f".into(), "-p".into(), "80".into()],
                args: vec![],
                working_dir: String::new(),
                env: vec![],
                mounts: vec![],
                stdin: false,
                stdin_once: false,
                tty: false,
                memory_limit_bytes: None,
                cpu_limit_millis: None,
                cpu_request_millis: None,
                security: None,
                share_process_namespace: false,
                log_path: "httpd/0.log".into(),
            };
            let t_c = Instant::now();
            oci.start_container(&sb, &spec)
                .await
                .map_err(|f| anyhow!("{f:?}"))?;
            c_t.push(t_c.elapsed());
            sb_t.push(t_sb);
            total.push(t.elapsed());
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    remove_cri_sandboxes(&cri).await;
    result?;
    for v in [&mut sb_t, &mut c_t, &mut total] {
        v.sort();
    }
    Ok([sb_t, c_t, total])
}

/// Removes every sandbox this benchmark started directly through CRI.
async fn remove_cri_sandboxes(cri: &CriClient) {
    let filter = cri_api::PodSandboxFilter {
        label_selector: [(LABEL_MANAGED_BY.to_string(), CRI_NODE.to_string())].into(),
        ..Default::default()
    };
    let list = cri
        .list_pod_sandbox(cri_api::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for sb in list {
        skiff_node_runtime::oci::sandbox::remove(cri, &sb.id).await;
    }
}

struct Results {
    container: Run,
    wasm: Run,
    cri: [Vec<Duration>; 3],
}

async fn bench(
    pods: &Api<Pod>,
    server_pid: u32,
    dir: &Path,
    cluster_host: &str,
) -> Result<Results> {
    // Wasm first: its memory figure then sees an idle containerd, not one still shrinking
    // after the container pods, and carries the server's heap growth (the kind measured
    // second reuses what the first one freed).
    let wasm = run_kind(pods, Kind::Wasm, server_pid, dir).await?;
    let container = run_kind(pods, Kind::Container, server_pid, dir).await?;
    // Right after the container pods, so both see the machine in the same state (once
    // containerd's background cleanup of their snapshots has had a moment).
    tokio::time::sleep(SETTLE).await;
    let cri = run_cri(dir, cluster_host).await?;
    Ok(Results {
        container,
        wasm,
        cri,
    })
}

fn print(r: &Results) {
    let (c, w) = (&r.container, &r.wasm);
    let (c50, w50) = (pct(&c.ready, 0.5), pct(&w.ready, 0.5));
    let per = |f: fn(&Rss) -> u64, run: &Run| mib(per_pod(f(&run.loaded), f(&run.base)));
    header("container pods (runc)", "Wasm pods (wasmtime)");
    row(
        "first pod create → Ready (image unpack / cold compile)",
        ms(c.first),
        ms(w.first),
        "",
    );
    row(
        &format!("create → Ready p50 ({PODS} pods, one after another)"),
        ms(c50),
        ms(w50),
        "container ≤ 400 ms",
    );
    row(
        "create → Ready p99",
        ms(pct(&c.ready, 0.99)),
        ms(pct(&w.ready, 0.99)),
        "",
    );
    row(
        "container p50 / Wasm p50",
        format!("{:.1}×", c50.as_secs_f64() / w50.as_secs_f64().max(1e-9)),
        String::new(),
        "≥ 20×",
    );
    let [sb, cs, total] = &r.cri;
    row(
        "containerd alone via CRI: sandbox + container p50 (RunPodSandbox / Create+StartContainer)",
        format!(
            "{} ({} / {})",
            ms(pct(total, 0.5)),
            ms(pct(sb, 0.5)),
            ms(pct(cs, 0.5))
        ),
        String::new(),
        "",
    );
    row(
        &format!(
            "memory per running pod: server + containerd + shims, ({PODS} running − 0) / {PODS}"
        ),
        per(Rss::total, c),
        per(Rss::total, w),
        "",
    );
    row(
        "  of which the skiff server",
        per(|r| r.server, c),
        per(|r| r.server, w),
        "",
    );
    row(
        "  of which containerd",
        per(|r| r.containerd, c),
        per(|r| r.containerd, w),
        "",
    );
    row(
        "  of which containerd-shims",
        format!(
            "{} ({} shims for {PODS} pods)",
            per(|r| r.shims, c),
            c.loaded.shim_count
        ),
        per(|r| r.shims, w),
        "",
    );
    row(
        "  the same in PSS (shared pages split among the processes mapping them)",
        per(|r| r.pss, c),
        per(|r| r.pss, w),
        "",
    );
    row(
        "pause + httpd processes per pod, RSS (not in the figures above)",
        per(|r| r.workload, c),
        "—",
        "",
    );
    row(
        "RSS with 0 pods → with all running (server + containerd + shims)",
        format!(
            "{} → {}",
            mib(c.base.total() as f64),
            mib(c.loaded.total() as f64)
        ),
        format!(
            "{} → {}",
            mib(w.base.total() as f64),
            mib(w.loaded.total() as f64)
        ),
        "",
    );
}

// ---------------------------------------------------------------------------------------------
// Inside the namespace.

async fn inside(ns: String) -> Result<()> {
    let component = hello_component()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let busybox = busybox::layout_tarball(dir)?;
    let kubeconfig = dir.join("kubeconfig.yaml");
    let mut server = Server::spawn(dir, &["--listen", "127.0.0.1:0", "--node-name", NODE])?;
    let client = wait_node(&mut server, &kubeconfig).await?;
    import(&kubeconfig, &busybox, "busybox:1.35")?;
    import(&kubeconfig, &component, "hello-wasm:v1")?;
    let cluster_host = std::fs::read_to_string(&kubeconfig)?
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .map(|s| {
            s.trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string()
        })
        .context("no server in kubeconfig.yaml")?;
    announce("containers", &ns, &server, dir);

    let pods: Api<Pod> = Api::namespaced(client, "default");
    // Clean up whatever happened: the pods and the sandboxes started through CRI (both by
    // `delete_all`), then the server (SIGTERM: the agent stops containerd).
    let cleanup = delete_all(&pods, dir);
    let run = bench(&pods, server.pid(), dir, &cluster_host);
    let results = server.run_bench(run, cleanup, GONE_WAIT).await?;
    print(&results);
    Ok(())
}
