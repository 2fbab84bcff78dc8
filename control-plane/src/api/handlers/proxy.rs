//! `pods/NAME[:PORT]/proxy/PATH` and `services/NAME[:PORT]/proxy/PATH`: HTTP requests
//! forwarded by the API server to the pod's address (a Service's: one of its ready endpoints),
//! as `kubectl proxy` users and dashboards reach workloads. The name may carry a scheme
//! (`http:web:8080`); only `http` is served.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Ctx;
use crate::api::status::{ApiError, ApiResult};

/// How long connecting to a pod may take: a pod that does not accept in this time is
/// reported unreachable rather than holding the client.
pub const DEFAULT_PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the pod may take to answer the request's headers.
pub const DEFAULT_PROXY_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Request headers not passed on: hop-by-hop ones and the client's API credentials.
const DROPPED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// `[scheme:]name[:port]` of the path.
#[derive(Debug, PartialEq)]
struct Target {
    name: String,
    port: Option<String>,
}

fn parse_target(raw: &str) -> ApiResult<Target> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, None),
        [name, port] => ("", *name, Some(*port)),
        [scheme, name, port] => (*scheme, *name, Some(*port)),
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid proxy target {raw:?}: expected [scheme:]name[:port]"
            )))
        }
    };
    match scheme {
        "" | "http" => {}
        "https" => {
            return Err(ApiError::bad_request(
                "https proxy targets are not supported by this server: address the pod's http port",
            ))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown proxy scheme {other:?}: use http"
            )))
        }
    }
    Ok(Target {
        name: name.to_string(),
        port: port.filter(|p| !p.is_empty()).map(str::to_string),
    })
}

/// Forwards the request to the addressed pod or Service.
pub async fn forward(ctx: Ctx, method: Method, raw_query: &str, body: Body) -> ApiResult<Response> {
    let target = parse_target(ctx.name())?;
    let (ip, port) = match ctx.rp.def.plural {
        "pods" => pod_address(&ctx, &target).await?,
        "services" => service_address(&ctx, &target).await?,
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} have no proxy subresource"
            )))
        }
    };
    let mut path = format!("/{}", ctx.rp.proxy_path.as_deref().unwrap_or(""));
    if !raw_query.is_empty() {
        path.push('?');
        path.push_str(raw_query);
    }
    send(&ctx.headers, method, &ip, port, &path, body).await
}

async fn get_object(ctx: &Ctx, plural: &str, name: &str) -> ApiResult<Option<Value>> {
    let ns = ctx.rp.namespace.as_deref().unwrap_or("");
    let key = crate::store::ObjectKey::new(&format!("core/{plural}"), ns, name);
    ctx.st.store.get(&key).await.map_err(|e| ctx.store_err(e))
}

async fn pod_address(ctx: &Ctx, t: &Target) -> ApiResult<(String, u16)> {
    let pod = get_object(ctx, "pods", &t.name)
        .await?
        .ok_or_else(|| ApiError::not_found("pods", "", &t.name))?;
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            let phase = pod
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending");
            ApiError::unavailable(format!(
                "pod {} has no IP address yet (phase {phase})",
                t.name
            ))
        })?;
    let port = match &t.port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) => n,
            Err(_) => named_container_port(&pod, p).ok_or_else(|| {
                ApiError::bad_request(format!("pod {} has no container port named {p:?}", t.name))
            })?,
        },
    };
    Ok((ip.to_string(), port))
}

fn named_container_port(pod: &Value, name: &str) -> Option<u16> {
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    containers
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
        .and_then(|n| u16::try_from(n).ok())
}

async fn service_address(ctx: &Ctx, t: &Target) -> ApiResult<(String, u16)> {
    let svc = get_object(ctx, "services", &t.name)
        .await?
        .ok_or_else(|| ApiError::not_found("services", "", &t.name))?;
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let port = match &t.port {
        None if ports.len() == 1 => ports.first(),
        None => ports.iter().find(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        }),
        Some(p) => ports.iter().find(|sp| {
            sp.get("name").and_then(Value::as_str) == Some(p.as_str())
                || sp
                    .get("port")
                    .and_then(Value::as_u64)
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(p.as_str())
        }),
    }
    .ok_or_else(|| {
        ApiError::unavailable(format!(
            "no service port {:?} found for service {:?}",
            t.port.as_deref().unwrap_or(""),
            t.name
        ))
    })?;
    let port_name = port.get("name").and_then(Value::as_str).unwrap_or("");
    let endpoints = get_object(ctx, "endpoints", &t.name)
        .await?
        .unwrap_or(Value::Null);
    let subsets = endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for subset in &subsets {
        let target_port = subset
            .get("ports")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            })
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|n| u16::try_from(n).ok());
        let ip = subset
            .get("addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|a| a.get("ip").and_then(Value::as_str));
        if let (Some(ip), Some(port)) = (ip, target_port) {
            return Ok((ip.to_string(), port));
        }
    }
    Err(ApiError::unavailable(format!(
        "no endpoints available for service {:?}",
        t.name
    )))
}

async fn send(
    headers: &HeaderMap,
    method: Method,
    ip: &str,
    port: u16,
    path: &str,
    body: Body,
) -> ApiResult<Response> {
    let addr = format!("{ip}:{port}");
    let unreachable = |e: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("error trying to reach service: dial tcp {addr}: {e}"),
        )
    };
    let tcp = tokio::time::timeout(
        DEFAULT_PROXY_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| unreachable("i/o timeout".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        if !DROPPED_HEADERS.contains(&k.as_str()) {
            req = req.header(k, v);
        }
    }
    let req = req
        .header(http::header::HOST, addr.clone())
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let resp = tokio::time::timeout(DEFAULT_PROXY_RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| unreachable("no answer in time".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if !DROPPED_HEADERS.contains(&k.as_str()) {
            out.headers_mut().append(k, v.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("web").unwrap(),
            Target {
                name: "web".into(),
                port: None
            }
        );
        assert_eq!(
            parse_target("web:8080").unwrap(),
            Target {
                name: "web".into(),
                port: Some("8080".into())
            }
        );
        assert_eq!(
            parse_target("http:web:http").unwrap(),
            Target {
                name: "web".into(),
                port: Some("http".into())
            }
        );
        assert!(parse_target("https:web:443").is_err());
        assert!(parse_target("a:b:c:d").is_err());
    }
}
