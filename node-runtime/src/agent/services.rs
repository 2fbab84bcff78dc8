//! The agent's view of the cluster's Services, EndpointSlices and Nodes (reflectors: one list,
//! then watch), and what this node makes of it: the Service data path (nftables), the cluster
//! DNS zone, routes to other nodes' pod ranges (host-gw), and the Service environment
//! variables of new containers. Every change wakes one sync loop, which waits a short moment
//! for more changes to batch them, then brings everything to the new state.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::{watch, Notify};

use crate::dns::{ClusterZone, ZoneAnswer, ZoneHandle, DEFAULT_DOMAIN};
use crate::network::PodNetwork;
use crate::proxy::ServiceProxy;
use crate::wasm::{ClusterName, ClusterResolver};
use tracing::Instrument;

/// How long the sync loop waits after a change for more to batch (kube-proxy batches too):
/// short enough that a pod failing readiness stops getting traffic well within a probe period.
pub const DEFAULT_SYNC_BATCH: Duration = Duration::from_millis(100);
/// How long a container start waits for the first Service list (its environment variables)
/// right after the agent started; later starts never wait.
pub const DEFAULT_FIRST_LIST_WAIT: Duration = Duration::from_secs(5);
/// The shortest time between two rebuilds of what follows the view without batching (the
/// activator's targets, the Ingress routes): short against a cold start, long enough that a
/// burst of changes is one rebuild per interval.
pub const DEFAULT_MIN_REBUILD_INTERVAL: Duration = Duration::from_millis(20);
/// After a failed sync, the next try (the state is re-read then).
pub const DEFAULT_SYNC_RETRY: Duration = Duration::from_secs(2);

/// The cluster DNS Service (created by the control plane at the tenth service address).
pub const DNS_NAMESPACE: &str = "kube-system";
pub const DNS_SERVICE: &str = "kube-dns";

/// The Services, EndpointSlices and Nodes as this agent last saw them.
#[derive(Clone)]
pub struct ClusterView {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
    /// Ingresses (all classes; `ingress::routes` picks the node's).
    pub ingresses: Store<Ingress>,
    pub ingress_classes: Store<IngressClass>,
    /// `kubernetes.io/tls` Secrets, for the Ingresses' HTTPS.
    pub secrets: Store<Secret>,
    changed: Arc<Notify>,
    /// Counts every change the reflectors saw, for those who wait on the view without
    /// batching (the activator, holding connections until an endpoint is ready).
    generation: Arc<watch::Sender<u64>>,
}

/// Wakes the sync loop and bumps the view's generation.
#[derive(Clone)]
struct Changed(Arc<Notify>, Arc<watch::Sender<u64>>);

impl Changed {
    fn signal(&self) {
        self.0.notify_one();
        self.1.send_modify(|g| *g = g.wrapping_add(1));
    }
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Changed,
    mut shutdown: watch::Receiver<bool>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(_)) => changed.signal(),
                    Some(Err(e)) => tracing::debug!(error = %e, "watch error; retrying"),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    });
    (reader, task)
}

impl ClusterView {
    /// Starts the reflectors; they stop at `shutdown`.
    pub fn start(
        client: &kube::Client,
        shutdown: &watch::Receiver<bool>,
    ) -> (ClusterView, Vec<tokio::task::JoinHandle<()>>) {
        let notify = Arc::new(Notify::new());
        let generation = Arc::new(watch::Sender::new(0));
        let changed = Changed(notify.clone(), generation.clone());
        let all = watcher::Config::default;
        let (services, t1) = reflect(
            Api::all(client.clone()),
            all(),
            changed.clone(),
            shutdown.clone(),
        );
        let (slices, t2) = reflect(
            Api::all(client.clone()),
            all(),
            changed.clone(),
            shutdown.clone(),
        );
        let (nodes, t3) = reflect(
            Api::all(client.clone()),
            all(),
            changed.clone(),
            shutdown.clone(),
        );
        let (ingresses, t4) = reflect(
            Api::all(client.clone()),
            all(),
            changed.clone(),
            shutdown.clone(),
        );
        let (ingress_classes, t6) = reflect(
            Api::all(client.clone()),
            all(),
            changed.clone(),
            shutdown.clone(),
        );
        let tls = all().fields("type=kubernetes.io/tls");
        let (secrets, t5) = reflect(Api::all(client.clone()), tls, changed, shutdown.clone());
        (
            ClusterView {
                services,
                slices,
                nodes,
                ingresses,
                ingress_classes,
                secrets,
                changed: notify,
                generation,
            },
            vec![t1, t2, t3, t4, t5, t6],
        )
    }

