//! One request through the node's Ingress listener: match its host and path, forward it to
//! the backend Service's ClusterIP (a pooled HTTP/1.1 client; the kernel's Service rules pick
//! the endpoint, or hold the connection at the activator for a scale-to-zero Service) with
//! `X-Forwarded-*` headers, and stream the answer back. No route: 404; a backend that cannot
//! be used: 503; one that cannot be reached: 502 — each with a body that says why.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;

use super::routes::{Backend, Route};
use super::{Shared, DEFAULT_BACKEND_TIMEOUT};

pub(super) type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("skiff ingress: {message}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The request's host, without a port.
fn host_of(req: &Request<Incoming>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string))
        .unwrap_or_default();
    match raw.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(']') => {
            h.to_string()
        }
        _ => raw,
    }
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    scheme: &'static str,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let host = host_of(&req);
    let path = req.uri().path().to_string();
    let routes = shared.routes.borrow().clone();
    let (namespace, name, addr) = match routes.route(&host, &path) {
        Route::NotFound => {
            return Ok(text(
                StatusCode::NOT_FOUND,
                format!("no Ingress rule matches host {host:?} and path {path:?}"),
            ))
        }
        Route::Backend(Backend::Unavailable(why)) => {
            return Ok(text(StatusCode::SERVICE_UNAVAILABLE, why.clone()))
        }
        Route::Backend(Backend::Service {
            namespace,
            name,
            addr,
        }) => (namespace.clone(), name.clone(), *addr),
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Ok(uri) = format!("http://{addr}{path_and_query}").parse::<Uri>() else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            format!("cannot forward the request target {path_and_query:?}"),
        ));
    };
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_11;
    let headers = req.headers_mut();
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    if let Ok(v) = HeaderValue::from_str(&host) {
        headers.insert("x-forwarded-host", v);
    }
    tracing::debug!(%host, %path, service = %format!("{namespace}/{name}"), %addr, "ingress request");
    match tokio::time::timeout(DEFAULT_BACKEND_TIMEOUT, shared.client.request(req)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            Ok(Response::from_parts(parts, body.boxed_unsync()))
        }
        Ok(Err(e)) => Ok(text(
            StatusCode::BAD_GATEWAY,
            format!("cannot reach Service {namespace}/{name} at {addr}: {e}"),
        )),
        Err(_) => Ok(text(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "Service {namespace}/{name} did not answer within {:?}",
                DEFAULT_BACKEND_TIMEOUT
            ),
        )),
    }
}
