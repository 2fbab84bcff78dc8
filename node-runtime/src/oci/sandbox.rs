//! A pod's sandbox: RunPodSandbox with the pod's identity, hostname, log directory, hostPort
//! mappings and namespaces (containerd sets up its network namespace through CNI), and its
//! teardown (StopPodSandbox releases the IP, RemovePodSandbox the rest).

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::{OciError, OciRuntime};
use super::{LABEL_MANAGED_BY, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::cri::{api, CriClient};

/// The cgroup (cgroupfs driver) every container pod's cgroups live under.
pub const CGROUP_PARENT: &str = "/skiff";

/// A running sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    /// The pod's IP, from CNI.
    pub ip: Option<String>,
    /// The sandbox's network namespace (the Wasm containers of a mixed pod listen in it).
    pub netns: Option<std::path::PathBuf>,
    pub config: api::PodSandboxConfig,
}

/// The pod's hostname: `spec.hostname` or the pod's name, cut to a DNS label (63).
pub fn hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    h.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The labels that tie CRI objects to this agent and pod.
pub fn pod_labels(pod: &Pod, node: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(LABEL_MANAGED_BY.into(), node.into());
    labels.insert(
        LABEL_POD_UID.into(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels
}

/// The sandbox config for `pod`, its container logs under `log_dir`.
pub fn config(pod: &Pod, node: &str, log_dir: &Path) -> Result<api::PodSandboxConfig, OciError> {
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.host_network == Some(true) {
        return Err(OciError::Spec(
            "spec.hostNetwork: true is not supported by Skiff yet; remove it to give the pod its own network".into(),
        ));
    }
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|h| *h > 0) else {
                continue;
            };
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp,
                Some("SCTP") => api::Protocol::Sctp,
                _ => api::Protocol::Tcp,
            };
            port_mappings.push(api::PortMapping {
                protocol: protocol as i32,
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let share_pid = spec.share_process_namespace == Some(true);
    let sc = spec.security_context.clone().unwrap_or_default();
    let sysctls = sc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    Ok(api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt: 0,
        }),
        hostname: hostname(pod),
        log_directory: log_dir.to_string_lossy().into_owned(),
        dns_config: None,
        port_mappings,
        labels: pod_labels(pod, node),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: CGROUP_PARENT.into(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(share_pid)),
                run_as_user: sc.run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: sc.run_as_group.map(|value| api::Int64Value { value }),
                supplemental_groups: sc.supplemental_groups.clone().unwrap_or_default(),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    })
}

/// The pod's namespaces: network and IPC shared by the pod; PID per container unless
/// `shareProcessNamespace`.
pub fn namespace_options(share_pid: bool) -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: if share_pid {
            api::NamespaceMode::Pod as i32
        } else {
            api::NamespaceMode::Container as i32
        },
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

impl OciRuntime {
    /// Runs the pod's sandbox and reads its IP.
    /// Runs the pod's sandbox; `cluster_dns` is the cluster DNS Service's address when this
    /// node serves cluster DNS (see [`super::dns::dns_config`]).
    pub async fn run_sandbox(
        &self,
        pod: &Pod,
        log_dir: &Path,
        cluster_dns: Option<std::net::IpAddr>,
    ) -> Result<Sandbox, OciError> {
        let mut cfg = config(pod, self.node_name(), log_dir)?;
        cfg.dns_config = super::dns::dns_config(pod, cluster_dns);
        let resp = self
            .cri
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await?;
        let (ip, netns) = sandbox_network(&self.cri, &resp.pod_sandbox_id).await?;
        Ok(Sandbox {
            id: resp.pod_sandbox_id,
            ip,
            netns,
            config: cfg,
        })
    }
}

/// The IP CNI gave a sandbox, if it has one.
pub async fn sandbox_network(
    cri: &CriClient,
    id: &str,
) -> Result<(Option<String>, Option<std::path::PathBuf>), OciError> {
    let status = cri
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        })
        .await?;
    let ip = status
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .filter(|ip| !ip.is_empty());
    let netns = status
        .info
        .get("info")
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
        .and_then(|info| netns_path(&info));
    Ok((ip, netns))
}

/// The network namespace path in containerd's verbose sandbox info
/// (`runtimeSpec.linux.namespaces[type=network].path`).
fn netns_path(info: &serde_json::Value) -> Option<std::path::PathBuf> {
    info.pointer("/runtimeSpec/linux/namespaces")?
        .as_array()?
        .iter()
        .find(|n| n.get("type").and_then(|t| t.as_str()) == Some("network"))?
        .get("path")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

/// Where a container's ports are reached: each containerPort on the sandbox's IP.
pub fn port_addrs(
    sandbox_ip: Option<&str>,
    c: &k8s_openapi::api::core::v1::Container,
) -> Vec<(u16, std::net::SocketAddr)> {
    let Some(ip) = sandbox_ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) else {
        return Vec::new();
    };
    c.ports
        .iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .map(|port| (port, std::net::SocketAddr::new(ip, port)))
        .collect()
}

/// Stops (containers, network: the pod's IP is released) and removes a sandbox. Errors are
/// logged: a sandbox already gone is what was wanted.
pub async fn remove(cri: &CriClient, id: &str) {
    let stop = cri
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await;
    if let Some(e) = stop.as_ref().err().filter(|e| !e.is_not_found()) {
        tracing::warn!(sandbox = id, error = %e, "StopPodSandbox failed");
    }
    let rm = cri
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await;
    if let Some(e) = rm.as_ref().err().filter(|e| !e.is_not_found()) {
        tracing::warn!(sandbox = id, error = %e, "RemovePodSandbox failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: serde_json::Value) -> Pod {
        serde_json::from_value(yaml).expect("pod")
    }

    #[test]
    fn sandbox_config_carries_identity_ports_and_logs() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "protocol": "UDP"}
            ]}]}
        }));
        let c = config(&p, "node-a", Path::new("/d/pods/u1/logs")).expect("config");
        assert_eq!(c.hostname, "web");
        assert_eq!(c.log_directory, "/d/pods/u1/logs");
        assert_eq!(c.port_mappings.len(), 1);
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(c.labels[LABEL_POD_UID], "u1");
        assert_eq!(c.labels[LABEL_MANAGED_BY], "node-a");
        assert_eq!(c.labels["app"], "web");
    }

    #[test]
    fn host_network_is_refused_with_a_reason() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "h", "uid": "u"},
            "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]}
        }));
        let e = config(&p, "n", Path::new("/l")).expect_err("refused");
        assert!(e.to_string().contains("hostNetwork"));
    }

    #[test]
    fn hostname_prefers_spec_hostname() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web-0"},
            "spec": {"hostname": "db", "containers": []}
        }));
        assert_eq!(hostname(&p), "db");
    }
}
