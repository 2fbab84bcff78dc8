//! `kubectl port-forward` to Wasm pods. A Wasm pod has no CRI sandbox whose streaming server
//! could speak the protocol, so the agent speaks it: kubectl's SPDY/3.1 session with the
//! `portforward.k8s.io` subprotocol ([`session`], frames in [`spdy`]), reached either by a
//! plain `Upgrade: SPDY/3.1` or — what kubectl ≥1.31 tries first — tunneled through a
//! websocket whose subprotocol is `SPDY/3.1+portforward.k8s.io` ([`tunnel`]). Each forwarded
//! connection goes to the pod's listener for its port, found in [`WasmPorts`]. Pods without a
//! running Wasm HTTP component take the container path (`stream.rs`, CRI PortForward).

mod dictionary;
mod forward;
mod session;
pub mod spdy;
mod tunnel;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::server::error;
use super::wasm_ports::WasmPorts;
use crate::oci::OciRuntime;

/// The port-forward subprotocol kubectl asks for.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The websocket subprotocol of kubectl's SPDY-over-websocket tunnel.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long the client may take to complete the switch of protocols.
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The pod a session forwards to.
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub ports: WasmPorts,
}

/// How the client asked to switch protocols.
#[derive(Debug, PartialEq, Eq)]
enum Handshake {
    /// `Upgrade: SPDY/3.1`.
    Spdy,
    /// `Upgrade: websocket` carrying SPDY; the `Sec-WebSocket-Key` to answer.
    Tunnel { key: String },
}

/// Comma-separated values of every `name` header.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads the upgrade kubectl asked for, or the refusal to answer (a refused websocket makes
/// kubectl fall back to plain SPDY).
fn handshake(headers: &HeaderMap) -> Result<Handshake, (StatusCode, String)> {
    let upgrade = list(headers, "upgrade");
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let offered = list(headers, "sec-websocket-protocol");
        if !offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("unable to upgrade: port-forward to a WebAssembly pod speaks the websocket subprotocol {TUNNEL_PROTOCOL} (offered: {offered:?})"),
            ));
        }
        let key = headers
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
            .ok_or((
                StatusCode::BAD_REQUEST,
                "unable to upgrade: missing Sec-WebSocket-Key".to_string(),
            ))?;
        return Ok(Handshake::Tunnel {
            key: key.to_string(),
        });
    }
    if upgrade
        .iter()
        .any(|u| u.to_ascii_lowercase().starts_with("spdy/3"))
    {
        let offered = list(headers, "x-stream-protocol-version");
        // Clients from before protocol negotiation send none.
        if offered.is_empty() || offered.iter().any(|p| p == PROTOCOL) {
            return Ok(Handshake::Spdy);
        }
        return Err((
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{PROTOCOL}\"]"),
        ));
    }
    Err((
        StatusCode::BAD_REQUEST,
        "unable to upgrade: missing upgrade headers in request".to_string(),
    ))
}

/// Serves `/portForward/{ns}/{pod}`: the agent's own session for a pod with a running Wasm
/// HTTP component, else the container path.
pub async fn serve(
    ports: &WasmPorts,
    oci: Option<&OciRuntime>,
    ns: &str,
    pod: &str,
    req: Request,
) -> Response {
    if ports.lookup(ns, pod).is_none() {
        return super::stream::serve_port_forward(oci, ns, pod, req).await;
    }
    let (mut parts, _) = req.into_parts();
    let kind = match handshake(&parts.headers) {
        Ok(k) => k,
        Err((code, msg)) => return error(code, msg),
    };
    let Some(upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "this request must be an HTTP/1.1 connection upgrade (websocket or SPDY)",
        );
    };
    let target = Arc::new(Target {
        namespace: ns.to_string(),
        pod: pod.to_string(),
        ports: ports.clone(),
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade");
    resp = match &kind {
        Handshake::Spdy => resp
            .header(http::header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", PROTOCOL),
        Handshake::Tunnel { key } => resp
            .header(http::header::UPGRADE, "websocket")
            .header(
                "Sec-WebSocket-Accept",
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
            )
            .header("Sec-WebSocket-Protocol", TUNNEL_PROTOCOL),
    };
    let span = tracing::debug_span!("portforward", pod = %format!("{ns}/{pod}"), tunnel = matches!(kind, Handshake::Tunnel { .. }));
    tokio::spawn(
        async move {
            let io = match tokio::time::timeout(UPGRADE_TIMEOUT, upgrade).await {
                Ok(Ok(io)) => TokioIo::new(io),
                Ok(Err(e)) => return tracing::debug!(error = %e, "upgrade failed"),
                Err(_) => return tracing::debug!("upgrade timed out"),
            };
            tracing::debug!("port-forward session starts");
            match kind {
                Handshake::Spdy => session::run(io, target).await,
                Handshake::Tunnel { .. } => tunnel::run(io, target).await,
            }
        }
        .instrument(span),
    );
    resp.body(Body::empty())
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn negotiates_what_kubectl_sends() {
        assert_eq!(
            handshake(&headers(&[
                ("connection", "Upgrade"),
                ("upgrade", "SPDY/3.1"),
                ("x-stream-protocol-version", "portforward.k8s.io"),
            ])),
            Ok(Handshake::Spdy)
        );
        assert_eq!(
            handshake(&headers(&[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("sec-websocket-version", "13"),
                ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
            ])),
            Ok(Handshake::Tunnel {
                key: "dGhlIHNhbXBsZSBub25jZQ==".into()
            })
        );
        // The websocket channel protocol is refused, so kubectl-like clients fall back.
        let refused = handshake(&headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "x"),
            ("sec-websocket-protocol", "v4.channel.k8s.io"),
        ]));
        assert!(matches!(refused, Err((StatusCode::BAD_REQUEST, _))));
        let refused = handshake(&headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]));
        assert!(matches!(refused, Err((StatusCode::FORBIDDEN, _))));
        assert!(handshake(&HeaderMap::new()).is_err());
    }
}
