//! The Kubernetes-compatible HTTP API: routing, authentication, discovery and resource handlers.

pub mod admission;
pub mod conversion;
pub mod crd;
pub mod discovery;
pub mod handlers;
pub mod limits;
pub mod managed;
pub mod metrics;
pub mod metrics_api;
pub mod negotiate;
pub mod nodeproxy;
pub mod object;
pub mod openapi;
pub mod parse_errors;
pub mod patch;
pub mod path;
pub mod proto_schema;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod table;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::json;
use tracing::Instrument;

use crate::store::Store;
use admission::services::ServiceAllocator;
pub use status::{ApiError, ApiResult};

/// Settings of the API server that handlers need.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `host:port` clients reach this server at (discovery's serverAddressByClientCIDRs).
    pub advertise: String,
    pub max_body_bytes: usize,
    /// The HTTP layer's timeouts.
    pub limits: limits::HttpLimits,
    /// `tolerationSeconds` of the not-ready/unreachable NoExecute tolerations added to every pod
    /// (DefaultTolerationSeconds admission; kube-apiserver's `--default-unreachable-toleration-seconds`).
    pub default_toleration_seconds: i64,
    /// How long a node's Lease may go unrenewed before the node is marked Unknown
    /// (kube-controller-manager's `--node-monitor-grace-period`).
    pub node_monitor_grace: std::time::Duration,
    /// The cluster's pod network, split into a /24 per node (`--cluster-cidr`).
    pub cluster_cidr: crate::controllers::nodeipam::ClusterCidr,
    /// How often nodes' usage is read; HorizontalPodAutoscalers sync as often.
    pub metrics_resolution: std::time::Duration,
}

/// Bearer tokens the API accepts.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub admin: String,
    pub node: String,
}

/// Everything a handler can reach; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
    pub tokens: Arc<Tokens>,
    pub services: Arc<ServiceAllocator>,
    pub metrics: Arc<metrics::Metrics>,
    /// The cluster image store, served under `/v2/`.
    pub registry: Arc<crate::registry::Registry>,
    /// Flips to true when the server begins shutting down; long requests (watches) end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Nodes' and pods' resource usage (`metrics.k8s.io`, autoscalers).
    pub usage: crate::usage::UsageStore,
    /// The nodes' request counts (the request-driven autoscaler).
    pub requests: crate::usage::RequestStore,
    /// The API requests in flight, against `config.limits`' maxima.
    pub inflight: Arc<limits::InFlight>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        // Kubernetes answers these with a trailing slash too (the Python client asks so).
        .route("/version/", get(version))
        .route("/api/", get(discovery::api_versions))
        .route("/apis/", get(discovery::api_groups))
        .route("/api/v1/", get(discovery::core_resources))
        .route("/apis/{group}/", get(discovery::api_group))
        .route("/apis/{group}/{version}/", get(discovery::group_resources))
        .route("/metrics", get(metrics::serve))
        .route("/api", get(discovery::api_versions))
        .route("/apis", get(discovery::api_groups))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis/{group}", get(discovery::api_group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/api/v1/{*rest}", any(handlers::core))
        .route(
            "/apis/metrics.k8s.io/v1beta1/{*rest}",
            get(metrics_api::serve),
        )
        .route("/apis/{group}/{version}/{*rest}", any(handlers::grouped))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/{*rest}", get(openapi::group_version))
        .merge(crate::registry::routes::router(state.registry.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn(negotiate::negotiate))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn readyz(State(st): State<ApiState>) -> Response {
    match st.store.current_revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => ApiError::unavailable(format!("store not ready: {e}")).into_response(),
    }
}

/// The Kubernetes version this API speaks, so kubectl's skew check stays quiet.
pub const KUBERNETES_MINOR: &str = "32";

async fn version() -> Response {
    axum::Json(json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+skiff-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else if std::env::consts::ARCH == "aarch64" { "arm64" } else { std::env::consts::ARCH }),
    }))
    .into_response()
}

async fn not_found(req: Request) -> Response {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "the server could not find the requested resource ({} {})",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

const OPEN_PATHS: &[&str] = &["/livez", "/readyz", "/healthz", "/version"];

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = token.is_some_and(|t| {
        constant_time_eq(t.as_bytes(), st.tokens.admin.as_bytes())
            || constant_time_eq(t.as_bytes(), st.tokens.node.as_bytes())
    });
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn observe(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", %method, %path);
    let start = Instant::now();
    let resp = as_status(next.run(req).instrument(span.clone()).await).await;
    let elapsed = start.elapsed();
    let code = resp.status().as_u16();
    st.metrics
        .record_request(method.as_str(), &path, code, elapsed);
    span.in_scope(|| tracing::debug!(code, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "served"));
    resp
}

/// Turns framework-made error responses (axum's 405, path rejections) into `metav1.Status`,
/// so every failure a client sees has the Kubernetes shape.
async fn as_status(resp: Response) -> Response {
    let code = resp.status();
    // A Status already (JSON, or re-encoded by `negotiate` as YAML or protobuf).
    let is_status = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json")
                || v.starts_with("application/yaml")
                || v.starts_with(protobuf::CONTENT_TYPE)
        });
    if !(code.is_client_error() || code.is_server_error()) || is_status {
        return resp;
    }
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let reason = match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        _ => "InternalError",
    };
    let message = if text.is_empty() {
        format!("{code}: the server does not allow this method or request on this path")
    } else {
        text
    };
    ApiError::new(code, reason, message).into_response()
}
