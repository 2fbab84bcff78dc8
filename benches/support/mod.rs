//! What the benchmarks that run in a network namespace of their own share (benches/containers.rs,
//! benches/network.rs, benches/serverless.rs): `main`, the namespace and re-running the
//! benchmark inside it, the release server and its node, and small helpers for processes, the
//! cluster (`kubectl` included) and percentiles; table.rs formats their tables. benches/capacity.rs
//! uses apiserver.rs, watches.rs and h2watch.rs.
#![allow(dead_code)]

#[path = "../../tests/common/busybox.rs"]
pub mod busybox;
#[path = "../../tests/common/process.rs"]
mod process;
mod table;
// The API benchmarks' (benches/capacity.rs): a control plane on loopback, many open watches.
pub mod apiserver;
pub mod h2watch;
pub mod watches;
pub use process::run_ok;
pub use table::*;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Set for the benchmark's run inside its namespace: the namespace's name.
pub const NETNS_ENV: &str = "SKIFF_BENCH_NETNS";
/// The node's address on the namespace's uplink (benchmarks with one: network, serverless): the
/// API, NodePorts.
pub const NODE_ADDR: &str = "192.168.99.1";
/// The uplink's gateway, which does not exist (a default route, as every real node has).
pub const GATEWAY: &str = "192.168.99.254";
/// The embedded agent's node name.
pub const NODE: &str = "bench";
/// Upper bound for any single wait (the server up, a pod Ready, a Service answering or on its
/// steady path).
pub const WAIT: Duration = Duration::from_secs(60);
/// Upper bound for a wait on many objects (a thousand pods Running, or gone after a delete; a
/// thousand Services marked for the activator) and for the cleanup after a run.
pub const LONG_WAIT: Duration = Duration::from_secs(600);

/// The two runtimes a benchmark sets side by side; each benchmark gives them what it needs
/// (names, ports) in an `impl Kind` of its own.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Wasm,
    Container,
}

/// A benchmark's `main`: inside its namespace ([`NETNS_ENV`] set) `inside` with the
/// namespace's name, on a multi-thread runtime; else `outside`.
pub fn main<F>(inside: impl FnOnce(String) -> F, outside: impl FnOnce() -> Result<()>) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    match std::env::var(NETNS_ENV) {
        Ok(ns) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(inside(ns)),
        Err(_) => outside(),
    }
}

/// Whether this process runs as root (`id -u` is 0).
pub fn is_root() -> Result<bool> {
    Ok(run_ok(Command::new("id").arg("-u"))?.trim() == "0")
}

/// Outside the namespace of a benchmark with an uplink (the `bench` benchmark: "network",
/// "serverless"): checks for root and `tools` on PATH (a missing one's error names it and
/// `install`, where the tools come from), then creates the namespace with the uplink
/// ([`NODE_ADDR`]/24, default route via [`GATEWAY`]) and runs the benchmark in it.
pub fn outside(bench: &str, tools: &[&str], install: &str) -> Result<()> {
    if !is_root()? {
        bail!("the {bench} benchmark needs root (it creates a network namespace)");
    }
    for tool in tools {
        if !on_path(tool) {
            bail!("{tool} is not on PATH ({install})");
        }
    }
    run_in_netns(NetNs::new(Some((NODE_ADDR, GATEWAY)))?)
}

/// A network namespace with loopback up (`ip netns add`), and optionally an uplink (an
/// address/24 on a veth whose peer stays in the namespace, a default route via a gateway that
/// does not exist, so nothing leaves); deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(uplink: Option<(&str, &str)>) -> Result<NetNs> {
        let name = format!("skiff-bench-{}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs { name };
        let ip = |args: &[&str]| run_ok(Command::new("ip").args(["-n", &ns.name]).args(args));
        ip(&["link", "set", "lo", "up"])?;
        if let Some((addr, gateway)) = uplink {
            ip(&[
                "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
            ])?;
            ip(&["addr", "add", &format!("{addr}/24"), "dev", "uplink0"])?;
            ip(&["link", "set", "uplink0", "up"])?;
            ip(&["link", "set", "uplink1", "up"])?;
            ip(&["route", "add", "default", "via", gateway])?;
        }
        Ok(ns)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Runs this benchmark again inside `ns` (with [`NETNS_ENV`] set) and waits for it; deletes
/// the namespace afterwards.
pub fn run_in_netns(ns: NetNs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        // `nsenter --net` switches only the network namespace (`ip netns exec` also remounts
        // /sys, hiding the cgroup mounts runc needs).
        let mut child = tokio::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.name))
            .arg("--")
            .arg(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env(NETNS_ENV, &ns.name)
            .spawn()
            .context("running the benchmark in its network namespace with nsenter")?;
        // Ctrl-C reaches both processes: the inner one cleans up, this one waits for it and
        // then deletes the namespace.
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        loop {
            tokio::select! {
                s = child.wait() => return Ok::<_, anyhow::Error>(s?),
                _ = int.recv() => eprintln!("interrupted: cleaning up (pods, server, namespace)"),
            }
        }
    })?;
    drop(ns);
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

