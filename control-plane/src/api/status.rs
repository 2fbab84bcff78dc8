//! API errors, always answered as a Kubernetes `metav1.Status`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

use crate::store::StoreError;

/// One field-level problem, as `details.causes[]` of an Invalid Status.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// A failed request. `qualified` is the `resource.group` name Kubernetes puts in messages
/// (`deployments.apps`, `pods`).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(name: &str, group: &str, kind: &str) -> Value {
    json!({"name": name, "group": group, "kind": kind})
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(plural, group)),
        );
        e.details = Some(details(name, group, plural));
        e
    }

    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(plural, group)),
        );
        e.details = Some(details(name, group, plural));
        e
    }

    pub fn conflict(plural: &str, group: &str, name: &str) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(plural, group)
            ),
        );
        e.details = Some(details(name, group, plural));
        e
    }

    /// 422 Invalid with one cause per field problem, worded as Kubernetes does.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {}", summary.join(", ")),
        );
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        e.details = Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}));
        e
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit} bytes"),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// Maps a store failure on one object to the Kubernetes answer.
    pub fn from_store(e: StoreError, plural: &str, group: &str, name: &str) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(plural, group, name),
            StoreError::AlreadyExists => Self::already_exists(plural, group, name),
            StoreError::Conflict => Self::conflict(plural, group, name),
            StoreError::UidMismatch { .. } => {
                let mut err = Self::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": {e}",
                        qualified(plural, group)
                    ),
                );
                err.details = Some(details(name, group, plural));
                err
            }
            StoreError::Gone { .. } => Self::gone(e.to_string()),
            StoreError::Closed => Self::unavailable("the server is shutting down"),
            StoreError::Db(_) | StoreError::Corrupt(_) => Self::internal(e.to_string()),
        }
    }

    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            body["details"] = d.clone();
        }
        if let Some(secs) = self.retry_after {
            let d = body
                .as_object_mut()
                .and_then(|o| {
                    o.entry("details")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                })
                .map(|d| d.insert("retryAfterSeconds".into(), json!(secs)));
            let _ = d;
        }
        body
    }
}

/// `deployments.apps`, or just `pods` for the core group.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.status_body();
        let mut resp = (self.code, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// A `Status` with `status: Success`, as DELETE answers for most kinds.
pub fn success_status(name: &str, group: &str, plural: &str, uid: Option<&str>) -> Value {
    let mut d = details(name, group, plural);
    if let Some(uid) = uid {
        d["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}
