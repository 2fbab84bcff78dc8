//! Pod subresources: `binding` (the scheduler's write), `eviction` (drain), and the node-served
//! streams `log` and `exec`.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::delete::{delete_one, DeleteOpts};
use super::write::{write_loop, Subresource};
use super::{json_response, Ctx};
use crate::api::request::decode_object;
use crate::api::status::{success_status, ApiError, ApiResult};

pub async fn binding(ctx: Ctx, body: Body) -> ApiResult<Response> {
    let bytes = ctx.body(body).await?;
    let b = decode_object(&ctx.headers, &bytes)?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("target.name: Required value: the node to bind the pod to")
        })?
        .to_string();
    if let Some(kind) = b.pointer("/target/kind").and_then(Value::as_str) {
        if !kind.is_empty() && kind != "Node" {
            return Err(ApiError::bad_request(format!(
                "target.kind: Unsupported value: \"{kind}\": supported values: \"Node\""
            )));
        }
    }
    let name = ctx.name().to_string();
    write_loop(&ctx, Subresource::Binding, None, |current| {
        let assigned = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !assigned.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{assigned}\""),
            ));
        }
        let mut obj = current.clone();
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("nodeName".into(), json!(node));
        }
        Ok(obj)
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &success_status(&name, "", "pods", None),
        &[],
    ))
}

pub async fn eviction(ctx: Ctx, body: Body) -> ApiResult<Response> {
    let bytes = ctx.body(body).await?;
    let ev = decode_object(&ctx.headers, &bytes)?;
    let opts = DeleteOpts::from_value(&ctx, ev.get("deleteOptions").cloned())?;
    let name = ctx.name().to_string();
    delete_one(&ctx, &name, &opts).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &success_status(&name, "", "pods", None),
        &[],
    ))
}

/// `pods/log` and `pods/exec` are streamed from the node agent running the pod.
pub async fn node_stream(ctx: Ctx) -> ApiResult<Response> {
    let pod = ctx.current().await?;
    let sub = ctx.rp.subresource.as_deref().unwrap_or("log");
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let why = if node.is_empty() {
        format!("pod \"{}\" is not scheduled to a node yet", ctx.name())
    } else {
        format!("node \"{node}\" has no Skiff node agent serving pods/{sub}")
    };
    Err(ApiError::bad_request(format!(
        "cannot serve pods/{sub} for pod \"{}\": {why}. Logs and exec are served by the node agent that runs the pod.",
        ctx.name()
    )))
}
