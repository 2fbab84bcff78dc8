//! `wasi:http/proxy` components: serving, a fresh instance per request, keep-alive, failures
//! (trap, memory, deadline) reported and answered with 5xx, shutdown freeing the ports.

mod wasm_support;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use skiff_node_runtime::wasm::{ExitReason, HttpServer};
use wasm_support::{get_once, instance, load, log_text, runtime, HttpClient};

fn listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

async fn serve(
    dir: &std::path::Path,
    tune: impl FnOnce(&mut skiff_node_runtime::wasm::InstanceConfig),
) -> (HttpServer, SocketAddr) {
    let comp = load("hello_wasm").await;
    let mut cfg = instance(dir, &["hello"]);
    cfg.env.push(("VERSION".into(), "v7".into()));
    tune(&mut cfg);
    let server = runtime()
        .serve_http(&comp, cfg, vec![listener()])
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_requests_on_a_keep_alive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(dir.path(), |_| {}).await;
    let (first, second, env) = tokio::task::spawn_blocking(move || {
        let mut client = HttpClient::connect(addr);
        (
            client.get("/first"),
            client.get("/second?x=1"),
            client.get("/env/VERSION"),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "Hello from Skiff! version=v7 path=/first\n")
    );
    assert_eq!(
        (second.status, second.body.as_str()),
        (200, "Hello from Skiff! version=v7 path=/second?x=1\n")
    );
    assert_eq!((env.status, env.body.as_str()), (200, "v7"));
    let log = log_text(dir.path());
    assert!(
        log.contains("GET /first\n") && log.contains("GET /second"),
        "{log}"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_every_listener_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let comp = load("hello_wasm").await;
    let (a, b) = (listener(), listener());
    let expected = vec![a.local_addr().unwrap(), b.local_addr().unwrap()];
    let server = runtime()
        .serve_http(&comp, instance(dir.path(), &["hello"]), vec![a, b])
        .await
        .unwrap();
    assert_eq!(server.local_addrs(), expected);
    for addr in expected {
        assert_eq!(get_once(addr, "/healthz").await.body, "ok");
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_request_gets_504_and_is_reported_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(dir.path(), |cfg| {
        cfg.deadline = Some(Duration::from_secs(1))
    })
    .await;
    let started = Instant::now();
    let spin = tokio::spawn(get_once(addr, "/spin"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Served meanwhile (the spinning guest yields at every epoch tick).
    let ok = get_once(addr, "/healthz").await;
    assert_eq!(
        (ok.status, started.elapsed() < Duration::from_millis(900)),
        (200, true)
    );
    let spun = spin.await.unwrap();
    assert_eq!(spun.status, 504);
    let failure = tokio::time::timeout(Duration::from_secs(5), server.failures().recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failure.path.as_str(), failure.reason),
        ("/spin", ExitReason::DeadlineExceeded)
    );
    assert_eq!(
        get_once(addr, "/healthz").await.status,
        200,
        "still serving"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_and_memory_limit_are_500s_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(dir.path(), |cfg| cfg.memory_limit_bytes = Some(32 << 20)).await;
    // Vec::with_capacity overflows: the guest panics, a trap.
    let trapped = get_once(addr, "/alloc?mb=4000000000").await;
    assert_eq!(trapped.status, 500);
    let failure = server.failures().recv().await.unwrap();
    assert!(
        matches!(&failure.reason, ExitReason::Trapped(m) if m.contains("wasm trap")),
        "{failure:?}"
    );
    assert_eq!(failure.path, "/alloc");
    // A refused allocation the guest handles itself is its own answer, not a failure.
    let refused = get_once(addr, "/alloc?mb=64").await;
    assert_eq!(refused.status, 500);
    assert!(
        refused.body.contains("allocation failed"),
        "{}",
        refused.body
    );
    assert_eq!(get_once(addr, "/alloc?mb=8").await.status, 200);
    // One that aborts (Vec<Vec<u8>> of 100M entries: 1.2 GB) hits the limit: out of memory.
    let oom = get_once(addr, "/alloc?mb=100000000").await;
    assert_eq!(oom.status, 500);
    let failure = server.failures().recv().await.unwrap();
    assert_eq!(failure.reason, ExitReason::OutOfMemory);
    assert!(
        server.failures().try_recv().is_err(),
        "nothing else reported"
    );
    assert!(
        log_text(dir.path()).contains("boom") || log_text(dir.path()).contains("capacity overflow")
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preopened_files_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("x"), "from the host").unwrap();
    let (server, addr) = serve(&dir.path().join("logs"), |cfg| {
        cfg.preopens.push(skiff_node_runtime::wasm::Preopen {
            host_path: config.clone(),
            guest_path: "/config".into(),
            read_only: true,
        })
    })
    .await;
    let r = get_once(addr, "/file?path=/config/x").await;
    assert_eq!((r.status, r.body.as_str()), (200, "from the host"));
    assert_eq!(
        get_once(addr, "/file?path=/config/missing").await.status,
        404
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_frees_the_port_even_with_an_idle_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(dir.path(), |_| {}).await;
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = tokio::task::spawn_blocking(move || {
        let mut client = HttpClient::connect(addr);
        assert_eq!(client.get("/healthz").status, 200);
        client
    })
    .await
    .unwrap();
    let started = Instant::now();
    server.shutdown(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
    TcpListener::bind(addr).expect("the port is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_requests_still_running_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(dir.path(), |_| {}).await;
    let spin = tokio::task::spawn_blocking(move || {
        let mut client = HttpClient::connect(addr);
        // The connection is dropped, so reading the response fails.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.get("/spin"))).is_err()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    server.shutdown(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(
        spin.await.unwrap(),
        "the spinning request's connection was closed"
    );
    TcpListener::bind(addr).expect("the port is free again");
}
