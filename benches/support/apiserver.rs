//! A control plane alone on loopback for the API benchmarks (benches/capacity.rs): its start,
//! raw requests through the kube client, its open-watch gauge, and the process figures read
//! from /proc (RSS, peak RSS and its reset) and the open-files limit.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{kube_client, run_ok, Server};

/// `skiff server --listen 127.0.0.1:0 --no-agent` (the control plane without the embedded node
/// agent) with `extra` arguments, in the data dir `dir`; waits (at most `wait`) until its API
/// answers and returns a client of it. A failure carries the server's log tail.
pub async fn start_control_plane(
    dir: &Path,
    extra: &[&str],
    wait: Duration,
) -> Result<(Server, kube::Client)> {
    let mut args = vec!["--listen", "127.0.0.1:0", "--no-agent"];
    args.extend_from_slice(extra);
    let mut server = Server::spawn(dir, &args)?;
    let kubeconfig = dir.join("kubeconfig.yaml");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        server.alive().map_err(|e| e.context(server.log_tail()))?;
        if kubeconfig.exists() {
            if let Ok(client) = kube_client(&kubeconfig).await {
                if get_text(&client, "/api/v1/namespaces?limit=1")
                    .await
                    .is_ok()
                {
                    return Ok((server, client));
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the API did not answer within {wait:?}; {}",
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` (with its query) asking for JSON; the body, or an error naming the path.
pub async fn get_text(client: &kube::Client, path: &str) -> Result<String> {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())?;
    client
        .request_text(req)
        .await
        .with_context(|| format!("GET {path}"))
}

/// The server's open API watches (the `skiff_apiserver_watches` gauge of `/metrics`).
pub async fn open_watches(client: &kube::Client) -> Result<u64> {
    const GAUGE: &str = "skiff_apiserver_watches";
    let text = get_text(client, "/metrics").await?;
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            (name == GAUGE || name.starts_with(&format!("{GAUGE}{{")))
                .then(|| parts.next()?.parse::<f64>().ok())?
        })
        .next()
        .map(|v| v as u64)
        .with_context(|| format!("no {GAUGE} in /metrics"))
}

/// Waits (at most `wait`) until the server holds `n` open watches.
pub async fn wait_open_watches(client: &kube::Client, n: u64, wait: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = open_watches(client).await?;
        if now == n {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the server holds {now} watches, not {n}, after {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS: `echo 5 > /proc/PID/clear_refs`
/// (root, or the process's owner).
pub fn reset_peak(pid: u32) -> Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("writing 5 to {path}"))
}

/// Raises this process's open-files soft limit to at least `min` (children started afterwards
/// inherit it), with `prlimit`; fails if the hard limit is lower.
pub fn raise_nofile(min: u64) -> Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files limit in /proc/self/limits")?;
    let mut nums = line
        .split_whitespace()
        .skip(3)
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    let (soft, hard) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    if soft >= min {
        return Ok(());
    }
    if hard < min {
        bail!("the open-files hard limit is {hard}, below the {min} needed (ulimit -Hn)");
    }
    let hard = if hard == u64::MAX {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    run_ok(Command::new("prlimit").args([
        "--pid",
        &std::process::id().to_string(),
        &format!("--nofile={min}:{hard}"),
    ]))
    .context("raising the open-files limit with prlimit")?;
    Ok(())
}

/// The unit of `/proc/PID/stat`'s CPU times: USER_HZ, 100 on Linux whatever the kernel's HZ.
const USER_HZ: f64 = 100.0;

/// The CPU time (user and system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (in parentheses) may hold spaces: the fields are counted after it,
    // from the state (the third field); utime and stime are the 14th and 15th.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("no command name in {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no CPU time in {path}"))
    };
    Ok(Duration::from_secs_f64(
        (tick(11)? + tick(12)?) as f64 / USER_HZ,
    ))
}