/// The hello component: `HELLO_WASM`, else built by scripts/build-guests.sh.
pub fn hello_component() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HELLO_WASM") {
        return Ok(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_ok(Command::new("bash").arg(root.join("scripts/build-guests.sh")))?;
    Ok(root.join("target/wasm/wasm32-wasip2/release/hello_wasm.wasm"))
}

/// The `p` quantile of sorted durations.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A kube client from a kubeconfig file.
pub async fn kube_client(kubeconfig: &Path) -> Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &Default::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// `skiff image import FILE --name NAME` with this build's `skiff`.
pub fn import(kubeconfig: &Path, file: &Path, name: &str) -> Result<()> {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["image", "import"])
            .arg(file)
            .args(["--name", name, "--kubeconfig"])
            .arg(kubeconfig),
    )
    .map(|_| ())
}

/// VmRSS in KiB (0 for a process that is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until node `node` is Ready (by the server behind `kubeconfig`) for at most `wait`;
/// returns a client and whether the node runs container pods (its containerd started).
/// `alive` fails once the server process has exited (with its log), ending the wait early.
pub async fn wait_ready_node(
    kubeconfig: &Path,
    node: &str,
    wait: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<(kube::Client, bool)> {
    use k8s_openapi::api::core::v1::Node;
    let deadline = std::time::Instant::now() + wait;
    loop {
        alive()?;
        if kubeconfig.exists() {
            if let Ok(client) = kube_client(kubeconfig).await {
                let nodes: kube::Api<Node> = kube::Api::all(client.clone());
                if let Ok(Some(n)) = nodes.get_opt(node).await {
                    let ready = n
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if ready {
                        let oci = n
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("skiff.dev/runtime-oci"))
                            .is_some_and(|v| v == "true");
                        return Ok((client, oci));
                    }
                }
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("node {node} not Ready within {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most `wait`) until the server answers and its node [`NODE`] is Ready; returns a
/// client and whether the node runs container pods (its containerd started). A failure carries
/// the server's log tail.
pub async fn wait_node(
    server: &mut Server,
    kubeconfig: &Path,
    wait: Duration,
) -> Result<(kube::Client, bool)> {
    let ready = wait_ready_node(kubeconfig, NODE, wait, || server.alive()).await;
    ready.map_err(|e| e.context(server.log_tail()))
}

/// The release `skiff server` of a benchmark with an uplink (agent embedded, pod network on):
/// listening on every address, advertising [`NODE_ADDR`], node [`NODE`], then `extra`;
/// `--no-containerd` unless `containerd`.
pub fn start_server(dir: &Path, containerd: bool, extra: &[&str]) -> Result<Server> {
    let mut args = vec![
        "--listen",
        "0.0.0.0:0",
        "--advertise-address",
        NODE_ADDR,
        "--node-name",
        NODE,
    ];
    args.extend_from_slice(extra);
    if !containerd {
        args.push("--no-containerd");
    }
    Server::spawn(dir, &args)
}

/// The start of a run inside the namespace of a benchmark with an uplink (network,
/// serverless): the hello component (see [`hello_component`]), a server ([`start_server`], with
/// a managed containerd when one is on PATH) in a temporary data dir, its node Ready, the hello
/// component imported as `hello-wasm:v1` and, when the node runs container pods, busybox as
/// `busybox:1.35`.
pub struct BenchNode {
    pub server: Server,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    /// Ok when the container rows run; else why they are skipped.
    pub containers: std::result::Result<(), String>,
    /// The data dir; declared last, so it is removed after the server has stopped.
    tmp: tempfile::TempDir,
}

impl BenchNode {
    /// `extra` server arguments; waits at most `wait` for the node.
    pub async fn start(extra: &[&str], wait: Duration) -> Result<BenchNode> {
        let component = hello_component()?;
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let kubeconfig = dir.join("kubeconfig.yaml");
        let has_containerd = on_path("containerd");
        let mut server = start_server(dir, has_containerd, extra)?;
        let (client, oci) = wait_node(&mut server, &kubeconfig, wait).await?;
        import(&kubeconfig, &component, "hello-wasm:v1")?;
        let containers = if !has_containerd {
            Err("containerd is not on PATH (apt-get install containerd runc containernetworking-plugins)".to_string())
        } else if !oci {
            Err("the node's containerd did not start (see the server log)".to_string())
        } else {
            let busybox = busybox::layout_tarball(dir)?;
            import(&kubeconfig, &busybox, "busybox:1.35")?;
            Ok(())
        };
        Ok(BenchNode {
            server,
            client,
            kubeconfig,
            containers,
            tmp,
        })
    }

    /// The server's data dir.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// Says where the `bench` benchmark runs: "bench-BENCH: server pid … in network namespace …,
/// data dir …".
pub fn announce(bench: &str, ns: &str, server: &Server, dir: &Path) {
    eprintln!(
        "bench-{bench}: server pid {} in network namespace {ns}, data dir {}",
        server.pid(),
        dir.display()
    );
}

/// A release `skiff server` (agent embedded) in its own process group, so a Ctrl-C reaches
/// only the benchmark, which stops it with SIGTERM; its log is `server.log` in its data dir.
pub struct Server {
    child: Option<std::process::Child>,
    dir: PathBuf,
}

/// How long a server may take to stop its pods and containerd after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(120);

impl Server {
    /// `skiff server ARGS --data-dir DIR`, logging at `SKIFF_LOG` (default warn).
    pub fn spawn(dir: &Path, args: &[&str]) -> Result<Server> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("server")
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .env(
                "SKIFF_LOG",
                std::env::var("SKIFF_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting skiff server")?;
        Ok(Server {
            child: Some(child),
            dir: dir.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Fails once the server process has exited.
    pub fn alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                bail!("skiff server exited ({status})");
            }
        }
        Ok(())
    }

    /// The ends of the server's and its managed containerd's logs.
    pub fn log_tail(&self) -> String {
        format!(
            "server log (tail):\n{}\ncontainerd log (tail):\n{}",
            tail(&self.dir.join("server.log"), 30),
            tail(&self.dir.join("agent/containerd/containerd.log"), 10)
        )
    }

    /// SIGTERM (the agent stops its pods, then containerd) and a bounded wait for the exit;
    /// SIGKILL after that.
    pub fn stop(&mut self) -> Result<()> {
        stop_server(self.child.take(), STOP_WAIT)
    }

    /// Runs `bench` until it ends or a Ctrl-C, then `cleanup` whatever happened (for at most
    /// `cleanup_wait`; its failure is only printed), then [`finish`](Server::finish)es.
    pub async fn run_bench<T>(
        self,
        bench: impl Future<Output = Result<T>>,
        cleanup: impl Future<Output = Result<()>>,
        cleanup_wait: Duration,
    ) -> Result<T> {
        let (result, interrupted) = tokio::select! {
            r = bench => (r, false),
            _ = tokio::signal::ctrl_c() => (Err(anyhow::anyhow!("interrupted")), true),
        };
        match tokio::time::timeout(cleanup_wait, cleanup).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cleanup: {e:#}"),
            Err(_) => eprintln!("cleanup: pods not gone within {cleanup_wait:?}"),
        }
        self.finish(result, interrupted)
    }

    /// Stops the server after a run and returns the run's outcome; a failure carries the
    /// server's log tail (unless the run was interrupted). `BENCH_SERVER_LOG=FILE` keeps a copy
    /// of the log.
    pub fn finish<T>(mut self, result: Result<T>, interrupted: bool) -> Result<T> {
        let stopped = self.stop();
        if let Some(copy) = std::env::var_os("BENCH_SERVER_LOG") {
            let _ = std::fs::copy(self.dir.join("server.log"), copy);
        }
        let out = result.map_err(|e| {
            if interrupted {
                e
            } else {
                anyhow::anyhow!("{e:#}; {}", self.log_tail())
            }
        })?;
        stopped?;
        Ok(out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e}");
        }
    }
}

/// Stops a server process: SIGTERM (its agent stops the pods, then containerd) and up to
/// `wait` for it to exit; SIGKILL after that.
pub fn stop_server(child: Option<std::process::Child>, wait: Duration) -> Result<()> {
    let Some(mut c) = child else {
        return Ok(());
    };
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(status) = c.try_wait()? {
            if !status.success() {
                bail!("skiff server exited with {status} on SIGTERM");
            }
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            bail!("skiff server did not stop within {wait:?} of SIGTERM; killed it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(p: &k8s_openapi::api::core::v1::Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates `pod` and waits (by watch, at most `wait`) until it is Ready; returns the time
/// from the create request to the Ready the watch delivered.
pub async fn create_until_ready(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    pod: &k8s_openapi::api::core::v1::Pod,
    wait: Duration,
) -> Result<Duration> {
    use futures::StreamExt;
    use kube::api::{PostParams, WatchEvent, WatchParams};
    let name = pod.metadata.name.clone().unwrap_or_default();
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(wait.as_secs() as u32);
    let mut stream = pods.watch(&wp, "0").await?.boxed();
    let t = std::time::Instant::now();
    pods.create(&PostParams::default(), pod).await?;
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(ev) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("pod {name} not Ready within {wait:?}"))?
        .transpose()?
    {
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            if pod_ready(&p) {
                return Ok(t.elapsed());
            }
        }
    }
    bail!("pod {name} did not become Ready (watch ended)")
}

/// Whether `program` is a file in one of PATH's directories.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// `kubectl` (from PATH) against the server behind `kubeconfig`, with a fresh cache dir of its
/// own (removed on drop), so no discovery cached by another cluster is used.
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Result<Kubectl> {
        Ok(Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir()?,
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path());
        cmd
    }

    /// `kubectl ARGS`; its stdout, or an error with its output.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        run_ok(self.command().args(args))
    }

    /// `kubectl apply -f FILE` of `yaml` (YAML or JSON, written to the cache dir first as `name`).
    pub fn apply(&self, name: &str, yaml: &str) -> Result<String> {
        let file = self.cache.path().join(name);
        std::fs::write(&file, yaml)?;
        run_ok(self.command().arg("apply").arg("-f").arg(&file))
    }
}
