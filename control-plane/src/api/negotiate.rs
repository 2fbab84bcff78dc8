//! Response media types. Handlers answer JSON; this middleware re-encodes the answer when
//! the client prefers another type, choosing as Kubernetes does: the `Accept` clauses by
//! q-value (then specificity, then order), the first one the server can send wins.
//!
//! * `application/json`, `*/*`, no `Accept`: the handler's JSON as is.
//! * `application/yaml`: the same answer as YAML.
//! * `application/vnd.kubernetes.protobuf`: the answer in Kubernetes' protobuf envelope
//!   ([`crate::api::protobuf::encode_k8s_protobuf`]); a watch becomes a stream of
//!   length-prefixed `metav1.WatchEvent` frames (`...;stream=watch`), converted line by
//!   line as the handler writes them. Kinds without a protobuf form (custom resources,
//!   `metrics.k8s.io`) get the next type the client accepts, or 406 as Kubernetes answers
//!   for CRDs. Protobuf clauses asking for a view (`as=Table`, `as=PartialObjectMetadata`)
//!   are passed over: those views come as JSON.
//! * nothing the server can send: 406 naming what it can.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::protobuf::{self, EncodeError};
use super::status::ApiError;

/// The largest JSON answer re-encoded (YAML, protobuf): bigger answers (only lists can be)
/// would be held twice in memory; Kubernetes lists that size are paged by clients anyway.
const MAX_REENCODED_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Content type of protobuf watch streams.
const PROTOBUF_WATCH: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// An encoding the server can answer in.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Wanted {
    Json,
    Yaml,
    Protobuf,
}

/// One clause of `Accept`: media type (lowercase), parameters, q-value.
#[derive(Debug)]
struct Clause {
    media: String,
    params: Vec<(String, String)>,
    q: f32,
}

fn clauses(headers: &HeaderMap) -> Vec<Clause> {
    let mut out: Vec<Clause> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let mut q = 1.0f32;
            let mut params = Vec::new();
            for param in pieces {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                let key = key.trim().to_ascii_lowercase();
                let value = value.trim().trim_matches('"').to_string();
                if key == "q" {
                    q = value
                        .parse::<f32>()
                        .ok()
                        .filter(|q| q.is_finite())
                        .unwrap_or(0.0);
                } else if !key.is_empty() {
                    params.push((key, value));
                }
            }
            Some(Clause { media, params, q })
        })
        .collect();
    // goautoneg (what Kubernetes uses): higher q first, then concrete types before
    // wildcards; otherwise the client's order (the sort is stable).
    let wildcards = |c: &Clause| {
        let (kind, sub) = c.media.split_once('/').unwrap_or((&c.media, ""));
        (kind == "*", sub == "*")
    };
    out.sort_by(|a, b| {
        b.q.partial_cmp(&a.q)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| wildcards(a).cmp(&wildcards(b)))
    });
    out
}

/// What a clause asks for, if the server can send it.
fn encoding_of(clause: &Clause, watch: bool) -> Option<Wanted> {
    // A view the server does not have (`as=Nope`) cannot be sent in any encoding.
    let unknown_view = clause.params.iter().any(|(k, v)| {
        k == "as"
            && !matches!(
                v.as_str(),
                "Table" | "PartialObjectMetadata" | "PartialObjectMetadataList"
            )
    });
    if unknown_view {
        return None;
    }
    match clause.media.as_str() {
        "application/json"
        | "*/*"
        | "application/*"
        | "application/json-seq"
        | "application/jwk-set+json" => Some(Wanted::Json),
        "application/yaml" | "text/yaml" | "application/x-yaml" => Some(Wanted::Yaml),
        protobuf::CONTENT_TYPE => {
            let plain = clause.params.iter().all(|(k, v)| match k.as_str() {
                // Table / PartialObjectMetadata views exist as JSON only.
                "as" | "g" | "v" => false,
                "stream" => watch && v == "watch",
                _ => true,
            });
            plain.then_some(Wanted::Protobuf)
        }
        _ => None,
    }
}

