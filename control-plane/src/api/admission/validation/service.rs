//! Service validation (`ValidateService`, `ValidateServiceUpdate`, `ValidateServiceStatusUpdate`):
//! type-specific rules, ports, selector, session affinity, traffic policies and the
//! LoadBalancer-only fields here; addresses and `status.loadBalancer` in `service_ips.rs`.

use super::common::{dns_label, dns_subdomain, label_name, labels, port_num_or_name, Errs};
use super::pod::protocol;
use super::service_ips::{
    cluster_ip_fields, cluster_ip_update, cluster_ips, is_headless, load_balancer_status,
};
use crate::api::admission::field::{child, index, Bad, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, present, s, sv};
use serde_json::Value;
use std::collections::HashSet;

/// `core.MaxClientIPServiceAffinitySeconds`: one day.
const MAX_CLIENT_IP_AFFINITY_SECONDS: i64 = 86400;

pub(crate) fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let ty = s(spec, "type").unwrap_or("ClusterIP");
    let headless = is_headless(spec);
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" => {
            if ty == "LoadBalancer" {
                for (i, p) in ports.iter().enumerate() {
                    if p.get("port").and_then(Value::as_i64) == Some(10250) {
                        errs.push(FieldError::invalid(
                            &index("spec.ports", i),
                            10250,
                            "may not expose port 10250 externally since it is used by kubelet",
                        ));
                    }
                }
            }
            if headless {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    "None",
                    &format!("may not be set to 'None' for {ty} services"),
                ));
            }
        }
        "ExternalName" => external_name(spec, errs),
        _ => {}
    }
    service_ports(spec, ty, errs);
    labels(spec.get("selector"), "spec.selector", errs);
    session_affinity(spec, errs);
    if ty != "ExternalName" {
        cluster_ip_fields(spec, errs);
    }
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        super::common::ip_address(
            ip.as_str().unwrap_or(""),
            &index("spec.externalIPs", i),
            errs,
        );
    }
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        if ty.is_empty() {
            errs.push(FieldError::required("spec.type", ""));
        } else {
            errs.push(FieldError::not_supported(
                "spec.type",
                ty,
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            ));
        }
    }
    traffic_policies(spec, ty, errs);
    let old_spec = old.map(|o| o.get("spec").unwrap_or(&null));
    load_balancer_fields(spec, old_spec, ty, errs);
    load_balancer_status(obj, errs);
    if let Some(old_spec) = old_spec {
        cluster_ip_update(spec, old_spec, errs);
    }
}

/// An ExternalName Service: a DNS-1123 subdomain to alias, no addresses of its own.
fn external_name(spec: &Value, errs: &mut Errs) {
    if !cluster_ips(spec).is_empty() {
        errs.push(FieldError::forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        ));
    }
    if !arr(spec, "ipFamilies").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        ));
    }
    if present(spec, "ipFamilyPolicy").is_some() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
    let cname = sv(spec, "externalName");
    let cname = cname.strip_suffix('.').unwrap_or(cname);
    if cname.is_empty() {
        errs.push(FieldError::required("spec.externalName", ""));
    } else {
        dns_subdomain(cname, "spec.externalName", errs);
    }
}

/// `validateServicePort` for each port, then duplicate (protocol, port) and
/// (protocol, nodePort) pairs.
fn service_ports(spec: &Value, ty: &str, errs: &mut Errs) {
    let ports = arr(spec, "ports");
    let mut names_seen: HashSet<String> = HashSet::new();
    let multi = ports.len() > 1;
    for (i, p) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        let name = sv(p, "name");
        if multi && name.is_empty() {
            errs.push(FieldError::required(&child(&pp, "name"), ""));
        } else if !name.is_empty() {
            dns_label(name, &child(&pp, "name"), errs);
            if !names_seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&child(&pp, "name"), name));
            }
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        for m in names::port_num(port) {
            errs.push(FieldError::invalid(&child(&pp, "port"), port, &m));
        }
        protocol(p, &pp, errs);
        port_num_or_name(p.get("targetPort"), &child(&pp, "targetPort"), errs);
        if let Some(app) = s(p, "appProtocol") {
            label_name(app, &child(&pp, "appProtocol"), errs);
        }
        let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if np != 0 {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(
                    &child(&pp, "nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else {
                for m in names::port_num(np) {
                    errs.push(FieldError::invalid(&child(&pp, "nodePort"), np, &m));
                }
            }
        }
    }
    let mut pairs: HashSet<(String, i64)> = HashSet::new();
    let mut node_pairs: HashSet<(String, i64)> = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = s(p, "protocol").unwrap_or("TCP").to_string();
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !pairs.insert((proto.clone(), port)) {
            errs.push(FieldError::duplicate(
                &index("spec.ports", i),
                Bad::Raw(format!("{{\"port\":{port},\"protocol\":\"{proto}\"}}")),
            ));
        }
        let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if np != 0 && !node_pairs.insert((proto, np)) {
            errs.push(FieldError::duplicate(
                &child(&index("spec.ports", i), "nodePort"),
                np,
            ));
        }
    }
}

