//! From Ingresses and Services to the node's routing table: which backend answers a request
//! for a host and path. Kubernetes' rules: a rule's host is exact or a `*.` wildcard of one
//! label; paths are `Exact` (the whole path), `Prefix` (by `/`-separated elements: `/foo`
//! matches `/foo` and `/foo/bar`, not `/foobar`) or `ImplementationSpecific` (Skiff: as
//! `Prefix`); the longest matching path wins, `Exact` before `Prefix` of the same length;
//! among Ingresses the oldest claims a host and path first. A request whose host matches no
//! rule goes to the rules without a host, then to a default backend.
//!
//! A backend is a Service port reached at its ClusterIP, so the node's Service data path
//! (load balancing, the activator of a scale-to-zero Service) does the rest.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

/// The IngressClass the control plane creates (the default class).
pub const INGRESS_CLASS: &str = "skiff";
/// The controller name of IngressClasses this node serves.
pub const INGRESS_CONTROLLER: &str = "skiff.dev/ingress";
/// The annotation that makes an IngressClass the default.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The pre-IngressClass annotation some manifests still use.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Where a route sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A Service port at its ClusterIP.
    Service {
        namespace: String,
        name: String,
        addr: SocketAddrV4,
    },
    /// A backend that cannot be reached, and why (answered with a 503).
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    Exact,
    Prefix,
}

#[derive(Debug, Clone)]
struct PathRoute {
    path: String,
    kind: PathKind,
    backend: Backend,
}

impl PathRoute {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.path,
            PathKind::Prefix => {
                let prefix = self.path.trim_end_matches('/');
                if prefix.is_empty() {
                    return true;
                }
                path == prefix
                    || path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// Every route of the node's Ingress class.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, Vec<PathRoute>>,
    /// `*.example.com` → routes, keyed by `example.com`.
    wildcard: HashMap<String, Vec<PathRoute>>,
    any_host: Vec<PathRoute>,
    default: Option<Backend>,
    /// TLS hosts (exact, or `*.` wildcards) → (namespace, Secret name).
    pub tls: Vec<(String, String, String)>,
}

/// What a request was matched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Backend(&'a Backend),
    /// No rule and no default backend.
    NotFound,
}

/// Whether this node serves `ingress`: its class (`spec.ingressClassName`, else the old
/// annotation) names an IngressClass of the `skiff.dev/ingress` controller (or is `skiff`,
/// before the classes are seen); without a class, when the cluster's default class is one
/// (the newest default, as Kubernetes picks it). The control plane gives the same Ingresses
/// their status addresses.
pub fn served(ingress: &Ingress, classes: &[IngressClass]) -> bool {
    let ours = |c: &IngressClass| {
        c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(INGRESS_CONTROLLER)
    };
    let class = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION))
                .map(String::as_str)
        });
    match class {
        Some(name) => match classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
        {
            Some(c) => ours(c),
            None => name == INGRESS_CLASS,
        },
        None => classes
            .iter()
            .filter(|c| {
                c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
            })
            .max_by(|a, b| {
                let created =
                    |c: &IngressClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(a)
                    .cmp(&created(b))
                    .then(b.metadata.name.cmp(&a.metadata.name))
            })
            .is_some_and(ours),
    }
}

fn backend(
    b: &IngressBackend,
    namespace: &str,
    services: &HashMap<(&str, &str), &Service>,
) -> Backend {
    let Some(svc) = &b.service else {
        return Backend::Unavailable(
            "resource backends are not supported by the skiff Ingress; use a Service backend"
                .into(),
        );
    };
    let Some(service) = services.get(&(namespace, svc.name.as_str())) else {
        return Backend::Unavailable(format!("Service {namespace}/{} does not exist", svc.name));
    };
    let spec = service.spec.as_ref();
    let Some(ip) = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Backend::Unavailable(format!(
            "Service {namespace}/{} has no cluster IP (headless or ExternalName Services cannot back an Ingress)",
            svc.name
        ));
    };
    let ports = spec.and_then(|s| s.ports.as_ref());
    let wanted = svc.port.as_ref();
    let port = ports.into_iter().flatten().find(|p| match wanted {
        Some(w) => match (&w.number, &w.name) {
            (Some(n), _) => p.port == *n,
            (None, Some(name)) => p.name.as_deref() == Some(name.as_str()),
            (None, None) => false,
        },
        None => false,
    });
    match port.and_then(|p| u16::try_from(p.port).ok()) {
        Some(port) => Backend::Service {
            namespace: namespace.to_string(),
            name: svc.name.clone(),
            addr: SocketAddrV4::new(ip, port),
        },
        None => Backend::Unavailable(format!(
            "Service {namespace}/{} has no port {}",
            svc.name,
            wanted
                .map(|w| w
                    .number
                    .map(|n| n.to_string())
                    .or_else(|| w.name.clone())
                    .unwrap_or_default())
                .unwrap_or_default()
        )),
    }
}