    /// Changes whenever the view does (no batching).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Waits for the next change after `last_rebuild`, at most one per
    /// [`DEFAULT_MIN_REBUILD_INTERVAL`]: a lone change is seen at once, a storm (a thousand
    /// Services created) costs a rebuild per interval instead of one per event. False at
    /// shutdown.
    pub async fn next_change(
        changes: &mut watch::Receiver<u64>,
        last_rebuild: std::time::Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return false },
            _ = shutdown.changed() => return false,
        }
        let since = last_rebuild.elapsed();
        if since < DEFAULT_MIN_REBUILD_INTERVAL {
            tokio::select! {
                _ = tokio::time::sleep(DEFAULT_MIN_REBUILD_INTERVAL - since) => {}
                _ = shutdown.changed() => return false,
            }
        }
        true
    }

    /// The Services and EndpointSlices as they are now.
    pub fn snapshot(&self) -> (Vec<Service>, Vec<EndpointSlice>) {
        let services = self
            .services
            .state()
            .iter()
            .map(|s| (**s).clone())
            .collect();
        let slices = self.slices.state().iter().map(|s| (**s).clone()).collect();
        (services, slices)
    }

    /// The cluster DNS Service's address (`kube-system/kube-dns`), where pods send their
    /// queries (each node's agent answers them).
    pub async fn cluster_dns_ip(&self) -> Option<std::net::IpAddr> {
        let _ =
            tokio::time::timeout(DEFAULT_FIRST_LIST_WAIT, self.services.wait_until_ready()).await;
        let key = reflector::ObjectRef::new(DNS_SERVICE).within(DNS_NAMESPACE);
        self.services
            .get(&key)?
            .spec
            .as_ref()?
            .cluster_ip
            .as_deref()?
            .parse()
            .ok()
    }

    /// The Services environment variables of a container of `pod` (Kubernetes' service
    /// links): for each Service with a cluster IP in the pod's namespace (only the
    /// `kubernetes` Service of `default` when `enableServiceLinks: false`).
    pub async fn service_env(&self, pod: &Pod) -> Vec<(String, String)> {
        let _ =
            tokio::time::timeout(DEFAULT_FIRST_LIST_WAIT, self.services.wait_until_ready()).await;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut services: Vec<Arc<Service>> = self
            .services
            .state()
            .into_iter()
            .filter(|s| {
                let s_ns = s.metadata.namespace.as_deref().unwrap_or_default();
                let name = s.metadata.name.as_deref().unwrap_or_default();
                (links && s_ns == ns) || (s_ns == "default" && name == "kubernetes")
            })
            .collect();
        services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut env = Vec::new();
        for s in services {
            env.extend(service_link_env(&s));
        }
        env
    }
}

/// The variables one Service gives a container (`NAME_SERVICE_HOST`, `NAME_SERVICE_PORT`,
/// `NAME_SERVICE_PORT_<PORTNAME>`, and the Docker-link style `NAME_PORT…`).
pub fn service_link_env(svc: &Service) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let ip = match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() && ip != "None" => ip,
        _ => return Vec::new(),
    };
    let prefix = svc
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut env = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_string())];
    let Some(first) = ports.first() else {
        return env;
    };
    env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            env.push((
                format!(
                    "{prefix}_SERVICE_PORT_{}",
                    name.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            ));
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".into())
    };
    env.push((
        format!("{prefix}_PORT"),
        format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
    ));
    for p in ports {
        let pr = proto(p);
        let base = format!("{prefix}_PORT_{}_{}", p.port, pr.to_uppercase());
        env.push((
            base.clone(),
            format!("{}://{ip}:{}", pr.to_lowercase(), p.port),
        ));
        env.push((format!("{base}_PROTO"), pr.to_lowercase()));
        env.push((format!("{base}_PORT"), p.port.to_string()));
        env.push((format!("{base}_ADDR"), ip.to_string()));
    }
    env
}

/// Other nodes' pod ranges and the addresses they are reached at.
pub fn node_routes(nodes: &[Arc<Node>], me: &str) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let mut out = BTreeMap::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let Some(cidr) = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Net>().ok())
        else {
            continue;
        };
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| {
                a.iter()
                    .filter(|a| a.type_ == "InternalIP")
                    .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
            });
        if let Some(ip) = ip {
            out.insert(cidr, ip);
        }
    }
    out
}

/// What the sync loop keeps in step with the view.
pub struct Programs {
    pub node_name: String,
    pub network: Arc<PodNetwork>,
    /// The zone the node's cluster DNS serves.
    pub zone: Option<ZoneHandle>,
    /// The Service data path; its table is deleted when the loop stops.
    pub proxy: Option<ServiceProxy>,
}

