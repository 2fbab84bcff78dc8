//! API benchmark: durable create and get latency through the real HTTPS API (kube client),
//! writes/s with 1 and 16 concurrent clients, a raw redb `Durability::Immediate` commit measured
//! in the same run for the ratio, and the idle server's RSS. Prints a table; asserts nothing.
//!
//! Run: `cargo bench --bench api`

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

const SAMPLES: usize = 500;
const THROUGHPUT_SECS: u64 = 5;

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SKIFF_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        if Instant::now() > deadline {
            bail!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Server {
        child,
        _dir: dir,
        kubeconfig,
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn cm(name: &str) -> Result<ConfigMap> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "data": {"k": "v"}}),
    )?)
}

/// A raw redb commit of one small value with `Durability::Immediate`, on the same filesystem.
fn raw_redb_commits(dir: &std::path::Path, n: usize) -> Result<Vec<Duration>> {
    const T: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("t");
    let db = redb::Database::create(dir.join("raw.redb"))?;
    let value = vec![b'x'; 300];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut t = txn.open_table(T)?;
            t.insert(format!("k{i}").as_str(), value.as_slice())?;
        }
        txn.commit()?;
        out.push(start.elapsed());
    }
    out.sort();
    Ok(out)
}

async fn throughput(api: &Api<ConfigMap>, clients: usize, prefix: &str) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let api = api.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let Ok(obj) = cm(&format!("{prefix}-{c}-{n}")) else {
                    break;
                };
                if api.create(&PostParams::default(), &obj).await.is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let server = start()?;
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    // Wait until ready, then let the server settle to measure idle RSS.
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.list(&Default::default()).await.is_err() {
        if Instant::now() > deadline {
            bail!("server not ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(server.child.id());

    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("warm-{i}"))?)
            .await?;
    }
    let mut creates = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let obj = cm(&format!("c-{i}"))?;
        let start = Instant::now();
        api.create(&PostParams::default(), &obj)
            .await
            .context("create")?;
        creates.push(start.elapsed());
    }
    creates.sort();
    let mut gets = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let start = Instant::now();
        api.get(&format!("c-{i}")).await.context("get")?;
        gets.push(start.elapsed());
    }
    gets.sort();
    let w1 = throughput(&api, 1, "t1").await?;
    let w16 = throughput(&api, 16, "t16").await?;
    let loaded_rss = rss_kib(server.child.id());
    let raw_dir = tempfile::tempdir()?;
    let raw = raw_redb_commits(raw_dir.path(), SAMPLES)?;

    let ratio = pct(&creates, 0.5).as_secs_f64() / pct(&raw, 0.5).as_secs_f64().max(1e-9);
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| durable create p50 (HTTPS, kube client) | {} | |",
        ms(pct(&creates, 0.5))
    );
    println!(
        "| durable create p99 | {} | ≤ 10 ms |",
        ms(pct(&creates, 0.99))
    );
    println!("| get p50 | {} | |", ms(pct(&gets, 0.5)));
    println!("| get p99 | {} | |", ms(pct(&gets, 0.99)));
    println!("| writes/s, 1 client | {w1:.0} | |");
    println!("| writes/s, 16 clients | {w16:.0} | |");
    println!(
        "| raw redb Immediate commit p50 | {} | |",
        ms(pct(&raw, 0.5))
    );
    println!(
        "| raw redb Immediate commit p99 | {} | |",
        ms(pct(&raw, 0.99))
    );
    println!("| create p50 / raw commit p50 | {ratio:.2}× | ≤ 3× |");
    println!(
        "| idle server RSS | {:.1} MB | ≤ 30 MB |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| server RSS after the run | {:.1} MB | |",
        loaded_rss as f64 / 1024.0
    );
    Ok(())
}
