//! Query parameters, request bodies and content negotiation.

use axum::body::Body;
use http::HeaderMap;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// Kubernetes' request body limit: larger bodies are refused before being read whole.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The query parameters any resource request may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub watch: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub timeout_seconds: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub dry_run: Option<String>,
    pub field_validation: Option<String>,
    pub field_manager: Option<String>,
    pub force: Option<String>,
    pub grace_period_seconds: Option<String>,
    pub propagation_policy: Option<String>,
    pub include_object: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub pretty: Option<String>,
    // pods/log
    pub container: Option<String>,
    pub follow: Option<String>,
    pub tail_lines: Option<String>,
    pub previous: Option<String>,
    pub timestamps: Option<String>,
    pub since_seconds: Option<String>,
    pub since_time: Option<String>,
    pub limit_bytes: Option<String>,
}

pub fn is_true(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1") | Some("True"))
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        match raw {
            None | Some("") => Ok(Query::default()),
            Some(q) => serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}"))),
        }
    }

    pub fn is_watch(&self) -> bool {
        is_true(&self.watch)
    }

    /// `dryRun=All` (the only value Kubernetes accepts).
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            ))),
        }
    }

    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.field_validation.as_deref() {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    pub fn int_param(&self, name: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "{name}: Invalid value: \"{s}\": must be an integer"
                ))
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// How much of an oversized body is read and discarded (never kept) so the client finishes
/// sending and can read the 413; beyond this the connection is simply closed.
pub const DEFAULT_OVERSIZE_DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// Reads the body, refusing more than `limit` bytes: by Content-Length before reading, else
/// while reading. An oversized body is never held in memory whole.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut too_large = declared.is_some_and(|len| len > limit as u64);
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit as u64 {
            too_large = true;
        }
        if too_large {
            if seen > DEFAULT_OVERSIZE_DRAIN_BYTES {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if too_large {
        return Err(ApiError::too_large(limit));
    }
    Ok(buf.freeze())
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes an object body (create, update) in any of the media types kubectl sends.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode_k8s_protobuf(body)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty: send the object as JSON, YAML or protobuf",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    serde_yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

/// The request wants a `meta.k8s.io/v1` Table (what `kubectl get` asks for).
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parses_kubectl_params() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&watch=true&resourceVersion=12&timeoutSeconds=30&dryRun=All",
        ))
        .unwrap();
        assert_eq!(q.label_selector.as_deref(), Some("app=web"));
        assert!(q.is_watch());
        assert!(q.dry_run().unwrap());
        assert!(Query::parse(Some("dryRun=Some"))
            .unwrap()
            .dry_run()
            .is_err());
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let headers = HeaderMap::new();
        let body = Body::from(vec![b'x'; 11]);
        let err = read_body(&headers, body, 10).await.unwrap_err();
        assert_eq!(err.code, http::StatusCode::PAYLOAD_TOO_LARGE);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "100".parse().unwrap());
        let err = read_body(&headers, Body::empty(), 10).await.unwrap_err();
        assert_eq!(err.code, http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
