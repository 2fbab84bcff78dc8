//! CPU limits: a spinning guest limited to 200 millicores uses about a fifth of a core.
//! (Alone in its binary: it measures the process's CPU time.)

mod wasm_support;

use std::time::Duration;

use skiff_node_runtime::wasm::ExitReason;
use wasm_support::{instance, load, runtime};

/// User + system CPU time of this process, from /proc/self/stat (clock ticks, 100 per second).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the command name they are at 11 and 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn spin_cpu(limit: Option<u64>) -> Duration {
    let comp = load("spin").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(dir.path(), &["spin"]);
    cfg.cpu_limit_millis = limit;
    cfg.deadline = Some(Duration::from_secs(2));
    let before = process_cpu();
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::DeadlineExceeded);
    process_cpu() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limit_throttles_a_spinning_guest() {
    load("spin").await; // compile outside the measurement
    let unlimited = spin_cpu(None).await;
    let limited = spin_cpu(Some(200)).await;
    eprintln!("2 s of spinning: unlimited {unlimited:?}, 200m {limited:?}");
    // Other processes (builds) may share the cores, so compare with the unlimited run rather
    // than with wall time: 200m is a fifth; allow for the 10 ms accounting granularity.
    assert!(
        unlimited > Duration::from_millis(700),
        "unlimited {unlimited:?}"
    );
    assert!(limited > Duration::from_millis(100), "limited {limited:?}");
    assert!(
        limited.as_secs_f64() < unlimited.as_secs_f64() * 0.45,
        "limited {limited:?} vs {unlimited:?}"
    );
}
