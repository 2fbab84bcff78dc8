//! One connection through the activator: find its Service port, hold it until an endpoint is
//! ready (or answer why not), then connect, replay what the client sent meanwhile, and splice.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::targets::{self, Target};
use super::{Shared, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BUFFERED, RETRY_PAUSE};

/// How long a refused client gets to send its request line (to tell an HTTP client, who gets
/// a 503 page, from another, whose connection is just closed).
const SNIFF_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
/// How long a refused client's remaining input is drained after the answer, so closing the
/// socket does not reset the connection before the client read the answer.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The address a DNATed connection was sent to.
fn original_dst(stream: &TcpStream) -> std::io::Result<SocketAddrV4> {
    let addr = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::OriginalDst)
        .map_err(std::io::Error::from)?;
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}

/// Why a connection is answered instead of forwarded.
enum Refusal {
    /// The client went away while held: nothing to answer.
    ClientGone,
    /// Answer this (a 503 to HTTP clients).
    Unavailable(String),
}

pub(super) async fn serve(
    shared: Arc<Shared>,
    mut client: TcpStream,
    shutdown: watch::Receiver<bool>,
) {
    let _ = client.set_nodelay(true);
    let dst = match original_dst(&client) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "activator connection without an original destination");
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)
        }
    };
    let target = shared.targets.borrow().find(dst).cloned();
    let Some(target) = target else {
        let why = format!(
            "no scale-to-zero Service answers on {}",
            targets::describe(dst)
        );
        refuse(&mut client, BytesMut::new(), &why).await;
        return;
    };
    let counters = shared.stats.service(&target.service);
    let _active = counters.connection();
    let mut buffered = BytesMut::new();
    let started = Instant::now();
    let upstream = match connect(&shared, &target, dst, &mut client, &mut buffered, shutdown).await
    {
        Ok(u) => u,
        Err(Refusal::ClientGone) => return,
        Err(Refusal::Unavailable(why)) => {
            let why = format!("Service {} is unavailable: {why}", target.service);
            tracing::info!(service = %target.service, reason = %why, "activator answered 503");
            refuse(&mut client, buffered, &why).await;
            return;
        }
    };
    let (mut upstream, held) = upstream;
    let cold = if held {
        counters.take_cold_start()
    } else {
        None
    };
    if let Some(since) = cold {
        let took = since.elapsed().max(started.elapsed());
        tracing::info!(service = %target.service, held_ms = took.as_millis() as u64,
            "cold start: the first held connection goes on to a ready endpoint");
        super::events::cold_start(&shared, &target.service, took);
    }
    if !buffered.is_empty() && upstream.write_all(&buffered).await.is_err() {
        return;
    }
    match cold {
        None => {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Some(since) => splice_timing_first_byte(client, upstream, since).await,
    }
}