/// How many ExternalName hops a Wasm guest's lookup follows inside the cluster zone.
const MAX_ALIAS_HOPS: usize = 8;

/// Wasm guests' cluster name lookups, answered from the zone the node's DNS serves.
pub struct ZoneResolver(pub ZoneHandle);

impl ClusterResolver for ZoneResolver {
    fn resolve(&self, host: &str, namespace: &str) -> Option<ClusterName> {
        let zone = self.0.get();
        let mut name = host.to_string();
        for hop in 0..MAX_ALIAS_HOPS {
            match zone.lookup(&name, namespace) {
                None if hop == 0 => return None,
                // An ExternalName pointing outside the cluster.
                None => return Some(ClusterName::Alias(name)),
                Some(ZoneAnswer::Addrs { addrs, .. }) => {
                    return Some(ClusterName::Addrs(
                        addrs.into_iter().map(std::net::IpAddr::V4).collect(),
                    ))
                }
                Some(ZoneAnswer::NotFound) => return Some(ClusterName::Addrs(Vec::new())),
                Some(ZoneAnswer::Alias { target, .. }) => name = target,
            }
        }
        Some(ClusterName::Addrs(Vec::new()))
    }
}

/// Brings the DNS zone, the Service data path and the routes to other nodes to the view's
/// state after each batch of changes, until `shutdown`; then removes the Service rules.
pub async fn sync_loop(
    view: ClusterView,
    mut programs: Programs,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = view.changed.notified() => {}
            _ = shutdown.changed() => break,
        }
        // Batch what arrives right after.
        tokio::select! {
            _ = tokio::time::sleep(DEFAULT_SYNC_BATCH) => {}
            _ = shutdown.changed() => break,
        }
        if !sync_once(&view, &mut programs)
            .instrument(tracing::debug_span!("sync_services"))
            .await
        {
            view.changed.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(DEFAULT_SYNC_RETRY) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
    if let Some(proxy) = programs.proxy.take() {
        if let Err(e) = proxy.shutdown().await {
            tracing::warn!(error = %e, "cannot remove the Service rules");
        }
    }
}

/// One pass; false when something failed and should be tried again.
async fn sync_once(view: &ClusterView, programs: &mut Programs) -> bool {
    let (services, slices) = view.snapshot();
    let mut ok = true;
    if let Some(zone) = &programs.zone {
        zone.set(ClusterZone::build(DEFAULT_DOMAIN, &services, &slices));
    }
    if let Some(proxy) = programs.proxy.as_mut() {
        match proxy.sync(&services, &slices).await {
            Ok(stats) => tracing::debug!(?stats, "Service rules in step"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot program the Service rules; retrying");
                ok = false;
            }
        }
    }
    let routes = node_routes(&view.nodes.state(), &programs.node_name);
    if let Err(e) = programs.network.sync_routes(&routes).await {
        tracing::warn!(error = %e, "cannot program the routes to other nodes; retrying");
        ok = false;
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_links_follow_kubernetes_names() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "redis-primary", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.11", "ports": [
                {"name": "redis", "port": 6379, "protocol": "TCP"},
                {"name": "metrics-http", "port": 9121}
            ]}
        }))
        .unwrap();
        let env: BTreeMap<String, String> = service_link_env(&svc).into_iter().collect();
        assert_eq!(env["REDIS_PRIMARY_SERVICE_HOST"], "10.43.0.11");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT"], "6379");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT_METRICS_HTTP"], "9121");
        assert_eq!(env["REDIS_PRIMARY_PORT"], "tcp://10.43.0.11:6379");
        assert_eq!(env["REDIS_PRIMARY_PORT_6379_TCP_ADDR"], "10.43.0.11");
        assert_eq!(env["REDIS_PRIMARY_PORT_9121_TCP_PROTO"], "tcp");
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }))
        .unwrap();
        assert!(service_link_env(&headless).is_empty());
    }

    #[test]
    fn routes_go_to_other_nodes_internal_addresses() {
        let node = |name: &str, cidr: Option<&str>, ip: &str| -> Arc<Node> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"podCIDR": cidr},
                    "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}
                }))
                .unwrap(),
            )
        };
        let nodes = vec![
            node("a", Some("10.42.0.0/24"), "192.168.50.1"),
            node("b", Some("10.42.1.0/24"), "192.168.50.2"),
            node("c", None, "192.168.50.3"),
        ];
        let r = node_routes(&nodes, "a");
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[&"10.42.1.0/24".parse().unwrap()],
            "192.168.50.2".parse::<Ipv4Addr>().unwrap()
        );
    }
}