/// The encodings the client takes, most preferred first; empty if none can be sent.
fn preferences(headers: &HeaderMap, watch: bool) -> Vec<Wanted> {
    let clauses = clauses(headers);
    if clauses.is_empty() {
        return vec![Wanted::Json];
    }
    let mut out = Vec::new();
    for clause in clauses.iter().filter(|c| c.q > 0.0) {
        if let Some(w) = encoding_of(clause, watch) {
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    // Discovery, OpenAPI and plain-text media types are answered by their own handlers.
    if out.is_empty()
        && clauses.iter().any(|c| {
            c.media.starts_with("application/com.github.proto-openapi")
                || c.media.contains("apidiscovery")
                || c.media == protobuf::CONTENT_TYPE
                || c.media.starts_with("text/")
        })
    {
        out.push(Wanted::Json);
    }
    out
}

fn media_types(headers: &HeaderMap) -> String {
    let types: Vec<String> = clauses(headers).into_iter().map(|c| c.media).collect();
    types.join(", ")
}

fn not_acceptable(headers: &HeaderMap, types: &str) -> Response {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: {types} (asked for {})",
            media_types(headers)
        ),
    )
    .into_response()
}

/// Re-encodes JSON answers as the client prefers; refuses media types it cannot send.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // Only the Kubernetes API is negotiated (not the image registry or health checks).
    let api = path.starts_with("/api/") || path.starts_with("/apis/") || path == "/version";
    if !api {
        return next.run(req).await;
    }
    let watch = super::request::is_watch_uri(req.uri());
    let wanted = preferences(req.headers(), watch);
    match wanted.first() {
        None if watch => next.run(req).await,
        None => not_acceptable(
            req.headers(),
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ),
        Some(Wanted::Json) => next.run(req).await,
        Some(Wanted::Yaml) => yaml_answer(next.run(req).await, watch).await,
        Some(Wanted::Protobuf) => {
            let fallback = wanted.get(1).copied();
            protobuf_answer(req, next, &path, watch, fallback).await
        }
    }
}