/// Splices a cold start's first connection as `copy_bidirectional` does, and records the
/// time from its hold to the first byte of the answer (the `first_byte` cold-start stage).
async fn splice_timing_first_byte(client: TcpStream, upstream: TcpStream, since: Instant) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
    };
    let down = async {
        let mut first = vec![0u8; 16 << 10];
        if let Ok(n) = upstream_read.read(&mut first).await {
            if n > 0 {
                crate::metrics::observe(crate::metrics::Stage::FirstByte, since.elapsed());
                if client_write.write_all(&first[..n]).await.is_ok() {
                    let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Connects to one of the port's ready endpoints, holding the client while there is none.
/// Returns the upstream and whether the client was held.
async fn connect(
    shared: &Arc<Shared>,
    target: &Arc<Target>,
    dst: SocketAddrV4,
    client: &mut TcpStream,
    buffered: &mut BytesMut,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(TcpStream, bool), Refusal> {
    let counters = shared.stats.service(&target.service);
    let deadline = tokio::time::Instant::now() + shared.cfg.hold_timeout;
    let mut targets = shared.targets.clone();
    let mut local = shared.local.subscribe();
    let mut held = None;
    let mut diagnosis = None;
    loop {
        local.borrow_and_update();
        let mut endpoints = match targets.borrow_and_update().find(dst) {
            Some(t) => t.endpoints.clone(),
            None => return Err(Refusal::Unavailable("the Service is gone".into())),
        };
        if endpoints.is_empty() {
            // A ready Wasm pod of the Service on this node, before its endpoint is published.
            if let Some(port) = target.target_port {
                endpoints = shared
                    .local
                    .ready_matching(&target.service.namespace, &target.selector_labels, port)
                    .into_iter()
                    .filter_map(|a| match a {
                        std::net::SocketAddr::V4(a) => Some(a),
                        std::net::SocketAddr::V6(_) => None,
                    })
                    .collect();
            }
        }
        if !endpoints.is_empty() {
            if let Some(upstream) = try_endpoints(shared, &endpoints).await {
                return Ok((upstream, held.is_some()));
            }
        }
        if held.is_none() {
            let Some(h) = counters.hold(shared.cfg.max_held) else {
                return Err(Refusal::Unavailable(format!(
                    "{} connections are already waiting for it to start",
                    shared.cfg.max_held
                )));
            };
            held = Some(h);
            shared.stats.signal_demand();
            diagnosis = Some(shared.diagnosis(target));
        }
        let Some(diag) = diagnosis.as_mut() else {
            continue;
        };
        let reading = buffered.len() < DEFAULT_MAX_BUFFERED;
        let retry = tokio::time::sleep(RETRY_PAUSE);
        tokio::select! {
            r = targets.changed() => if r.is_err() {
                return Err(Refusal::Unavailable("the node is shutting down".into()));
            },
            _ = local.changed() => {}
            _ = retry, if !endpoints.is_empty() => {}
            r = diag.changed() => {
                if r.is_ok() {
                    if let Some(fatal) = diag.borrow().as_ref().and_then(|d| d.fatal.clone()) {
                        return Err(Refusal::Unavailable(fatal));
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let status = diag
                    .borrow()
                    .as_ref()
                    .map(|d| format!(": {}", d.status))
                    .unwrap_or_default();
                return Err(Refusal::Unavailable(format!(
                    "no endpoint became ready within {:?}{status}",
                    shared.cfg.hold_timeout
                )));
            }
            n = client.read_buf(buffered), if reading => match n {
                Ok(0) | Err(_) => return Err(Refusal::ClientGone),
                Ok(_) => {}
            },
            _ = shutdown.changed() => {
                return Err(Refusal::Unavailable("the node is shutting down".into()));
            }
        }
    }
}

/// The first endpoint that takes a connection, starting from the next in round-robin order.
async fn try_endpoints(shared: &Shared, endpoints: &[SocketAddrV4]) -> Option<TcpStream> {
    let first = shared.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..endpoints.len() {
        let ep = endpoints[(first + i) % endpoints.len()];
        match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, TcpStream::connect(ep)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Some(s);
            }
            Ok(Err(e)) => tracing::debug!(endpoint = %ep, error = %e, "endpoint refused"),
            Err(_) => tracing::debug!(endpoint = %ep, "endpoint did not answer in time"),
        }
    }
    None
}

/// Whether `bytes` start like an HTTP/1 request line (`GET /path HTTP/1.1`).
fn looks_like_http(bytes: &[u8]) -> bool {
    let Some(space) = bytes.iter().position(|b| *b == b' ') else {
        return false;
    };
    space > 0 && space <= 16 && bytes[..space].iter().all(u8::is_ascii_uppercase)
}

/// Answers a client that cannot be forwarded: a 503 page when it speaks HTTP, then closes.
async fn refuse(client: &mut TcpStream, mut buffered: BytesMut, why: &str) {
    if buffered.is_empty() {
        let _ = tokio::time::timeout(SNIFF_WAIT, client.read_buf(&mut buffered)).await;
    }
    if looks_like_http(&buffered) {
        let body = format!("skiff activator: {why}\n");
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
            body.len()
        );
        let _ = client.write_all(head.as_bytes()).await;
        let _ = client.write_all(body.as_bytes()).await;
    }
    let _ = client.shutdown().await;
    // Read what is left so the close is a FIN, not a reset that could beat the answer.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_http_request_lines() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST /x HTTP/1.1\r\n"));
        assert!(!looks_like_http(b"\x16\x03\x01 tls"));
        assert!(!looks_like_http(b""));
        assert!(!looks_like_http(b"get / HTTP/1.1"));
    }
}
