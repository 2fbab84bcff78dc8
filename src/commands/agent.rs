//! `skiff agent`: join a cluster as a node and run the pods scheduled to it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use skiff_node_runtime::containerd::ContainerdMode;
use skiff_node_runtime::AgentConfig;

/// Flags shared by `skiff agent` and the agent embedded in `skiff server`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// The node's name (default: this machine's hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Address of the agent's log endpoint for the API server; port 0 picks a free port.
    #[arg(long)]
    pub agent_listen: Option<SocketAddr>,
    /// Seconds between renewals of the node's Lease.
    #[arg(long, default_value_t = skiff_node_runtime::agent::config::DEFAULT_LEASE_RENEW.as_secs())]
    pub lease_renew_seconds: u64,
    /// First CrashLoopBackOff delay in seconds (doubles per restart up to 300 s).
    #[arg(long, default_value_t = skiff_node_runtime::agent::config::DEFAULT_BACKOFF_INITIAL.as_secs())]
    pub crash_backoff_seconds: u64,
    /// Use the containerd listening on this socket for container pods instead of starting one.
    #[arg(long, conflicts_with = "no_containerd")]
    pub containerd_socket: Option<PathBuf>,
    /// Run no container pods: do not start or use containerd (the node runs Wasm pods only).
    #[arg(long)]
    pub no_containerd: bool,
    /// The IPv4 range this node's container pods get their addresses from. Default: the range
    /// the cluster gives the node (a /24 of the server's --cluster-cidr).
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Run without a pod network: pods get no addresses of their own, Services are not
    /// programmed on this node and it serves no cluster DNS (Wasm pods serve on hostPorts).
    #[arg(long)]
    pub no_pod_network: bool,
    /// How many pods the node takes (its `pods` capacity). A node running more than 253 pods
    /// also needs a pod range larger than a /24 (the server's --node-cidr-mask-size).
    #[arg(long, default_value_t = skiff_node_runtime::agent::config::DEFAULT_MAX_PODS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pods: u32,
    /// How long a connection to a scale-to-zero Service waits at the node's activator for a
    /// ready pod before it gets a 503, e.g. `60s`, `2m`.
    #[arg(long, default_value = "60s", value_parser = super::server::parse_duration)]
    pub activator_timeout: Duration,
    /// The port Ingress HTTP traffic is served on, on every address of the node (0: none).
    #[arg(long, default_value_t = skiff_node_runtime::ingress::DEFAULT_HTTP_PORT)]
    pub ingress_http_port: u16,
    /// The port Ingress HTTPS traffic is served on, on every address of the node (0: none).
    #[arg(long, default_value_t = skiff_node_runtime::ingress::DEFAULT_HTTPS_PORT)]
    pub ingress_https_port: u16,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// URL of the API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The cluster's node-join token (`node-token` in the server's data dir).
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: String,
    /// The cluster CA certificate (`pki/ca.crt` in the server's data dir).
    #[arg(long)]
    ca_file: PathBuf,
    /// Where the agent keeps images, compiled components, pod volumes and logs.
    /// Default: ~/.local/share/skiff-agent
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The node's address: hostPorts and NodePorts listen here, other nodes route this node's
    /// pod range through it. Default: the local address used to reach the server.
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The cluster's pod network (the server's --cluster-cidr).
    #[arg(long, default_value = skiff_node_runtime::agent::config::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: String,
    #[command(flatten)]
    node: NodeArgs,
}

pub fn hostname() -> String {
    let h = std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    if h.is_empty() {
        "skiff-node".into()
    } else {
        h
    }
}

/// The agent configuration from the shared flags.
pub fn config(
    server: &str,
    token: &str,
    ca_pem: &str,
    node_ip: IpAddr,
    data_dir: PathBuf,
    node: &NodeArgs,
) -> AgentConfig {
    let name = node.node_name.clone().unwrap_or_else(hostname);
    let mut cfg = AgentConfig::new(server, token, ca_pem, &name, node_ip, data_dir);
    cfg.listen = node
        .agent_listen
        .unwrap_or_else(|| SocketAddr::new(node_ip, 0));
    cfg.lease_renew = Duration::from_secs(node.lease_renew_seconds.max(1));
    cfg.backoff_initial = Duration::from_secs(node.crash_backoff_seconds.max(1));
    cfg.pod_cidr = node.pod_cidr.clone();
    cfg.pod_network = !node.no_pod_network;
    cfg.max_pods = node.max_pods;
    cfg.activator_timeout = node.activator_timeout;
    cfg.ingress_http_port = node.ingress_http_port;
    cfg.ingress_https_port = node.ingress_https_port;
    cfg.containerd = match (&node.containerd_socket, node.no_containerd) {
        (_, true) => None,
        (Some(socket), false) => Some(ContainerdMode::External {
            socket: socket.clone(),
        }),
        (None, false) => {
            let found = ContainerdMode::managed_from_path();
            if found.is_none() {
                tracing::warn!("no containerd on PATH: this node runs Wasm pods only (apt-get install containerd runc containernetworking-plugins)");
            }
            found
        }
    };
    cfg
}

/// The local address this machine uses to reach `server` (no packet is sent beyond a TCP
/// handshake with the server itself).
async fn local_ip_towards(server: &str) -> anyhow::Result<IpAddr> {
    let uri: http::Uri = server.parse().context("--server is not a URL")?;
    let host = uri.host().context("--server has no host")?;
    let port = uri.port_u16().unwrap_or(443);
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .context("connecting to the server timed out")?
    .with_context(|| format!("cannot reach {server}"))?;
    Ok(s.local_addr()?.ip())
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let mut signals = super::Signals::install()?;
    let ca_pem = std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("reading --ca-file {}", args.ca_file.display()))?;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?)
                .join(".local/share/skiff-agent")
        }
    };
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => local_ip_towards(&args.server).await?,
    };
    if args.token.trim().is_empty() {
        bail!("--token is empty: use the server's node-token");
    }
    let mut cfg = config(
        &args.server,
        args.token.trim(),
        &ca_pem,
        node_ip,
        data_dir,
        &args.node,
    );
    cfg.cluster_cidr = args.cluster_cidr;
    let agent = skiff_node_runtime::start(cfg)
        .await
        .context("cannot start the skiff agent")?;
    eprintln!(
        "skiff agent running as node {} (endpoint {})",
        agent.node_name, agent.endpoint
    );
    signals.recv().await;
    agent.shutdown().await;
    Ok(())
}
