//! The node agent: registers its Node and keeps its Lease, runs the pods bound to it, and
//! serves their logs to the API server. It reaches the control plane only through the API.

pub mod backoff;
pub mod client;
pub mod config;
mod containers;
pub mod events;
pub mod node;
pub mod pods;
pub mod probes;
pub mod pullsecrets;
pub mod server;
pub mod status;
pub mod volumes;
pub mod workdir;
mod worker;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::AgentConfig;

use crate::images::{ImagePuller, RegistryTarget};
use crate::runtime::{Runtime, Runtimes};
use crate::wasm::{WasmConfig, WasmRuntime};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("Wasm runtime: {0}")]
    Wasm(#[from] crate::wasm::WasmError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What every part of a running agent shares.
pub struct AgentCtx {
    pub client: kube::Client,
    pub cfg: AgentConfig,
    pub runtimes: Runtimes,
    pub puller: ImagePuller,
    pub recorder: events::Recorder,
}

pub struct RunningAgent {
    pub node_name: String,
    pub endpoint: std::net::SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    endpoint_handle: axum_server::Handle<std::net::SocketAddr>,
}

/// Starts an agent: the runtime, the endpoint, the Node registration, the Lease heartbeat and
/// the pod watch.
pub async fn start(cfg: AgentConfig) -> Result<RunningAgent, AgentError> {
    for dir in ["pods", "images", "compiled"] {
        let p = cfg.data_dir.join(dir);
        std::fs::create_dir_all(&p).map_err(|source| AgentError::Io {
            path: p.clone(),
            source,
        })?;
    }
    let client = client::client(&cfg.server, &cfg.ca_pem, &cfg.token)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let wasm = WasmRuntime::new(WasmConfig::new(cfg.data_dir.join("compiled")))?;
    tracing::info!(pooling = wasm.pooling_enabled(), "wasmtime engine ready");
    let puller = ImagePuller::new(
        &cfg.data_dir.join("images"),
        RegistryTarget {
            base_url: cfg.server.clone(),
            ca_pem: cfg.ca_pem.clone(),
            token: cfg.token.clone(),
        },
    )
    .map_err(|e| AgentError::Config(format!("image store: {e}")))?;
    let endpoint = server::start(
        cfg.listen,
        &cfg.node_name,
        &cfg.data_dir,
        &cfg.token,
        shutdown_rx.clone(),
    )
    .await?;
    node::register(&client, &cfg, endpoint.addr.port(), &endpoint.fingerprint).await?;
    let ctx = Arc::new(AgentCtx {
        recorder: events::Recorder::new(client.clone(), &cfg.node_name),
        client: client.clone(),
        cfg: cfg.clone(),
        runtimes: Runtimes(vec![Runtime::Wasm(wasm)]),
        puller,
    });
    let tasks = vec![
        tokio::spawn(node::heartbeat(client, cfg.clone(), shutdown_rx.clone())),
        tokio::spawn(pods::run(ctx, shutdown_rx)),
    ];
    tracing::info!(node = %cfg.node_name, endpoint = %endpoint.addr, "skiff agent running");
    Ok(RunningAgent {
        node_name: cfg.node_name,
        endpoint: endpoint.addr,
        shutdown_tx,
        tasks,
        endpoint_handle: endpoint.handle,
    })
}

impl RunningAgent {
    /// Stops the pods' components, the heartbeat (the Lease then goes stale) and the endpoint.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        self.endpoint_handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), t).await;
        }
        tracing::info!(node = %self.node_name, "skiff agent stopped");
    }
}
