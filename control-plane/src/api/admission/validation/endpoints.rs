//! Endpoints and EndpointSlice validation.

use super::common::{dns_label, dns_subdomain, ip_address, Errs};
use super::pod::protocol;
use crate::api::admission::field::{child, index, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, s, sv};
use serde_json::Value;
use std::collections::HashSet;

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
