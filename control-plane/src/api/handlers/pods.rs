//! Pod subresources: `binding` (the scheduler's write), `eviction` (drain), and the node-served
//! streams `log`, `exec` and `attach`.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::delete::{delete_one, DeleteOpts};
use super::{json_response, Ctx};
use crate::api::nodeproxy::{self, NodeEndpoint};
use crate::api::request::decode_object;
use crate::api::status::{success_status, ApiError, ApiResult};
use crate::binding::BindError;
use crate::store::ObjectKey;

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
    let ns = ctx.rp.namespace.clone().unwrap_or_default();
    crate::binding::bind(&ctx.st.store, &ns, &name, &node)
        .await
        .map_err(|e| match e {
            BindError::NotFound(_) => ctx.not_found(),
            BindError::AlreadyBound { .. } | BindError::Terminating(_) => ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Operation cannot be fulfilled on pods/binding \"{name}\": {e}"),
            ),
            BindError::Store(e) => ctx.store_err(e),
        })?;
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
    // PodDisruptionBudgets: check and delete under one lock, so parallel evictions (drain)
    // cannot spend the same allowed disruption twice.
    let _guard = crate::controllers::disruption::EVICTION_LOCK.lock().await;
    let pod = ctx.current().await?;
    crate::controllers::disruption::check_eviction(&ctx.st, &pod).await?;
    delete_one(&ctx, &name, &opts).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &success_status(&name, "", "pods", None),
        &[],
    ))
}

/// The container a `log`/`exec`/`attach` request names (or the pod's only one) and the
/// endpoint of the agent on the pod's node.
async fn node_target(ctx: &Ctx) -> ApiResult<(String, NodeEndpoint)> {
    let pod = ctx.current().await?;
    let container = container_name(ctx, &pod)?;
    let ep = node_endpoint(ctx, &pod, &container).await?;
    Ok((container, ep))
}

/// The container a request names, or the pod's only one.
fn container_name(ctx: &Ctx, pod: &Value) -> ApiResult<String> {
    let name = ctx.name().to_string();
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let container = match ctx.q.container.clone().filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) => c,
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    Ok(container)
}

/// The endpoint of the agent running `pod` (`what` names what waits for it in errors).
async fn node_endpoint(ctx: &Ctx, pod: &Value, what: &str) -> ApiResult<NodeEndpoint> {
    let name = ctx.name();
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container \"{what}\" in pod \"{name}\" is waiting to start: the pod is not scheduled to a node yet"
        )));
    }
    let node_obj = ctx
        .st
        .store
        .get(&ObjectKey::new("core/nodes", "", &node))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("nodes", "", &node))?;
    NodeEndpoint::from_node(&node_obj).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node \"{node}\" does not advertise a Skiff agent endpoint (is its agent running?)"
        ))
    })
}

/// `pods/exec`, `pods/attach` and `pods/portforward`: proxied, with their websocket or SPDY upgrade, to the agent
/// running the pod, which bridges them to the container runtime's streaming server (a Wasm
/// container has nothing to exec into; the agent says so).
pub async fn stream(
    ctx: Ctx,
    method: &http::Method,
    raw_query: &str,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> ApiResult<Response> {
    let ns = ctx.rp.namespace.clone().unwrap_or_default();
    let sub = ctx.rp.subresource.clone().unwrap_or_default();
    let (path, ep) = if sub == "portforward" {
        // A pod's ports, whatever container listens: no container in the path.
        let pod = ctx.current().await?;
        let ep = node_endpoint(&ctx, &pod, "portforward").await?;
        (format!("/portForward/{ns}/{}?{raw_query}", ctx.name()), ep)
    } else {
        let (container, ep) = node_target(&ctx).await?;
        (
            format!("/{sub}/{ns}/{}/{container}?{raw_query}", ctx.name()),
            ep,
        )
    };
    nodeproxy::upgrade(
        &ep,
        method,
        &path,
        &ctx.headers,
        upgrade,
        &ctx.st.tokens.node,
    )
    .await
}

/// `pods/log` is served by the node agent running the pod.
pub async fn node_stream(ctx: Ctx) -> ApiResult<Response> {
    let (container, ep) = node_target(&ctx).await?;
    let name = ctx.name().to_string();
    let mut query = Vec::new();
    for (k, v) in [
        ("follow", &ctx.q.follow),
        ("tailLines", &ctx.q.tail_lines),
        ("previous", &ctx.q.previous),
        ("timestamps", &ctx.q.timestamps),
        ("sinceSeconds", &ctx.q.since_seconds),
        ("sinceTime", &ctx.q.since_time),
        ("limitBytes", &ctx.q.limit_bytes),
    ] {
        if let Some(v) = v {
            let v = v.replace(['&', '#', ' '], "").replace('+', "%2B");
            query.push(format!("{k}={v}"));
        }
    }
    let ns = ctx.rp.namespace.clone().unwrap_or_default();
    let path = format!("/containerLogs/{ns}/{name}/{container}?{}", query.join("&"));
    nodeproxy::get(&ep, &path, &ctx.st.tokens.node).await
}

/// `nodes/NAME/proxy/PATH`: a GET of the node agent's own endpoint (`metrics`,
/// `stats/summary`), as the API server proxies to a kubelet.
pub async fn node_proxy(ctx: Ctx, raw_query: &str) -> ApiResult<Response> {
    let node = ctx.current().await?;
    let ep = NodeEndpoint::from_node(&node).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node {} has no agent endpoint to proxy to (it has not registered one yet)",
            ctx.name()
        ))
    })?;
    let mut path = format!("/{}", ctx.rp.proxy_path.as_deref().unwrap_or(""));
    if !raw_query.is_empty() {
        path.push('?');
        path.push_str(raw_query);
    }
    nodeproxy::get(&ep, &path, &ctx.st.tokens.node).await
}
