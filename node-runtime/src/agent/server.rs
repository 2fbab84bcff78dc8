//! The agent's HTTPS endpoint, called by the API server to serve `kubectl logs`, `exec`,
//! `attach` and `port-forward`. Its
//! certificate is self-signed; the Node carries its SHA-256 fingerprint so the API server
//! pins it. Callers must present the node token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::watch;

use super::stream::StreamKind;
use super::AgentError;
use crate::logs::{follow_log, read_log, LogOptions};

#[derive(Clone)]
struct EndpointState {
    data_dir: PathBuf,
    token: Arc<String>,
    shutdown: watch::Receiver<bool>,
    oci: Option<crate::oci::OciRuntime>,
    wasm_ports: super::wasm_ports::WasmPorts,
    stats: super::stats::StatsSource,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    tail_lines: Option<usize>,
    follow: Option<bool>,
    timestamps: Option<bool>,
    previous: Option<bool>,
    limit_bytes: Option<usize>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
}

/// A started endpoint: where it listens and its certificate's fingerprint.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub handle: axum_server::Handle<SocketAddr>,
}

/// A plain-text error answer (the API server passes the text on to the client).
pub(super) fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, msg.into()).into_response()
}

/// Finds a pod's directory from the `pod.json` record its worker wrote.
fn pod_dir(data_dir: &Path, ns: &str, name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(data_dir.join("pods")).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|dir| {
            std::fs::read_to_string(dir.join("pod.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .is_some_and(|v| v["namespace"] == ns && v["name"] == name)
        })
}

/// The log file of the current (or previous) run of a container: `logs/<c>/<restart>.log`.
pub fn log_file(pod_dir: &Path, container: &str, previous: bool) -> Option<PathBuf> {
    let dir = pod_dir.join("logs").join(container);
    let mut runs: Vec<u64> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    runs.sort_unstable();
    let pick = if previous {
        runs.iter().rev().nth(1)
    } else {
        runs.last()
    };
    pick.map(|n| dir.join(format!("{n}.log")))
}

/// Whether the caller presented the node token.
fn authorized(st: &EndpointState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    presented == Some(st.token.as_str())
}

/// `/exec/...` and `/attach/...`: the kind is the path's first segment.
async fn exec_or_attach(
    State(st): State<EndpointState>,
    UrlPath((kind, ns, pod, container)): UrlPath<(String, String, String, String)>,
    req: axum::extract::Request,
) -> Response {
    if !authorized(&st, req.headers()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let kind = match kind.as_str() {
        "exec" => StreamKind::Exec,
        "attach" => StreamKind::Attach,
        other => return error(StatusCode::NOT_FOUND, format!("no such endpoint: /{other}")),
    };
    super::stream::serve(st.oci.as_ref(), kind, &ns, &pod, &container, req).await
}

async fn port_forward(
    State(st): State<EndpointState>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    req: axum::extract::Request,
) -> Response {
    if !authorized(&st, req.headers()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    super::portforward::serve(&st.wasm_ports, st.oci.as_ref(), &ns, &pod, req).await
}

/// What the node and its containers use now (see [`super::stats`]).
async fn stats_summary(State(st): State<EndpointState>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    axum::Json(st.stats.summary().await).into_response()
}

/// The node's Prometheus metrics (see [`crate::metrics`]).
async fn node_metrics(State(st): State<EndpointState>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::encode(),
    )
        .into_response()
}

/// The request counts for the autoscaler, streamed (see [`super::request_stats`]).
async fn stats_requests(State(st): State<EndpointState>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let lines = super::request_stats::stream(
        st.stats.wasm.clone(),
        st.stats.activator.clone(),
        st.shutdown.clone(),
    );
    let mut resp = axum::body::Body::from_stream(lines).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

async fn container_logs(
    State(st): State<EndpointState>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Some(dir) = pod_dir(&st.data_dir, &ns, &pod) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} is not running on this node"),
        );
    };
    let previous = q.previous.unwrap_or(false);
    let Some(file) = log_file(&dir, &container, previous) else {
        let what = if previous {
            "previous terminated container"
        } else {
            "container"
        };
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{what} \"{container}\" in pod \"{pod}\" has no logs yet (is it waiting to start?)"
            ),
        );
    };
    let opts = LogOptions {
        tail_lines: q.tail_lines,
        timestamps: q.timestamps.unwrap_or(false),
        limit_bytes: q.limit_bytes,
        since: match (q.since_seconds, q.since_time.as_deref()) {
            (Some(secs), _) => jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(secs.max(0)))
                .ok(),
            (None, Some(t)) => match t.parse::<jiff::Timestamp>() {
                Ok(ts) => Some(ts),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("sinceTime {t:?} is not an RFC 3339 time: {e}"),
                    )
                }
            },
            (None, None) => None,
        },
    };
    if q.follow.unwrap_or(false) && !previous {
        let stream = follow_log(file, opts, st.shutdown.clone());
        return Response::builder()
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
    }
    match read_log(&file, &opts) {
        Ok(bytes) => ([(http::header::CONTENT_TYPE, "text/plain")], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn self_signed(sans: Vec<String>) -> Result<(String, String, String), AgentError> {
    let cert_err =
        |e: rcgen::Error| AgentError::Config(format!("cannot make the agent certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(cert_err)?;
    let params = rcgen::CertificateParams::new(sans).map_err(cert_err)?;
    let cert = params.self_signed(&key).map_err(cert_err)?;
    let fingerprint = sha256_hex(cert.der());
    Ok((cert.pem(), key.serialize_pem(), fingerprint))
}

pub fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn start(
    listen: SocketAddr,
    node_name: &str,
    data_dir: &Path,
    token: &str,
    shutdown: watch::Receiver<bool>,
    stats: super::stats::StatsSource,
    wasm_ports: super::wasm_ports::WasmPorts,
) -> Result<Endpoint, AgentError> {
    let sans = vec![
        listen.ip().to_string(),
        node_name.to_string(),
        "localhost".into(),
    ];
    let (cert_pem, key_pem, fingerprint) = self_signed(sans)?;
    let tls_err = |e: &dyn std::fmt::Display| AgentError::Config(format!("agent TLS: {e}"));
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(&e))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| tls_err(&e))?
        .ok_or_else(|| AgentError::Config("agent TLS key missing".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(&e))?;
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| AgentError::Config(format!("cannot listen on {listen}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let state = EndpointState {
        data_dir: data_dir.to_path_buf(),
        token: Arc::new(token.to_string()),
        shutdown,
        oci: stats.oci.clone(),
        wasm_ports,
        stats,
    };
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/stats/summary", get(stats_summary))
        .route("/stats/requests", get(stats_requests))
        .route("/metrics", get(node_metrics))
        .route(
            "/{kind}/{ns}/{pod}/{container}",
            get(exec_or_attach).post(exec_or_attach),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(port_forward).post(port_forward),
        )
        .with_state(state);
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
    )
    .map_err(|e| AgentError::Config(e.to_string()))?
    // Followed logs stream line by line: send each at once (no Nagle delay).
    .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
    .handle(handle.clone());
    tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "agent endpoint stopped");
        }
    });
    Ok(Endpoint {
        addr,
        fingerprint,
        handle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_current_and_previous_logs() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("logs").join("web");
        std::fs::create_dir_all(&c).unwrap();
        for n in [0, 1, 10] {
            std::fs::write(c.join(format!("{n}.log")), "").unwrap();
        }
        assert_eq!(log_file(dir.path(), "web", false), Some(c.join("10.log")));
        assert_eq!(log_file(dir.path(), "web", true), Some(c.join("1.log")));
        assert_eq!(log_file(dir.path(), "nope", false), None);
    }
}
