//! Starting and stopping the control plane: TLS listener, store, bootstrap objects, API,
//! controllers; and the orderly shutdown that ends them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::admission::services::{AllocatorConfigError, ServiceAllocator};
use crate::api::{self, ApiConfig, ApiState, Tokens};
use crate::pki::{self, PkiError};
use crate::store::{Store, StoreError, StoreOptions};
use crate::{bootstrap, controllers};

/// How long in-flight requests may take to finish once shutdown begins.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The address other machines reach this server at (defaults to the listen address, or
    /// 127.0.0.1 when listening on all addresses).
    pub advertise_address: Option<IpAddr>,
    pub service_cidr: String,
    pub node_port_range: String,
    /// Changes kept for watches to resume from (older resumes get 410 Gone).
    pub watch_history: u64,
    /// Lease age after which a node is marked NotReady/Unknown and tainted.
    pub node_monitor_grace: Duration,
    /// `tolerationSeconds` of the default not-ready/unreachable tolerations pods get.
    pub default_toleration_seconds: i64,
    /// The cluster's pod network; each node gets a /24 of it as its `spec.podCIDR`.
    pub cluster_cidr: String,
    /// Prefix length of each node's pod range.
    pub node_cidr_mask_size: u32,
    /// How often nodes' usage is read (the `metrics.k8s.io` window).
    pub metrics_resolution: Duration,
    /// The HTTP layer's timeouts.
    pub limits: crate::api::limits::HttpLimits,
    /// Commit without fsync (the crash test's negative control only).
    pub unsafe_non_durable_store: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data dir {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the image store: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error(transparent)]
    Allocator(#[from] AllocatorConfigError),
    #[error("{0}")]
    Config(String),
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
    #[error("the HTTPS server failed: {0}")]
    Serve(std::io::Error),
}

/// A started control plane.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub url: String,
    pub kubeconfig_path: PathBuf,
    /// The address nodes reach this server at.
    pub advertise: IpAddr,
    /// PEM of the cluster CA, and the token node agents join with.
    pub ca_pem: String,
    pub node_token: String,
    store: Store,
    handle: axum_server::Handle<SocketAddr>,
    serve: JoinHandle<Result<(), std::io::Error>>,
    controllers: Vec<JoinHandle<()>>,
    shutdown_tx: watch::Sender<bool>,
}

