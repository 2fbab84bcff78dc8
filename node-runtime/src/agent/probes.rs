//! `httpGet` and `tcpSocket` probes against a container's bound ports.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resolves a probe's port (number or name) to the container's containerPort.
pub fn container_port(c: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

pub fn timeout(p: &Probe) -> Duration {
    Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64)
}

pub fn period(p: &Probe) -> Duration {
    Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64)
}

/// Runs one probe against `addr` (where the container's port is bound). Ok(()) is success;
/// Err holds the failure as kubelet words it.
pub async fn run(p: &Probe, addr: SocketAddr) -> Result<(), String> {
    let limit = timeout(p);
    if let Some(h) = &p.http_get {
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let fut = async {
            let mut s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
            let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: skiff-probe/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 256];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let head = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("Get \"http://{addr}{path}\": malformed HTTP response"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(format!(
                "Get \"http://{addr}{path}\": context deadline exceeded"
            ))
        });
    }
    if p.tcp_socket.is_some() {
        return match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    Err(
        "probe has no httpGet or tcpSocket handler (exec probes are not available for Wasm pods)"
            .into(),
    )
}

/// The port a probe targets.
pub fn probe_port(c: &Container, p: &Probe) -> Option<u16> {
    if let Some(h) = &p.http_get {
        return container_port(c, &h.port);
    }
    p.tcp_socket
        .as_ref()
        .and_then(|t| container_port(c, &t.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_and_tcp_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let probe: Probe = serde_json::from_value(
            serde_json::json!({"httpGet": {"path": "/healthz", "port": 80}}),
        )
        .unwrap();
        assert!(run(&probe, addr).await.is_ok());
        let err = run(&probe, addr).await.unwrap_err();
        assert!(err.contains("statuscode: 500"), "{err}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": 80}})).unwrap();
        assert!(run(&tcp, closed).await.is_err());
    }
}
