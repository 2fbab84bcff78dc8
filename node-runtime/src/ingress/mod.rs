//! The node's Ingress controller for the `skiff` IngressClass: every node serves HTTP (default
//! port 80) and HTTPS (default 443, certificates from the Ingresses' TLS Secrets by SNI) and
//! routes each request by host and path (`routes.rs`) to a Service, forwarding it to the
//! Service's ClusterIP (`proxy.rs`) so the kernel's Service rules — and for scale-to-zero
//! Services the activator — take it from there. The routes follow the agent's view of
//! Ingresses, Services and TLS Secrets at every change. The control plane sets each served
//! Ingress's `status.loadBalancer` to the nodes' addresses.

mod proxy;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::services::ClusterView;
use routes::RouteTable;
use tls::CertStore;

/// Objects by (namespace, name).
pub(crate) fn by_name<K: kube::Resource>(
    items: &[K],
) -> std::collections::HashMap<(&str, &str), &K> {
    items
        .iter()
        .filter_map(|o| {
            let meta = o.meta();
            Some((
                (
                    meta.namespace.as_deref().unwrap_or("default"),
                    meta.name.as_deref()?,
                ),
                o,
            ))
        })
        .collect()
}

/// The Ingress HTTP port (`--ingress-http-port`; 0 turns it off).
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// The Ingress HTTPS port (`--ingress-https-port`; 0 turns it off).
pub const DEFAULT_HTTPS_PORT: u16 = 443;
/// The longest a backend may take to answer: more than the activator's hold, so a request to
/// a scale-to-zero Service gets the activator's answer rather than a timeout of its own.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a TLS handshake may take before the connection is dropped.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections to backends are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("cannot listen on {addr} for Ingress traffic: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Where the node serves Ingress traffic.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

/// What the listeners' connections share.
struct Shared {
    routes: watch::Receiver<Arc<RouteTable>>,
    client: Client<HttpConnector, Incoming>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, IngressError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| IngressError::Listen { addr, source })
}

/// Starts the listeners and the route refresh; they stop at `shutdown`. A port that cannot be
/// bound is an error (nothing is started).
pub async fn start(
    cfg: IngressConfig,
    view: ClusterView,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, IngressError> {
    let http = match cfg.http {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let https = match cfg.https {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let certs = Arc::new(CertStore::new()?);
    let (tx, rx) = watch::channel(Arc::new(RouteTable::default()));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector);
    let shared = Arc::new(Shared { routes: rx, client });
    let mut tasks = vec![tokio::spawn(refresh(
        view,
        tx,
        certs.clone(),
        shutdown.clone(),
    ))];
    if let Some(l) = http {
        tracing::info!(listen = ?l.local_addr().ok(), "Ingress HTTP serving");
        tasks.push(tokio::spawn(serve(
            l,
            None,
            shared.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(l) = https {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls::TlsError::DefaultCert(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tracing::info!(listen = ?l.local_addr().ok(), "Ingress HTTPS serving");
        tasks.push(tokio::spawn(serve(l, Some(acceptor), shared, shutdown)));
    }
    Ok(tasks)
}

/// Rebuilds the routes and certificates at every change of the view.
async fn refresh(
    view: ClusterView,
    tx: watch::Sender<Arc<RouteTable>>,
    certs: Arc<CertStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = view.subscribe();
    let mut reported: Vec<String> = Vec::new();
    loop {
        changes.borrow_and_update();
        let ingresses: Vec<_> = view
            .ingresses
            .state()
            .iter()
            .map(|i| (**i).clone())
            .collect();
        let services: Vec<_> = view
            .services
            .state()
            .iter()
            .map(|s| (**s).clone())
            .collect();
        let secrets: Vec<_> = view.secrets.state().iter().map(|s| (**s).clone()).collect();
        let classes: Vec<_> = view
            .ingress_classes
            .state()
            .iter()
            .map(|c| (**c).clone())
            .collect();
        let table = RouteTable::build(&ingresses, &classes, &services);
        let problems = certs.update(&table.tls, &secrets);
        if problems != reported {
            for p in &problems {
                tracing::warn!(problem = %p, "Ingress TLS: the default certificate is served instead");
            }
            reported = problems;
        }
        tx.send_replace(Arc::new(table));
        if !ClusterView::next_change(&mut changes, std::time::Instant::now(), &mut shutdown).await {
            return;
        }
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scheme = if tls.is_some() { "https" } else { "http" };
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "Ingress listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                proxy::handle(shared.clone(), req, scheme, peer)
            });
            let http = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                None => http.serve_connection(TokioIo::new(stream), svc).await,
                Some(acceptor) => {
                    match tokio::time::timeout(
                        DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), svc).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "Ingress TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "Ingress connection ended with an error");
            }
        });
    }
}
