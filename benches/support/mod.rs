//! What the benchmarks that run in a network namespace of their own share (benches/containers.rs,
//! benches/network.rs): the namespace, re-running the benchmark inside it, and small helpers
//! for processes, the cluster and percentiles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Set for the benchmark's run inside its namespace: the namespace's name.
pub const NETNS_ENV: &str = "SKIFF_BENCH_NETNS";

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

/// Runs `cmd`, failing with its output unless it succeeds; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
