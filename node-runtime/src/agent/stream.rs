//! `kubectl exec`, `kubectl attach` and `kubectl port-forward` (to container pods; Wasm pods
//! are served by `portforward/`) on the agent: the API server proxies the client's
//! upgrade request here; the agent finds the pod's running container in containerd, asks CRI
//! for a streaming URL (Exec / Attach), and hands the request on to containerd's streaming
//! server, which speaks kubectl's websocket and SPDY protocols. After the switch of protocols
//! the two connections are spliced byte for byte. A Wasm container has no process to run a
//! command in: that is a clear 400.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::server::error;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::cri::api;
use crate::oci::{
    OciRuntime, LABEL_CONTAINER_NAME, LABEL_MANAGED_BY, LABEL_POD_NAME, LABEL_POD_NAMESPACE,
};

/// How long connecting to containerd's streaming server may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Request headers of the upgrade that go on to the streaming server.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];
/// Response headers of the switch that the client needs.
const UPGRADED_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
    "content-type",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Exec,
    Attach,
}

/// `command`, `stdin`, `stdout`, `stderr` and `tty` from kubectl's query.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StreamQuery {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamQuery {
    pub fn parse(query: &str) -> StreamQuery {
        let mut q = StreamQuery::default();
        let on = |v: &str| matches!(v, "1" | "true" | "True");
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "command" => q.command.push(v.into_owned()),
                "input" | "stdin" => q.stdin = on(&v),
                "output" | "stdout" => q.stdout = on(&v),
                "error" | "stderr" => q.stderr = on(&v),
                "tty" => q.tty = on(&v),
                _ => {}
            }
        }
        q
    }
}

/// The id of the pod's running container `container`, or the answer to give instead.
async fn running_container(
    oci: &OciRuntime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Response> {
    let labels = |with_container: bool| {
        let mut l: std::collections::HashMap<String, String> = [
            (LABEL_MANAGED_BY.to_string(), oci.node_name().to_string()),
            (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
            (LABEL_POD_NAME.to_string(), pod.to_string()),
        ]
        .into();
        if with_container {
            l.insert(LABEL_CONTAINER_NAME.into(), container.into());
        }
        l
    };
    let unavailable = |e: crate::cri::CriError| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the container runtime did not answer: {e}"),
        )
    };
    let list = oci
        .cri
        .list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                state: Some(api::ContainerStateValue {
                    state: api::ContainerState::ContainerRunning as i32,
                }),
                label_selector: labels(true),
                ..Default::default()
            }),
        })
        .await
        .map_err(unavailable)?;
    if let Some(c) = list.containers.into_iter().next() {
        return Ok(c.id);
    }
    let sandboxes = oci
        .cri
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: labels(false),
                ..Default::default()
            }),
        })
        .await
        .map_err(unavailable)?;
    Err(if sandboxes.items.is_empty() {
        wasm_refusal(pod, container)
    } else {
        error(
            StatusCode::BAD_REQUEST,
            format!("unable to upgrade connection: container \"{container}\" in pod \"{pod}\" is not running"),
        )
    })
}

fn wasm_refusal(pod: &str, container: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("cannot exec into container \"{container}\" of pod \"{pod}\": it is a WebAssembly component, which has no shell or processes to run commands in"),
    )
}

/// The id of the pod's ready sandbox, or the answer to give instead.
async fn ready_sandbox(oci: &OciRuntime, ns: &str, pod: &str) -> Result<String, Response> {
    let labels: std::collections::HashMap<String, String> = [
        (LABEL_MANAGED_BY.to_string(), oci.node_name().to_string()),
        (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
        (LABEL_POD_NAME.to_string(), pod.to_string()),
    ]
    .into();
    let list = oci
        .cri
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                state: Some(api::PodSandboxStateValue {
                    state: api::PodSandboxState::SandboxReady as i32,
                }),
                label_selector: labels,
                ..Default::default()
            }),
        })
        .await
        .map_err(|e| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the container runtime did not answer: {e}"),
            )
        })?;
    list.items.into_iter().next().map(|s| s.id).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("cannot port-forward to pod \"{pod}\": it has neither a running container sandbox nor a serving WebAssembly HTTP component on this node (is it running?)"),
        )
    })
}

