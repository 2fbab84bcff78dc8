//! Requests from the API server to a node agent (`kubectl logs`): HTTPS to the address and
//! port the Node advertises, with the agent's self-signed certificate pinned by the SHA-256
//! fingerprint in the Node's `skiff.dev/agent-cert-sha256` annotation, authenticated with the
//! node token.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// The Node annotation holding the agent endpoint's certificate fingerprint.
pub const CERT_FINGERPRINT_ANNOTATION: &str = "skiff.dev/agent-cert-sha256";
/// How long connecting to a node agent may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct PinnedCert {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if sha256_hex(end_entity.as_ref()) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "node agent certificate does not match the fingerprint its Node advertises".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where a node's agent listens, from its Node object.
pub struct NodeEndpoint {
    pub host: String,
    pub port: u16,
    pub fingerprint: String,
}

impl NodeEndpoint {
    pub fn from_node(node: &Value) -> Option<NodeEndpoint> {
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)?;
        let host = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)?
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
            .and_then(|a| a.get("address").and_then(Value::as_str))?
            .to_string();
        let fingerprint = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CERT_FINGERPRINT_ANNOTATION))
            .and_then(Value::as_str)?
            .to_string();
        Some(NodeEndpoint {
            host,
            port: u16::try_from(port).ok()?,
            fingerprint,
        })
    }
}

fn unavailable(ep: &NodeEndpoint, what: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!(
        "cannot reach the node agent at {}:{}: {what}",
        ep.host, ep.port
    ))
}

/// An HTTP/1.1 connection to the node agent over TLS, its certificate pinned.
async fn connect(
    ep: &NodeEndpoint,
) -> ApiResult<(
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    hyper::client::conn::http1::Connection<
        TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        http_body_util::Empty<bytes::Bytes>,
    >,
)> {
    let unavailable = |what: String| unavailable(ep, what);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert {
            fingerprint: ep.fingerprint.clone(),
            provider,
        }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(
        DEFAULT_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)),
    )
    .await
    .map_err(|_| unavailable("connect timed out".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    let name = ServerName::try_from(ep.host.clone()).map_err(|e| unavailable(e.to_string()))?;
    let tls = tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| unavailable("TLS handshake timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// GETs `path_and_query` from the node agent and streams its answer back as the response.
pub async fn get(ep: &NodeEndpoint, path_and_query: &str, token: &str) -> ApiResult<Response> {
    let unavailable = |what: String| unavailable(ep, what);
    let (mut sender, conn) = connect(ep).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(path_and_query)
        .header(http::header::HOST, format!("{}:{}", ep.host, ep.port))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = String::from_utf8_lossy(&body).to_string();
        return Err(match status.as_u16() {
            404 => ApiError::new(http::StatusCode::NOT_FOUND, "NotFound", msg),
            400 => ApiError::bad_request(msg),
            _ => ApiError::internal(format!("node agent answered {status}: {msg}")),
        });
    }
    let stream = resp.into_body().into_data_stream();
    let mut out = Response::new(Body::from_stream(stream));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

/// GETs `path_and_query` from the node agent and reads the whole answer (at most `limit`
/// bytes).
pub async fn get_bytes(
    ep: &NodeEndpoint,
    path_and_query: &str,
    token: &str,
    limit: usize,
) -> ApiResult<bytes::Bytes> {
    let resp = get(ep, path_and_query, token).await?;
    let body = http_body_util::Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| unavailable(ep, e))?;
    Ok(body.to_bytes())
}

/// The request headers a streaming upgrade (websocket or SPDY, as kubectl uses them for exec
/// and attach) carries end to end.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];
/// The response headers of a 101 that the client needs to finish its handshake.
const UPGRADED_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Proxies a streaming request (`kubectl exec`/`attach`) to the node agent: the request goes
/// on with its upgrade headers; when the agent switches protocols, the client's connection
/// and the agent's are spliced byte for byte until either side closes. Any other answer (an
/// error, or a refused upgrade so kubectl falls back from websocket to SPDY) is passed back.
pub async fn upgrade(
    ep: &NodeEndpoint,
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    client: Option<hyper::upgrade::OnUpgrade>,
    token: &str,
) -> ApiResult<Response> {
    let (mut sender, conn) = connect(ep).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = http::Request::builder()
        .method(method.clone())
        .uri(path_and_query)
        .header(http::header::HOST, format!("{}:{}", ep.host, ep.port))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    for name in UPGRADE_HEADERS {
        for v in headers.get_all(*name) {
            req = req.header(*name, v);
        }
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(ep, e))?;
    let status = resp.status();
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        let mut out = Response::builder().status(status);
        for name in UPGRADED_HEADERS.iter().chain(&["content-type"]) {
            for v in resp.headers().get_all(*name) {
                out = out.header(*name, v);
            }
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return out
            .body(Body::from(body))
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let Some(client) = client else {
        return Err(ApiError::bad_request(
            "this request must be an HTTP/1.1 connection upgrade (websocket or SPDY)",
        ));
    };
    let mut out = Response::builder().status(status);
    for name in UPGRADED_HEADERS {
        for v in resp.headers().get_all(*name) {
            out = out.header(*name, v);
        }
    }
    let agent = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(client), Ok(agent)) = (client.await, agent.await) else {
            tracing::debug!("stream upgrade did not complete");
            return;
        };
        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(agent));
        if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
            tracing::debug!(error = %e, "stream ended");
        }
    });
    out.body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}
