//! The session driven as kubectl drives it, over an in-memory connection, against a real
//! loopback listener standing in for the component.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;

use super::*;
use crate::agent::portforward::spdy::Headers;
use crate::agent::wasm_ports::WasmPorts;

const WAIT: Duration = Duration::from_secs(10);

/// kubectl's side of a session.
struct Client {
    io: DuplexStream,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&f, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn open(&mut self, id: u32, kind: &str, port: u16, request: &str) {
        let headers: Headers = vec![
            ("streamtype".into(), kind.into()),
            ("port".into(), port.to_string()),
            ("requestid".into(), request.into()),
        ];
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers,
        })
        .await;
    }

    /// The next frame, or `None` at the end of the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let n = tokio::time::timeout(WAIT, self.io.read_buf(&mut self.buf))
                .await
                .expect("a frame in time")
                .unwrap();
            if n == 0 {
                return None;
            }
        }
    }

    /// Collects frames until both streams of a request are finished: (data bytes, error text).
    async fn finish(&mut self, error: u32, data: u32) -> (Vec<u8>, String) {
        let (mut got, mut err) = (Vec::new(), String::new());
        let (mut error_done, mut data_done) = (false, false);
        while !(error_done && data_done) {
            match self.next().await.expect("frames before the end") {
                Frame::Data {
                    stream_id,
                    flags,
                    data: d,
                } => {
                    if stream_id == data {
                        got.extend_from_slice(&d);
                        data_done |= flags & FLAG_FIN != 0;
                    } else if stream_id == error {
                        err.push_str(&String::from_utf8_lossy(&d));
                        error_done |= flags & FLAG_FIN != 0;
                    }
                }
                Frame::RstStream { stream_id, .. } if stream_id == data => data_done = true,
                _ => {}
            }
        }
        (got, err)
    }
}

/// A listener that answers one connection: reads to EOF, then writes "echo:" and what it read.
async fn echo_pod() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = c.read_to_end(&mut got).await;
                let _ = c.write_all(b"echo:").await;
                let _ = c.write_all(&got).await;
            });
        }
    });
    (addr, task)
}

fn start(ports: &WasmPorts) -> Client {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let target = Arc::new(Target {
        namespace: "default".into(),
        pod: "web".into(),
        ports: ports.clone(),
    });
    tokio::spawn(run(theirs, target));
    Client {
        io: ours,
        enc: Encoder::default(),
        dec: Decoder::default(),
        buf: BytesMut::new(),
    }
}

fn replied(f: Option<Frame>, id: u32) {
    assert!(
        matches!(f, Some(Frame::SynReply { stream_id, .. }) if stream_id == id),
        "{f:?}"
    );
}

#[tokio::test]
async fn forwards_both_ways_with_half_close() {
    let ports = WasmPorts::default();
    let (addr, _pod) = echo_pod().await;
    let _reg = ports.register("default", "web", vec![(8080, addr)], None);
    let mut c = start(&ports);
    c.open(1, "error", 8080, "0").await;
    replied(c.next().await, 1);
    c.send(Frame::Data {
        stream_id: 1,
        flags: FLAG_FIN,
        data: Bytes::new(),
    })
    .await;
    c.open(3, "data", 8080, "0").await;
    replied(c.next().await, 3);
    c.send(Frame::Data {
        stream_id: 3,
        flags: 0,
        data: Bytes::from_static(b"hello "),
    })
    .await;
    // The pod answers only after kubectl's FIN reached it as the end of its input.
    c.send(Frame::Data {
        stream_id: 3,
        flags: FLAG_FIN,
        data: Bytes::from_static(b"pod"),
    })
    .await;
    let (got, err) = c.finish(1, 3).await;
    assert_eq!(got, b"echo:hello pod");
    assert_eq!(err, "");
    // Pings are answered.
    c.send(Frame::Ping { id: 7 }).await;
    assert_eq!(c.next().await, Some(Frame::Ping { id: 7 }));
}

#[tokio::test]
async fn an_unserved_port_is_reported_on_the_error_stream() {
    let ports = WasmPorts::default();
    let (addr, _pod) = echo_pod().await;
    let _reg = ports.register("default", "web", vec![(8080, addr)], None);
    let mut c = start(&ports);
    c.open(1, "error", 9999, "0").await;
    replied(c.next().await, 1);
    c.open(3, "data", 9999, "0").await;
    replied(c.next().await, 3);
    let (got, err) = c.finish(1, 3).await;
    assert!(got.is_empty());
    assert!(
        err.contains("does not serve port 9999") && err.contains("containerPort 8080"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_streams_are_reset() {
    let mut c = start(&WasmPorts::default());
    c.open(1, "stdin", 8080, "0").await;
    assert!(matches!(
        c.next().await,
        Some(Frame::RstStream { stream_id: 1, .. })
    ));
    c.open(3, "data", 0, "0").await;
    assert!(matches!(
        c.next().await,
        Some(Frame::RstStream { stream_id: 3, .. })
    ));
    // Even stream ids belong to the server.
    c.open(4, "data", 8080, "1").await;
    assert!(matches!(
        c.next().await,
        Some(Frame::RstStream { stream_id: 4, .. })
    ));
}

#[tokio::test]
async fn the_pod_connection_closes_when_kubectl_goes() {
    let ports = WasmPorts::default();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _reg = ports.register(
        "default",
        "web",
        vec![(8080, l.local_addr().unwrap())],
        None,
    );
    let mut c = start(&ports);
    c.open(1, "error", 8080, "0").await;
    replied(c.next().await, 1);
    c.open(3, "data", 8080, "0").await;
    replied(c.next().await, 3);
    let (mut pod, _) = tokio::time::timeout(WAIT, l.accept())
        .await
        .unwrap()
        .unwrap();
    // kubectl is killed: its connection just ends.
    drop(c);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, pod.read_to_end(&mut rest))
        .await
        .expect("the pod connection closed")
        .unwrap();
    assert_eq!(n, 0);
}
