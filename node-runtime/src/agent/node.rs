//! The agent's Node: registration (capacity, addresses, node info, labels), the Lease in
//! `kube-node-lease` renewed on a timer, and the Ready condition's heartbeat.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::config::{AgentConfig, DEFAULT_LEASE_DURATION_SECONDS, DEFAULT_STATUS_REFRESH};
use super::AgentError;

/// The label the scheduler (through RuntimeClass `wasm`) looks for.
pub const WASM_NODE_LABEL: &str = "skiff.dev/runtime-wasm";
/// The label the scheduler (through RuntimeClass `oci`) looks for: `true` with containerd.
pub const OCI_NODE_LABEL: &str = "skiff.dev/runtime-oci";
/// The agent endpoint's certificate fingerprint, pinned by the API server when it proxies.
pub const CERT_FINGERPRINT_ANNOTATION: &str = "skiff.dev/agent-cert-sha256";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn memory_kib() -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn os_image() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Timestamps as a MicroTime (`renewTime`).
pub fn micro_time_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// The node's conditions; `runtime_down` (why the container runtime does not answer) makes
/// Ready False, as the kubelet reports a dead container runtime; `network_off` (why the node
/// has no pod network) makes NetworkUnavailable True — the node still runs Wasm pods on
/// hostPorts, so it stays Ready.
fn ready_conditions(runtime_down: Option<&str>, network_off: Option<&str>) -> Value {
    let now = now();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "agent has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "agent has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "agent has sufficient PID available"
        ),
        match network_off {
            None => cond(
                "NetworkUnavailable",
                "False",
                "RouteCreated",
                "skiff agent set up the pod network"
            ),
            Some(why) => cond("NetworkUnavailable", "True", "NoPodNetwork", why),
        },
        match runtime_down {
            None => cond(
                "Ready",
                "True",
                "KubeletReady",
                "skiff agent is posting ready status"
            ),
            Some(why) => cond(
                "Ready",
                "False",
                "KubeletNotReady",
                &format!("container runtime is down: {why}")
            ),
        },
    ])
}

fn node_status(cfg: &AgentConfig, endpoint_port: u16, oci: Option<&str>) -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_kib()),
        "pods": cfg.max_pods.to_string(),
    });
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": ready_conditions(None, None),
        "addresses": [
            {"type": "InternalIP", "address": cfg.node_ip.to_string()},
            {"type": "Hostname", "address": cfg.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": endpoint_port}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/etc/machine-id"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": match oci {
                // `containerd 1.6.20` → `containerd://1.6.20`, as the kubelet reports it.
                Some(v) => v.replacen(' ', "://", 1),
                None => "wasmtime://48".to_string(),
            },
            "kubeletVersion": concat!("v1.32.0-skiff-", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}

fn node_meta(cfg: &AgentConfig, fingerprint: &str, oci: bool) -> Value {
    json!({
        "name": cfg.node_name,
        "labels": {
            "kubernetes.io/hostname": cfg.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch(),
            WASM_NODE_LABEL: "true",
            OCI_NODE_LABEL: oci.to_string(),
        },
        "annotations": {CERT_FINGERPRINT_ANNOTATION: fingerprint},
    })
}

/// Creates the Node, or refreshes the labels, annotations and status of an existing one
/// (its spec — cordon, taints — belongs to the cluster and is kept).
pub async fn register(
    client: &kube::Client,
    cfg: &AgentConfig,
    endpoint_port: u16,
    fingerprint: &str,
    oci_version: Option<&str>,
) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let meta = node_meta(cfg, fingerprint, oci_version.is_some());
    let status = node_status(cfg, endpoint_port, oci_version);
    match nodes.get_opt(&cfg.node_name).await? {
        None => {
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {}, "status": status,
            }))
            .map_err(|e| AgentError::Config(e.to_string()))?;
            nodes.create(&PostParams::default(), &node).await?;
        }
        Some(_) => {
            nodes
                .patch(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": meta})),
                )
                .await?;
            nodes
                .patch_status(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await?;
        }
    }
    tracing::info!(node = %cfg.node_name, ip = %cfg.node_ip, "node registered");
    Ok(())
}

async fn renew_lease(
    client: &kube::Client,
    cfg: &AgentConfig,
    node_uid: Option<String>,
) -> Result<(), AgentError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let spec = json!({
        "holderIdentity": cfg.node_name,
        "leaseDurationSeconds": DEFAULT_LEASE_DURATION_SECONDS,
        "renewTime": micro_time_now(),
    });
    if leases.get_opt(&cfg.node_name).await?.is_some() {
        leases
            .patch(
                &cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?;
        return Ok(());
    }
    let mut meta = json!({"name": cfg.node_name, "namespace": LEASE_NAMESPACE});
    if let Some(uid) = node_uid {
        meta["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Node", "name": cfg.node_name, "uid": uid}]);
    }
    let lease: Lease = serde_json::from_value(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}))
        .map_err(|e| AgentError::Config(e.to_string()))?;
    leases.create(&PostParams::default(), &lease).await?;
    Ok(())
}

