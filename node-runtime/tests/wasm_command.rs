//! `wasi:cli/command` components: exit codes, traps, deadlines, kills, memory limits, env,
//! preopens and logs — with the real test guests (scripts/build-guests.sh).

mod wasm_support;

use std::time::{Duration, Instant};

use skiff_node_runtime::wasm::{ComponentWorld, ExitReason, Preopen};
use wasm_support::{instance, load, log_text, runtime};

#[tokio::test]
async fn wasm_job_exits_zero_and_logs_its_sum() {
    let comp = load("wasm-job").await;
    assert_eq!(comp.world, ComponentWorld::Command);
    let dir = tempfile::tempdir().unwrap();
    let mut handle = runtime()
        .start_command(&comp, instance(dir.path(), &["wasm-job"]))
        .await
        .unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(0));
    assert_eq!(
        handle.wait().await,
        ExitReason::Exited(0),
        "wait again: same reason"
    );
    let log = log_text(dir.path());
    assert!(log.contains("sum: 639\n"), "{log}");
    let raw = std::fs::read_to_string(dir.path().join("0.log")).unwrap();
    assert!(
        raw.lines().any(|l| l.ends_with(" stdout F sum: 639")),
        "CRI records: {raw}"
    );
}

#[tokio::test]
async fn main_returning_failure_exits_one() {
    let comp = load("wasm-job").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(dir.path(), &["wasm-job"]);
    cfg.env.push(("COUNT".into(), "many".into()));
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(1));
    // Unbuffered stderr arrives in pieces (P records); the reader joins them into the line.
    let log = log_text(dir.path());
    assert!(
        log.contains("wasm-job: COUNT must be a non-negative integer, got \"many\"\n"),
        "{log}"
    );
}

#[tokio::test]
async fn exit_with_code_is_reported() {
    let comp = load("fail-exit").await;
    let dir = tempfile::tempdir().unwrap();
    let mut handle = runtime()
        .start_command(&comp, instance(dir.path(), &["fail-exit"]))
        .await
        .unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(3));
    assert!(log_text(dir.path()).contains("about to fail"));
}

