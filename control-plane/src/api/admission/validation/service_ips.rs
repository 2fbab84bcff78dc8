//! The address side of Service validation: `clusterIP`/`clusterIPs`, `ipFamilies`,
//! `ipFamilyPolicy` (`validateServiceClusterIPsRelatedFields`), the primary clusterIP on
//! update (`validateUpgradeDowngradeClusterIPs`) and `status.loadBalancer`
//! (`ValidateLoadBalancerStatus`). Whether this cluster serves a family is the allocator's
//! question (`admission/services.rs`), not validation's.

use std::net::IpAddr;

use super::common::{dns_subdomain, ip_address, Errs};
use crate::api::admission::field::{child, index, Bad, FieldError};
use crate::api::admission::util::{arr, s, sv};
use serde_json::Value;

const IPS: &str = "spec.clusterIPs";

pub(super) fn cluster_ips(spec: &Value) -> Vec<String> {
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

pub(super) fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec).first().is_some_and(|ip| ip == "None")
}

fn strings(spec: &Value, key: &str) -> Vec<String> {
    arr(spec, key)
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

fn is_v6(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
}

/// `validateServiceClusterIPsRelatedFields` (not called for ExternalName Services).
pub(super) fn cluster_ip_fields(spec: &Value, errs: &mut Errs) {
    let ip = sv(spec, "clusterIP");
    let ips = strings(spec, "clusterIPs");
    let families = strings(spec, "ipFamilies");
    if !ip.is_empty() {
        match ips.first() {
            None => errs.push(FieldError::required(IPS, "")),
            Some(first) if first != ip => errs.push(FieldError::invalid(
                IPS,
                Bad::string_list(&ips),
                "first value must match `clusterIP`",
            )),
            Some(_) => {}
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            IPS,
            Bad::string_list(&ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in families.iter().enumerate() {
        let path = index("spec.ipFamilies", i);
        if !matches!(f.as_str(), "IPv4" | "IPv6") {
            errs.push(FieldError::not_supported(
                &path,
                f.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
        if seen.contains(&f.as_str()) {
            errs.push(FieldError::duplicate(&path, f.as_str()));
        }
        seen.push(f);
    }
    let policy = s(spec, "ipFamilyPolicy");
    if let Some(pol) = policy {
        if !matches!(pol, "SingleStack" | "PreferDualStack" | "RequireDualStack") {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                pol,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    if policy == Some("SingleStack") {
        for (n, what) in [(families.len(), "IP families"), (ips.len(), "cluster IPs")] {
            if n > 1 {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    "SingleStack",
                    &format!("must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} are specified"),
                ));
            }
        }
    }
    let before = errs.len();
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                errs.push(FieldError::invalid(
                    IPS,
                    Bad::string_list(&ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        ip_address(ip, &index(IPS, i), errs);
    }
    let bad_ips = errs.len() > before;
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            IPS,
            Bad::string_list(&ips),
            "may only hold up to 2 values",
        ));
    }
    if bad_ips {
        return;
    }
    if ips.len() == 2 && is_v6(&ips[0]) == is_v6(&ips[1]) {
        errs.push(FieldError::invalid(
            IPS,
            Bad::string_list(&ips),
            "may specify no more than one IP for each IP family",
        ));
    }
    if ips.first().is_some_and(|ip| ip != "None") {
        for (i, (ip, fam)) in ips.iter().zip(&families).enumerate() {
            let want_v6 = match fam.as_str() {
                "IPv4" => false,
                "IPv6" => true,
                _ => continue,
            };
            if is_v6(ip) != want_v6 {
                errs.push(FieldError::invalid(
                    &index(IPS, i),
                    ip.as_str(),
                    &format!("expected an {fam} value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// `validateUpgradeDowngradeClusterIPs`: the allocated clusterIPs may not change.
pub(super) fn cluster_ip_update(spec: &Value, old: &Value, errs: &mut Errs) {
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
                    &index(IPS, i),
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

/// `ValidateLoadBalancerStatus` on `status.loadBalancer`.
pub(super) fn load_balancer_status(obj: &Value, errs: &mut Errs) {
    let Some(lb) = obj.pointer("/status/loadBalancer") else {
        return;
    };
    for (i, ing) in arr(lb, "ingress").iter().enumerate() {
        let path = index("status.loadBalancer.ingress", i);
        let ip = sv(ing, "ip");
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                &child(&path, "ip"),
                ip,
                "must be a valid IP address",
            ));
        }
        let host = sv(ing, "hostname");
        if !host.is_empty() {
            dns_subdomain(host, &child(&path, "hostname"), errs);
            if host.parse::<IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    &child(&path, "hostname"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
        let mode_path = child(&path, "ipMode");
        match (s(ing, "ipMode"), ip.is_empty()) {
            (None, false) => errs.push(FieldError::required(
                &mode_path,
                "must be specified when `ip` is set",
            )),
            (Some(_), true) => errs.push(FieldError::forbidden(
                &mode_path,
                "may not be specified when `ip` is not set",
            )),
            (Some(m), false) if !matches!(m, "VIP" | "Proxy") => {
                errs.push(FieldError::not_supported(&mode_path, m, &["Proxy", "VIP"]))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(f: impl FnOnce(&mut Errs)) -> Vec<String> {
        let mut errs = Vec::new();
        f(&mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn cluster_ip_and_cluster_ips_agree() {
        let spec =
            json!({"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"], "ipFamilies": ["IPv4"]});
        assert!(msgs(|e| cluster_ip_fields(&spec, e)).is_empty());
        let spec = json!({"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.6"]});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.clusterIPs: Invalid value: []string{"10.43.0.6"}: first value must match `clusterIP`"#
            ]
        );
        let spec = json!({"clusterIPs": ["10.43.0.6"]});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.clusterIPs: Invalid value: []string{"10.43.0.6"}: must be empty when `clusterIP` is not specified"#
            ]
        );
    }

    #[test]
    fn cluster_ips_shape() {
        let spec = json!({"clusterIP": "None", "clusterIPs": ["None", "10.43.0.1"]});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.clusterIPs: Invalid value: []string{"None", "10.43.0.1"}: 'None' must be the first and only value"#
            ]
        );
        let spec = json!({"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1", "10.43.0.2"], "ipFamilyPolicy": "RequireDualStack"});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.clusterIPs: Invalid value: []string{"10.43.0.1", "10.43.0.2"}: may specify no more than one IP for each IP family"#
            ]
        );
        let spec =
            json!({"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1", "fd00::1", "fd00::2"]});
        assert!(msgs(|e| cluster_ip_fields(&spec, e))
            .contains(&r#"spec.clusterIPs: Invalid value: []string{"10.43.0.1", "fd00::1", "fd00::2"}: may only hold up to 2 values"#.to_string()));
        let spec = json!({"clusterIP": "10.43.0.300", "clusterIPs": ["10.43.0.300"]});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.clusterIPs[0]: Invalid value: "10.43.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
            ]
        );
    }

    #[test]
    fn families_and_policy() {
        let spec = json!({"ipFamilies": ["IPv4", "IPv4", "IPv5"], "ipFamilyPolicy": "Sometimes"});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.ipFamilies[1]: Duplicate value: "IPv4""#,
                r#"spec.ipFamilies[2]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6""#,
                r#"spec.ipFamilyPolicy: Unsupported value: "Sometimes": supported values: "PreferDualStack", "RequireDualStack", "SingleStack""#,
            ]
        );
        let spec = json!({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "SingleStack"});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.ipFamilyPolicy: Invalid value: "SingleStack": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"#
            ]
        );
        let spec =
            json!({"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"], "ipFamilies": ["IPv4"]});
        assert_eq!(
            msgs(|e| cluster_ip_fields(&spec, e)),
            [
                r#"spec.clusterIPs[0]: Invalid value: "fd00::5": expected an IPv4 value as indicated by `ipFamilies[0]`"#
            ]
        );
    }

    #[test]
    fn primary_cluster_ip_may_not_change() {
        let old = json!({"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"]});
        let same = old.clone();
        assert!(msgs(|e| cluster_ip_update(&same, &old, e)).is_empty());
        let new = json!({"clusterIP": "10.43.0.6", "clusterIPs": ["10.43.0.6"]});
        assert_eq!(
            msgs(|e| cluster_ip_update(&new, &old, e)),
            [
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.43.0.6"}: may not change once set"#
            ]
        );
        let to_external = json!({"type": "ExternalName", "externalName": "a.example"});
        assert!(msgs(|e| cluster_ip_update(&to_external, &old, e)).is_empty());
    }

    #[test]
    fn load_balancer_ingress() {
        let ok = json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}});
        assert!(msgs(|e| load_balancer_status(&ok, e)).is_empty());
        let bad = json!({"status": {"loadBalancer": {"ingress": [
            {"ip": "nope", "ipMode": "Tunnel"},
            {"hostname": "10.0.0.1", "ipMode": "VIP"},
            {"ip": "10.0.0.2"},
        ]}}});
        assert_eq!(
            msgs(|e| load_balancer_status(&bad, e)),
            [
                r#"status.loadBalancer.ingress[0].ip: Invalid value: "nope": must be a valid IP address"#,
                r#"status.loadBalancer.ingress[0].ipMode: Unsupported value: "Tunnel": supported values: "Proxy", "VIP""#,
                r#"status.loadBalancer.ingress[1].hostname: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#,
                "status.loadBalancer.ingress[1].ipMode: Forbidden: may not be specified when `ip` is not set",
                "status.loadBalancer.ingress[2].ipMode: Required value: must be specified when `ip` is set",
            ]
        );
    }
}