/// Serves one port-forward request: CRI PortForward for the pod's sandbox, the upgrade
/// handed on to containerd's streaming server.
pub async fn serve_port_forward(
    oci: Option<&OciRuntime>,
    ns: &str,
    pod: &str,
    req: Request,
) -> Response {
    let Some(oci) = oci else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("cannot port-forward to pod \"{pod}\": it has no serving WebAssembly HTTP component on this node (is it running, with a containerPort?), and this node runs no container sandboxes"),
        );
    };
    let (mut parts, _) = req.into_parts();
    let ports: Vec<i32> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "ports")
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    let sandbox = match ready_sandbox(oci, ns, pod).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let url = match oci
        .cri
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: ports,
        })
        .await
    {
        Ok(r) => r.url,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let client = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    match forward(&url, &parts, client).await {
        Ok(r) => r,
        Err(msg) => error(StatusCode::BAD_GATEWAY, msg),
    }
}

/// Serves one exec or attach request.
pub async fn serve(
    oci: Option<&OciRuntime>,
    kind: StreamKind,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request,
) -> Response {
    let Some(oci) = oci else {
        return wasm_refusal(pod, container);
    };
    // Only the head goes on; the body of an upgrade request is empty.
    let (mut parts, _) = req.into_parts();
    let q = StreamQuery::parse(parts.uri.query().unwrap_or(""));
    let id = match running_container(oci, ns, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let url = match kind {
        StreamKind::Exec => {
            if q.command.is_empty() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "you must specify at least 1 command",
                );
            }
            oci.cri
                .exec(api::ExecRequest {
                    container_id: id,
                    cmd: q.command,
                    tty: q.tty,
                    stdin: q.stdin,
                    stdout: q.stdout,
                    stderr: q.stderr && !q.tty,
                })
                .await
                .map(|r| r.url)
        }
        StreamKind::Attach => oci
            .cri
            .attach(api::AttachRequest {
                container_id: id,
                stdin: q.stdin,
                tty: q.tty,
                stdout: q.stdout,
                stderr: q.stderr && !q.tty,
            })
            .await
            .map(|r| r.url),
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let client = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    match forward(&url, &parts, client).await {
        Ok(r) => r,
        Err(msg) => error(StatusCode::BAD_GATEWAY, msg),
    }
}

/// Sends the upgrade request on to `url` (containerd's streaming server, plain HTTP on
/// loopback) and splices the connections once it switches protocols.
async fn forward(
    url: &str,
    req: &http::request::Parts,
    client: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("bad streaming URL {url:?}: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("streaming URL {url:?} has no host"))?
        .clone();
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(authority.as_str()),
    )
    .await
    .map_err(|_| format!("connecting to the streaming server {authority} timed out"))?
    .map_err(|e| format!("cannot connect to the streaming server {authority}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = http::Request::builder()
        .method(req.method.clone())
        .uri(path)
        .header(http::header::HOST, authority.as_str());
    for name in UPGRADE_HEADERS {
        for v in req.headers.get_all(*name) {
            out = out.header(*name, v);
        }
    }
    let out = out
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let mut resp = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut answer = Response::builder().status(status);
    for name in UPGRADED_HEADERS {
        for v in resp.headers().get_all(*name) {
            answer = answer.header(*name, v);
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return answer.body(Body::from(body)).map_err(|e| e.to_string());
    }
    let Some(client) = client else {
        return Err("the request was not an HTTP/1.1 connection upgrade".into());
    };
    let runtime = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(client), Ok(runtime)) = (client.await, runtime.await) else {
            tracing::debug!("stream upgrade did not complete");
            return;
        };
        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(runtime));
        if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
            tracing::debug!(error = %e, "stream ended");
        }
    });
    answer.body(Body::empty()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_exec_queries() {
        let q = StreamQuery::parse(
            "command=sh&command=-c&command=echo%20hi&container=c&stdin=true&stdout=true&tty=true",
        );
        assert_eq!(q.command, vec!["sh", "-c", "echo hi"]);
        assert!(q.stdin && q.stdout && q.tty && !q.stderr);
    }
}