#[tokio::test]
async fn panic_is_a_trap_with_its_message_in_the_log() {
    let comp = load("trap").await;
    let dir = tempfile::tempdir().unwrap();
    let mut handle = runtime()
        .start_command(&comp, instance(dir.path(), &["trap"]))
        .await
        .unwrap();
    match handle.wait().await {
        ExitReason::Trapped(msg) => assert!(
            msg.contains("wasm trap") && msg.contains("unreachable"),
            "{msg}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    let log = log_text(dir.path());
    assert!(
        log.contains("about to trap") && log.contains("boom"),
        "{log}"
    );
}

/// Two guests spin on a single-threaded tokio runtime: they must yield at every epoch tick, so
/// a third guest still completes promptly; both then stop at their deadline.
#[tokio::test(flavor = "current_thread")]
async fn spinning_guests_yield_and_stop_at_their_deadline() {
    let spin = load("spin").await;
    let job = load("wasm-job").await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut spinners = Vec::new();
    for i in 0..2 {
        let sub = dir.path().join(format!("spin{i}"));
        let mut cfg = instance(&sub, &["spin"]);
        cfg.deadline = Some(Duration::from_secs(2));
        spinners.push((runtime().start_command(&spin, cfg).await.unwrap(), sub));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let job_dir = dir.path().join("job");
    let mut handle = runtime()
        .start_command(&job, instance(&job_dir, &["wasm-job"]))
        .await
        .unwrap();
    let job_started = Instant::now();
    assert_eq!(handle.wait().await, ExitReason::Exited(0));
    assert!(
        job_started.elapsed() < Duration::from_secs(1),
        "job took {:?}",
        job_started.elapsed()
    );
    for (mut spinner, sub) in spinners {
        assert_eq!(spinner.wait().await, ExitReason::DeadlineExceeded);
        assert!(log_text(&sub).contains("spinning"));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn one_second_deadline() {
    let comp = load("spin").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(dir.path(), &["spin"]);
    cfg.deadline = Some(Duration::from_secs(1));
    let started = Instant::now();
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn kill_stops_a_spinning_guest() {
    let comp = load("spin").await;
    let dir = tempfile::tempdir().unwrap();
    let mut handle = runtime()
        .start_command(&comp, instance(dir.path(), &["spin"]))
        .await
        .unwrap();
    // wait() is cancel-safe: time it out, then kill and wait again.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), handle.wait())
            .await
            .is_err()
    );
    let killed_at = Instant::now();
    handle.kill();
    assert_eq!(handle.wait().await, ExitReason::Killed);
    assert!(
        killed_at.elapsed() < Duration::from_millis(500),
        "{:?}",
        killed_at.elapsed()
    );
    assert_eq!(handle.wait().await, ExitReason::Killed);
}

#[tokio::test]
async fn kill_and_deadline_reach_a_guest_waiting_in_the_host() {
    let comp = load("sleeper").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(&dir.path().join("a"), &["sleeper"]);
    cfg.env.push(("SECONDS".into(), "30".into()));
    let mut handle = runtime().start_command(&comp, cfg.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    handle.kill();
    assert_eq!(handle.wait().await, ExitReason::Killed);
    assert!(
        killed_at.elapsed() < Duration::from_millis(200),
        "{:?}",
        killed_at.elapsed()
    );

    cfg.deadline = Some(Duration::from_millis(500));
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::DeadlineExceeded);
}

#[tokio::test]
async fn sleeper_finishes_normally() {
    let comp = load("sleeper").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(dir.path(), &["sleeper"]);
    cfg.env.push(("SECONDS".into(), "1".into()));
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(0));
    let log = log_text(dir.path());
    assert!(log.contains("started\n") && log.contains("done\n"), "{log}");
}

#[tokio::test]
async fn memory_limit_is_out_of_memory() {
    let comp = load("hog").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(dir.path(), &["hog"]);
    cfg.memory_limit_bytes = Some(32 << 20);
    cfg.deadline = Some(Duration::from_secs(30));
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::OutOfMemory);
    let log = log_text(dir.path());
    assert!(
        log.contains("allocating") && log.contains("allocated 16 MiB"),
        "{log}"
    );
    assert!(!log.contains("allocated 32 MiB"), "{log}");
}

#[tokio::test]
async fn env_and_read_only_preopen() {
    let comp = load("env-reader").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("greeting"), "hello from a file\n").unwrap();
    let mut cfg = instance(&dir.path().join("logs"), &["env-reader"]);
    cfg.env.push(("GREETING".into(), "hi there".into()));
    cfg.preopens.push(Preopen {
        host_path: config.clone(),
        guest_path: "/config".into(),
        read_only: true,
    });
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(0));
    let log = log_text(&dir.path().join("logs"));
    assert!(
        log.contains("GREETING=hi there\n") && log.contains("file=hello from a file\n"),
        "{log}"
    );
}

#[tokio::test]
async fn missing_preopen_and_missing_file_are_reported() {
    let comp = load("env-reader").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = instance(dir.path(), &["env-reader"]);
    cfg.preopens.push(Preopen {
        host_path: dir.path().join("nope"),
        guest_path: "/config".into(),
        read_only: true,
    });
    let err = runtime()
        .start_command(&comp, cfg)
        .await
        .err()
        .expect("preopen error");
    assert!(err.to_string().contains("nope"), "{err}");

    // Without the preopen the guest cannot read the file and says so on stderr.
    let mut cfg = instance(dir.path(), &["env-reader"]);
    cfg.env.push(("GREETING".into(), "x".into()));
    let mut handle = runtime().start_command(&comp, cfg).await.unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(1));
    assert!(log_text(dir.path()).contains("cannot read /config/greeting"));
}

#[tokio::test]
async fn an_http_component_is_not_a_command() {
    let comp = load("hello_wasm").await;
    assert_eq!(comp.world, ComponentWorld::HttpProxy);
    let dir = tempfile::tempdir().unwrap();
    let err = runtime()
        .start_command(&comp, instance(dir.path(), &["hello"]))
        .await
        .err()
        .expect("error");
    assert!(err.to_string().contains("not a Command"), "{err}");
}
