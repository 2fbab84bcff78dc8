//! One forwarded connection: a request's data stream spliced to the Wasm pod's listener for
//! its port. kubectl's bytes go to the pod; its FIN half-closes the pod connection. The pod's
//! bytes go back as DATA frames; its end of stream ends the forward (FIN on the data stream).
//! Setup failures — a port the pod does not serve, a listener that does not answer — are
//! written on the error stream, which kubectl prints; the error stream is always closed last,
//! which tells kubectl the request is over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::spdy::{Frame, FLAG_FIN};
use super::Target;

/// How long connecting to the component's listener may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most pod bytes carried by one DATA frame.
const CHUNK: usize = 32 * 1024;

/// A request whose streams have both arrived.
pub struct Pair {
    pub request: String,
    pub port: u16,
    pub error_stream: u32,
    pub data_stream: u32,
}

/// A DATA frame carrying `msg` on `stream_id`.
pub fn message(stream_id: u32, msg: String) -> Frame {
    Frame::Data {
        stream_id,
        flags: 0,
        data: Bytes::from(msg),
    }
}

/// The empty DATA frame with FIN that closes our side of `stream_id`.
pub fn fin(stream_id: u32) -> Frame {
    Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    }
}

/// Where the pod serves `port`, or the message kubectl should print.
fn resolve(target: &Target, port: u16) -> Result<SocketAddr, String> {
    let Some(served) = target.ports.lookup(&target.namespace, &target.pod) else {
        return Err(format!(
            "error forwarding port {port} to pod {}/{}: the pod no longer runs a WebAssembly HTTP component on this node",
            target.namespace, target.pod
        ));
    };
    served
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, addr)| *addr)
        .ok_or_else(|| {
            let list: Vec<String> = served.iter().map(|(p, _)| p.to_string()).collect();
            format!(
                "error forwarding port {port} to pod {}/{}: the pod does not serve port {port}; its WebAssembly components serve containerPort {}",
                target.namespace,
                target.pod,
                list.join(", ")
            )
        })
}

/// Runs one forwarded connection to its end; returns the request id.
pub async fn run(
    pair: Pair,
    target: Arc<Target>,
    inbound: mpsc::Receiver<Bytes>,
    reset: oneshot::Receiver<()>,
    out: mpsc::Sender<Frame>,
) -> String {
    let setup = async {
        let addr = resolve(&target, pair.port)?;
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => Ok(tcp),
            Ok(Err(e)) => Err(format!(
                "error forwarding port {} to pod {}/{}: cannot connect to its listener {addr}: {e}",
                pair.port, target.namespace, target.pod
            )),
            Err(_) => Err(format!(
                "error forwarding port {} to pod {}/{}: connecting to its listener {addr} timed out",
                pair.port, target.namespace, target.pod
            )),
        }
    };
    match setup.await {
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            splice(&pair, tcp, inbound, reset, &out).await;
        }
        Err(msg) => {
            tracing::debug!(error = %msg, "cannot forward");
            let _ = out.send(message(pair.error_stream, msg)).await;
            let _ = out.send(fin(pair.data_stream)).await;
        }
    }
    let _ = out.send(fin(pair.error_stream)).await;
    pair.request
}

/// Copies both ways until the pod ends its side, kubectl resets, or a side fails.
async fn splice(
    pair: &Pair,
    tcp: TcpStream,
    mut inbound: mpsc::Receiver<Bytes>,
    mut reset: oneshot::Receiver<()>,
    out: &mpsc::Sender<Frame>,
) {
    let (mut pod_rd, mut pod_wr) = tcp.into_split();
    let up = async {
        while let Some(chunk) = inbound.recv().await {
            pod_wr.write_all(&chunk).await?;
        }
        // kubectl's FIN: the pod sees the end of its request.
        pod_wr.shutdown().await
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = pod_rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let frame = Frame::Data {
                stream_id: pair.data_stream,
                flags: 0,
                data: Bytes::copy_from_slice(&buf[..n]),
            };
            if out.send(frame).await.is_err() {
                return Err(std::io::Error::other("the session ended"));
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::pin!(up, down);
    let mut up_done = false;
    let finish = loop {
        tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "writing to the pod failed");
                    break true;
                }
                tracing::debug!("kubectl finished sending");
            }
            r = &mut down => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "reading from the pod failed");
                }
                break true;
            }
            _ = &mut reset => {
                tracing::debug!("kubectl reset the connection");
                break false;
            }
        }
    };
    if finish {
        let _ = out.send(fin(pair.data_stream)).await;
    }
    tracing::debug!("forwarded connection closed");
}
