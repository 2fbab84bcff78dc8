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

/// Where a kind keeps what its Scale shows: the built-in workloads' `spec.replicas`,
/// `status.replicas` and `spec.selector`, or a custom resource's scale subresource paths
/// (JSON pointers here; the selector there is a string already).
struct Paths {
    spec: String,
    status: String,
    label_selector: Option<String>,
    selector_is_text: bool,
}

impl Paths {
    fn of(def: &crate::api::resources::ResourceDef) -> Paths {
        let pointer = |p: &str| p.replace('.', "/");
        match crate::api::crd::scale_paths(def) {
            Some(p) => Paths {
                spec: pointer(&p.spec_replicas),
                status: pointer(&p.status_replicas),
                label_selector: p.label_selector.as_deref().map(pointer),
                selector_is_text: true,
            },
            None => Paths {
                spec: "/spec/replicas".into(),
                status: "/status/replicas".into(),
                label_selector: Some("/spec/selector".into()),
                selector_is_text: false,
            },
        }
    }

    fn selector(&self, obj: &Value) -> String {
        let at = self.label_selector.as_deref().and_then(|p| obj.pointer(p));
        if self.selector_is_text {
            at.and_then(Value::as_str).unwrap_or("").to_string()
        } else {
            selector_string(at)
        }
    }

    /// Sets the desired replicas, creating the objects on the way (as Kubernetes' SetNestedField).
    fn set_replicas(&self, obj: &mut Value, n: i64) {
        let mut at = obj;
        let parts: Vec<&str> = self.spec.split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if !at.is_object() {
                *at = json!({});
            }
            let map = at.as_object_mut().expect("made an object above");
            if i + 1 == parts.len() {
                map.insert(part.to_string(), json!(n));
                return;
            }
            at = map.entry(part.to_string()).or_insert_with(|| json!({}));
        }
    }
}

fn to_scale(obj: &Value, paths: &Paths) -> Value {
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
        "spec": {"replicas": obj.pointer(&paths.spec).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer(&paths.status).cloned().unwrap_or(json!(0)),
            "selector": paths.selector(obj),
        },
    })
}

pub async fn get(ctx: Ctx) -> ApiResult<Response> {
    let obj = ctx.current().await?;
    Ok(json_response(
        StatusCode::OK,
        &to_scale(&obj, &Paths::of(ctx.rp.def)),
        &[],
    ))
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
    let paths = Paths::of(ctx.rp.def);
    let (input, pt) = if is_patch {
        let pt = PatchType::from_content_type(&content_type(&ctx.headers))?;
        (patch::parse_patch(pt, &bytes)?, Some(pt))
    } else {
        (decode_object(&ctx.headers, &bytes)?, None)
    };
    let client_rv = object::meta_str(&input, "resourceVersion")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (stored, warnings) = write_loop(
        &ctx,
        Subresource::Main,
        client_rv,
        &Track::Update,
        |current| {
            let scale = match pt {
                Some(pt) => patch::apply_patch(pt, &to_scale(current, &paths), &input, "Scale")?,
                None => input.clone(),
            };
            let n = replicas_of(&scale, &name)?;
            let mut obj = current.clone();
            paths.set_replicas(&mut obj, n);
            Ok(obj)
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &to_scale(&stored, &paths),
        &warnings,
    ))
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
        let deployments = crate::api::resources::find("apps", "v1", "deployments").unwrap();
        let s = to_scale(&d, &Paths::of(deployments));
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert!(s["metadata"].get("labels").is_none());
        assert!(replicas_of(&json!({"spec": {"replicas": -1}}), "x").is_err());
    }
}
