//! A container pod's resolver (`/etc/resolv.conf`, written by containerd from the sandbox's
//! DNS config), by `dnsPolicy` as the kubelet does: `ClusterFirst` (the default) points at the
//! cluster DNS Service with the pod's search list and `ndots:5`; `Default` keeps the node's
//! resolver; `None` takes only `spec.dnsConfig`, which is merged into the others.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use crate::cri::api;

/// The cluster's DNS domain (Kubernetes' and k3s's default).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Names with fewer dots than this go through the search list first (Kubernetes' value).
const DEFAULT_NDOTS: &str = "ndots:5";

/// The sandbox DNS config for `pod`; `None`: the node's own resolver. `cluster_dns` is the
/// cluster DNS Service's address, when the node serves cluster DNS.
pub fn dns_config(pod: &Pod, cluster_dns: Option<IpAddr>) -> Option<api::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let mut cfg = match (policy, cluster_dns) {
        ("None", _) => api::DnsConfig::default(),
        ("ClusterFirst" | "ClusterFirstWithHostNet", Some(ip)) => api::DnsConfig {
            servers: vec![ip.to_string()],
            searches: vec![
                format!("{ns}.svc.{CLUSTER_DOMAIN}"),
                format!("svc.{CLUSTER_DOMAIN}"),
                CLUSTER_DOMAIN.to_string(),
            ],
            options: vec![DEFAULT_NDOTS.to_string()],
        },
        // `Default`, or no cluster DNS on this node: the node's resolver, plus dnsConfig.
        _ if spec.dns_config.is_none() => return None,
        _ => api::DnsConfig::default(),
    };
    if let Some(extra) = &spec.dns_config {
        for s in extra.nameservers.iter().flatten() {
            if !cfg.servers.contains(s) {
                cfg.servers.push(s.clone());
            }
        }
        for s in extra.searches.iter().flatten() {
            if !cfg.searches.contains(s) {
                cfg.searches.push(s.clone());
            }
        }
        for o in extra.options.iter().flatten() {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = text.split(':').next().unwrap_or_default().to_string();
            cfg.options
                .retain(|existing| existing.split(':').next() != Some(name.as_str()));
            cfg.options.push(text);
        }
    }
    Some(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn cluster_first_points_at_cluster_dns_with_the_pod_search_list() {
        let dns = "10.43.0.10".parse().ok();
        let c = dns_config(&pod(json!({"containers": []})), dns).unwrap();
        assert_eq!(c.servers, ["10.43.0.10"]);
        assert_eq!(
            c.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(c.options, ["ndots:5"]);
        // No cluster DNS on the node: the node's resolver.
        assert!(dns_config(&pod(json!({"containers": []})), None).is_none());
        assert!(dns_config(&pod(json!({"containers": [], "dnsPolicy": "Default"})), dns).is_none());
    }

    #[test]
    fn dns_config_merges_and_none_takes_only_it() {
        let dns = "10.43.0.10".parse().ok();
        let merged = dns_config(
            &pod(json!({"containers": [], "dnsConfig": {
                "nameservers": ["1.2.3.4"], "searches": ["corp.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
            }})),
            dns,
        )
        .unwrap();
        assert_eq!(merged.servers, ["10.43.0.10", "1.2.3.4"]);
        assert_eq!(merged.searches.last().unwrap(), "corp.example");
        assert_eq!(merged.options, ["ndots:2", "edns0"]);
        let none = dns_config(
            &pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"]}})),
            dns,
        )
        .unwrap();
        assert_eq!(none.servers, ["1.2.3.4"]);
        assert!(none.searches.is_empty());
    }
}
