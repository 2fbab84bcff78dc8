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
    /// Port range NodePort Services are allocated from.
    #[arg(long, default_value = DEFAULT_NODE_PORT_RANGE)]
    service_node_port_range: String,
    /// How many changes the store keeps for watches to resume from; a watch from an older
    /// resourceVersion gets 410 Gone and re-lists.
    #[arg(long, default_value_t = skiff_control_plane::store::DEFAULT_WATCH_HISTORY)]
    watch_history: u64,
    /// Run without the embedded node agent. The node agent is not part of this build yet, so
    /// the server currently always runs as if this were given.
    #[arg(long)]
    no_agent: bool,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/skiff"))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    if !args.no_agent {
        tracing::info!("the embedded node agent is not in this build yet: running the control plane only (--no-agent)");
    }
    let mut server = start(ServerConfig {
        data_dir,
        listen: args.listen,
        advertise_address: args.advertise_address,
        service_cidr: args.service_cidr,
        node_port_range: args.service_node_port_range,
        watch_history: args.watch_history,
    })
    .await
    .context("cannot start the skiff server")?;
    eprintln!(
        "skiff server ready at {} — use: export KUBECONFIG={}",
        server.url,
        server.kubeconfig_path.display()
    );
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        r = server.serve_failed() => {
            r.context("the API server stopped")?;
            return Ok(());
        }
    }
    server.shutdown().await.context("shutdown")?;
    Ok(())
}
