//! How an agent reaches the control plane and what it offers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How often the node's Lease is renewed (Kubernetes' kubelet default).
pub const DEFAULT_LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long a Lease is valid without renewal (`leaseDurationSeconds`, kubelet default).
pub const DEFAULT_LEASE_DURATION_SECONDS: i32 = 40;
/// How often the Ready condition's heartbeat is refreshed even without changes.
pub const DEFAULT_STATUS_REFRESH: Duration = Duration::from_secs(60);
/// First CrashLoopBackOff delay; doubles per restart (Kubernetes: 10 s).
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// CrashLoopBackOff ceiling (Kubernetes: 5 min).
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container running this long without failing resets its backoff (Kubernetes: 10 min).
pub const DEFAULT_BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Per-request deadline of HTTP components unless the pod sets `skiff.dev/request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pods a node accepts (kubelet's default `--max-pods`).
pub const DEFAULT_MAX_PODS: u32 = 110;

/// The node's pod network when the cluster assigns none in time (k3s's first node CIDR).
pub const DEFAULT_POD_CIDR: &str = "10.42.0.0/24";
/// The whole cluster's pod network (k3s's default): traffic from outside it to a Service is
/// masqueraded, and pods' connections to it leave from their own addresses.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// How long a starting agent waits for the cluster to give its Node a pod range.
pub const DEFAULT_POD_CIDR_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `https://host:port` of the API server.
    pub server: String,
    pub token: String,
    /// PEM of the cluster CA.
    pub ca_pem: String,
    pub node_name: String,
    /// The node's address: hostPorts bind here and pods report it as hostIP/podIP.
    pub node_ip: IpAddr,
    /// Where the agent keeps images, compiled components, pod volumes and logs.
    pub data_dir: PathBuf,
    /// Address of the agent's own HTTPS endpoint (logs for the API server); port 0 picks one.
    pub listen: std::net::SocketAddr,
    pub lease_renew: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_pods: u32,
    /// Where container pods run: a managed containerd, an existing one, or none.
    pub containerd: Option<crate::containerd::ContainerdMode>,
    /// The IPv4 range container pods get their addresses from (CNI host-local); `None`: the
    /// range the cluster gives the Node (`spec.podCIDR`).
    pub pod_cidr: Option<String>,
    /// Give pods addresses on the node's bridge, program Services and serve cluster DNS
    /// (needs CAP_NET_ADMIN; without it the node runs Wasm pods on hostPorts only).
    pub pod_network: bool,
    /// The whole cluster's pod network (`skiff server --cluster-cidr`).
    pub cluster_cidr: String,
    /// How long the activator holds a connection to a scale-to-zero Service for a ready
    /// endpoint (`--activator-timeout`).
    pub activator_timeout: Duration,
    /// The Ingress HTTP and HTTPS ports on every address of the node (0: off). Served only
    /// with the pod network (Ingress traffic goes on through the Service rules).
    pub ingress_http_port: u16,
    pub ingress_https_port: u16,
}

impl AgentConfig {
    pub fn new(
        server: &str,
        token: &str,
        ca_pem: &str,
        node_name: &str,
        node_ip: IpAddr,
        data_dir: PathBuf,
    ) -> Self {
        AgentConfig {
            server: server.to_string(),
            token: token.to_string(),
            ca_pem: ca_pem.to_string(),
            node_name: node_name.to_string(),
            node_ip,
            data_dir,
            listen: std::net::SocketAddr::new(node_ip, 0),
            lease_renew: DEFAULT_LEASE_RENEW,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_pods: DEFAULT_MAX_PODS,
            containerd: None,
            pod_cidr: None,
            pod_network: true,
            cluster_cidr: DEFAULT_CLUSTER_CIDR.to_string(),
            activator_timeout: crate::activator::DEFAULT_HOLD_TIMEOUT,
            ingress_http_port: crate::ingress::DEFAULT_HTTP_PORT,
            ingress_https_port: crate::ingress::DEFAULT_HTTPS_PORT,
        }
    }
}

/// The gateway (first address) of an IPv4 CIDR like `10.42.0.0/24`, which the node's pod
/// bridge takes.
pub fn pod_gateway(cidr: &str) -> Result<std::net::Ipv4Addr, String> {
    parse_pod_cidr(cidr).map(crate::network::gateway_of)
}

/// A node pod range like `10.42.0.0/24`, checked: IPv4, prefix 8 to 29, no host bits.
pub fn parse_pod_cidr(cidr: &str) -> Result<ipnet::Ipv4Net, String> {
    let (addr, len) = cidr
        .split_once('/')
        .ok_or_else(|| format!("pod CIDR {cidr:?} must look like 10.42.0.0/24"))?;
    let addr: std::net::Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("pod CIDR {cidr:?}: only IPv4 ranges are supported"))?;
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| (8..=29).contains(l))
        .ok_or_else(|| format!("pod CIDR {cidr:?}: the prefix length must be 8 to 29"))?;
    let mask = u32::MAX << (32 - len);
    let net = u32::from(addr) & mask;
    if net != u32::from(addr) {
        return Err(format!(
            "pod CIDR {cidr:?} has host bits set; did you mean {}/{len}?",
            std::net::Ipv4Addr::from(net)
        ));
    }
    ipnet::Ipv4Net::new(addr, len as u8).map_err(|e| format!("pod CIDR {cidr:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_first_address() {
        assert_eq!(
            pod_gateway("10.42.0.0/24"),
            Ok("10.42.0.1".parse().unwrap())
        );
        assert!(pod_gateway("10.42.0.5/24")
            .unwrap_err()
            .contains("10.42.0.0/24"));
        assert!(pod_gateway("fd00::/64").is_err());
        assert!(pod_gateway("10.42.0.0").is_err());
    }
}
