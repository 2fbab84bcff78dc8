//! The network benchmark's load: `wrk` runs from client pods' network namespaces (pod → pod,
//! pod → ClusterIP, pod → NodePort: the paths Services exist for), with the CPU the skiff
//! server and the machine used during each run.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::support::run_ok;
use super::{CONNECTIONS, LOAD, THREADS, WARMUP};

/// A network namespace standing for a client pod; deleted (with its veth pair) on drop.
pub struct ClientPod {
    name: String,
    path: PathBuf,
}

fn ip(args: &[&str]) -> Result<String> {
    run_ok(Command::new("ip").args(args))
}

impl ClientPod {
    fn new(tag: &str, node_side: &str) -> Result<ClientPod> {
        let name = format!("skiff-bench-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let pod = ClientPod {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        };
        let n = pod.name.as_str();
        ip(&[
            "link", "add", node_side, "type", "veth", "peer", "name", "eth0", "netns", n,
        ])?;
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", n, "link", "set", "eth0", "up"])?;
        Ok(pod)
    }

    /// A pod of this node: a veth into the node bridge `skiff0`, `addr` (e.g.
    /// `10.42.7.250/21`) from the node's range, the bridge address `gateway` as its gateway.
    /// Its traffic to pods of the node is bridged; to a Service it is routed by the node.
    pub fn on_bridge(addr: &str, gateway: &str) -> Result<ClientPod> {
        let pod = ClientPod::new("bridged", "skb-bridged")?;
        ip(&["link", "set", "skb-bridged", "master", "skiff0", "up"])?;
        ip(&["-n", &pod.name, "addr", "add", addr, "dev", "eth0"])?;
        ip(&["-n", &pod.name, "route", "add", "default", "via", gateway])?;
        Ok(pod)
    }

    /// A pod of another node, as host-gw delivers its traffic: `addr`/24 (another node's
    /// range) on a link of its own into the node, which holds `node_addr` of that /24. Every
    /// path from it, direct or through a Service, is routed by the node.
    pub fn routed(addr: &str, node_addr: &str) -> Result<ClientPod> {
        let pod = ClientPod::new("routed", "skb-routed")?;
        ip(&[
            "addr",
            "add",
            &format!("{node_addr}/24"),
            "dev",
            "skb-routed",
        ])?;
        ip(&["link", "set", "skb-routed", "up"])?;
        ip(&[
            "-n",
            &pod.name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &pod.name, "route", "add", "default", "via", node_addr])?;
        Ok(pod)
    }

    /// `program` in this pod's namespace.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path.display()))
            .arg(program);
        cmd
    }
}

impl Drop for ClientPod {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting for a load run: the skiff server process (utime + stime, which includes the
// Wasm guests: they run in its threads) and the whole machine (/proc/stat, all but idle and
// iowait), in clock ticks.

#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    server: u64,
    busy: u64,
}

pub fn clock_ticks() -> f64 {
    run_ok(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn process_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // pid (comm) state ppid … utime stime: fields 14 and 15, i.e. 12 and 13 after comm.
            let rest: Vec<u64> = s
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            Some(rest.iter().sum())
        })
        .unwrap_or(0)
}

fn machine_busy_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let cpu = s.lines().find(|l| l.starts_with("cpu "))?;
            let v: Vec<u64> = cpu
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            Some(v.iter().take(8).sum::<u64>() - idle)
        })
        .unwrap_or(0)
}

impl CpuSample {
    fn now(server_pid: u32) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            server: process_ticks(server_pid),
            busy: machine_busy_ticks(),
        }
    }

    /// (server, machine) CPU in percent of one core between `self` and `later`.
    fn percent_until(&self, later: &CpuSample, hz: f64) -> (f64, f64) {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let p = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / secs * 100.0;
        (p(self.server, later.server), p(self.busy, later.busy))
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/// One `wrk` run's figures.
#[derive(Clone, Copy, Default)]
pub struct Load {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub requests: u64,
    /// Socket errors (connect + read + write + timeout) and non-2xx/3xx responses.
    pub errors: u64,
    pub server_cpu: f64,
    pub machine_cpu: f64,
    /// SYNs the kernel retransmitted during the run (TcpExt TCPSynRetrans of the bench's
    /// network namespace, where wrk runs): connections that waited ≥ 1 s to be set up.
    pub syn_retrans: u64,
}

/// TcpExt TCPSynRetrans of the client pod's network namespace.
fn syn_retransmits(client: &ClientPod) -> u64 {
    let text = run_ok(client.command("cat").arg("/proc/net/netstat")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let [names, values] = lines.as_slice() else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPSynRetrans")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// "1.06ms" → 1.06 ms.
fn wrk_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn parse_wrk(out: &str) -> Result<Load> {
    let mut load = Load::default();
    let (mut p50, mut p99, mut rps) = (None, None, None);
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = wrk_duration(v),
            ["99%", v] => p99 = wrk_duration(v),
            ["Requests/sec:", v] => rps = v.parse().ok(),
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse().unwrap_or(0),
            _ => {}
        }
    }
    load.p50 = p50.context("no 50% latency in wrk's output")?;
    load.p99 = p99.context("no 99% latency in wrk's output")?;
    load.rps = rps.context("no Requests/sec in wrk's output")?;
    Ok(load)
}

fn wrk(client: &ClientPod, url: &str, duration: Duration) -> Result<String> {
    run_ok(
        client
            .command("wrk")
            .arg(format!("-t{THREADS}"))
            .arg(format!("-c{CONNECTIONS}"))
            .arg(format!("-d{}s", duration.as_secs()))
            .args(["--timeout", "5s", "--latency", url]),
    )
}

/// A warm-up run of `url`, then the measured one with the CPU used during it.
pub fn load(client: &ClientPod, url: &str, server_pid: u32, hz: f64) -> Result<Load> {
    wrk(client, url, WARMUP)?;
    let before = CpuSample::now(server_pid);
    let syn_before = syn_retransmits(client);
    let out = wrk(client, url, LOAD)?;
    let after = CpuSample::now(server_pid);
    let mut load = parse_wrk(&out).with_context(|| format!("wrk {url}:\n{out}"))?;
    load.syn_retrans = syn_retransmits(client).saturating_sub(syn_before);
    (load.server_cpu, load.machine_cpu) = before.percent_until(&after, hz);
    Ok(load)
}