fn tls_config(creds: &pki::Credentials) -> Result<rustls::ServerConfig, ServerError> {
    let tls = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls_pemfile::certs(&mut creds.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
    let key = rustls_pemfile::private_key(&mut creds.server_key_pem.as_bytes())
        .map_err(|e| tls(&e))?
        .ok_or_else(|| ServerError::Tls("server key missing".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

pub async fn start(cfg: ServerConfig) -> Result<RunningServer, ServerError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServerError::DataDir(cfg.data_dir.clone(), e))?;
    let listener =
        std::net::TcpListener::bind(cfg.listen).map_err(|e| ServerError::Listen(cfg.listen, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServerError::Listen(cfg.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Listen(cfg.listen, e))?;
    let advertise = cfg
        .advertise_address
        .unwrap_or(if addr.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            addr.ip()
        });
    let services = ServiceAllocator::new(&cfg.service_cidr, &cfg.node_port_range)?;
    let cluster_cidr = controllers::nodeipam::ClusterCidr::with_node_mask(
        &cfg.cluster_cidr,
        cfg.node_cidr_mask_size,
    )
    .map_err(ServerError::Config)?;
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
        advertise.to_string(),
        services.first_ip().to_string(),
    ];
    if !addr.ip().is_unspecified() {
        sans.push(addr.ip().to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            sans.push(h.to_string());
        }
    }
    sans.sort();
    sans.dedup();
    let creds = pki::load_or_create(&cfg.data_dir, &sans)?;
    let store = Store::open_with(
        &cfg.data_dir.join("state.redb"),
        StoreOptions {
            watch_history: cfg.watch_history,
            continue_key: Some(crate::store::ContinueKey::new(creds.continue_key)),
            non_durable: cfg.unsafe_non_durable_store,
        },
    )
    .await?;
    let registry_dir = cfg.data_dir.join("registry");
    let registry =
        tokio::task::spawn_blocking(move || crate::registry::Registry::open(&registry_dir))
            .await
            .map_err(|e| ServerError::Bootstrap(format!("opening the image store: {e}")))??;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let advertise_hostport = SocketAddr::new(advertise, addr.port()).to_string();
    let state = ApiState {
        store: store.clone(),
        config: Arc::new(ApiConfig {
            advertise: advertise_hostport.clone(),
            max_body_bytes: api::request::DEFAULT_MAX_BODY_BYTES,
            limits: cfg.limits,
            default_toleration_seconds: cfg.default_toleration_seconds,
            node_monitor_grace: cfg.node_monitor_grace,
            cluster_cidr,
            metrics_resolution: cfg.metrics_resolution,
        }),
        tokens: Arc::new(Tokens {
            admin: creds.admin_token.clone(),
            node: creds.node_token.clone(),
        }),
        services: Arc::new(services),
        metrics: Arc::new(api::metrics::Metrics::new()),
        registry: Arc::new(registry),
        shutdown: shutdown_rx.clone(),
        usage: crate::usage::UsageStore::default(),
        requests: crate::usage::RequestStore::default(),
        inflight: Arc::new(api::limits::InFlight::new(&cfg.limits)),
    };
    bootstrap::run(&state, advertise, addr.port())
        .await
        .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    // The custom resources stored CRDs define are served from the first request.
    api::crd::registry::sync(&store)
        .await
        .map_err(|e| ServerError::Bootstrap(format!("reading CustomResourceDefinitions: {e}")))?;
    let url = format!("https://{advertise_hostport}");
    let kubeconfig_path = cfg.data_dir.join("kubeconfig.yaml");
    pki::write_private(
        &kubeconfig_path,
        pki::kubeconfig(&url, &creds.ca_pem, &creds.admin_token).as_bytes(),
    )?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config(&creds)?));
    let handle = axum_server::Handle::new();
    let limits = cfg.limits;
    let mut server = axum_server::from_tcp_rustls(listener, tls)
        .map_err(|e| ServerError::Listen(cfg.listen, e))?
        // Watch events and small responses go out at once: with Nagle's algorithm a response
        // written in two pieces waits for the client's delayed ACK (~40 ms on Linux).
        // hyper's own refusals of unparsable requests get a Status body (api::parse_errors).
        .map(|tls| {
            api::parse_errors::StatusAcceptor::new(
                tls.handshake_timeout(limits.tls_handshake_timeout)
                    .acceptor(axum_server::accept::NoDelayAcceptor::new()),
            )
        })
        // A connection that says nothing after its handshake (also before HTTP/1 or HTTP/2
        // is told apart) is closed like one that stalls in its headers.
        .first_request_timeout(limits.request_header_timeout)
        .handle(handle.clone());
    configure_http(server.http_builder(), &limits);
    let app = api::router(state.clone());
    let serve = tokio::spawn(async move { server.serve(app.into_make_service()).await });
    let mut controllers = controllers::spawn_all(&state, shutdown_rx.clone());
    controllers.push(tokio::spawn(crate::usage::requests::run(
        store.clone(),
        state.requests.clone(),
        creds.node_token.clone(),
        shutdown_rx.clone(),
    )));
    controllers.push(tokio::spawn(crate::usage::run(
        store.clone(),
        state.usage.clone(),
        creds.node_token.clone(),
        cfg.metrics_resolution,
        shutdown_rx,
    )));
    tracing::info!(%url, kubeconfig = %kubeconfig_path.display(), "skiff control plane serving");
    Ok(RunningServer {
        addr,
        url,
        kubeconfig_path,
        advertise,
        ca_pem: creds.ca_pem.clone(),
        node_token: creds.node_token.clone(),
        store,
        handle,
        serve,
        controllers,
        shutdown_tx,
    })
}

/// The HTTP/1 and HTTP/2 settings that bound what one connection may hold: the header
/// timeout (also HTTP/1's idle keep-alive), head buffers a little larger than the limits the
/// API answers with a Status ([`crate::api::limits`]), and pings that find vanished peers.
fn configure_http(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &crate::api::limits::HttpLimits,
) {
    use crate::api::limits::{
        HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT, HTTP_HEAD_BUFFER_BYTES,
    };
    builder
        .http1()
        .header_read_timeout(limits.request_header_timeout)
        .max_buf_size(HTTP_HEAD_BUFFER_BYTES);
    builder
        .http2()
        .max_header_list_size(u32::try_from(HTTP_HEAD_BUFFER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (bounded), ends watches and controllers,
    /// and closes the store after its last commit.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown_tx.send(true);
        self.handle.graceful_shutdown(Some(DEFAULT_SHUTDOWN_GRACE));
        let served = match tokio::time::timeout(DEFAULT_SHUTDOWN_GRACE * 2, self.serve).await {
            Ok(Ok(r)) => r.map_err(ServerError::Serve),
            Ok(Err(join)) => Err(ServerError::Serve(std::io::Error::other(join.to_string()))),
            Err(_) => Ok(()),
        };
        for c in self.controllers {
            let _ = tokio::time::timeout(DEFAULT_SHUTDOWN_GRACE, c).await;
        }
        self.store.close().await;
        tracing::info!("skiff control plane stopped");
        served
    }

    /// Resolves if the HTTPS server stops on its own (an error).
    pub async fn serve_failed(&mut self) -> Result<(), ServerError> {
        match (&mut self.serve).await {
            Ok(r) => r.map_err(ServerError::Serve),
            Err(join) => Err(ServerError::Serve(std::io::Error::other(join.to_string()))),
        }
    }
}
