//! Which Service port a connection DNATed to the activator was meant for (its original
//! destination: a ClusterIP or load-balancer address and port, or a node port), and where
//! that port's ready endpoints are now. Rebuilt from the agent's view at every change, with
//! the same endpoint selection as the kernel rules (`proxy::model`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::stats::ServiceRef;
use crate::proxy::model::{self, ActivatorMode, SERVICE_NAME_LABEL};

/// One activated Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServiceRef,
    /// The Service port's name ("" when unnamed).
    pub port: String,
    pub mode: ActivatorMode,
    /// Where connections can go now (ready endpoints, else serving-and-terminating ones).
    pub endpoints: Vec<SocketAddrV4>,
    /// The Service's pod selector, to say why no pod is ready.
    pub selector: Option<String>,
    /// The same selector as pairs, to find this node's ready Wasm pods before their
    /// endpoints are published.
    pub selector_labels: std::collections::BTreeMap<String, String>,
    /// The port's numeric target port (`None` for a named one).
    pub target_port: Option<u16>,
}

/// Every activated Service port of the cluster, by original destination.
#[derive(Debug, Default)]
pub struct Targets {
    by_vip: HashMap<SocketAddrV4, Arc<Target>>,
    by_node_port: HashMap<u16, Arc<Target>>,
}

impl Targets {
    /// The activated ports of these objects.
    pub fn build(services: &[Service], slices: &[EndpointSlice], node_name: &str) -> Targets {
        let services: Vec<Service> = services
            .iter()
            .filter(|s| ActivatorMode::of(s).is_some())
            .cloned()
            .collect();
        let names: std::collections::HashSet<(&str, &str)> = services
            .iter()
            .filter_map(|s| {
                Some((
                    s.metadata.namespace.as_deref().unwrap_or("default"),
                    s.metadata.name.as_deref()?,
                ))
            })
            .collect();
        let slices: Vec<EndpointSlice> = slices
            .iter()
            .filter(|slice| {
                let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
                slice
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|svc| names.contains(&(ns, svc.as_str())))
            })
            .cloned()
            .collect();
        let selectors: HashMap<(String, String), String> = services
            .iter()
            .filter_map(|s| {
                let selector = s.spec.as_ref()?.selector.as_ref()?;
                let text = selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                Some((
                    (
                        s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name.clone()?,
                    ),
                    text,
                ))
            })
            .collect();
        let by_key: HashMap<(String, String), &Service> = services
            .iter()
            .filter_map(|s| {
                Some((
                    (
                        s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name.clone()?,
                    ),
                    s,
                ))
            })
            .collect();
        let mut out = Targets::default();
        for plan in model::plan(&services, &slices, node_name, None) {
            let Some(mode) = plan.activator else {
                continue;
            };
            let key = (plan.name.namespace.clone(), plan.name.name.clone());
            let spec = by_key.get(&key).and_then(|s| s.spec.as_ref());
            let target_port = spec
                .and_then(|spec| spec.ports.as_ref())
                .and_then(|ports| ports.iter().find(|p| p.port == i32::from(plan.port)))
                .and_then(|p| match &p.target_port {
                    None => u16::try_from(p.port).ok(),
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                        u16::try_from(*n).ok()
                    }
                    Some(_) => None,
                });
            let target = Arc::new(Target {
                selector_labels: spec
                    .and_then(|spec| spec.selector.clone())
                    .unwrap_or_default(),
                target_port,
                selector: selectors.get(&key).cloned(),
                service: ServiceRef {
                    namespace: plan.name.namespace.clone(),
                    name: plan.name.name.clone(),
                },
                port: plan.name.port.clone(),
                mode,
                endpoints: plan.cluster_endpoints.iter().map(|e| e.addr).collect(),
            });
            out.by_vip.insert(
                SocketAddrV4::new(plan.cluster_ip, plan.port),
                target.clone(),
            );
            for ip in &plan.lb_ips {
                out.by_vip
                    .insert(SocketAddrV4::new(*ip, plan.port), target.clone());
            }
            if let Some(node_port) = plan.node_port {
                out.by_node_port.insert(node_port, target);
            }
        }
        out
    }

    /// The port a connection originally sent to `dst` is for.
    pub fn find(&self, dst: SocketAddrV4) -> Option<&Arc<Target>> {
        self.by_vip
            .get(&dst)
            .or_else(|| self.by_node_port.get(&dst.port()))
    }

    /// The Services with activated ports.
    pub fn services(&self) -> std::collections::HashSet<&ServiceRef> {
        self.by_vip.values().map(|t| &t.service).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_vip.is_empty()
    }
}

/// An address no Service answers on, for messages.
pub fn describe(dst: SocketAddrV4) -> String {
    if dst.ip() == &Ipv4Addr::UNSPECIFIED {
        "an unknown destination".into()
    } else {
        dst.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_activated_ports_by_vip_and_node_port() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {"skiff.dev/activator": "serve"}},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.20", "selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}
        }))
        .unwrap();
        let plain: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.21", "ports": [{"port": 5432}]}
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.0.7"], "conditions": {"ready": true}},
                          {"addresses": ["10.42.0.8"], "conditions": {"ready": false}}]
        }))
        .unwrap();
        let t = Targets::build(&[svc.clone(), plain], &[slice], "n1");
        let web = t.find("10.43.0.20:80".parse().unwrap()).unwrap();
        assert_eq!(web.service.name, "web");
        assert_eq!(web.mode, ActivatorMode::Serve);
        assert_eq!(web.endpoints, vec!["10.42.0.7:8080".parse().unwrap()]);
        assert_eq!(web.selector.as_deref(), Some("app=web"));
        assert_eq!(web.target_port, Some(8080));
        assert_eq!(
            web.selector_labels.get("app").map(String::as_str),
            Some("web")
        );
        assert_eq!(
            t.find("192.0.2.1:30080".parse().unwrap()).unwrap().service,
            web.service
        );
        assert!(t.find("10.43.0.21:5432".parse().unwrap()).is_none());
        let none = Targets::build(&[svc], &[], "n1");
        assert!(none
            .find("10.43.0.20:80".parse().unwrap())
            .unwrap()
            .endpoints
            .is_empty());
    }
}
