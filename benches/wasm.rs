//! Wasm pod benchmark, measured side by side in one run:
//! - create → Ready (seen by a watch) for a Wasm HTTP pod with a warm compile cache, p50/p99 over
//!   `PODS` pods created one after another;
//! - requests/s and p99 of the hello component through its hostPort, and of `wasmtime serve`
//!   running the same component, under the same keep-alive load.
//!
//! Prints a table; asserts nothing. Run `scripts/bench-wasm.sh` (installs `wasmtime-cli` from
//! crates.io, then runs `cargo bench --bench wasm`), or set `WASMTIME=/path/to/wasmtime`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// Pods timed for create → Ready.
const PODS: usize = 100;
/// Keep-alive connections of the load generator (a few per core of the 2-core VM).
const CONNECTIONS: usize = 8;
/// How long each HTTP load run lasts.
const LOAD_SECS: u64 = 10;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hello_component() -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(root().join("scripts/build-guests.sh"))
        .output()?;
    if !out.status.success() {
        bail!("build-guests.sh: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(root().join("target/wasm/wasm32-wasip2/release/hello_wasm.wasm"))
}

fn wasmtime_cli() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("WASMTIME") {
        return Ok(PathBuf::from(p));
    }
    let local = root().join("target/bench-tools/bin/wasmtime");
    if local.exists() {
        return Ok(local);
    }
    bail!("wasmtime CLI not found: run scripts/bench-wasm.sh, which installs it, or set WASMTIME")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn wait_port(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One keep-alive connection sending GETs until `until`; returns each request's latency.
fn load_connection(port: u16, until: Instant) -> Result<Vec<Duration>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut latencies = Vec::new();
    let mut line = String::new();
    while Instant::now() < until {
        let t = Instant::now();
        writer.write_all(b"GET /bench HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut len = None;
        line.clear();
        reader.read_line(&mut line)?;
        if !line.starts_with("HTTP/1.1 200") {
            bail!("unexpected response: {line:?}");
        }
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut body = vec![0; len.context("response without content-length")?];
        reader.read_exact(&mut body)?;
        latencies.push(t.elapsed());
    }
    Ok(latencies)
}

/// (requests/s, p50, p99) of `CONNECTIONS` keep-alive clients for `LOAD_SECS`.
fn load(port: u16) -> Result<(f64, Duration, Duration)> {
    let _ = load_connection(port, Instant::now() + Duration::from_millis(500))?; // warm-up
    let until = Instant::now() + Duration::from_secs(LOAD_SECS);
    let started = Instant::now();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| std::thread::spawn(move || load_connection(port, until)))
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("load thread panicked"))??,
        );
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    Ok((all.len() as f64 / secs, pct(&all, 0.5), pct(&all, 0.99)))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn pod(name: &str, host_port: Option<u16>) -> Result<Pod> {
    let mut port = json!({"containerPort": 8080});
    if let Some(p) = host_port {
        port["hostPort"] = json!(p);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "wasm"}},
        "spec": {"runtimeClassName": "wasm", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "hello", "image": "hello-wasm:v1", "ports": [port]}]}
    }))?)
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates the pod and waits (by watch) until it is Ready; returns the elapsed time.
async fn create_until_ready(
    pods: &Api<Pod>,
    name: &str,
    host_port: Option<u16>,
) -> Result<Duration> {
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    let mut stream = pods.watch(&wp, "0").await?.boxed();
    let t = Instant::now();
    pods.create(&PostParams::default(), &pod(name, host_port)?)
        .await?;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await?
        .transpose()?
    {
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            if is_ready(&p) {
                return Ok(t.elapsed());
            }
        }
    }
    bail!("pod {name} did not become Ready")
}

fn start_server(dir: &Path) -> Result<Proc> {
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            "bench",
            "--data-dir",
        ])
        .arg(dir)
        .env("SKIFF_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("kubeconfig.yaml").exists() {
        if Instant::now() > deadline {
            bail!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Proc(child))
}

#[tokio::main]
async fn main() -> Result<()> {
    let component = hello_component()?;
    let wasmtime = wasmtime_cli()?;
    let dir = tempfile::tempdir()?;
    let _server = start_server(dir.path())?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["image", "import"])
        .arg(&component)
        .args(["--name", "hello-wasm:v1", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()?;
    if !out.status.success() {
        bail!("image import: {}", String::from_utf8_lossy(&out.stderr));
    }
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let pods: Api<Pod> = Api::namespaced(client, "default");

    // Warm the compile cache (and the image store) with one pod.
    let first = create_until_ready(&pods, "warm", None).await?;
    let mut ready = Vec::with_capacity(PODS);
    for i in 0..PODS {
        ready.push(create_until_ready(&pods, &format!("bench-{i}"), None).await?);
    }
    ready.sort();
    pods.delete_collection(&DeleteParams::default(), &Default::default())
        .await?;

    let host_port = free_port()?;
    create_until_ready(&pods, "served", Some(host_port)).await?;
    wait_port(host_port)?;
    let (skiff_rps, skiff_p50, skiff_p99) = load(host_port)?;

    let wt_port = free_port()?;
    let _wasmtime = Proc(
        Command::new(&wasmtime)
            .args([
                "serve",
                "-S",
                "cli=y",
                "--addr",
                &format!("127.0.0.1:{wt_port}"),
            ])
            .arg(&component)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", wasmtime.display()))?,
    );
    wait_port(wt_port)?;
    let (wt_rps, wt_p50, wt_p99) = load(wt_port)?;

    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| first Wasm pod create → Ready (cold compile) | {} | |",
        ms(first)
    );
    println!(
        "| create → Ready p50 ({PODS} pods, warm cache) | {} | ≤ 30 ms |",
        ms(pct(&ready, 0.5))
    );
    println!("| create → Ready p99 | {} | |", ms(pct(&ready, 0.99)));
    println!("| hello via Skiff hostPort: req/s ({CONNECTIONS} conns) | {skiff_rps:.0} | |");
    println!(
        "| hello via Skiff: p50 / p99 | {} / {} | |",
        ms(skiff_p50),
        ms(skiff_p99)
    );
    println!("| hello via `wasmtime serve`: req/s | {wt_rps:.0} | |");
    println!(
        "| hello via `wasmtime serve`: p50 / p99 | {} / {} | |",
        ms(wt_p50),
        ms(wt_p99)
    );
    println!(
        "| Skiff / wasmtime serve throughput | {:.0} % | ≥ 70 % |",
        100.0 * skiff_rps / wt_rps.max(1.0)
    );
    Ok(())
}