impl RouteTable {
    /// The routes of the served Ingresses, oldest first.
    pub fn build(
        ingresses: &[Ingress],
        classes: &[IngressClass],
        services: &[Service],
    ) -> RouteTable {
        let services = super::by_name(services);
        let mut ordered: Vec<&Ingress> = ingresses.iter().filter(|i| served(i, classes)).collect();
        ordered.sort_by(|a, b| {
            (
                &a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &a.metadata.namespace,
                &a.metadata.name,
            )
                .cmp(&(
                    &b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    &b.metadata.namespace,
                    &b.metadata.name,
                ))
        });
        let mut table = RouteTable::default();
        // (host, path, kind) already claimed.
        let mut claimed: BTreeMap<(String, String, PathKind), ()> = BTreeMap::new();
        for ing in ordered {
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            let Some(spec) = &ing.spec else { continue };
            if table.default.is_none() {
                if let Some(b) = &spec.default_backend {
                    table.default = Some(backend(b, ns, &services));
                }
            }
            for tls in spec.tls.iter().flatten() {
                let Some(secret) = &tls.secret_name else {
                    continue;
                };
                for host in tls.hosts.iter().flatten() {
                    table
                        .tls
                        .push((host.to_lowercase(), ns.to_string(), secret.clone()));
                }
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.as_deref().unwrap_or("").to_lowercase();
                for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                    let kind = if p.path_type == "Exact" {
                        PathKind::Exact
                    } else {
                        PathKind::Prefix
                    };
                    let path = p.path.clone().unwrap_or_else(|| "/".into());
                    if claimed
                        .insert((host.clone(), path.clone(), kind), ())
                        .is_some()
                    {
                        continue;
                    }
                    let route = PathRoute {
                        path,
                        kind,
                        backend: backend(&p.backend, ns, &services),
                    };
                    let list = if host.is_empty() {
                        &mut table.any_host
                    } else if let Some(domain) = host.strip_prefix("*.") {
                        table.wildcard.entry(domain.to_string()).or_default()
                    } else {
                        table.exact.entry(host.clone()).or_default()
                    };
                    list.push(route);
                }
            }
        }
        let order = |routes: &mut Vec<PathRoute>| {
            routes.sort_by(|a, b| {
                b.path
                    .trim_end_matches('/')
                    .len()
                    .cmp(&a.path.trim_end_matches('/').len())
                    .then(a.kind.cmp(&b.kind))
            })
        };
        table.exact.values_mut().for_each(order);
        table.wildcard.values_mut().for_each(order);
        order(&mut table.any_host);
        table
    }

    /// The backend for a request to `host` (without port) and `path` (without query).
    pub fn route(&self, host: &str, path: &str) -> Route<'_> {
        fn find<'r>(routes: &'r [PathRoute], path: &str) -> Option<&'r PathRoute> {
            routes.iter().find(|r| r.matches(path))
        }
        let host = host.to_lowercase();
        let by_host = self
            .exact
            .get(&host)
            .and_then(|r| find(r, path))
            .or_else(|| {
                let (_, domain) = host.split_once('.')?;
                self.wildcard.get(domain).and_then(|r| find(r, path))
            });
        match by_host.or_else(|| find(&self.any_host, path)) {
            Some(r) => Route::Backend(&r.backend),
            None => match &self.default {
                Some(b) => Route::Backend(b),
                None => Route::NotFound,
            },
        }
    }

    /// Whether nothing is routed (no served Ingress).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.wildcard.is_empty()
            && self.any_host.is_empty()
            && self.default.is_none()
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
