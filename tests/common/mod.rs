//! Harness for end-to-end tests: a real `skiff server` process on 127.0.0.1:0 with a temp data
//! dir, driven by real `kubectl` (fresh cache dir) and the `kube` crate.
#![allow(dead_code)]

pub mod busybox;
pub mod lossyfs;
pub mod net;
mod process;
pub mod tls;
pub mod toolchains;
pub mod writes;
pub use process::run_ok;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Skiff {
    pub dir: tempfile::TempDir,
    /// The server's data dir when it is not `dir` ([`Skiff::start_in_dir`]); the log stays in
    /// `dir`.
    data: Option<PathBuf>,
    child: Option<Child>,
    cache: tempfile::TempDir,
    extra: Vec<String>,
    /// `--listen` of `skiff server`: 127.0.0.1:0, or 0.0.0.0:0 for a server other hosts reach.
    listen: String,
    /// Start the server without CAP_NET_ADMIN (as a non-root user would run it).
    drop_net_admin: bool,
    /// The network namespace the server (and every command the test runs against it) lives
    /// in, for tests whose pods get real network interfaces.
    pub netns: Option<NetNs>,
}

/// A network namespace the test owns (`ip netns add`), with loopback up; deleted on drop
/// (unless it is a [`NetNs::shared`] handle on one owned elsewhere).
pub struct NetNs {
    pub name: String,
    owned: bool,
}

impl NetNs {
    pub fn new() -> Result<NetNs> {
        let name = format!(
            "skiff-test-{}-{}",
            std::process::id(),
            NETNS_SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs { name, owned: true };
        run_ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        // An uplink with an address and a default route, as every real node has (Service
        // addresses are reached through it before the Service rules rewrite them). Its peer
        // stays in the namespace and the gateway does not exist, so nothing ever leaves.
        let ip = |args: &[&str]| run_ok(Command::new("ip").args(["-n", &ns.name]).args(args));
        ip(&[
            "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
        ])?;
        ip(&["addr", "add", UPLINK_ADDR, "dev", "uplink0"])?;
        ip(&["link", "set", "uplink0", "up"])?;
        ip(&["link", "set", "uplink1", "up"])?;
        ip(&["route", "add", "default", "via", UPLINK_GATEWAY])?;
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace. `nsenter --net` switches only the
    /// network namespace (`ip netns exec` also remounts /sys, hiding the cgroup mounts runc
    /// needs).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `program args…` inside the namespace; returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        run_ok(self.command(program).args(args))
    }

    /// Another handle on the same namespace that does not delete it on drop (its owner does).
    pub fn shared(&self) -> NetNs {
        NetNs {
            name: self.name.clone(),
            owned: false,
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// The address of a test namespace's uplink (its "node address") and the gateway it routes
/// through (which does not exist).
pub const UPLINK_ADDR: &str = "192.168.99.1/24";
/// The node address of a networked test cluster (its namespace's uplink address).
pub const NODE_IP: &str = "192.168.99.1";
pub const UPLINK_GATEWAY: &str = "192.168.99.254";

static NETNS_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// SIGTERM to `child` and a bounded wait for a clean exit (its log in the error otherwise).
fn terminate(mut child: Child, what: &str, log: impl Fn() -> String) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} exited with {status} on SIGTERM; log:\n{}", log());
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not stop within {WAIT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether this machine can run container pods (containerd on PATH, root for network
/// namespaces). With `SKIFF_REQUIRE_CONTAINERD=1` (CI) a missing capability fails the test
/// instead of skipping it.
pub fn containerd_available() -> bool {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("containerd").is_file()));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let ok = on_path && root;
    if !ok {
        let why = format!("container tests need containerd on PATH and root (containerd on PATH: {on_path}, root: {root})");
        if std::env::var("SKIFF_REQUIRE_CONTAINERD").as_deref() == Ok("1") {
            panic!("{why}; SKIFF_REQUIRE_CONTAINERD=1 makes this a failure");
        }
        eprintln!("skipping: {why}");
    }
    ok
}

/// Whether this machine can run pod-network tests (root for network namespaces, `ip` and
/// `nsenter` on PATH). With `SKIFF_REQUIRE_CONTAINERD=1` (CI) a missing capability fails the
/// test instead of skipping it.
pub fn network_available() -> bool {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let (ip, nsenter, curl) = (on_path("ip"), on_path("nsenter"), on_path("curl"));
    let ok = root && ip && nsenter && curl;
    if !ok {
        let why = format!("network tests need root and ip, nsenter and curl on PATH (root: {root}, ip: {ip}, nsenter: {nsenter}, curl: {curl})");
        if std::env::var("SKIFF_REQUIRE_CONTAINERD").as_deref() == Ok("1") {
            panic!("{why}; SKIFF_REQUIRE_CONTAINERD=1 makes this a failure");
        }
        eprintln!("skipping: {why}");
    }
    ok
}

/// Private addresses of the test LAN's hosts: `LAN_PREFIX.1`, `.2`, … /24. They exist only in
/// the namespaces a [`Lan`] creates.
pub const LAN_PREFIX: &str = "192.168.77";

/// One "machine" on a [`Lan`]: a network namespace whose `eth0` holds `ip`/24.
pub struct Host {
    /// Also the name of the node the test runs there.
    pub name: String,
    pub ip: String,
    pub ns: NetNs,
}

impl Host {
    /// A command for `program`, run on this host (in its network namespace).
    pub fn command(&self, program: &str) -> Command {
        self.ns.command(program)
    }

    /// Runs `program args…` on this host; returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        self.ns.run(program, args)
    }
}

/// Several hosts on one machine: one network namespace per host, each joined by a veth pair
/// to a bridge (`lan0`) in a namespace of the LAN's own. Nothing is created in the test
/// process's namespace; everything goes when the `Lan` drops (drop it after the processes
/// running on its hosts).
pub struct Lan {
    // Fields drop in order: the hosts (their veth ends go with them), then the LAN's namespace.
    pub hosts: Vec<Host>,
    lan: NetNs,
}

impl Lan {
    /// `names.len()` hosts, the i-th named `names[i]` at `LAN_PREFIX.(i+1)`.
    pub fn new(names: &[&str]) -> Result<Lan> {
        let lan = NetNs::new()?;
        run_ok(
            Command::new("ip").args(["-n", &lan.name, "link", "add", "lan0", "type", "bridge"]),
        )?;
        run_ok(Command::new("ip").args(["-n", &lan.name, "link", "set", "lan0", "up"]))?;
        let mut hosts = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ns = NetNs::new()?;
            let port = format!("h{i}");
            let ip = format!("{LAN_PREFIX}.{}", i + 1);
            run_ok(Command::new("ip").args([
                "-n", &lan.name, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns.name,
            ]))?;
            run_ok(Command::new("ip").args([
                "-n", &lan.name, "link", "set", &port, "master", "lan0", "up",
            ]))?;
            run_ok(Command::new("ip").args([
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]))?;
            run_ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "eth0", "up"]))?;
            hosts.push(Host {
                name: name.to_string(),
                ip,
                ns,
            });
        }
        Ok(Lan { hosts, lan })
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} on the LAN"))
    }
}

