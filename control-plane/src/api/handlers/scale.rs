//! The `scale` subresource (autoscaling/v1 Scale) of Deployments, ReplicaSets and StatefulSets.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::write::{write_loop, Subresource, Track};
use super::{json_response, Ctx};
use crate::api::object;
use crate::api::patch::{self, PatchType};
use crate::api::request::{content_type, decode_object};
use crate::api::status::{ApiError, ApiResult, Cause};

/// `metav1.LabelSelector` as the string form `kubectl` and HPAs read from `status.selector`.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

fn to_scale(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let keep = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ];
    let meta: serde_json::Map<String, Value> = meta
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}

pub async fn get(ctx: Ctx) -> ApiResult<Response> {
    let obj = ctx.current().await?;
    Ok(json_response(StatusCode::OK, &to_scale(&obj), &[]))
}

fn replicas_of(scale: &Value, name: &str) -> ApiResult<i64> {
    match scale.pointer("/spec/replicas") {
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 && n <= i32::MAX as i64 => Ok(n),
            _ => Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {v}: must be greater than or equal to 0"),
                    field: "spec.replicas".into(),
                }],
            )),
        },
        None => Ok(0),
    }
}

/// PUT (a whole Scale) or PATCH (of the current Scale) setting the parent's `spec.replicas`.
pub async fn update(ctx: Ctx, body: Body, is_patch: bool) -> ApiResult<Response> {
    let bytes = ctx.body(body).await?;
    let name = ctx.name().to_string();
    let (input, pt) = if is_patch {
        let pt = PatchType::from_content_type(&content_type(&ctx.headers))?;
        (patch::parse_patch(pt, &bytes)?, Some(pt))
    } else {
        (decode_object(&ctx.headers, &bytes)?, None)
    };
    let client_rv = object::meta_str(&input, "resourceVersion")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (stored, warnings) = write_loop(&ctx, Subresource::Main, client_rv, &Track::Update, |current| {
        let scale = match pt {
            Some(pt) => patch::apply_patch(pt, &to_scale(current), &input, "Scale")?,
            None => input.clone(),
        };
        let n = replicas_of(&scale, &name)?;
        let mut obj = current.clone();
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(n));
        }
        Ok(obj)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &to_scale(&stored), &warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_strings() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(Some(&s)), "app=web,tier in (a,b),!x");
        assert_eq!(selector_string(None), "");
    }

    #[test]
    fn scale_from_deployment() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert!(s["metadata"].get("labels").is_none());
        assert!(replicas_of(&json!({"spec": {"replicas": -1}}), "x").is_err());
    }
}
