//! The Service proxy against the real kernel, inside a network namespace of its own: the
//! test thread `unshare`s its network namespace (the `nft` and `ip` it runs inherit it), so
//! nothing on the host is touched and no packet leaves the namespace. Endpoints are TCP/UDP
//! listeners on addresses given to the namespace's loopback; ClusterIPs are routed to
//! loopback so a connection reaches the output hook, where the proxy DNATs it.
//!
//! Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and `nft`. Without them the test is skipped
//! with the reason printed, unless `SKIFF_REQUIRE_CONTAINERD=1` (CI), which makes it fail.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_node_runtime::proxy::{ProxyConfig, ServiceProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const TABLE: &str = "skiff_proxy_test";
/// Endpoint addresses (on the namespace's loopback) and the node's address.
const EP_A: &str = "10.244.1.10";
const EP_B: &str = "10.244.1.11";
const NODE_IP: &str = "10.244.0.1";
/// Bound on every network wait of the test.
const WAIT: Duration = Duration::from_secs(3);

/// Skips (or, with `SKIFF_REQUIRE_CONTAINERD=1`, fails) when the machine cannot run this.
fn unavailable(why: &str) -> bool {
    if std::env::var("SKIFF_REQUIRE_CONTAINERD").as_deref() == Ok("1") {
        panic!("{why}; SKIFF_REQUIRE_CONTAINERD=1 makes this a failure");
    }
    eprintln!("skipping the nftables proxy test: {why}");
    true
}

fn sh(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

fn nft_list() -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "table", "ip", TABLE])
        .output()
        .expect("run nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a thread of its own in a new network namespace (the "node"), which goes with
/// the thread; skips (or fails, when required) without nft or the right to make one.
fn in_private_netns(f: impl FnOnce() + Send + 'static) {
    if Command::new("nft").arg("--version").output().is_err() {
        unavailable("nft is not installed");
        return;
    }
    let joined = std::thread::spawn(|| {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let err = std::io::Error::last_os_error();
            unavailable(&format!("cannot create a network namespace: {err}"));
            return;
        }
        f();
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn service_proxy_programs_the_kernel_in_a_private_network_namespace() {
    in_private_netns(|| {
        sh("ip", &["link", "set", "lo", "up"]);
        for addr in [EP_A, EP_B, NODE_IP] {
            sh("ip", &["addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        }
        sh("ip", &["route", "add", "10.96.0.0/12", "dev", "lo"]);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(scenario());
    });
}

fn service(name: &str, ip: &str, kind: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": kind, "clusterIP": ip, "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "echo", "port": 53, "protocol": "UDP"},
        ]}
    }))
    .expect("service")
}

fn slice(endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "echo", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

/// A TCP endpoint: says its name, then echoes. A UDP endpoint: answers its name.
async fn endpoint(ip: &'static str, tag: &'static str) {
    let tcp = TcpListener::bind((ip, 8080)).await.expect("bind tcp");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let _ = conn.write_all(tag.as_bytes()).await;
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let udp = UdpSocket::bind((ip, 5353)).await.expect("bind udp");
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(tag.as_bytes(), from).await;
        }
    });
}

/// Connects and reads the endpoint's name; the open stream for further use.
async fn hello(addr: &str) -> (String, TcpStream) {
    let addr: SocketAddr = addr.parse().expect("addr");
    let mut conn = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("connecting to {addr} timed out"))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let mut tag = [0u8; 1];
    tokio::time::timeout(WAIT, conn.read_exact(&mut tag))
        .await
        .expect("read timed out")
        .expect("read");
    (String::from_utf8_lossy(&tag).into_owned(), conn)
}

async fn echo(conn: &mut TcpStream) {
    conn.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::time::timeout(WAIT, conn.read_exact(&mut back))
        .await
        .expect("echo timed out")
        .expect("echo");
    assert_eq!(&back, b"ping");
}