impl Skiff {
    /// Starts a server in a new temp data dir and waits until it is ready.
    /// A whole cluster: control plane and the embedded node agent (fast restarts for tests).
    pub fn start() -> Result<Skiff> {
        Self::start_with(&["--crash-backoff-seconds", "1", "--lease-renew-seconds", "1"])
    }

    /// The control plane alone (`--no-agent`).
    pub fn control_plane() -> Result<Skiff> {
        Self::start_with(&["--no-agent"])
    }

    /// Starts a server with extra `skiff server` flags.
    pub fn start_with(extra: &[&str]) -> Result<Skiff> {
        // Only the container and network tests (in network namespaces of their own) run
        // containerd and a pod network.
        let mut flags = vec!["--no-containerd", "--no-pod-network"];
        flags.extend(extra);
        Self::start_in(None, &flags)
    }

    /// As [`Skiff::start_with`], with the server's data dir at `data_dir` (the caller's; it
    /// may already hold a data dir) instead of a new temp dir. Its log stays in a temp dir.
    pub fn start_in_dir(data_dir: &Path, extra: &[&str]) -> Result<Skiff> {
        let mut flags = vec!["--no-containerd", "--no-pod-network"];
        flags.extend(extra);
        let mut s = Skiff {
            dir: tempfile::tempdir()?,
            data: Some(data_dir.to_path_buf()),
            child: None,
            cache: tempfile::tempdir()?,
            extra: flags.iter().map(|s| s.to_string()).collect(),
            listen: "127.0.0.1:0".into(),
            drop_net_admin: false,
            netns: None,
        };
        s.spawn()?;
        Ok(s)
    }

    /// A whole cluster whose node runs container pods through its managed containerd, in a
    /// network namespace of its own.
    pub fn start_with_containerd() -> Result<Skiff> {
        Self::start_with_containerd_and(&[])
    }

    /// As [`Skiff::start_with_containerd`], with extra `skiff server` flags.
    pub fn start_with_containerd_and(extra: &[&str]) -> Result<Skiff> {
        let mut flags = vec!["--crash-backoff-seconds", "1", "--lease-renew-seconds", "1"];
        flags.extend(extra);
        Self::start_in(Some(NetNs::new()?), &flags)
    }

