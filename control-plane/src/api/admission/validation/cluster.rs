//! Namespace, Node, Event, Lease, HPA, RuntimeClass and PDB validation.

use super::common::{
    dns_label, immutable, int_or_percent, label_name, label_selector, nonneg, Errs,
};
use super::pod::taint_effect;
use crate::api::admission::field::{child, index, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, present, s, sv};
use serde_json::Value;
use std::collections::HashSet;

pub(crate) fn namespace(obj: &Value, errs: &mut Errs) {
    for (i, f) in arr(obj.get("spec").unwrap_or(&Value::Null), "finalizers")
        .iter()
        .enumerate()
    {
        let f = f.as_str().unwrap_or("");
        let p = index("spec.finalizers", i);
        let msgs = names::qualified_name(f);
        if !msgs.is_empty() {
            for m in msgs {
                errs.push(FieldError::invalid(&p, f, &m));
            }
        } else if !f.contains('/') && f != "kubernetes" {
            errs.push(FieldError::invalid(
                &p,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if let Some(phase) = obj.pointer("/status/phase").and_then(Value::as_str) {
        if !matches!(phase, "" | "Active" | "Terminating") {
            errs.push(FieldError::not_supported(
                "status.phase",
                phase,
                &["Active", "Terminating"],
            ));
        }
    }
}

pub(crate) fn node(obj: &Value, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (i, t) in arr(spec, "taints").iter().enumerate() {
        let p = index("spec.taints", i);
        let key = sv(t, "key");
        label_name(key, &child(&p, "key"), errs);
        let value = sv(t, "value");
        for m in names::label_value(value) {
            errs.push(FieldError::invalid(&child(&p, "value"), value, &m));
        }
        let effect = sv(t, "effect");
        if effect.is_empty() {
            errs.push(FieldError::required(&child(&p, "effect"), ""));
        } else {
            taint_effect(effect, &child(&p, "effect"), errs);
        }
        if !seen.insert((key.to_string(), effect.to_string())) {
            errs.push(FieldError::duplicate(
                &p,
                crate::api::admission::field::Bad::Raw(format!(
                    "{{\"key\":\"{key}\",\"effect\":\"{effect}\"}}"
                )),
            ));
        }
    }
    for k in ["podCIDR"] {
        if let Some(c) = s(spec, k).filter(|c| !c.is_empty()) {
            cidr(c, &child("spec", k), errs);
        }
    }
    for (i, c) in arr(spec, "podCIDRs").iter().enumerate() {
        cidr(c.as_str().unwrap_or(""), &index("spec.podCIDRs", i), errs);
    }
}

fn cidr(c: &str, path: &str, errs: &mut Errs) {
    let ok = c.split_once('/').is_some_and(|(ip, bits)| {
        let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
            return false;
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        bits.parse::<u32>().is_ok_and(|b| b <= max)
    });
    if !ok {
        errs.push(FieldError::invalid(
            path,
            c,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

pub(crate) fn event(obj: &Value, errs: &mut Errs) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let io_ns = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let has_event_time = present(obj, "eventTime").is_some();
    if !has_event_time {
        let mismatch = if io_ns.is_empty() {
            !ns.is_empty() && ns != "default"
        } else {
            ns != io_ns
        };
        if mismatch {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                io_ns,
                "does not match event.namespace",
            ));
        }
    } else {
        if !io_ns.is_empty() && ns != io_ns {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                io_ns,
                "does not match event.namespace",
            ));
        }
        if sv(obj, "reportingComponent").is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        }
        if sv(obj, "reportingInstance").is_empty() {
            errs.push(FieldError::required("reportingInstance", ""));
        }
        if sv(obj, "action").is_empty() {
            errs.push(FieldError::required("action", ""));
        }
        if sv(obj, "reason").is_empty() {
            errs.push(FieldError::required("reason", ""));
        }
    }
    if let Some(t) = s(obj, "type").filter(|t| !t.is_empty()) {
        if has_event_time && !matches!(t, "Normal" | "Warning") {
            errs.push(FieldError::invalid(
                "type",
                t,
                "has invalid value: {Normal, Warning}",
            ));
        }
    }
}

pub(crate) fn lease(obj: &Value, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64) {
        if d <= 0 {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
    }
    nonneg(spec.get("leaseTransitions"), "spec.leaseTransitions", errs);
}

pub(crate) fn hpa(obj: &Value, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let r = spec.get("scaleTargetRef").unwrap_or(&null);
    if sv(r, "kind").is_empty() {
        errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
    }
    let name = sv(r, "name");
    if name.is_empty() {
        errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
    } else if name.contains('/') || name.contains('%') {
        errs.push(FieldError::invalid(
            "spec.scaleTargetRef.name",
            name,
            "may not contain '/'",
        ));
    }
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    if let Some(m) = min {
        if m < 1 {
            errs.push(FieldError::invalid(
                "spec.minReplicas",
                m,
                "must be greater than or equal to 1",
            ));
        }
    }
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if let Some(m) = min {
        if max < m {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    for (i, m) in arr(spec, "metrics").iter().enumerate() {
        let p = index("spec.metrics", i);
        let ty = sv(m, "type");
        let field = match ty {
            "Object" => "object",
            "Pods" => "pods",
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "External" => "external",
            "" => {
                errs.push(FieldError::required(
                    &child(&p, "type"),
                    "must specify a metric source type",
                ));
                continue;
            }
            other => {
                errs.push(FieldError::not_supported(
                    &child(&p, "type"),
                    other,
                    &[
                        "ContainerResource",
                        "External",
                        "Object",
                        "Pods",
                        "Resource",
                    ],
                ));
                continue;
            }
        };
        if present(m, field).is_none() {
            errs.push(FieldError::required(
                &child(&p, field),
                &format!("must populate information for the given metric source (type {ty})"),
            ));
        }
    }
}

pub(crate) fn runtime_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let handler = sv(obj, "handler");
    if handler.is_empty() {
        errs.push(FieldError::required("handler", ""));
    } else {
        dns_label(handler, "handler", errs);
    }
    if let Some(old) = old {
        immutable(obj.get("handler"), old.get("handler"), "handler", errs);
    }
}

pub(crate) fn pdb(obj: &Value, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let min = present(spec, "minAvailable");
    let max = present(spec, "maxUnavailable");
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    int_or_percent(min, "spec.minAvailable", true, errs);
    int_or_percent(max, "spec.maxUnavailable", true, errs);
    label_selector(spec.get("selector"), "spec.selector", errs);
    if let Some(p) = s(spec, "unhealthyPodEvictionPolicy") {
        if !matches!(p, "IfHealthyBudget" | "AlwaysAllow") {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
}