/// `sessionAffinity` and, for ClientIP, `validateClientIPAffinityConfig`.
fn session_affinity(spec: &Value, errs: &mut Errs) {
    const CFG: &str = "spec.sessionAffinityConfig";
    match s(spec, "sessionAffinity") {
        Some("None") if present(spec, "sessionAffinityConfig").is_some() => {
            errs.push(FieldError::forbidden(
                CFG,
                "must not be set when session affinity is None",
            ));
        }
        None | Some("None") => {}
        Some("ClientIP") => {
            let why = "when session affinity type is ClientIP";
            let Some(cfg) = present(spec, "sessionAffinityConfig") else {
                errs.push(FieldError::required(CFG, why));
                return;
            };
            let client = child(CFG, "clientIP");
            let Some(ip) = present(cfg, "clientIP") else {
                errs.push(FieldError::required(&client, why));
                return;
            };
            let path = child(&client, "timeoutSeconds");
            match present(ip, "timeoutSeconds").map(|t| t.as_i64().unwrap_or(0)) {
                None => errs.push(FieldError::required(&path, why)),
                Some(t) if t <= 0 || t > MAX_CLIENT_IP_AFFINITY_SECONDS => {
                    errs.push(FieldError::invalid(
                        &path,
                        t,
                        &format!(
                            "must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Some("") => errs.push(FieldError::required("spec.sessionAffinity", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
}

/// `validateServiceExternalTrafficPolicy` (with `healthCheckNodePort`) and
/// `validateServiceInternalTrafficFieldsValue`.
fn traffic_policies(spec: &Value, ty: &str, errs: &mut Errs) {
    let externally_accessible = ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && !arr(spec, "externalIPs").is_empty());
    let etp = s(spec, "externalTrafficPolicy").filter(|v| !v.is_empty());
    match (etp, externally_accessible) {
        (Some(etp), false) => errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            etp,
            "may only be set for externally-accessible services",
        )),
        (None, true) => errs.push(FieldError::required("spec.externalTrafficPolicy", "")),
        (Some(etp), true) if !matches!(etp, "Cluster" | "Local") => errs.push(
            FieldError::not_supported("spec.externalTrafficPolicy", etp, &["Cluster", "Local"]),
        ),
        _ => {}
    }
    let hc = spec
        .get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if hc != 0 {
        if ty != "LoadBalancer" || etp != Some("Local") {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        } else {
            for m in names::port_num(hc) {
                errs.push(FieldError::invalid("spec.healthCheckNodePort", hc, &m));
            }
        }
    }
    if let Some(itp) = s(spec, "internalTrafficPolicy") {
        if !matches!(itp, "Cluster" | "Local") {
            errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                itp,
                &["Cluster", "Local"],
            ));
        }
    }
}

/// `loadBalancerClass` (`validateLoadBalancerClassField`), `allocateLoadBalancerNodePorts`
/// and `loadBalancerSourceRanges`: only for LoadBalancer Services.
fn load_balancer_fields(spec: &Value, old: Option<&Value>, ty: &str, errs: &mut Errs) {
    const ONLY_LB: &str = "may only be used when `type` is 'LoadBalancer'";
    let lb = ty == "LoadBalancer";
    let class = s(spec, "loadBalancerClass");
    if let Some(old) = old {
        let old_lb = s(old, "type") == Some("LoadBalancer");
        if old_lb && lb && s(old, "loadBalancerClass") != class {
            let bad: Bad = class.map_or(Bad::Raw("null".into()), Bad::from);
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                bad,
                "may not change once set",
            ));
        }
    }
    match (class, lb) {
        (Some(c), true) => label_name(c, "spec.loadBalancerClass", errs),
        (Some(_), false) => errs.push(FieldError::forbidden("spec.loadBalancerClass", ONLY_LB)),
        (None, _) => {}
    }
    let allocate = present(spec, "allocateLoadBalancerNodePorts");
    if allocate.is_some() && !lb {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            ONLY_LB,
        ));
    }
    if lb && allocate.is_none() {
        errs.push(FieldError::required(
            "spec.allocateLoadBalancerNodePorts",
            "",
        ));
    }
    let ranges: Vec<String> = arr(spec, "loadBalancerSourceRanges")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    if !ranges.is_empty() {
        // Kubernetes names this field with a capital L.
        let path = "spec.LoadBalancerSourceRanges";
        if !lb {
            errs.push(FieldError::forbidden(path, ONLY_LB));
        }
        if !ranges.iter().all(|r| is_cidr(r.trim())) {
            errs.push(FieldError::invalid(
                path,
                format!("[{}]", ranges.join(" ")),
                "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ",
            ));
        }
    }
}

fn is_cidr(v: &str) -> bool {
    let Some((ip, len)) = v.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    len.parse::<u8>().is_ok_and(|l| l <= max)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