    /// A whole cluster with a pod network (pod IPs, Services, DNS) in a network namespace of
    /// its own; its node runs Wasm pods only (no containerd). The node's address is the
    /// namespace's uplink address ([`NODE_IP`]), where NodePorts answer.
    pub fn start_networked() -> Result<Skiff> {
        Self::start_networked_with(false)
    }

    /// As [`Skiff::start_networked`], but the server runs without CAP_NET_ADMIN.
    pub fn start_without_net_admin() -> Result<Skiff> {
        Self::start_networked_with(true)
    }

    fn start_networked_with(drop_net_admin: bool) -> Result<Skiff> {
        let mut s = Skiff {
            dir: tempfile::tempdir()?,
            data: None,
            child: None,
            cache: tempfile::tempdir()?,
            extra: [
                "--advertise-address",
                NODE_IP,
                "--no-containerd",
                "--crash-backoff-seconds",
                "1",
                "--lease-renew-seconds",
                "1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            listen: "0.0.0.0:0".into(),
            drop_net_admin,
            netns: Some(NetNs::new()?),
        };
        s.spawn()?;
        Ok(s)
    }

    /// A whole cluster whose server (control plane and embedded agent, node `host.name`)
    /// runs on `host` of a [`Lan`]: it listens on every address of the host and advertises
    /// `host.ip` (in kubeconfig.yaml, the certificate and its Node's InternalIP), so agents on
    /// the LAN's other hosts join it ([`Skiff::spawn_agent_in`]). Its node has a pod network
    /// and runs Wasm pods only; kubectl and [`Skiff::command`] run on `host`.
    pub fn start_in_host(host: &Host) -> Result<Skiff> {
        let dir = tempfile::tempdir()?;
        let mut s = Skiff {
            dir,
            data: None,
            child: None,
            cache: tempfile::tempdir()?,
            extra: [
                "--advertise-address",
                &host.ip,
                "--node-name",
                &host.name,
                "--no-containerd",
                "--crash-backoff-seconds",
                "1",
                "--lease-renew-seconds",
                "1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            listen: "0.0.0.0:0".into(),
            drop_net_admin: false,
            netns: Some(host.ns.shared()),
        };
        s.spawn()?;
        Ok(s)
    }

    /// Runs `program args…` in the server's network namespace; returns its stdout.
    pub fn in_netns(&self, program: &str, args: &[&str]) -> Result<String> {
        run_ok(self.command(program).args(args))
    }

    fn start_in(netns: Option<NetNs>, extra: &[&str]) -> Result<Skiff> {
        let dir = tempfile::tempdir()?;
        let mut s = Skiff {
            dir,
            data: None,
            child: None,
            cache: tempfile::tempdir()?,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            listen: "127.0.0.1:0".into(),
            drop_net_admin: false,
            netns,
        };
        s.spawn()?;
        Ok(s)
    }

    /// A command for `program`, inside the server's network namespace if it has one.
    pub fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => ns.command(program),
            None => Command::new(program),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.data.as_deref().unwrap_or(self.dir.path())
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig.yaml")
    }

    fn spawn(&mut self) -> Result<()> {
        let kc = self.kubeconfig();
        let _ = std::fs::remove_file(&kc);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))?;
        let mut cmd = if self.drop_net_admin {
            let mut c = self.command("setpriv");
            c.args(["--bounding-set=-net_admin", "--inh-caps=-net_admin", "--"])
                .arg(env!("CARGO_BIN_EXE_skiff"));
            c
        } else {
            self.command(env!("CARGO_BIN_EXE_skiff"))
        };
        let child = cmd
            .args(["server", "--listen", &self.listen, "--data-dir"])
            .arg(self.data_dir())
            .args(&self.extra)
            .env("SKIFF_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning skiff server")?;
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if kc.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"])?;
                if out.status.success() {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!("skiff server exited early ({status}); log:\n{}", self.log());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "skiff server not ready within {WAIT:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kill -9`, then start again on the same data dir.
    pub fn crash_and_restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid().context("the server is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit, then start again.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    pub fn stop(&mut self) -> Result<()> {
        match self.child.take() {
            Some(c) => terminate(c, "skiff server", || self.log()),
            None => Ok(()),
        }
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("kubectl");
        cmd.env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        Ok(self.kubectl_cmd(args).output()?)
    }

    /// Runs kubectl and returns stdout, failing with stderr if it did not succeed.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        if out.status.success() {
            bail!(
                "kubectl {} succeeded but should have failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&all)?)?)
    }

    /// The messages of the Events with `reason`, in every namespace kubectl's context sees.
    pub fn event_messages(&self, reason: &str) -> Result<Vec<String>> {
        let list = self.json(&[
            "get",
            "events",
            "--field-selector",
            &format!("reason={reason}"),
        ])?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect())
    }

