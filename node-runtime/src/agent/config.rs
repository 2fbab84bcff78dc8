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
        }
    }
}
