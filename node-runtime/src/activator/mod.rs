//! The activator: where a scale-to-zero Service's connections wait while it has no ready
//! endpoint, so none is refused or lost while the autoscaler scales it up (Knative's design,
//! on the kernel data path).
//!
//! The control plane's autoscaler marks each Service in front of a request-autoscaled
//! Deployment with `skiff.dev/activator` (`proxy::model::ActivatorMode`). For such a Service's
//! TCP ports the node's nftables rules (`proxy::rules`) DNAT the ClusterIP, load-balancer and
//! node-port traffic to this listener, on the node bridge's address, while the port has no
//! ready endpoint (`serve`), or always (`proxy`: container pods, which only the activator sees
//! to count their connections). Once an endpoint is ready the rules send new connections
//! straight to it again.
//!
//! Each connection: its original destination (`SO_ORIGINAL_DST`) names the Service port
//! (`targets.rs`); with no ready endpoint it is held (bounded per Service, bounded in time),
//! the node's request-stats stream tells the autoscaler at once (`stats.rs`), and whatever the
//! client sends meanwhile is buffered (bounded); as soon as the agent's view shows a ready
//! endpoint, the activator connects to it, sends the buffered bytes and splices the two
//! connections — each connection's bytes reach exactly one endpoint, once. A Service whose
//! pods cannot start (`diagnose.rs`: missing image, crash loop) or that stays unready past
//! the hold answers HTTP clients `503 Service Unavailable` with the reason, and closes.

mod connection;
pub mod diagnose;
mod events;
pub mod stats;
pub mod targets;

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::services::ClusterView;
pub use stats::{ActivatorStats, ServiceRef, ServiceSnapshot};
use targets::Targets;

/// The activator's port on the node bridge's address (Knative's activator port).
pub const DEFAULT_ACTIVATOR_PORT: u16 = 8012;
/// The longest a connection is held for a ready endpoint before it gets a 503: long enough
/// for a container image pull on a slow link, short enough that no client hangs on a
/// workload that will not come up. `--activator-timeout` overrides it.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections held per Service at most; more get a 503 at once (a burst at zero is
/// thousands of connections at most; each held one costs a socket and a small buffer).
pub const DEFAULT_MAX_HELD_PER_SERVICE: u64 = 4096;
/// What a held client may send before the activator stops reading it (the kernel's buffers
/// then push back on it): a request's head and a small body.
pub const DEFAULT_MAX_BUFFERED: usize = 64 << 10;
/// How long one connection attempt to an endpoint may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the pods of a Service with held connections are read to see whether they can
/// start at all.
pub const DEFAULT_DIAGNOSE_PERIOD: Duration = Duration::from_secs(1);
/// Pause between rounds of connection attempts when every ready endpoint refused (a pod
/// reported ready a moment before its listener took connections).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Listen backlog: a burst at zero arrives all at once.
const BACKLOG: u32 = 4096;

/// How the activator runs.
#[derive(Debug, Clone)]
pub struct ActivatorConfig {
    pub node_name: String,
    pub hold_timeout: Duration,
    pub max_held: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivatorError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the activator's listener (before the Service rules that point at it are written).
pub fn bind(addr: SocketAddrV4) -> Result<TcpListener, ActivatorError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr.into())?;
        socket.listen(BACKLOG)
    };
    listen().map_err(|source| ActivatorError::Listen {
        addr: addr.into(),
        source,
    })
}

/// What the activator's connections share.
struct Shared {
    cfg: ActivatorConfig,
    client: kube::Client,
    targets: watch::Receiver<Arc<Targets>>,
    stats: ActivatorStats,
    /// Per Service with held connections, the latest diagnosis of its pods.
    diagnoses: Mutex<HashMap<ServiceRef, watch::Sender<Option<diagnose::Diagnosis>>>>,
    /// Round-robin over a port's endpoints.
    next: AtomicUsize,
    /// This node's serving Wasm components: a held connection goes to a ready local pod of
    /// its Service before the pod's endpoint is published.
    local: crate::agent::wasm_ports::WasmPorts,
}

/// Serves the activator on `listener` until `shutdown`: one task keeps the targets in step
/// with the view, one accepts connections.
pub fn start(
    listener: TcpListener,
    cfg: ActivatorConfig,
    view: ClusterView,
    local: crate::agent::wasm_ports::WasmPorts,
    client: kube::Client,
    stats: ActivatorStats,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let (targets_tx, targets_rx) = watch::channel(Arc::new(Targets::default()));
    let refresh = tokio::spawn(refresh(
        view,
        cfg.node_name.clone(),
        targets_tx,
        stats.clone(),
        shutdown.clone(),
    ));
    let shared = Arc::new(Shared {
        cfg,
        client,
        targets: targets_rx,
        stats,
        diagnoses: Mutex::default(),
        next: AtomicUsize::new(0),
        local,
    });
    let accept = tokio::spawn(accept(listener, shared, shutdown));
    vec![refresh, accept]
}

/// Rebuilds the targets whenever the view changes (no batching: a held connection goes on
/// as soon as its endpoint is seen).
async fn refresh(
    view: ClusterView,
    node_name: String,
    tx: watch::Sender<Arc<Targets>>,
    stats: ActivatorStats,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = view.subscribe();
    loop {
        changes.borrow_and_update();
        // Only activated Services and their slices are copied out of the view.
        let services: Vec<_> = view
            .services
            .state()
            .iter()
            .filter(|s| crate::proxy::model::ActivatorMode::of(s).is_some())
            .map(|s| (**s).clone())
            .collect();
        let names: std::collections::HashSet<(String, String)> = services
            .iter()
            .map(|s| {
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        let slices: Vec<_> = view
            .slices
            .state()
            .iter()
            .filter(|sl| {
                let svc = sl
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::proxy::model::SERVICE_NAME_LABEL));
                svc.is_some_and(|svc| {
                    names.contains(&(
                        sl.metadata.namespace.clone().unwrap_or_default(),
                        svc.clone(),
                    ))
                })
            })
            .map(|sl| (**sl).clone())
            .collect();
        let targets = Targets::build(&services, &slices, &node_name);
        {
            let known = targets.services();
            stats.retain(|s| known.contains(s));
        }
        tx.send_replace(Arc::new(targets));
        if !ClusterView::next_change(&mut changes, std::time::Instant::now(), &mut shutdown).await {
            return;
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection::serve(shared.clone(), stream, shutdown.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "activator cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

impl Shared {
    /// The diagnosis feed of `target`'s Service, started with its first held connection and
    /// ended when the last one is gone.
    fn diagnosis(
        self: &Arc<Self>,
        target: &targets::Target,
    ) -> watch::Receiver<Option<diagnose::Diagnosis>> {
        let mut map = self.diagnoses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&target.service) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        map.insert(target.service.clone(), tx);
        let shared = self.clone();
        let service = target.service.clone();
        let selector = target.selector.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DEFAULT_DIAGNOSE_PERIOD).await;
                let diagnosis = match &selector {
                    Some(s) => diagnose::diagnose(&shared.client, &service.namespace, s).await,
                    None => diagnose::Diagnosis {
                        fatal: Some(
                            "the Service has no selector, so no pod of it can become ready".into(),
                        ),
                        status: String::new(),
                    },
                };
                let mut map = shared.diagnoses.lock().unwrap_or_else(|p| p.into_inner());
                let Some(tx) = map.get(&service) else { return };
                if tx.receiver_count() == 0 {
                    map.remove(&service);
                    return;
                }
                tx.send_replace(Some(diagnosis));
            }
        });
        rx
    }
}