async fn udp_tag(addr: &str) -> String {
    let socket = UdpSocket::bind("0.0.0.0:0").await.expect("bind");
    socket.connect(addr).await.expect("connect udp");
    socket.send(b"?").await.expect("send");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("udp answer timed out")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn scenario() {
    endpoint(EP_A, "A").await;
    endpoint(EP_B, "B").await;
    let cfg = ProxyConfig {
        node_name: "n1".into(),
        node_ips: vec![NODE_IP.parse::<Ipv4Addr>().unwrap()],
        cluster_cidr: "10.42.0.0/16".into(),
        table: TABLE.into(),
        local_dns: None,
        activator: None,
    };
    let services = vec![
        service("web", "10.96.0.10", "NodePort"),
        service("empty", "10.96.0.11", "ClusterIP"),
    ];
    let mut proxy = match ServiceProxy::new(cfg.clone()).await {
        Ok(proxy) => proxy,
        Err(err) => {
            unavailable(&format!("cannot set up the proxy: {err}"));
            return;
        }
    };
    let only_a = [slice(json!([{"addresses": [EP_A], "nodeName": "n1"}]))];
    let stats = proxy.sync(&services, &only_a).await.expect("first sync");
    assert!(stats.full && stats.applied, "{stats:?}");
    // One pod, two ports: two endpoints (address and port).
    assert_eq!((stats.service_ports, stats.endpoints), (4, 2), "{stats:?}");

    // ClusterIP (TCP and UDP) and NodePort reach the endpoint.
    let (tag, mut established) = hello("10.96.0.10:80").await;
    assert_eq!(tag, "A");
    echo(&mut established).await;
    assert_eq!(udp_tag("10.96.0.10:53").await, "A");
    assert_eq!(hello(&format!("{NODE_IP}:30080")).await.0, "A");

    // No endpoints: refused at once.
    let started = Instant::now();
    let refused = tokio::time::timeout(WAIT, TcpStream::connect("10.96.0.11:80"))
        .await
        .expect("connecting to a Service without endpoints must not hang");
    match refused {
        Err(err) => assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}"),
        Ok(_) => panic!("a Service without endpoints accepted a connection"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let listing = nft_list().expect("the table exists");
    for expected in [
        "map service-ips",
        "numgen random mod 1",
        "10.96.0.10 . tcp . 80",
        "reject with tcp reset",
    ] {
        assert!(
            listing.contains(expected),
            "{expected:?} missing from:\n{listing}"
        );
    }

    // Nothing changed: no transaction.
    let stats = proxy.sync(&services, &only_a).await.expect("idle sync");
    assert!(!stats.applied, "{stats:?}");

    // Agent restart: a new proxy takes the table over; the open connection survives.
    drop(proxy);
    let mut proxy = ServiceProxy::new(cfg).await.expect("take over");
    let stats = proxy.sync(&services, &only_a).await.expect("takeover sync");
    assert!(stats.full && stats.applied, "{stats:?}");
    echo(&mut established).await;
    assert_eq!(hello("10.96.0.10:80").await.0, "A");

    // Incremental: A terminating, B ready → only B; then nothing ready but A serving.
    let a_terminating = json!({"addresses": [EP_A], "nodeName": "n1",
        "conditions": {"ready": false, "serving": true, "terminating": true}});
    let swapped = [slice(
        json!([a_terminating, {"addresses": [EP_B], "nodeName": "n2"}]),
    )];
    let stats = proxy
        .sync(&services, &swapped)
        .await
        .expect("incremental sync");
    assert!(!stats.full && stats.applied, "{stats:?}");
    assert!(
        stats.chains_written > 0 && stats.chains_written < 8,
        "{stats:?}"
    );
    for _ in 0..5 {
        assert_eq!(hello("10.96.0.10:80").await.0, "B");
    }
    assert_eq!(udp_tag("10.96.0.10:53").await, "B");
    let fallback = [slice(json!([a_terminating]))];
    proxy
        .sync(&services, &fallback)
        .await
        .expect("fallback sync");
    assert_eq!(hello("10.96.0.10:80").await.0, "A");

    // The Service loses its endpoints, then is deleted: refused, then no rules at all.
    proxy.sync(&services, &[]).await.expect("no endpoints");
    let refused = tokio::time::timeout(WAIT, TcpStream::connect("10.96.0.10:80")).await;
    assert!(
        matches!(refused, Ok(Err(ref e)) if e.kind() == ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    let stats = proxy.sync(&[], &[]).await.expect("deleted");
    assert!(
        stats.chains_deleted > 0 || stats.elements_deleted > 0,
        "{stats:?}"
    );
    let listing = nft_list().expect("the table exists");
    assert!(!listing.contains("10.96.0.10"), "{listing}");

    proxy.shutdown().await.expect("shutdown");
    assert!(nft_list().is_none(), "the table is left after shutdown");
}

/// A thread in a network namespace of its own (a "pod"): runs `setup` commands there, then
/// `body` on a runtime of its own. Its thread id names the namespace to `ip link … netns`.
struct Pod {
    tid: i32,
    go: std::sync::mpsc::Sender<()>,
    done: std::thread::JoinHandle<String>,
}

fn pod<F, Fut>(setup: Vec<Vec<String>>, body: F) -> Option<Pod>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = String>,
{
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let done = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's namespace.
        let ok = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0;
        // SAFETY: gettid(2) has no preconditions.
        let _ = tid_tx.send(ok.then(|| unsafe { libc::gettid() }));
        if !ok || go_rx.recv_timeout(WAIT * 10).is_err() {
            return String::new();
        }
        for cmd in &setup {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            sh("ip", &args);
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(body())
    });
    let tid = tid_rx.recv().ok().flatten()?;
    Some(Pod { tid, go, done })
}

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Pod → ClusterIP → pod on the same bridge: the reply is bridged, and must still be
/// un-DNATed (br_netfilter), or the proxy must have masqueraded the connection.
#[test]
fn a_pod_reaches_a_pod_on_the_same_bridge_through_a_cluster_ip() {
    in_private_netns(|| {
        let server = pod(
            vec![
                args("link set lo up"),
                args("addr add 10.42.0.11/24 dev b1"),
                args("link set b1 up"),
                args("route add default via 10.42.0.1"),
            ],
            || async {
                let listener = TcpListener::bind("10.42.0.11:8080").await.expect("bind");
                let accepted = tokio::time::timeout(WAIT * 3, listener.accept()).await;
                let Ok(Ok((mut conn, peer))) = accepted else {
                    return "no connection".into();
                };
                let _ = conn.write_all(peer.ip().to_string().as_bytes()).await;
                let _ = conn.shutdown().await;
                peer.ip().to_string()
            },
        );
        let client = pod(
            vec![
                args("link set lo up"),
                args("addr add 10.42.0.10/24 dev a1"),
                args("link set a1 up"),
                args("route add default via 10.42.0.1"),
            ],
            || async {
                let connect = TcpStream::connect("10.96.0.20:80");
                let mut conn = match tokio::time::timeout(WAIT, connect).await {
                    Ok(Ok(conn)) => conn,
                    other => return format!("connect failed: {other:?}"),
                };
                let mut seen = String::new();
                let read = conn.read_to_string(&mut seen);
                match tokio::time::timeout(WAIT, read).await {
                    Ok(Ok(_)) => seen,
                    other => format!("read failed: {other:?}"),
                }
            },
        );
        let (Some(server), Some(client)) = (server, client) else {
            unavailable("cannot create the pods' network namespaces");
            return;
        };
        // The node: a bridge with the pods' veths, forwarding on.
        sh("ip", &["link", "set", "lo", "up"]);
        sh("ip", &["link", "add", "br0", "type", "bridge"]);
        sh("ip", &["addr", "add", "10.42.0.1/24", "dev", "br0"]);
        sh("ip", &["link", "set", "br0", "up"]);
        for (node_end, pod_end, tid) in [("a0", "a1", client.tid), ("b0", "b1", server.tid)] {
            sh(
                "ip",
                &[
                    "link", "add", node_end, "type", "veth", "peer", "name", pod_end,
                ],
            );
            sh("ip", &["link", "set", pod_end, "netns", &tid.to_string()]);
            sh("ip", &["link", "set", node_end, "master", "br0"]);
            sh("ip", &["link", "set", node_end, "up"]);
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut proxy = runtime
            .block_on(ServiceProxy::new(ProxyConfig {
                node_name: "n1".into(),
                node_ips: vec![],
                cluster_cidr: "10.42.0.0/16".into(),
                table: TABLE.into(),
                local_dns: None,
                activator: None,
            }))
            .expect("proxy");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}
        }))
        .expect("service");
        let slices = [slice(
            json!([{"addresses": ["10.42.0.11"], "nodeName": "n1"}]),
        )];
        runtime.block_on(proxy.sync(&[svc], &slices)).expect("sync");

        server.go.send(()).expect("start server");
        // Let the server bind before the client connects.
        std::thread::sleep(Duration::from_millis(300));
        client.go.send(()).expect("start client");
        let client_saw = client.done.join().expect("client");
        let server_saw = server.done.join().expect("server");
        // With br_netfilter the endpoint sees the client pod; without, the node (masquerade).
        let expected = match proxy.bridge_mode() {
            skiff_node_runtime::proxy::BridgeMode::BrNetfilter => "10.42.0.10",
            skiff_node_runtime::proxy::BridgeMode::Masquerade => "10.42.0.1",
        };
        assert_eq!(
            client_saw,
            expected,
            "bridge mode {:?}",
            proxy.bridge_mode()
        );
        assert_eq!(server_saw, expected);
        runtime.block_on(proxy.shutdown()).expect("shutdown");
    });
}