async fn yaml_answer(resp: Response, watch: bool) -> Response {
    if watch || !is_json(resp.headers()) {
        return resp;
    }
    to_yaml(resp).await
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_json(headers: &HeaderMap) -> bool {
    content_type(headers).starts_with("application/json")
}

/// `application/json` of an object, not a view (`as=Table`).
fn is_plain_json(headers: &HeaderMap) -> bool {
    let mut parts = content_type(headers).split(';');
    parts.next().is_some_and(|m| m.trim() == "application/json")
        && parts.all(|p| !p.trim().to_ascii_lowercase().starts_with("as="))
}

/// Whether what `path` addresses has a protobuf form: the kind of the resource (or of its
/// subresource, e.g. `autoscaling/v1` `Scale`), else its group/version; discovery paths
/// and paths that name no resource are left to the answer.
fn path_has_protobuf(path: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    let (group, version, rest) = if let Some(r) = trimmed.strip_prefix("/api/") {
        let mut it = r.splitn(2, '/');
        ("", it.next(), it.next())
    } else if let Some(r) = trimmed.strip_prefix("/apis/") {
        let mut it = r.splitn(3, '/');
        (it.next().unwrap_or(""), it.next(), it.next())
    } else {
        return true;
    };
    let (Some(version), Some(rest)) = (version, rest.filter(|r| !r.is_empty())) else {
        return true;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let segments = segments.strip_prefix(&["watch"]).unwrap_or(&segments);
    match super::path::parse(group, version, segments) {
        Ok(rp) => {
            let sub = rp.subresource.as_deref().and_then(|name| {
                rp.def
                    .subresources
                    .iter()
                    .find(|s| s.name == name && !s.kind.is_empty())
            });
            match sub {
                Some(s) if s.group.is_empty() => protobuf::has_protobuf(s.version, s.kind),
                Some(s) => protobuf::has_protobuf(&format!("{}/{}", s.group, s.version), s.kind),
                None => protobuf::has_protobuf(&rp.def.api_version(), rp.def.kind),
            }
        }
        Err(_) => protobuf::group_version_has_protobuf(group, version),
    }
}

async fn protobuf_answer(
    req: Request,
    next: Next,
    path: &str,
    watch: bool,
    fallback: Option<Wanted>,
) -> Response {
    if !path_has_protobuf(path) {
        return match fallback {
            Some(Wanted::Yaml) => yaml_answer(next.run(req).await, watch).await,
            Some(_) => next.run(req).await,
            None => not_acceptable(req.headers(), "application/json, application/yaml"),
        };
    }
    let headers = req.headers().clone();
    let resp = next.run(req).await;
    // Logs, upgrades, Tables: not objects to re-encode.
    if !is_plain_json(resp.headers()) {
        return resp;
    }
    if watch && resp.status() == StatusCode::OK {
        return protobuf_watch(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_REENCODED_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::internal(format!("reading the answer to encode it as protobuf: {e}"))
                .into_response()
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    let error = match protobuf::encode_k8s_protobuf(&value) {
        Ok(encoded) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(protobuf::CONTENT_TYPE),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::from(encoded));
        }
        // Not a Kubernetes object (`/version`, a node's stats): JSON, as Kubernetes does.
        Err(EncodeError::MissingTypeMeta) => return Response::from_parts(parts, Body::from(bytes)),
        Err(e) => e,
    };
    if matches!(error, EncodeError::Field { .. }) {
        tracing::warn!(%error, "answering JSON: the object does not fit the protobuf table");
    }
    match fallback {
        Some(Wanted::Json) => Response::from_parts(parts, Body::from(bytes)),
        Some(Wanted::Yaml) => to_yaml(Response::from_parts(parts, Body::from(bytes))).await,
        _ => match error {
            EncodeError::UnsupportedKind { .. } => {
                not_acceptable(&headers, "application/json, application/yaml")
            }
            other => ApiError::internal(other.to_string()).into_response(),
        },
    }
}

/// Converts a watch answer (one JSON event per line) into protobuf frames, event by event.
fn protobuf_watch(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let stream = body.into_data_stream();
    let frames = futures::stream::unfold(
        (stream, Vec::<u8>::new(), false),
        |(mut stream, mut buf, done)| async move {
            if done {
                return None;
            }
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let (frame, last) = watch_frame(&line);
                    return Some((Ok::<_, Infallible>(frame), (stream, buf, last)));
                }
                match stream.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    // The handler ended (or failed): a last unterminated event, if any.
                    Some(Err(_)) | None => {
                        if buf.iter().all(u8::is_ascii_whitespace) {
                            return None;
                        }
                        let line = std::mem::take(&mut buf);
                        let (frame, _) = watch_frame(&line);
                        return Some((Ok(frame), (stream, buf, true)));
                    }
                }
            }
        },
    );
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROTOBUF_WATCH),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(frames))
}

/// The frame of one JSON watch line; `true` when the stream must end after it (an event
/// that cannot be encoded becomes an ERROR event with an InternalError Status).
fn watch_frame(line: &[u8]) -> (Bytes, bool) {
    let encoded = serde_json::from_slice::<Value>(line)
        .map_err(|e| format!("watch event is not JSON: {e}"))
        .and_then(|event| {
            let kind = event["type"].as_str().unwrap_or("");
            protobuf::watch_frame(kind, &event["object"]).map_err(|e| e.to_string())
        });
    match encoded {
        Ok(frame) => (Bytes::from(frame), false),
        Err(message) => {
            tracing::warn!(%message, "ending a protobuf watch");
            let status = ApiError::internal(message).status_body();
            let frame = protobuf::watch_frame("ERROR", &status).unwrap_or_default();
            (Bytes::from(frame), true)
        }
    }
}

