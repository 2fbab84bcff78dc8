//! PATCH in the four media types Kubernetes accepts.

pub mod strategic;
pub mod strategic_schema;

use serde_json::Value;

use super::status::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> ApiResult<PatchType> {
        match ct {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            other => Err(ApiError::new(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            )),
        }
    }
}

/// Parses a patch body: JSON for the JSON-based types, YAML (a superset of JSON) for apply.
pub fn parse_patch(pt: PatchType, body: &[u8]) -> ApiResult<Value> {
    let parsed = match pt {
        PatchType::Apply => super::request::decode_yaml(body)?,
        _ => super::request::decode_json(body)?,
    };
    match (pt, &parsed) {
        (PatchType::Json, Value::Array(_)) => Ok(parsed),
        (PatchType::Json, _) => Err(ApiError::bad_request(
            "a JSON patch must be an array of operations like [{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]",
        )),
        (_, Value::Object(_)) => Ok(parsed),
        _ => Err(ApiError::bad_request("the patch must be a JSON object")),
    }
}

/// Applies `patch` to `current` (an object of `kind`).
pub fn apply_patch(pt: PatchType, current: &Value, patch: &Value, kind: &str) -> ApiResult<Value> {
    match pt {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })?;
            Ok(doc)
        }
        PatchType::Merge => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::StrategicMerge | PatchType::Apply => {
            strategic::strategic_merge(current, patch, kind)
                .map_err(|e| ApiError::bad_request(format!("invalid strategic merge patch: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_four_types() {
        let cur = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1}});
        let p = parse_patch(
            PatchType::Merge,
            br#"{"metadata":{"labels":{"x":null,"y":"2"}}}"#,
        )
        .unwrap();
        let out = apply_patch(PatchType::Merge, &cur, &p, "ConfigMap").unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        let p = parse_patch(
            PatchType::Json,
            br#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
        )
        .unwrap();
        assert_eq!(
            apply_patch(PatchType::Json, &cur, &p, "Deployment").unwrap()["spec"]["replicas"],
            3
        );
        let p = parse_patch(
            PatchType::Json,
            br#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
        )
        .unwrap();
        assert!(apply_patch(PatchType::Json, &cur, &p, "Deployment").is_err());
        let p = parse_patch(PatchType::Apply, b"spec:\n  replicas: 4\n").unwrap();
        assert_eq!(
            apply_patch(PatchType::Apply, &cur, &p, "Deployment").unwrap()["spec"]["replicas"],
            4
        );
        assert!(parse_patch(PatchType::Json, b"{}").is_err());
        assert!(parse_patch(PatchType::Merge, b"[1]").is_err());
        assert!(PatchType::from_content_type("text/plain").is_err());
    }
}