    pub async fn client(&self) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A client that presents `token` instead of the admin token.
    pub async fn client_with_token(&self, token: Option<&str>) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        config.auth_info.token = token.map(|t| t.to_string().into());
        Ok(kube::Client::try_from(config)?)
    }

    /// `skiff image import FILE --name NAME` against this cluster.
    pub fn import(&self, file: &Path, name: &str) -> Result<String> {
        let out = self
            .command(env!("CARGO_BIN_EXE_skiff"))
            .args(["image", "import"])
            .arg(file)
            .args(["--name", name, "--kubeconfig"])
            .arg(self.kubeconfig())
            .output()?;
        if !out.status.success() {
            bail!(
                "skiff image import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `skiff agent` as a separate process joining this cluster as `node`.
    pub fn spawn_agent(&self, node: &str) -> Result<Agent> {
        self.spawn_agent_cmd(
            Command::new(env!("CARGO_BIN_EXE_skiff")),
            node,
            "127.0.0.1",
            // Extra agents run Wasm pods only: containerd and the pod network are for the
            // container and network tests, in network namespaces of their own.
            &["--no-containerd", "--no-pod-network"],
        )
    }

    /// Starts `skiff agent` on `host` of the [`Lan`] this cluster's server runs on (see
    /// [`Skiff::start_in_host`]), joining as node `host.name` with `host.ip` as its address:
    /// a pod network of its own (a range of the cluster's), Wasm pods only.
    pub fn spawn_agent_in(&self, host: &Host) -> Result<Agent> {
        self.spawn_agent_cmd(
            host.command(env!("CARGO_BIN_EXE_skiff")),
            &host.name,
            &host.ip,
            &["--no-containerd"],
        )
    }

    fn spawn_agent_cmd(
        &self,
        mut cmd: Command,
        node: &str,
        node_ip: &str,
        extra: &[&str],
    ) -> Result<Agent> {
        let dir = tempfile::tempdir()?;
        let token = std::fs::read_to_string(self.data_dir().join("node-token"))?;
        let log = std::fs::File::create(dir.path().join("agent.log"))?;
        let kc = std::fs::read_to_string(self.kubeconfig())?;
        let server = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .context("no server in kubeconfig")?
            .to_string();
        let child = cmd
            .args([
                "agent",
                "--server",
                &server,
                "--node-name",
                node,
                "--node-ip",
                node_ip,
            ])
            .args(["--lease-renew-seconds", "1", "--crash-backoff-seconds", "1"])
            .args(extra)
            .arg("--ca-file")
            .arg(self.data_dir().join("pki/ca.crt"))
            .arg("--data-dir")
            .arg(dir.path())
            .env("SKIFF_TOKEN", token.trim())
            .env("SKIFF_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Agent {
            child: Some(child),
            dir,
        })
    }

    /// Writes `yaml` to `file` in the data dir and `kubectl apply`s it.
    pub fn apply(&self, file: &str, yaml: &str) -> Result<()> {
        let f = self.write(file, yaml)?;
        self.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
        Ok(())
    }

    pub fn write(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents)?;
        Ok(p)
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        if self.netns.is_some() {
            // A clean stop removes the pods' containers and sandboxes with the agent.
            let _ = self.stop();
        }
        self.kill9();
    }
}

/// Polls `f` until it returns Some, or fails after `WAIT`.
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    wait_for_within(what, WAIT, f)
}

/// Polls `f` until it returns Some, or fails after `limit`.
pub fn wait_for_within<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `skiff agent` process.
pub struct Agent {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Agent {
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// SIGTERM and wait for a clean exit (the agent stops its pods and takes down its pod
    /// network).
    pub fn stop(&mut self) -> Result<()> {
        match self.child.take() {
            Some(c) => terminate(c, "skiff agent", || self.log()),
            None => Ok(()),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

static GUESTS: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
    std::sync::OnceLock::new();

/// Builds the Wasm samples and test guests once per test binary; returns the path of one
/// (`hello_wasm`, `wasm-job`, `fail-exit`, …).
pub fn guest(name: &str) -> Result<PathBuf> {
    let dir = GUESTS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("scripts/build-guests.sh"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "build-guests.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(root.join("target/wasm/wasm32-wasip2/release"))
    });
    let dir = dir.clone().map_err(anyhow::Error::msg)?;
    let p = dir.join(format!("{name}.wasm"));
    if !p.exists() {
        bail!("guest {name} was not built at {}", p.display());
    }
    Ok(p)
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A plain HTTP/1.1 GET to 127.0.0.1:port; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Whether an object (pod or node) has the condition `Ready=True`.
pub fn is_ready(obj: &serde_json::Value) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The value of the `VERSION` env var of a pod's first container ("" when unset).
pub fn env_version(p: &serde_json::Value) -> &str {
    p["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "VERSION")
        .and_then(|e| e["value"].as_str())
        .unwrap_or("")
}