async fn to_yaml(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_REENCODED_RESPONSE_BYTES).await {
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

    fn first(v: &str, watch: bool) -> Option<Wanted> {
        preferences(&accept(v), watch).first().copied()
    }

    #[test]
    fn picks_the_first_type_it_can_send() {
        assert_eq!(
            preferences(&HeaderMap::new(), false).first(),
            Some(&Wanted::Json)
        );
        assert_eq!(first("application/yaml", false), Some(Wanted::Yaml));
        assert_eq!(
            first(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                false
            ),
            Some(Wanted::Json)
        );
        assert_eq!(first("*/*", false), Some(Wanted::Json));
        assert_eq!(first("text/csv", false), Some(Wanted::Json));
        assert_eq!(first("image/png", false), None);
    }

    #[test]
    fn protobuf_when_it_comes_first() {
        // kubectl create / client-go typed clients.
        assert_eq!(
            preferences(
                &accept("application/vnd.kubernetes.protobuf,application/json"),
                false
            ),
            vec![Wanted::Protobuf, Wanted::Json]
        );
        assert_eq!(
            first("application/vnd.kubernetes.protobuf", false),
            Some(Wanted::Protobuf)
        );
        assert_eq!(
            first(
                "application/json, application/vnd.kubernetes.protobuf",
                false
            ),
            Some(Wanted::Json)
        );
        // q-values beat order; a refused type (q=0) is never chosen.
        assert_eq!(
            first(
                "application/json;q=0.5, application/vnd.kubernetes.protobuf",
                false
            ),
            Some(Wanted::Protobuf)
        );
        assert_eq!(
            first(
                "application/vnd.kubernetes.protobuf;q=0.9, application/json",
                false
            ),
            Some(Wanted::Json)
        );
        assert_eq!(
            preferences(
                &accept("application/vnd.kubernetes.protobuf;q=0, application/yaml"),
                false
            ),
            vec![Wanted::Yaml]
        );
        // Concrete types before wildcards of the same q.
        assert_eq!(
            first("*/*, application/vnd.kubernetes.protobuf", false),
            Some(Wanted::Protobuf)
        );
        // Views are JSON only: the metadata informer's Accept falls through to JSON.
        assert_eq!(
            first(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
                false
            ),
            Some(Wanted::Json)
        );
        // Watch framing: plain protobuf or stream=watch on a watch.
        assert_eq!(
            first("application/vnd.kubernetes.protobuf;stream=watch", true),
            Some(Wanted::Protobuf)
        );
        assert_eq!(
            first("application/vnd.kubernetes.protobuf", true),
            Some(Wanted::Protobuf)
        );
        assert_eq!(
            first("application/vnd.kubernetes.protobuf;stream=watch", false),
            Some(Wanted::Json)
        );
    }

    #[test]
    fn protobuf_paths_of_kinds_with_and_without_it() {
        assert!(path_has_protobuf("/api/v1/namespaces/default/pods"));
        assert!(path_has_protobuf("/api/v1/namespaces/default/pods/web"));
        assert!(path_has_protobuf("/api/v1/nodes/n1/status"));
        assert!(path_has_protobuf(
            "/apis/apps/v1/namespaces/default/deployments/web/scale"
        ));
        assert!(path_has_protobuf(
            "/apis/autoscaling/v1/horizontalpodautoscalers"
        ));
        assert!(path_has_protobuf(
            "/api/v1/namespaces/default/pods/nope/bogus"
        ));
        assert!(path_has_protobuf("/api/v1"));
        assert!(!path_has_protobuf("/apis/metrics.k8s.io/v1beta1/nodes"));
        assert!(!path_has_protobuf("/apis/example.com/v1/widgets"));
        assert!(!path_has_protobuf("/apis/apps.example.com/v1/deployments"));
    }

    #[test]
    fn watch_requests() {
        use crate::api::request::is_watch_uri as is_watch;
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(is_watch(&uri("/api/v1/pods?watch=true")));
        assert!(is_watch(&uri("/api/v1/pods?labelSelector=a&watch=1")));
        assert!(!is_watch(&uri("/api/v1/pods?allowWatchBookmarks=true")));
        assert!(!is_watch(&uri("/api/v1/pods?watch=false")));
    }
}
