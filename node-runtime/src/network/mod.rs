//! The node's pod network. Every pod gets an address from the node's pod range
//! (`spec.podCIDR`) on the node's bridge (`skiff0`): container pods through CNI (the `bridge`
//! and `host-local` plugins, run by containerd for each sandbox), Wasm pods from the agent
//! itself. A pure-Wasm pod has no network namespace: its components run in the agent, so its
//! address is added to the bridge as a `/32` and its listeners are bound on it — one netlink
//! request and one small file in the shared address store ([`ipam`]), which keeps a Wasm pod's
//! create→Ready cost near zero and lets one node hold thousands of them. A pod that mixes
//! Wasm and Linux containers uses its CRI sandbox's address and namespace instead ([`netns`]).
//! Other nodes' pod ranges are routed through their node addresses (host-gw,
//! [`PodNetwork::sync_routes`]).

pub mod ipam;
mod link;
pub mod netns;

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

pub use ipam::{Ipam, IpamError};
pub use link::{LinkError, Netlink, ROUTE_PROTOCOL};

use crate::containerd::config::{DEFAULT_BRIDGE, NETWORK_NAME};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("{0}")]
    Config(String),
}

impl NetworkError {
    /// Whether the agent lacks CAP_NET_ADMIN (runs without root).
    pub fn not_permitted(&self) -> bool {
        matches!(self, NetworkError::Link(e) if e.not_permitted())
    }
}

/// The node's pod network, set up by the agent at start.
pub struct PodNetwork {
    netlink: Netlink,
    bridge: u32,
    range: Ipv4Net,
    gateway: Ipv4Addr,
    ipam: Arc<Mutex<Ipam>>,
    /// Wasm pods that held addresses when the agent started: those not bound here any more
    /// are released once the pod list is known ([`PodNetwork::release_unknown`]).
    found_at_start: Mutex<HashSet<String>>,
    /// Routes to other nodes' pod ranges, as last programmed.
    routes: tokio::sync::Mutex<BTreeMap<Ipv4Net, Ipv4Addr>>,
}

/// The first address of a range: the bridge's (the pods' gateway).
pub fn gateway_of(range: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()).saturating_add(1))
}

