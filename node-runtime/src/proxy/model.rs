//! From Services and EndpointSlices to what this node must do with each service port: a pure
//! function, no kernel, so every Kubernetes rule it encodes is unit-tested here.
//!
//! One [`ServicePortPlan`] per (Service, port) that gets rules. Headless and ExternalName
//! Services, IPv6 ClusterIPs and ports out of range get none. Endpoints follow kube-proxy's
//! selection: ready ones; when none is ready, the serving-and-terminating ones (so a rolling
//! restart of the last replica drains instead of refusing); terminating endpoints never get
//! new connections while a ready one exists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointSlice};

/// Session affinity timeout when `sessionAffinityConfig.clientIP.timeoutSeconds` is unset:
/// Kubernetes' API default (3 hours), so a Service behaves as it does under kube-proxy.
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10_800;

/// The label that ties an EndpointSlice to its Service (same namespace).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service whose port 53 is answered by the node's own DNS server (`local_dns`).
const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");
const DNS_PORT: u16 = 53;

/// The annotation the control plane's autoscaler puts on each Service in front of a
/// request-autoscaled Deployment (`control-plane/src/controllers/autoscaler/`): how the node's
/// activator stands in its data path.
pub const ACTIVATOR_ANNOTATION: &str = "skiff.dev/activator";

/// How the activator stands in a Service's data path (its TCP ports; UDP and SCTP ports are
/// never held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActivatorMode {
    /// `serve`: traffic goes straight to the endpoints; only while none is ready does it go to
    /// the activator, which holds it until one is (Wasm pods count their requests themselves).
    Serve,
    /// `proxy`: every connection goes through the activator, which counts it for the
    /// autoscaler (container pods, which nothing else on the node sees).
    Proxy,
}

impl ActivatorMode {
    /// The mode an annotation value names; `None` for anything else.
    pub fn parse(value: &str) -> Option<ActivatorMode> {
        match value {
            "serve" => Some(ActivatorMode::Serve),
            "proxy" => Some(ActivatorMode::Proxy),
            _ => None,
        }
    }

    /// The Service's mode, from its annotation.
    pub fn of(service: &Service) -> Option<ActivatorMode> {
        let value = service
            .metadata
            .annotations
            .as_ref()?
            .get(ACTIVATOR_ANNOTATION)?;
        ActivatorMode::parse(value)
    }
}

/// A transport protocol a Service port can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The protocol's name in nft (`meta l4proto tcp`) and in chain names.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// Kubernetes' protocol name (`TCP`, default when unset); `None` for an unknown one.
    fn parse(protocol: Option<&str>) -> Option<Proto> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// Which service port a plan is for: namespace, Service, port name ("" when unnamed), protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub proto: Proto,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.proto.as_str(),
            self.port
        )
    }
}

/// One usable endpoint of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub addr: SocketAddrV4,
    /// On this node (`nodeName` == the proxy's node): eligible for `Local` traffic policies.
    pub local: bool,
}

/// What this node does with one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortPlan {
    pub name: ServicePortName,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// Set for `NodePort` and `LoadBalancer` Services that have one.
    pub node_port: Option<u16>,
    /// `status.loadBalancer.ingress[].ip` of a `LoadBalancer` Service.
    pub lb_ips: Vec<Ipv4Addr>,
    /// `externalTrafficPolicy: Local`: NodePort/LB traffic only to this node's endpoints.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`: ClusterIP traffic only to this node's endpoints.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP` with this timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// Endpoints for the `Cluster` policy (any node).
    pub cluster_endpoints: Vec<Endpoint>,
    /// Endpoints for a `Local` policy (this node only), chosen on their own: ready local
    /// ones, else serving-and-terminating local ones. Empty when no policy is `Local`.
    pub local_endpoints: Vec<Endpoint>,
    /// The ClusterIP is answered by the node's DNS server instead of the endpoints.
    pub local_dns: Option<SocketAddrV4>,
    /// The activator holds this port's connections while it has no ready endpoint (and
    /// proxies all of them in `Proxy` mode). Only for TCP.
    pub activator: Option<ActivatorMode>,
}

impl ServicePortPlan {
    /// Reached from outside the cluster network (a NodePort or a load-balancer address).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.lb_ips.is_empty()
    }

    /// Every endpoint some chain of this port sends to, each once.
    pub fn all_endpoints(&self) -> BTreeSet<&Endpoint> {
        self.cluster_endpoints
            .iter()
            .chain(self.local_endpoints.iter())
            .collect()
    }
}

