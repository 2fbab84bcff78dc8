//! What one request may cost the server: how long its connection may take to say what it wants
//! (TLS handshake, request headers, body), how long it may run, and how large its URI, headers
//! and body may be. Every refusal is a `metav1.Status`, as the rest of the API answers.
//!
//! The connection-level timeouts are applied where connections are served (`server.rs`); the
//! request-level limits by [`enforce`], the outermost middleware but one (`observe`).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::status::ApiError;
use super::ApiState;

/// A TLS handshake must finish within this: a client that connects and says nothing holds a
/// connection for no longer (axum-server's default, and Go's `TLSHandshakeTimeout` of 10 s).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this, counted from when the connection is ready for
/// them (just after the handshake, or after the previous answer on a keep-alive connection,
/// so it is also the HTTP/1.1 idle timeout). kube-apiserver's `ReadHeaderTimeout` is 32 s.
pub const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(32);
/// A request's body must arrive within this: 3 MiB (the largest body) at 100 KiB/s. A client
/// that announces a body and trickles it is answered 408 and its connection closed.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A request that is not long-running (watches, log follows, exec/attach/port-forward, proxies
/// and image uploads are) is answered 504 after this: kube-apiserver's `--request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest request URI answered. Kubernetes' clients never come near it (a long label
/// selector is a few KiB); the HTTP layer itself refuses URIs over 64 KiB without a body.
pub const DEFAULT_MAX_URI_BYTES: usize = 32 * 1024;
/// The most header bytes a request may carry: Go's `DefaultMaxHeaderBytes`, which
/// kube-apiserver keeps. The HTTP layer buffers a little more, so this limit answers first.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1024 * 1024;
/// What the HTTP layer buffers for one request head beyond [`DEFAULT_MAX_HEADER_BYTES`] (the
/// request line and framing); past the total, it refuses the request itself (431, given a
/// Status body by [`super::parse_errors`]) and closes the connection.
pub const HTTP_HEAD_BUFFER_BYTES: usize =
    DEFAULT_MAX_HEADER_BYTES + 64 * 1024 + DEFAULT_MAX_URI_BYTES;
/// HTTP/2 connections are pinged this often, and closed when a ping is not answered within
/// [`HTTP2_KEEPALIVE_TIMEOUT`]: a peer that vanished does not hold its streams forever.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Read-only requests (GET, HEAD, OPTIONS) served at once; more are answered 429 with
/// `Retry-After`: kube-apiserver's `--max-requests-inflight`. Watches and other long-running
/// requests are not counted.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// Writes served at once: kube-apiserver's `--max-mutating-requests-inflight`.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;
/// What a 429 tells the client to wait, in seconds (kube-apiserver's value).
const RETRY_AFTER_SECONDS: u64 = 1;

/// The HTTP layer's timeouts and concurrency (`skiff server --tls-handshake-timeout`,
/// `--request-header-timeout`, `--request-body-timeout`, `--request-timeout`,
/// `--max-requests-inflight`, `--max-mutating-requests-inflight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub tls_handshake_timeout: Duration,
    pub request_header_timeout: Duration,
    pub request_body_timeout: Duration,
    pub request_timeout: Duration,
    pub max_requests_inflight: usize,
    pub max_mutating_requests_inflight: usize,
}

/// The requests in flight now, counted against [`HttpLimits`]' maxima.
#[derive(Debug)]
pub struct InFlight {
    read_only: tokio::sync::Semaphore,
    mutating: tokio::sync::Semaphore,
}

impl InFlight {
    pub fn new(limits: &HttpLimits) -> Self {
        InFlight {
            read_only: tokio::sync::Semaphore::new(limits.max_requests_inflight),
            mutating: tokio::sync::Semaphore::new(limits.max_mutating_requests_inflight),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            request_header_timeout: DEFAULT_REQUEST_HEADER_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_requests_inflight: DEFAULT_MAX_REQUESTS_INFLIGHT,
            max_mutating_requests_inflight: DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        }
    }
}

