//! `skiff server`: the control plane of a cluster.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use skiff_control_plane::api::admission::services::{
    DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR,
};
use skiff_control_plane::{start, ServerConfig};

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where state (the redb store), certificates, tokens and kubeconfig.yaml live.
    /// Default: ~/.local/share/skiff
    #[arg(long, env = "SKIFF_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address and port the HTTPS API listens on; port 0 picks a free port (kubeconfig.yaml
    /// always holds the address actually bound).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Address other machines reach this server at; put in the certificate and kubeconfig.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// IPv4 range Service cluster IPs are allocated from.
    #[arg(long, default_value = DEFAULT_SERVICE_CIDR)]
    service_cidr: String,
    /// The cluster's pod network: each node gets a /24 of it (--node-cidr-mask-size) as its pod range.
    #[arg(long, default_value = skiff_control_plane::controllers::nodeipam::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: String,
    /// Prefix length of each node's pod range in --cluster-cidr (24: 253 pods per node; a node
    /// running 1,000 Wasm pods needs 22).
    #[arg(long, default_value_t = skiff_control_plane::controllers::nodeipam::DEFAULT_NODE_CIDR_MASK_SIZE)]
    node_cidr_mask_size: u32,
    /// Port range NodePort Services are allocated from.
    #[arg(long, default_value = DEFAULT_NODE_PORT_RANGE)]
    service_node_port_range: String,
    /// How many changes the store keeps for watches to resume from; a watch from an older
    /// resourceVersion gets 410 Gone and re-lists.
    #[arg(long, default_value_t = skiff_control_plane::store::DEFAULT_WATCH_HISTORY)]
    watch_history: u64,
    /// Seconds a node's Lease may go unrenewed before the node is marked NotReady (Ready=Unknown)
    /// and tainted `node.kubernetes.io/unreachable`.
    #[arg(long, default_value_t = skiff_control_plane::controllers::nodelifecycle::DEFAULT_NODE_MONITOR_GRACE.as_secs())]
    node_monitor_grace_seconds: u64,
    /// `tolerationSeconds` of the not-ready/unreachable NoExecute tolerations added to every pod:
    /// how long pods stay on an unreachable node before they are evicted.
    #[arg(long, default_value_t = skiff_control_plane::controllers::nodelifecycle::DEFAULT_TOLERATION_SECONDS)]
    default_unreachable_toleration_seconds: i64,
    /// How often nodes' resource usage is read (the window `kubectl top` and autoscalers see),
    /// e.g. `10s`, `2s`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    metrics_resolution: std::time::Duration,
    /// How long a client may take to finish its TLS handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    tls_handshake_timeout: std::time::Duration,
    /// How long a request's headers may take to arrive, from when the connection is ready for
    /// them; also how long an idle HTTP/1.1 keep-alive connection stays open.
    #[arg(long, default_value = "32s", value_parser = parse_duration)]
    request_header_timeout: std::time::Duration,
    /// How long a request's body may take to arrive (408 after that).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_body_timeout: std::time::Duration,
    /// How long a request may run, watches, log follows, exec/attach/port-forward, proxies and
    /// image transfers apart (504 after that).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    request_timeout: std::time::Duration,
    /// Commit without fsync, so a crash loses acknowledged writes: only for the crash test's
    /// negative control, which must see the loss. Never use it.
    #[arg(long, hide = true)]
    unsafe_non_durable_store: bool,
    /// Read-only API requests served at once; more are answered 429 with Retry-After
    /// (watches and other long-running requests are not counted).
    #[arg(long, default_value_t = skiff_control_plane::api::limits::DEFAULT_MAX_REQUESTS_INFLIGHT)]
    max_requests_inflight: usize,
    /// API writes served at once; more are answered 429 with Retry-After.
    #[arg(long, default_value_t = skiff_control_plane::api::limits::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
    max_mutating_requests_inflight: usize,
    /// Run the control plane only, without the embedded node agent.
    #[arg(long)]
    no_agent: bool,
    #[command(flatten)]
    node: super::agent::NodeArgs,
}

/// A positive duration such as `10s`, `500ms`, `1m` or `1h`; a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is too many seconds"))?;
        return Some(std::time::Duration::from_secs(secs))
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{s:?} must be a positive duration"));
    }
    let d: jiff::SignedDuration = s.parse().map_err(|e| {
        format!(
            "{s:?} is not a duration like 10s, 500ms or 5m (a number and a unit: ms, s, m, h): {e}"
        )
    })?;
    std::time::Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} must be a positive duration"))
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/skiff"))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut signals = super::Signals::install()?;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    anyhow::ensure!(
        args.max_requests_inflight > 0 && args.max_mutating_requests_inflight > 0,
        "--max-requests-inflight and --max-mutating-requests-inflight must be at least 1"
    );
    let mut server = start(ServerConfig {
        data_dir: data_dir.clone(),
        listen: args.listen,
        advertise_address: args.advertise_address,
        service_cidr: args.service_cidr,
        cluster_cidr: args.cluster_cidr.clone(),
        node_cidr_mask_size: args.node_cidr_mask_size,
        node_port_range: args.service_node_port_range,
        watch_history: args.watch_history,
        node_monitor_grace: std::time::Duration::from_secs(args.node_monitor_grace_seconds),
        default_toleration_seconds: args.default_unreachable_toleration_seconds,
        metrics_resolution: args.metrics_resolution,
        limits: skiff_control_plane::api::limits::HttpLimits {
            tls_handshake_timeout: args.tls_handshake_timeout,
            request_header_timeout: args.request_header_timeout,
            request_body_timeout: args.request_body_timeout,
            request_timeout: args.request_timeout,
            max_requests_inflight: args.max_requests_inflight,
            max_mutating_requests_inflight: args.max_mutating_requests_inflight,
        },
        unsafe_non_durable_store: args.unsafe_non_durable_store,
    })
    .await
    .context("cannot start the skiff server")?;
    let agent = if args.no_agent {
        None
    } else {
        let mut cfg = super::agent::config(
            &server.url,
            &server.node_token,
            &server.ca_pem,
            server.advertise,
            data_dir.join("agent"),
            &args.node,
        );
        cfg.cluster_cidr = args.cluster_cidr.clone();
        Some(
            skiff_node_runtime::start(cfg)
                .await
                .context("cannot start the embedded node agent")?,
        )
    };
    eprintln!(
        "skiff server ready at {} — use: export KUBECONFIG={}",
        server.url,
        server.kubeconfig_path.display()
    );
    tokio::select! {
        _ = signals.recv() => {}
        r = server.serve_failed() => {
            r.context("the API server stopped")?;
            return Ok(());
        }
    }
    if let Some(agent) = agent {
        agent.shutdown().await;
    }
    server.shutdown().await.context("shutdown")?;
    Ok(())
}