/// The pod range the cluster gave the Node (`spec.podCIDR`), waiting up to `timeout`.
pub async fn wait_pod_cidr(client: &kube::Client, node: &str, timeout: Duration) -> Option<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Ok(Some(n))) =
            tokio::time::timeout(Duration::from_secs(5), nodes.get_opt(node)).await
        {
            if let Some(c) = n.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                return Some(c);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records an Event about this Node (in `default`, where the kubelet puts node events).
async fn node_event(
    client: &kube::Client,
    cfg: &AgentConfig,
    warning: bool,
    reason: &str,
    message: &str,
) {
    let at = now();
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{}.{:x}", cfg.node_name, jiff::Timestamp::now().as_nanosecond()), "namespace": "default"},
        "involvedObject": {"kind": "Node", "apiVersion": "v1", "name": cfg.node_name, "uid": cfg.node_name},
        "reason": reason, "message": message,
        "source": {"component": "kubelet", "host": cfg.node_name},
        "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        "type": if warning { "Warning" } else { "Normal" },
        "reportingComponent": "kubelet", "reportingInstance": cfg.node_name,
    });
    let Ok(ev) = serde_json::from_value::<k8s_openapi::api::core::v1::Event>(ev) else {
        return;
    };
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::warn!(%reason, error = %e, "cannot record node event");
    }
}

/// Why the container runtime is not usable, if it is not.
async fn runtime_problem(runtime: Option<&crate::cri::CriClient>) -> Option<String> {
    let cri = runtime?;
    cri.version(Default::default())
        .await
        .err()
        .map(|e| e.to_string())
}

/// Renews the Lease every `lease_renew` and the Ready heartbeat every
/// `DEFAULT_STATUS_REFRESH`, until `shutdown`, checking the container runtime (when the node
/// has one) on every lease tick: while it does not answer, Ready is False and an Event says
/// why; when it is back, Ready is True again. Failures are logged and retried next tick.
pub async fn heartbeat(
    client: kube::Client,
    cfg: AgentConfig,
    mut shutdown: watch::Receiver<bool>,
    runtime: Option<crate::cri::CriClient>,
    network_off: Option<String>,
) {
    let mut runtime_down: Option<String> = None;
    let nodes: Api<Node> = Api::all(client.clone());
    if let Some(why) = &network_off {
        let patch = json!({"status": {"conditions": ready_conditions(None, Some(why))}});
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            nodes.patch_status(
                &cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            ),
        )
        .await;
        if !matches!(r, Ok(Ok(_))) {
            tracing::warn!("cannot report that pod networking is off in the node's conditions");
        }
        node_event(&client, &cfg, true, "NetworkUnavailable", why).await;
    }
    let mut lease_tick = tokio::time::interval(cfg.lease_renew);
    let mut status_tick = tokio::time::interval(DEFAULT_STATUS_REFRESH);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                let uid = match tokio::time::timeout(Duration::from_secs(10), nodes.get_opt(&cfg.node_name)).await {
                    Ok(Ok(Some(n))) => n.metadata.uid,
                    _ => None,
                };
                match tokio::time::timeout(Duration::from_secs(10), renew_lease(&client, &cfg, uid)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
                    Err(_) => tracing::warn!("lease renewal timed out"),
                }
                let problem = runtime_problem(runtime.as_ref()).await;
                if problem != runtime_down {
                    let (warning, reason, message) = match &problem {
                        Some(why) => {
                            tracing::error!(error = %why, "the container runtime is down");
                            (true, "ContainerRuntimeUnhealthy", format!("container runtime is down: {why}"))
                        }
                        None => {
                            tracing::info!("the container runtime is back");
                            (false, "NodeReady", format!("Node {} status is now: NodeReady", cfg.node_name))
                        }
                    };
                    let patch = json!({"status": {"conditions": ready_conditions(problem.as_deref(), network_off.as_deref())}});
                    let r = tokio::time::timeout(
                        Duration::from_secs(10),
                        nodes.patch_status(&cfg.node_name, &PatchParams::default(), &Patch::Merge(patch)),
                    ).await;
                    if matches!(r, Ok(Ok(_))) {
                        node_event(&client, &cfg, warning, reason, &message).await;
                        runtime_down = problem;
                    }
                }
            }
            _ = status_tick.tick() => {
                let patch = json!({"status": {"conditions": ready_conditions(runtime_down.as_deref(), network_off.as_deref())}});
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    nodes.patch_status(&cfg.node_name, &PatchParams::default(), &Patch::Merge(patch)),
                ).await;
                if !matches!(r, Ok(Ok(_))) {
                    tracing::warn!("node status heartbeat failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
