//! The node agent: registers its Node and keeps its Lease, runs the pods bound to it, and
//! serves their logs to the API server. It reaches the control plane only through the API.

pub mod backoff;
pub mod client;
pub mod config;
mod containers;
pub mod events;
mod init;
mod network;
pub mod node;
pub mod pods;
pub mod portforward;
pub mod probes;
pub mod pullsecrets;
pub mod request_stats;
mod sandbox;
pub mod server;
pub mod services;
pub mod stats;
pub mod status;
pub mod stream;
mod volume_sources;
pub mod volumes;
pub mod warm_images;
pub mod wasm_ports;
pub mod workdir;
mod worker;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::AgentConfig;

use crate::containerd::{Containerd, ContainerdMode, Layout, ManagedSettings};
use crate::images::{ImagePuller, RegistryTarget};
use crate::network::PodNetwork;
use crate::oci::{pause, OciRuntime};
pub(crate) use crate::runtime::RuntimeKind;
use crate::runtime::{Runtime, Runtimes, WasmNode};
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
    /// wasmtime, and containerd through CRI when this node runs container pods.
    pub runtimes: Runtimes,
    pub puller: Arc<ImagePuller>,
    pub recorder: events::Recorder,
    /// The node's pod network, unless the agent runs without one.
    pub network: Option<Arc<PodNetwork>>,
    /// Services, EndpointSlices and Nodes as this agent sees them.
    pub view: services::ClusterView,
    /// Where this node's Wasm HTTP components listen, for `kubectl port-forward`.
    pub wasm_ports: wasm_ports::WasmPorts,
}

pub struct RunningAgent {
    pub node_name: String,
    pub endpoint: std::net::SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    endpoint_handle: axum_server::Handle<std::net::SocketAddr>,
    containerd: Option<Containerd>,
    network: Option<Arc<PodNetwork>>,
    dns: Option<crate::dns::DnsServer>,
}

