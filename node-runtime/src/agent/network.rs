//! The agent's side of the pod network at start: the node's pod range (`--pod-cidr`, else the
//! range the cluster gives the Node), the CNI config for container pods, and the node bridge
//! with the Wasm pods' address store. Without CAP_NET_ADMIN the agent runs on without a pod
//! network and says why (log, NetworkUnavailable condition, Event).

use std::sync::Arc;

use super::config::{self, AgentConfig};
use crate::containerd::{ContainerdMode, Layout};
use crate::dns::{DnsConfig, DnsServer};
use crate::network::PodNetwork;
use crate::proxy::{ProxyConfig, ServiceProxy, DEFAULT_TABLE};

/// The port the node's cluster DNS listens on, on the bridge address.
pub const DNS_PORT: u16 = 53;

/// The node's pod range: `--pod-cidr`, else the Node's `spec.podCIDR` (waited for), else the
/// default.
async fn pod_range(client: &kube::Client, cfg: &AgentConfig) -> String {
    match &cfg.pod_cidr {
        Some(c) => c.clone(),
        None => super::node::wait_pod_cidr(client, &cfg.node_name, config::DEFAULT_POD_CIDR_WAIT)
            .await
            .unwrap_or_else(|| {
                tracing::warn!(
                    default = config::DEFAULT_POD_CIDR,
                    "the cluster gave this node no pod range in time; using the default"
                );
                config::DEFAULT_POD_CIDR.to_string()
            }),
    }
}

/// What the pod network came to: the network and the node's cluster DNS server, or why
/// there is none.
pub(super) struct NetworkSetup {
    pub network: Option<Arc<PodNetwork>>,
    pub dns: Option<DnsServer>,
    /// The Service data path (nftables), when the node could set it up.
    pub proxy: Option<ServiceProxy>,
    /// The activator's listener (on the bridge address), when the Service rules point at it.
    pub activator: Option<tokio::net::TcpListener>,
    pub off: Option<String>,
}

/// The Service data path for this node: NodePorts on the node's address, the kube-dns
/// Service sent to this node's own DNS server.
async fn start_proxy(
    cfg: &AgentConfig,
    network: &PodNetwork,
    activator: Option<std::net::SocketAddrV4>,
) -> Option<ServiceProxy> {
    let node_ips = match cfg.node_ip {
        std::net::IpAddr::V4(ip) => vec![ip],
        std::net::IpAddr::V6(_) => Vec::new(),
    };
    let proxy_cfg = ProxyConfig {
        node_name: cfg.node_name.clone(),
        node_ips,
        cluster_cidr: cfg.cluster_cidr.clone(),
        table: DEFAULT_TABLE.to_string(),
        local_dns: Some(std::net::SocketAddr::new(
            network.gateway().into(),
            DNS_PORT,
        )),
        activator,
    };
    match ServiceProxy::new(proxy_cfg).await {
        Ok(p) => {
            tracing::info!(bridge = ?p.bridge_mode(), table = DEFAULT_TABLE, "Service data path ready");
            Some(p)
        }
        Err(e) => {
            tracing::error!(error = %e, "Services are not programmed on this node (install nftables)");
            None
        }
    }
}

/// Cluster DNS on the bridge address, port 53 (pods reach it through the kube-dns Service).
async fn start_dns(network: &PodNetwork) -> Option<DnsServer> {
    let listen = std::net::SocketAddr::new(network.gateway().into(), DNS_PORT);
    match DnsServer::start(DnsConfig::new(vec![listen])).await {
        Ok(d) => {
            tracing::info!(%listen, "cluster DNS serving");
            Some(d)
        }
        Err(e) => {
            tracing::error!(error = %e, "cluster DNS cannot start: pods cannot resolve Service names on this node");
            None
        }
    }
}

fn off_by_flag() -> NetworkSetup {
    tracing::info!("pod networking is off (--no-pod-network): Wasm pods serve on hostPorts");
    NetworkSetup {
        network: None,
        dns: None,
        proxy: None,
        activator: None,
        off: Some("pod networking is off (--no-pod-network): pods get no addresses of their own, Services are not programmed and no cluster DNS is served on this node; Wasm pods serve on hostPorts".into()),
    }
}

/// Sets up the pod network for the node's range (and the CNI config when this agent manages
/// containerd).
pub(super) async fn setup(
    client: &kube::Client,
    cfg: &AgentConfig,
    containerd_up: bool,
) -> NetworkSetup {
    let managed = matches!(cfg.containerd, Some(ContainerdMode::Managed { .. })) && containerd_up;
    if !cfg.pod_network && !managed {
        // Nothing here needs the node's range: do not wait for it.
        return off_by_flag();
    }
    let range = pod_range(client, cfg).await;
    let range = range.as_str();
    let layout = Layout::new(&cfg.data_dir);
    let range_net = match config::parse_pod_cidr(range) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "pod networking is off");
            return NetworkSetup {
                network: None,
                dns: None,
                proxy: None,
                activator: None,
                off: Some(format!("pod networking is off: {e}")),
            };
        }
    };
    if managed {
        let gateway = crate::network::gateway_of(range_net);
        match crate::containerd::write_cni_config(&layout, range, &gateway.to_string()) {
            Ok(()) => tracing::info!(cidr = %range, "container pod network configured"),
            Err(e) => tracing::error!(error = %e, "cannot write the CNI config for container pods"),
        }
    }
    if !cfg.pod_network {
        return off_by_flag();
    }
    match PodNetwork::setup(&layout.cni_ipam_dir, range_net).await {
        Ok(n) => {
            let addr =
                std::net::SocketAddrV4::new(n.gateway(), crate::activator::DEFAULT_ACTIVATOR_PORT);
            let activator = match crate::activator::bind(addr) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(error = %e, "no activator on this node: scale-to-zero Services refuse connections while at zero");
                    None
                }
            };
            NetworkSetup {
                dns: start_dns(&n).await,
                proxy: start_proxy(cfg, &n, activator.as_ref().map(|_| addr)).await,
                activator,
                network: Some(Arc::new(n)),
                off: None,
            }
        }
        Err(e) => {
            let why = if e.not_permitted() {
                format!("pod networking is off: the agent lacks CAP_NET_ADMIN ({e}); run it as root for pod IPs, Services and cluster DNS — Wasm pods still serve on hostPorts")
            } else {
                format!("pod networking is off: {e}")
            };
            tracing::error!("{why}");
            NetworkSetup {
                network: None,
                dns: None,
                proxy: None,
                activator: None,
                off: Some(why),
            }
        }
    }
}
