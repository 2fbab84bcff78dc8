//! Ingress and IngressClass validation, as Kubernetes' `pkg/apis/networking/validation`
//! (`ValidateIngressCreate`/`Update`, `ValidateIngressLoadBalancerStatus`,
//! `ValidateIngressClass`/`Update`), with its field paths and wording.

use serde_json::Value;

use super::common::{dns_subdomain, immutable, ip_address, Errs};
use crate::api::admission::field::{child, index, Bad, FieldError};
use crate::api::admission::names::{self, NameKind};
use crate::api::admission::util::{arr, present, s, sv};

/// The pre-IngressClass annotation; it must agree with `spec.ingressClassName` on create.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
const PARAMETER_SCOPES: &[&str] = &["Cluster", "Namespace"];
const MAX_CONTROLLER_LEN: usize = 250;
const HTTP_PATH_FMT: &str = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+";
const NOT_AN_IP: &str = "must be a DNS name, not an IP address";

/// What an update may keep from the stored object that a create may not have.
#[derive(Default)]
struct Options {
    allow_invalid_secret_name: bool,
    allow_invalid_wildcard_host_rule: bool,
}

pub(crate) fn ingress(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let null = Value::Null;
    let opts = old.map_or_else(Options::default, |old| {
        let old_spec = old.get("spec").unwrap_or(&null);
        Options {
            allow_invalid_secret_name: arr(old_spec, "tls")
                .iter()
                .any(|t| !secret_name_errors(sv(t, "secretName")).is_empty()),
            allow_invalid_wildcard_host_rule: arr(old_spec, "rules").iter().any(|r| {
                let mut e = Vec::new();
                rule_value(r, "", &mut e);
                sv(r, "host").contains('*') && !e.is_empty()
            }),
        }
    });
    let spec = obj.get("spec").unwrap_or(&null);
    ingress_spec(spec, &opts, errs);
    if old.is_none() {
        let annotation = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CLASS_ANNOTATION))
            .and_then(Value::as_str);
        if let (Some(a), Some(class)) = (annotation, s(spec, "ingressClassName")) {
            if a != class {
                errs.push(FieldError::invalid(
                    &child("annotations", CLASS_ANNOTATION),
                    a,
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
    }
    load_balancer_status(obj, old, errs);
}

fn ingress_spec(spec: &Value, opts: &Options, errs: &mut Errs) {
    let rules = arr(spec, "rules");
    let default_backend = present(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        let bad = if spec.get("rules").is_some_and(Value::is_array) {
            "[]networking.IngressRule{}"
        } else {
            "[]networking.IngressRule(nil)"
        };
        errs.push(FieldError::invalid(
            "spec",
            Bad::Raw(bad.into()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = index("spec.rules", i);
        let host = sv(rule, "host");
        let mut wildcard = false;
        if !host.is_empty() {
            let hp = child(&p, "host");
            if is_ip_sloppy(host) {
                errs.push(FieldError::invalid(&hp, host, NOT_AN_IP));
            }
            if host.contains('*') {
                wildcard = true;
                for m in names::wildcard_dns1123_subdomain(host) {
                    errs.push(FieldError::invalid(&hp, host, &m));
                }
            } else {
                dns_subdomain(host, &hp, errs);
            }
        }
        if !wildcard || !opts.allow_invalid_wildcard_host_rule {
            rule_value(rule, &p, errs);
        }
    }
    for (t, tls) in arr(spec, "tls").iter().enumerate() {
        let p = index("spec.tls", t);
        for (h, host) in arr(tls, "hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            let hp = index(&child(&p, "hosts"), h);
            if host.contains('*') {
                for m in names::wildcard_dns1123_subdomain(host) {
                    errs.push(FieldError::invalid(&hp, host, &m));
                }
            } else {
                dns_subdomain(host, &hp, errs);
            }
        }
        if !opts.allow_invalid_secret_name {
            let secret = sv(tls, "secretName");
            for m in secret_name_errors(secret) {
                errs.push(FieldError::invalid(&child(&p, "secretName"), secret, &m));
            }
        }
    }
    if let Some(class) = s(spec, "ingressClassName") {
        dns_subdomain(class, "spec.ingressClassName", errs);
    }
}

fn secret_name_errors(name: &str) -> Vec<String> {
    if name.is_empty() {
        Vec::new()
    } else {
        names::dns1123_subdomain(name)
    }
}

/// `netutils.ParseIPSloppy` != nil: an IP address, IPv4 parts may have leading zeros.
fn is_ip_sloppy(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok()
        })
}

fn rule_value(rule: &Value, p: &str, errs: &mut Errs) {
    let Some(http) = present(rule, "http") else {
        return;
    };
    let hp = child(p, "http");
    let paths = arr(http, "paths");
    if paths.is_empty() {
        errs.push(FieldError::required(&child(&hp, "paths"), ""));
    }
    for (i, path) in paths.iter().enumerate() {
        http_path(path, &index(&child(&hp, "paths"), i), errs);
    }
}

fn http_path(path: &Value, p: &str, errs: &mut Errs) {
    let Some(path_type) = s(path, "pathType") else {
        errs.push(FieldError::required(
            &child(p, "pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = sv(path, "path");
    let pp = child(p, "path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(&pp, value, "must be an absolute path"));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            &pp,
                            value,
                            &format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            &pp,
                            value,
                            &format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(&pp, value, "must be an absolute path"));
            }
        }
        other => errs.push(FieldError::not_supported(
            &child(p, "pathType"),
            other,
            PATH_TYPES,
        )),
    }
    let null = Value::Null;
    backend(
        path.get("backend").unwrap_or(&null),
        &child(p, "backend"),
        errs,
    );
}

/// `validateIngressBackend`: exactly one of `service` and `resource`; a service by name with
/// exactly one of `port.number` and `port.name`.
fn backend(b: &Value, p: &str, errs: &mut Errs) {
    match (present(b, "service"), present(b, "resource")) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            p,
            "",
            "cannot set both resource and service backends",
        )),
        (None, Some(r)) => typed_local_object_reference(r, &child(p, "resource"), errs),
        (Some(svc), None) => {
            let name = sv(svc, "name");
            let np = child(p, "service.name");
            if name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else {
                for m in names::validate_name(NameKind::Dns1035Label, name, false) {
                    errs.push(FieldError::invalid(&np, name, &m));
                }
            }
            let null = Value::Null;
            let port = svc.get("port").unwrap_or(&null);
            let port_name = sv(port, "name");
            let number = port.get("number").and_then(Value::as_i64).unwrap_or(0);
            match (!port_name.is_empty(), number != 0) {
                (true, true) => errs.push(FieldError::invalid(
                    p,
                    "",
                    "cannot set both port name & port number",
                )),
                (true, false) => {
                    for m in names::port_name(port_name) {
                        errs.push(FieldError::invalid(
                            &child(p, "service.port.name"),
                            port_name,
                            &m,
                        ));
                    }
                }
                (false, true) => {
                    for m in names::port_num(number) {
                        errs.push(FieldError::invalid(
                            &child(p, "service.port.number"),
                            number,
                            &m,
                        ));
                    }
                }
                (false, false) => {
                    errs.push(FieldError::required(p, "port name or number is required"))
                }
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            p,
            "",
            "resource or service backend is required",
        )),
    }
}

/// `validateIngressTypedLocalObjectReference` (a backend's `resource`).
fn typed_local_object_reference(r: &Value, p: &str, errs: &mut Errs) {
    if let Some(group) = s(r, "apiGroup") {
        dns_subdomain(group, &child(p, "apiGroup"), errs);
    }
    path_segment(sv(r, "kind"), &child(p, "kind"), errs);
    path_segment(sv(r, "name"), &child(p, "name"), errs);
}

/// Required, then `IsPathSegmentName`.
fn path_segment(v: &str, p: &str, errs: &mut Errs) {
    if v.is_empty() {
        errs.push(FieldError::required(p, ""));
        return;
    }
    for m in names::validate_name(NameKind::PathSegment, v, false) {
        errs.push(FieldError::invalid(p, v, &m));
    }
}

/// `ValidateIngressLoadBalancerStatus`: each point an IP address or a DNS name.
fn load_balancer_status(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let points = |o: &Value| -> Vec<Value> {
        o.pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    // Addresses already stored stay valid (IsValidIPForLegacyField).
    let existing: Vec<String> = old
        .map(points)
        .unwrap_or_default()
        .iter()
        .map(|i| sv(i, "ip").to_string())
        .filter(|ip| !ip.is_empty())
        .collect();
    for (i, point) in points(obj).iter().enumerate() {
        let p = index("status.loadBalancer.ingress", i);
        let ip = sv(point, "ip");
        if !ip.is_empty() && !existing.iter().any(|e| e == ip) {
            ip_address(ip, &child(&p, "ip"), errs);
        }
        let hostname = sv(point, "hostname");
        if !hostname.is_empty() {
            let hp = child(&p, "hostname");
            dns_subdomain(hostname, &hp, errs);
            if is_ip_sloppy(hostname) {
                errs.push(FieldError::invalid(&hp, hostname, NOT_AN_IP));
            }
        }
    }
}

pub(crate) fn ingress_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let controller = sv(spec, "controller");
    if controller.is_empty() {
        errs.push(FieldError::required("spec.controller", ""));
    } else {
        if controller.len() > MAX_CONTROLLER_LEN {
            errs.push(FieldError::too_long("spec.controller", MAX_CONTROLLER_LEN));
        }
        domain_prefixed_path(controller, "spec.controller", errs);
    }
    if let Some(params) = present(spec, "parameters") {
        parameters(params, "spec.parameters", errs);
    }
    if let Some(old) = old {
        immutable(
            spec.get("controller"),
            old.pointer("/spec/controller"),
            "spec.controller",
            errs,
        );
    }
}

/// `IsDomainPrefixedPath`: `example.com/some-path`.
fn domain_prefixed_path(v: &str, p: &str, errs: &mut Errs) {
    let Some((host, path)) = v
        .split_once('/')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty())
    else {
        errs.push(FieldError::invalid(
            p,
            v,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    dns_subdomain(host, p, errs);
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !path_ok {
        errs.push(FieldError::invalid(
            p,
            path,
            &names::regex_error("Invalid path", HTTP_PATH_FMT, &[]),
        ));
    }
}

/// `validateIngressClassParametersReference`.
fn parameters(params: &Value, p: &str, errs: &mut Errs) {
    if let Some(group) = s(params, "apiGroup") {
        dns_subdomain(group, &child(p, "apiGroup"), errs);
    }
    path_segment(sv(params, "kind"), &child(p, "kind"), errs);
    path_segment(sv(params, "name"), &child(p, "name"), errs);
    let Some(scope) = s(params, "scope") else {
        errs.push(FieldError::required(&child(p, "scope"), ""));
        return;
    };
    let namespace = s(params, "namespace");
    let np = child(p, "namespace");
    match scope {
        "Namespace" => match namespace {
            None => errs.push(FieldError::required(
                &np,
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => {
                for m in names::dns1123_label(ns) {
                    errs.push(FieldError::invalid(&np, ns, &m));
                }
            }
        },
        "Cluster" => {
            if namespace.is_some() {
                errs.push(FieldError::forbidden(
                    &np,
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &child(p, "scope"),
            other,
            PARAMETER_SCOPES,
        )),
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