/// Builds the plans for every proxied service port, sorted by name.
pub fn plan(
    services: &[Service],
    slices: &[EndpointSlice],
    node_name: &str,
    local_dns: Option<SocketAddr>,
) -> Vec<ServicePortPlan> {
    // Slices by (namespace, service name).
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        by_service
            .entry((namespace, service.as_str()))
            .or_default()
            .push(slice);
    }
    let local_dns = match local_dns {
        Some(SocketAddr::V4(addr)) => Some(addr),
        _ => None,
    };

    let mut plans = Vec::new();
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let Some(name) = service.metadata.name.as_deref() else {
            continue;
        };
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if kind == "ExternalName" {
            continue;
        }
        // Headless ("None"), not yet allocated, or IPv6: no rules.
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let external = kind == "NodePort" || kind == "LoadBalancer";
        let lb_ips: Vec<Ipv4Addr> = if kind == "LoadBalancer" {
            service
                .status
                .as_ref()
                .and_then(|status| status.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
                .collect()
        } else {
            Vec::new()
        };
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|config| config.client_ip.as_ref())
                .and_then(|client_ip| client_ip.timeout_seconds)
                .and_then(|seconds| u32::try_from(seconds).ok())
                .filter(|seconds| *seconds > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
        });
        let activator = ActivatorMode::of(service);
        let service_slices = by_service
            .get(&(namespace, name))
            .map(Vec::as_slice)
            .unwrap_or_default();

        for port in spec.ports.iter().flatten() {
            let Some(proto) = Proto::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(port_number) = u16::try_from(port.port) else {
                continue;
            };
            if port_number == 0 {
                continue;
            }
            let name = ServicePortName {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port: port.name.clone().unwrap_or_default(),
                proto,
            };
            let candidates = candidates(service_slices, port, proto, node_name);
            let local_dns = local_dns.filter(|_| {
                (namespace, name.name.as_str()) == DNS_SERVICE
                    && port_number == DNS_PORT
                    && matches!(proto, Proto::Udp | Proto::Tcp)
            });
            let external_local =
                external && spec.external_traffic_policy.as_deref() == Some("Local");
            let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
            // Local endpoints matter only to a Local policy; otherwise no chain uses them.
            let local_endpoints = if external_local || internal_local {
                select(candidates.iter().filter(|c| c.endpoint.local))
            } else {
                Vec::new()
            };
            plans.push(ServicePortPlan {
                cluster_ip,
                port: port_number,
                node_port: port
                    .node_port
                    .filter(|_| external)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
                lb_ips: lb_ips.clone(),
                external_local,
                internal_local,
                affinity_timeout,
                cluster_endpoints: select(candidates.iter()),
                local_endpoints,
                local_dns,
                activator: activator.filter(|_| proto == Proto::Tcp),
                name,
            });
        }
    }
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    plans
}

/// An endpoint of a slice with the conditions that decide whether it is used.
#[derive(Debug, Clone)]
struct Candidate {
    endpoint: Endpoint,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// Every endpoint address of the Service's slices for this port, de-duplicated by address
/// (the same endpoint can sit in two slices while the controller moves it).
fn candidates(
    slices: &[&EndpointSlice],
    port: &ServicePort,
    proto: Proto,
    node_name: &str,
) -> Vec<Candidate> {
    let wanted_name = port.name.as_deref().unwrap_or("");
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        // The slice port with the Service port's name and protocol.
        let Some(target_port) = slice.ports.iter().flatten().find_map(|slice_port| {
            let same_name = slice_port.name.as_deref().unwrap_or("") == wanted_name;
            let same_proto = Proto::parse(slice_port.protocol.as_deref()) == Some(proto);
            (same_name && same_proto)
                .then_some(slice_port.port)
                .flatten()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
        }) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            if let Some(candidate) = candidate(endpoint, target_port, node_name) {
                if seen.insert(candidate.endpoint.addr) {
                    out.push(candidate);
                }
            }
        }
    }
    out
}

fn candidate(endpoint: &SliceEndpoint, port: u16, node_name: &str) -> Option<Candidate> {
    // Consumers use the first address (the API says all addresses are fungible).
    let ip: Ipv4Addr = endpoint.addresses.first()?.parse().ok()?;
    let conditions = endpoint.conditions.as_ref();
    // API semantics: a nil `ready` is ready; a nil `serving` is the value of `ready`;
    // a nil `terminating` is not terminating.
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    Some(Candidate {
        endpoint: Endpoint {
            addr: SocketAddrV4::new(ip, port),
            local: endpoint.node_name.as_deref() == Some(node_name),
        },
        ready,
        serving,
        terminating,
    })
}

/// Ready endpoints; when there is none, the serving-and-terminating ones. Sorted, so the
/// same objects always give the same rules (and so the same diff).
fn select<'a>(candidates: impl Iterator<Item = &'a Candidate> + Clone) -> Vec<Endpoint> {
    let mut chosen: Vec<Endpoint> = candidates
        .clone()
        .filter(|c| c.ready && !c.terminating)
        .map(|c| c.endpoint.clone())
        .collect();
    if chosen.is_empty() {
        chosen = candidates
            .filter(|c| c.serving && c.terminating)
            .map(|c| c.endpoint.clone())
            .collect();
    }
    chosen.sort();
    chosen
}

#[cfg(test)]
#[path = "model_tests.rs"]
pub(crate) mod tests;
