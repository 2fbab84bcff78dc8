//! Response media types: handlers answer JSON; a client that accepts only YAML gets the same
//! answer as YAML (`Accept: application/yaml`), and one that accepts neither JSON nor YAML
//! gets 406 naming what the server can send, as Kubernetes answers for a media type a
//! resource cannot be encoded in.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::status::ApiError;

/// The largest JSON answer converted to YAML: bigger answers (only lists can be) would be
/// held twice in memory; Kubernetes lists that size are paged by clients anyway.
const DEFAULT_MAX_YAML_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What the client takes, as far as encoding goes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Wanted {
    Json,
    Yaml,
    /// Only media types the server cannot produce.
    Unsupported,
}

fn media_types(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|part| {
            part.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

fn wanted(headers: &HeaderMap) -> Wanted {
    let types = media_types(headers);
    if types.is_empty() {
        return Wanted::Json;
    }
    for t in &types {
        match t.as_str() {
            "application/json"
            | "*/*"
            | "application/*"
            | "application/json-seq"
            | "application/jwk-set+json" => return Wanted::Json,
            "application/yaml" | "text/yaml" | "application/x-yaml" => return Wanted::Yaml,
            _ => {}
        }
    }
    // Discovery, OpenAPI and watch media types are answered by their own handlers.
    if types.iter().any(|t| {
        t.starts_with("application/com.github.proto-openapi")
            || t.contains("apidiscovery")
            || t == "application/vnd.kubernetes.protobuf;stream=watch"
            || t.starts_with("text/")
    }) {
        return Wanted::Json;
    }
    Wanted::Unsupported
}

/// Re-encodes JSON answers for clients that asked for YAML; refuses unknown media types.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let want = wanted(req.headers());
    let path = req.uri().path().to_string();
    // Only the Kubernetes API is negotiated (not the image registry or health checks).
    let api = path.starts_with("/api/") || path.starts_with("/apis/") || path == "/version";
    let watch = req
        .uri()
        .query()
        .is_some_and(|q| q.contains("watch=true") || q.contains("watch=1"))
        || path.contains("/watch/");
    if !api || want == Wanted::Json {
        return next.run(req).await;
    }
    if want == Wanted::Unsupported && !watch {
        let accept = media_types(req.headers()).join(", ");
        return ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml (asked for {accept}); protobuf answers are not supported by this server — add application/json to Accept"
            ),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    if watch || want != Wanted::Yaml || !is_json(resp.headers()) {
        return resp;
    }
    to_yaml(resp).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

async fn to_yaml(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, DEFAULT_MAX_YAML_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::internal(format!("reading the answer to encode it as YAML: {e}"))
                .into_response()
        }
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    match serde_yaml::to_string(&value) {
        Ok(yaml) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(yaml))
        }
        Err(e) => ApiError::internal(format!("encoding the answer as YAML: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn picks_the_first_type_it_can_send() {
        assert_eq!(wanted(&HeaderMap::new()), Wanted::Json);
        assert_eq!(wanted(&accept("application/yaml")), Wanted::Yaml);
        assert_eq!(
            wanted(&accept(
                "application/vnd.kubernetes.protobuf, application/json"
            )),
            Wanted::Json
        );
        assert_eq!(
            wanted(&accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            )),
            Wanted::Json
        );
        assert_eq!(
            wanted(&accept("application/vnd.kubernetes.protobuf")),
            Wanted::Unsupported
        );
        assert_eq!(wanted(&accept("*/*")), Wanted::Json);
    }
}