/// Sets up containerd for container pods: the sandbox image in the cluster store, then a
/// managed containerd (config under the data dir) or the external one, and removes what a
/// previous run of this agent left in it.
async fn start_containerd(
    cfg: &AgentConfig,
    mode: &ContainerdMode,
    puller: &ImagePuller,
) -> Result<(Containerd, OciRuntime), String> {
    let image = pause::pause_image().map_err(|e| format!("building the pause image: {e}"))?;
    if let Err(e) = puller
        .ensure_in_cluster(
            &image.name,
            &image.blobs,
            &image.manifest,
            pause::OCI_MANIFEST,
        )
        .await
    {
        // Sandboxes will fail with containerd's pull error until the store has it.
        tracing::warn!(error = %e, "cannot store the pause image in the cluster image store");
    }
    let sandbox_image = format!("{}/{}", puller.cluster_host(), image.name);
    let containerd = match mode {
        ContainerdMode::Managed { binary } => {
            let layout = Layout::new(&cfg.data_dir);
            crate::containerd::write_config(
                &layout,
                &ManagedSettings {
                    data_dir: &cfg.data_dir,
                    sandbox_image: &sandbox_image,
                    registry_host: puller.cluster_host(),
                    ca_pem: &cfg.ca_pem,
                    token: &cfg.token,
                },
            )
            .map_err(|e| e.to_string())?;
            Containerd::start_managed(binary, &layout)
                .await
                .map_err(|e| e.to_string())?
        }
        ContainerdMode::External { socket } => Containerd::connect(socket)
            .await
            .map_err(|e| e.to_string())?,
    };
    // What an earlier run left is adopted by the pods' workers; sandboxes of pods that are
    // gone are removed once the pod watch has listed what is bound here (`pods.rs`).
    let oci = OciRuntime::new(
        containerd.cri.clone(),
        puller.cluster_host(),
        &cfg.node_name,
    );
    Ok((containerd, oci))
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
    let puller = Arc::new(puller);
    let (containerd, oci) = match &cfg.containerd {
        None => (None, None),
        Some(mode) => match start_containerd(&cfg, mode, &puller).await {
            Ok((c, o)) => (Some(c), Some(o)),
            Err(e) => {
                tracing::error!(error = %e, "containerd is not available: this node runs Wasm pods only");
                (None, None)
            }
        },
    };
    let wasm_ports = wasm_ports::WasmPorts::default();
    let wasm_usage = crate::wasm::UsageRegistry::default();
    let activator_stats = crate::activator::ActivatorStats::default();
    let endpoint = server::start(
        cfg.listen,
        &cfg.node_name,
        &cfg.data_dir,
        &cfg.token,
        shutdown_rx.clone(),
        stats::StatsSource {
            node_name: cfg.node_name.clone(),
            wasm: wasm_usage.clone(),
            oci: oci.clone(),
            activator: activator_stats.clone(),
        },
        wasm_ports.clone(),
    )
    .await?;
    let oci_version = containerd.as_ref().map(|c| c.version.clone());
    node::register(
        &client,
        &cfg,
        endpoint.addr.port(),
        &endpoint.fingerprint,
        oci_version.as_deref(),
    )
    .await?;
    let mut net = network::setup(&client, &cfg, containerd.is_some()).await;
    let (view, mut view_tasks) = services::ClusterView::start(&client, &shutdown_rx);
    let ctx_client = client.clone();
    let warm = warm_images::WarmImages::default();
    let ctx = Arc::new(AgentCtx {
        recorder: events::Recorder::new(client.clone(), &cfg.node_name),
        client: client.clone(),
        cfg: cfg.clone(),
        runtimes: Runtimes {
            wasm: Runtime::Wasm(WasmNode {
                engine: wasm,
                puller: puller.clone(),
                node_ip: cfg.node_ip,
                resolver: net.dns.as_ref().map(|d| {
                    Arc::new(services::ZoneResolver(d.handle()))
                        as Arc<dyn crate::wasm::ClusterResolver>
                }),
                usage: wasm_usage,
                warm: warm.clone(),
            }),
            oci: oci.map(Runtime::Oci),
        },
        puller,
        network: net.network.clone(),
        view: view.clone(),
        wasm_ports,
    });
    let mut tasks = vec![
        tokio::spawn(node::heartbeat(
            client,
            cfg.clone(),
            shutdown_rx.clone(),
            ctx.runtimes.cri().map(|o| o.cri.clone()),
            net.off.clone(),
        )),
        tokio::spawn(pods::run(ctx.clone(), shutdown_rx.clone())),
        tokio::spawn(warm_images::report(
            ctx_client.clone(),
            cfg.node_name.clone(),
            warm,
            shutdown_rx.clone(),
        )),
    ];
    tasks.append(&mut view_tasks);
    if let Some(listener) = net.activator.take() {
        tasks.extend(crate::activator::start(
            listener,
            crate::activator::ActivatorConfig {
                node_name: cfg.node_name.clone(),
                hold_timeout: cfg.activator_timeout,
                max_held: crate::activator::DEFAULT_MAX_HELD_PER_SERVICE,
            },
            view.clone(),
            ctx.wasm_ports.clone(),
            ctx_client.clone(),
            activator_stats,
            shutdown_rx.clone(),
        ));
    }
    if net.network.is_some() && net.proxy.is_some() {
        let any = |port: u16| {
            (port != 0)
                .then(|| std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port))
        };
        let ingress = crate::ingress::IngressConfig {
            http: any(cfg.ingress_http_port),
            https: any(cfg.ingress_https_port),
        };
        if ingress.http.is_some() || ingress.https.is_some() {
            match crate::ingress::start(ingress, view.clone(), shutdown_rx.clone()).await {
                Ok(t) => tasks.extend(t),
                Err(e) => {
                    tracing::error!(error = %e, "this node serves no Ingress traffic (choose other ports with --ingress-http-port/--ingress-https-port)")
                }
            }
        }
    }
    if let Some(network) = &net.network {
        tasks.push(tokio::spawn(services::sync_loop(
            view,
            services::Programs {
                node_name: cfg.node_name.clone(),
                network: network.clone(),
                zone: net.dns.as_ref().map(|d| d.handle()),
                proxy: net.proxy.take(),
            },
            shutdown_rx,
        )));
    }
    tracing::info!(node = %cfg.node_name, endpoint = %endpoint.addr, "skiff agent running");
    Ok(RunningAgent {
        node_name: cfg.node_name,
        endpoint: endpoint.addr,
        shutdown_tx,
        tasks,
        endpoint_handle: endpoint.handle,
        containerd,
        network: net.network,
        dns: net.dns,
    })
}

impl RunningAgent {
    /// Stops the pods' components, the heartbeat (the Lease then goes stale) and the endpoint.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        self.endpoint_handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        for t in self.tasks {
            let bound = pods::DEFAULT_SHUTDOWN_WAIT + std::time::Duration::from_secs(5);
            let _ = tokio::time::timeout(bound, t).await;
        }
        // After the pods' workers removed their sandboxes.
        if let Some(c) = self.containerd.as_mut() {
            c.shutdown().await;
        }
        if let Some(d) = self.dns.take() {
            d.shutdown().await;
        }
        if let Some(n) = &self.network {
            n.shutdown().await;
        }
        tracing::info!(node = %self.node_name, "skiff agent stopped");
    }
}
