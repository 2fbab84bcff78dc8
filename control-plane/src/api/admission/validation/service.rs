//! Service, Endpoints and EndpointSlice validation.

use super::common::{dns_label, dns_subdomain, ip_address, labels, port_num_or_name, Errs};
use super::pod::protocol;
use crate::api::admission::field::{child, index, Bad, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, present, s, sv};
use serde_json::Value;
use std::collections::HashSet;

fn cluster_ips(spec: &Value) -> Vec<String> {
    let ips: Vec<String> = arr(spec, "clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if !ips.is_empty() {
        return ips;
    }
    match s(spec, "clusterIP") {
        Some(ip) if !ip.is_empty() => vec![ip.to_string()],
        _ => Vec::new(),
    }
}

fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec).first().is_some_and(|ip| ip == "None")
}

pub(crate) fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let ty = s(spec, "type").unwrap_or("ClusterIP");
    let headless = is_headless(spec);
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let ips = cluster_ips(spec);
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
        "ExternalName" => {
            if !ips.is_empty() {
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
        _ => {}
    }
    if ty != "ExternalName" {
        for (i, ip) in ips.iter().enumerate() {
            if !(i == 0 && ip == "None") {
                ip_address(ip, &index("spec.clusterIPs", i), errs);
            }
        }
        if let (Some(a), Some(b)) = (s(spec, "clusterIP"), ips.first()) {
            if !a.is_empty() && a != b {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    Bad::string_list(&ips),
                    "first value must match `clusterIP`",
                ));
            }
        }
    }
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
    // duplicate (protocol, port) and (protocol, nodePort) pairs
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
    labels(spec.get("selector"), "spec.selector", errs);
    match s(spec, "sessionAffinity") {
        None | Some("None" | "ClientIP") => {}
        Some("") => errs.push(FieldError::required("spec.sessionAffinity", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
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
    let externally_accessible = ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && !arr(spec, "externalIPs").is_empty());
    if let Some(etp) = s(spec, "externalTrafficPolicy").filter(|v| !v.is_empty()) {
        if !externally_accessible {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        } else if !matches!(etp, "Cluster" | "Local") {
            errs.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                etp,
                &["Cluster", "Local"],
            ));
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
    if let Some(pol) = s(spec, "ipFamilyPolicy") {
        if !matches!(pol, "SingleStack" | "PreferDualStack" | "RequireDualStack") {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                pol,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    for (i, f) in arr(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if !matches!(f, "IPv4" | "IPv6") {
            errs.push(FieldError::not_supported(
                &index("spec.ipFamilies", i),
                f,
                &["IPv4", "IPv6"],
            ));
        }
    }
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        ip_address(
            ip.as_str().unwrap_or(""),
            &index("spec.externalIPs", i),
            errs,
        );
    }
    if let Some(old) = old {
        cluster_ip_update(spec, old.get("spec").unwrap_or(&null), errs);
    }
}

/// `validateUpgradeDowngradeClusterIPs` (primary clusterIP may not change).
fn cluster_ip_update(spec: &Value, old: &Value, errs: &mut Errs) {
    let ty = s(spec, "type").unwrap_or("ClusterIP");
    let old_ty = s(old, "type").unwrap_or("ClusterIP");
    if ty == "ExternalName" || old_ty == "ExternalName" {
        return;
    }
    if is_headless(spec) && is_headless(old) {
        return;
    }
    let new_ips = cluster_ips(spec);
    let old_ips = cluster_ips(old);
    let bad = || Bad::string_list(&new_ips);
    if new_ips.len() == old_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if new_ips.get(i) != Some(ip) {
                errs.push(FieldError::invalid(
                    &index("spec.clusterIPs", i),
                    bad(),
                    "may not change once set",
                ));
            }
        }
    } else if new_ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            bad(),
            "primary clusterIP can not be unset",
        ));
    } else if !old_ips.is_empty() && new_ips.first() != old_ips.first() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            bad(),
            "may not change once set",
        ));
    }
}

pub(crate) fn endpoints(obj: &Value, errs: &mut Errs) {
    for (si, subset) in arr(obj, "subsets").iter().enumerate() {
        let sp = index("subsets", si);
        for list in ["addresses", "notReadyAddresses"] {
            for (ai, a) in arr(subset, list).iter().enumerate() {
                let ap = index(&child(&sp, list), ai);
                ip_address(sv(a, "ip"), &child(&ap, "ip"), errs);
                if let Some(h) = s(a, "hostname").filter(|h| !h.is_empty()) {
                    dns_label(h, &child(&ap, "hostname"), errs);
                }
            }
        }
        let ports = arr(subset, "ports");
        for (pi, p) in ports.iter().enumerate() {
            let pp = index(&child(&sp, "ports"), pi);
            let name = sv(p, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(&child(&pp, "name"), ""));
            } else if !name.is_empty() {
                dns_label(name, &child(&pp, "name"), errs);
            }
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            for m in names::port_num(port) {
                errs.push(FieldError::invalid(&child(&pp, "port"), port, &m));
            }
            protocol(p, &pp, errs);
        }
    }
}

pub(crate) fn endpoint_slice(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let at = sv(obj, "addressType");
    if at.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !matches!(at, "IPv4" | "IPv6" | "FQDN") {
        errs.push(FieldError::not_supported(
            "addressType",
            at,
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    for (i, ep) in arr(obj, "endpoints").iter().enumerate() {
        let ep_path = index("endpoints", i);
        let addrs = arr(ep, "addresses");
        if addrs.is_empty() {
            errs.push(FieldError::required(
                &child(&ep_path, "addresses"),
                "must contain at least 1 address",
            ));
        } else if addrs.len() > 100 {
            errs.push(FieldError::too_many(
                &child(&ep_path, "addresses"),
                addrs.len(),
                100,
            ));
        }
        for (ai, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ap = index(&child(&ep_path, "addresses"), ai);
            match at {
                "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                    errs.push(FieldError::invalid(&ap, a, "must be a valid IPv4 address"))
                }
                "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                    errs.push(FieldError::invalid(&ap, a, "must be a valid IPv6 address"))
                }
                "FQDN" => dns_subdomain(a, &ap, errs),
                _ => {}
            }
        }
        if let Some(h) = s(ep, "hostname").filter(|h| !h.is_empty()) {
            dns_label(h, &child(&ep_path, "hostname"), errs);
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    for (i, p) in arr(obj, "ports").iter().enumerate() {
        let pp = index("ports", i);
        let name = sv(p, "name");
        if !name.is_empty() {
            dns_label(name, &child(&pp, "name"), errs);
        }
        if !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&child(&pp, "name"), name));
        }
        if let Some(port) = p.get("port").and_then(Value::as_i64) {
            for m in names::port_num(port) {
                errs.push(FieldError::invalid(&child(&pp, "port"), port, &m));
            }
        }
        protocol(p, &pp, errs);
    }
    if let Some(old) = old {
        super::common::immutable(
            obj.get("addressType"),
            old.get("addressType"),
            "addressType",
            errs,
        );
    }
}