/// Refuses a request whose URI or headers are too large, or whose declared body is over the
/// limit (at once, without reading it), and answers 504 when a request that is not
/// long-running outlasts the request timeout.
pub async fn enforce(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    if let Err(e) = check_head(&req, st.config.max_body_bytes) {
        if e.code == StatusCode::PAYLOAD_TOO_LARGE {
            // Answered now; what the client still sends is read and dropped meanwhile, so
            // its connection is not reset under the answer before it reads it.
            let timeout = st.config.limits.request_body_timeout;
            tokio::spawn(discard(req.into_body(), timeout));
        }
        return e.into_response();
    }
    if is_long_running(&req) || is_health_check(&req) {
        return next.run(req).await;
    }
    let read_only = matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    let (pool, kind, max) = if read_only {
        let max = st.config.limits.max_requests_inflight;
        (&st.inflight.read_only, "read-only", max)
    } else {
        let max = st.config.limits.max_mutating_requests_inflight;
        (&st.inflight.mutating, "mutating", max)
    };
    let Ok(_permit) = pool.try_acquire() else {
        return ApiError::too_many_requests(
            format!(
                "too many requests: {max} {kind} requests are in flight (skiff server \
                 --max-{}requests-inflight); try again later",
                if read_only { "" } else { "mutating-" }
            ),
            RETRY_AFTER_SECONDS,
        )
        .into_response();
    };
    let limit = st.config.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!(
                "Timeout: request did not complete within the allotted timeout of {}s \
                 (skiff server --request-timeout); it may still be processed",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Reads and drops a refused body, for as long as the body timeout and up to
/// [`super::request::DEFAULT_OVERSIZE_DRAIN_BYTES`]; then the connection is closed.
async fn discard(body: axum::body::Body, timeout: Duration) {
    use http_body_util::BodyExt;
    let mut body = body;
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > super::request::DEFAULT_OVERSIZE_DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

fn check_head(req: &Request, max_body: usize) -> Result<(), ApiError> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > DEFAULT_MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "BadRequest",
            format!(
                "the request URI is {uri_len} bytes, over the limit of {DEFAULT_MAX_URI_BYTES}: \
                 shorten the label or field selector, or list and filter on the client"
            ),
        ));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > DEFAULT_MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "BadRequest",
            format!(
                "the request headers are {header_bytes} bytes, over the limit of \
                 {DEFAULT_MAX_HEADER_BYTES}"
            ),
        ));
    }
    // The image store takes blobs far larger than an object; it streams them to disk.
    let api = req.uri().path().starts_with("/api");
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if api && declared.is_some_and(|len| len > max_body as u64) {
        return Err(ApiError::too_large(max_body));
    }
    Ok(())
}

/// Health checks are answered whatever the load, so a busy server is not restarted for it.
fn is_health_check(req: &Request) -> bool {
    matches!(req.uri().path(), "/livez" | "/readyz" | "/healthz")
}

/// Requests that last as long as the client wants, as kube-apiserver's `LongRunningFunc`
/// counts them: watches, followed logs, exec/attach/port-forward sessions, proxies, and the
/// image store's uploads and downloads (a layer can take minutes).
fn is_long_running(req: &Request) -> bool {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    path.starts_with("/v2/")
        || super::request::is_watch_uri(req.uri())
        || (path.ends_with("/log") && super::request::query_flag(query, "follow"))
        || ["/exec", "/attach", "/portforward"]
            .iter()
            .any(|s| path.ends_with(s))
        || path.contains("/proxy")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(uri: &str) -> Request {
        Request::builder().uri(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn long_running_requests_are_the_kubernetes_ones() {
        for uri in [
            "/api/v1/pods?watch=true",
            "/api/v1/pods?watch=1",
            "/api/v1/watch/pods",
            "/api/v1/namespaces/d/pods/p/log?follow=true",
            "/api/v1/namespaces/d/pods/p/exec?command=sh",
            "/api/v1/namespaces/d/pods/p/portforward",
            "/api/v1/namespaces/d/services/s/proxy/x",
            "/v2/app/blobs/uploads/1",
        ] {
            assert!(is_long_running(&req(uri)), "{uri}");
        }
        for uri in [
            "/api/v1/pods",
            "/api/v1/pods?watch=false",
            "/api/v1/namespaces/d/pods/p/log",
            "/apis/apps/v1/deployments",
        ] {
            assert!(!is_long_running(&req(uri)), "{uri}");
        }
    }

    #[test]
    fn oversized_heads_and_declared_bodies_are_refused() {
        let long = format!(
            "/api/v1/pods?labelSelector={}",
            "a".repeat(DEFAULT_MAX_URI_BYTES)
        );
        assert_eq!(
            check_head(&req(&long), 10).unwrap_err().code,
            StatusCode::URI_TOO_LONG
        );
        let mut big = req("/api/v1/namespaces/d/configmaps");
        big.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("67108864"),
        );
        assert_eq!(
            check_head(&big, 3 << 20).unwrap_err().code,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let mut blob = req("/v2/app/blobs/uploads/1");
        blob.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("67108864"),
        );
        assert!(check_head(&blob, 3 << 20).is_ok());
        let mut heavy = req("/api/v1/pods");
        let value = http::HeaderValue::from_str(&"x".repeat(DEFAULT_MAX_HEADER_BYTES)).unwrap();
        heavy.headers_mut().insert("x-big", value);
        assert_eq!(
            check_head(&heavy, 10).unwrap_err().code,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