fn blocking_ipam<T: Send + 'static>(
    ipam: &Arc<Mutex<Ipam>>,
    f: impl FnOnce(&mut Ipam) -> Result<T, IpamError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, NetworkError>> {
    let ipam = ipam.clone();
    async move {
        tokio::task::spawn_blocking(move || {
            let mut guard = ipam.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| NetworkError::Config(format!("address store task failed: {e}")))?
        .map_err(NetworkError::from)
    }
}

impl PodNetwork {
    /// Sets up the node's side: the bridge with the range's gateway address, IPv4 forwarding,
    /// the address store (`ipam_dir`, shared with CNI's host-local). Wasm pods' addresses an
    /// earlier run left on the bridge are removed: their components stopped with that run,
    /// and their workers add them again (same addresses, kept in the store).
    pub async fn setup(ipam_dir: &Path, range: Ipv4Net) -> Result<Self, NetworkError> {
        let range = range.trunc();
        let gateway = gateway_of(range);
        let netlink = Netlink::connect()?;
        let bridge = netlink
            .ensure_bridge(DEFAULT_BRIDGE, gateway, range.prefix_len())
            .await?;
        if let Err(e) = tokio::fs::write("/proc/sys/net/ipv4/ip_forward", "1").await {
            tracing::warn!(error = %e, "cannot turn on IPv4 forwarding: pods cannot reach other nodes");
        }
        for (ip, len) in netlink.addresses(bridge).await? {
            if len == 32 && range.contains(&ip) {
                netlink.del_address(bridge, ip, 32).await?;
            }
        }
        let dir: PathBuf = ipam_dir.to_path_buf();
        let ipam =
            tokio::task::spawn_blocking(move || Ipam::open(&dir, NETWORK_NAME, range, gateway))
                .await
                .map_err(|e| NetworkError::Config(format!("address store task failed: {e}")))??;
        let routes = netlink
            .own_routes()
            .await?
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        let found_at_start = ipam.held().keys().cloned().collect();
        tracing::info!(%range, bridge = DEFAULT_BRIDGE, "pod network ready");
        Ok(PodNetwork {
            netlink,
            bridge,
            range,
            gateway,
            ipam: Arc::new(Mutex::new(ipam)),
            found_at_start: Mutex::new(found_at_start),
            routes: tokio::sync::Mutex::new(routes),
        })
    }

    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The bridge's address: the pods' gateway, where the node's DNS server listens.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The address of Wasm pod `uid` (kept across agent restarts), live on the bridge.
    pub async fn attach_wasm_pod(&self, uid: &str) -> Result<Ipv4Addr, NetworkError> {
        let owner = uid.to_string();
        let ip = blocking_ipam(&self.ipam, move |i| i.reserve(&owner)).await?;
        self.netlink.add_address(self.bridge, ip, 32).await?;
        Ok(ip)
    }

    /// Takes Wasm pod `uid`'s address off the bridge and gives it back to the range.
    pub async fn release_wasm_pod(&self, uid: &str) -> Result<(), NetworkError> {
        let owner = uid.to_string();
        if let Some(ip) = blocking_ipam(&self.ipam, move |i| i.release(&owner)).await? {
            self.netlink.del_address(self.bridge, ip, 32).await?;
        }
        Ok(())
    }

    /// Releases the reservations found at start whose pods are not in `live` (deleted while
    /// the agent was down). Pods that got addresses since are never touched.
    pub async fn release_unknown(&self, live: &HashSet<String>) -> Result<(), NetworkError> {
        let stale: Vec<String> = {
            let mut found = self
                .found_at_start
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let stale = found
                .iter()
                .filter(|uid| !live.contains(*uid))
                .cloned()
                .collect();
            found.clear();
            stale
        };
        for uid in stale {
            tracing::info!(pod_uid = %uid, "releasing the address of a pod that is gone");
            self.release_wasm_pod(&uid).await?;
        }
        Ok(())
    }

    /// Makes the routes to other nodes' pod ranges exactly `want` (range → node address).
    /// Each route is tried on its own: one the kernel refuses (a node whose address is not on
    /// a network this host reaches directly) does not hold up the others. The first failure
    /// is returned once all were tried, for the caller to retry.
    pub async fn sync_routes(
        &self,
        want: &BTreeMap<Ipv4Net, Ipv4Addr>,
    ) -> Result<(), NetworkError> {
        let mut have = self.routes.lock().await;
        let mut first_error = None;
        let stale: Vec<(Ipv4Net, Ipv4Addr)> = have
            .iter()
            .filter(|(net, gw)| want.get(*net) != Some(*gw))
            .map(|(net, gw)| (*net, *gw))
            .collect();
        for (net, gw) in stale {
            match self.netlink.del_route(net, gw).await {
                Ok(()) => {
                    have.remove(&net);
                    tracing::info!(range = %net, via = %gw, "route to a node's pods removed");
                }
                Err(e) => {
                    tracing::warn!(range = %net, via = %gw, error = %e, "cannot remove the route to a node's pods");
                    first_error.get_or_insert(e);
                }
            }
        }
        for (net, gw) in want {
            if have.get(net) != Some(gw) {
                match self.netlink.replace_route(*net, *gw).await {
                    Ok(()) => {
                        tracing::info!(range = %net, via = %gw, "route to a node's pods added");
                        have.insert(*net, *gw);
                    }
                    Err(e) => {
                        tracing::warn!(range = %net, via = %gw, error = %e, "cannot add the route to a node's pods");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The agent stops: routes to other nodes and the bridge go (the pods' sandboxes are
    /// already removed; the kernel drops the bridge's addresses with it). Reservations stay
    /// for the next start.
    pub async fn shutdown(&self) {
        if let Err(e) = self.sync_routes(&BTreeMap::new()).await {
            tracing::warn!(error = %e, "cannot remove the routes to other nodes");
        }
        if let Err(e) = self.netlink.delete_link(self.bridge).await {
            tracing::warn!(error = %e, bridge = DEFAULT_BRIDGE, "cannot remove the pod bridge");
        }
    }
}
