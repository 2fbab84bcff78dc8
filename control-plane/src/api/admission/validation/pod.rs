//! Pod and PodSpec validation (`ValidatePodSpec`, containers, volumes).

use super::common::{dns_label, dns_subdomain, label_name, labels, Errs};
use super::meta::template_meta;
use super::probes::{handler, probe};
use super::resources::resource_requirements;
use super::volumes::{volume_mounts, volumes};
use crate::api::admission::field::{child, index, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, present, s, sv};
use serde_json::Value;
use std::collections::HashSet;

/// Options that differ between Pods and pod templates.
#[derive(Clone, Copy)]
pub(crate) struct PodOpts {
    pub is_pod: bool,
}

pub(crate) fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    pod_spec(spec, "spec", PodOpts { is_pod: true }, errs);
    if let Some(old) = old {
        pod_update(obj, old, errs);
    }
}

/// Validates `spec.template` (metadata labels/annotations + PodSpec).
pub(crate) fn pod_template(tpl: Option<&Value>, path: &str, errs: &mut Errs) {
    let null = Value::Null;
    let tpl = tpl.unwrap_or(&null);
    template_meta(tpl, path, errs);
    pod_spec(
        tpl.get("spec").unwrap_or(&null),
        &child(path, "spec"),
        PodOpts { is_pod: false },
        errs,
    );
}

/// `ValidatePodSpec` (subset).
pub(crate) fn pod_spec(spec: &Value, path: &str, opts: PodOpts, errs: &mut Errs) {
    let vols = volumes(spec, path, errs);
    let mut names_seen: HashSet<String> = HashSet::new();
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&child(path, "containers"), ""));
    }
    let init_path = child(path, "initContainers");
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = index(&init_path, i);
        container(c, &p, &vols, &mut names_seen, opts, errs);
        init_container_rules(c, &p, errs);
    }
    let c_path = child(path, "containers");
    for (i, c) in containers.iter().enumerate() {
        let p = index(&c_path, i);
        container(c, &p, &vols, &mut names_seen, opts, errs);
        for (k, sub) in [
            ("livenessProbe", true),
            ("startupProbe", true),
            ("readinessProbe", false),
        ] {
            if let Some(pr) = present(c, k) {
                probe(pr, &child(&p, k), sub, errs);
            }
        }
        if present(c, "restartPolicy").is_some() {
            errs.push(FieldError::forbidden(
                &child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    let eph_path = child(path, "ephemeralContainers");
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = index(&eph_path, i);
        container(c, &p, &vols, &mut names_seen, opts, errs);
    }
    if let Some(rp) = s(spec, "restartPolicy") {
        match rp {
            "Always" | "OnFailure" | "Never" => {}
            "" => errs.push(FieldError::required(&child(path, "restartPolicy"), "")),
            _ => errs.push(FieldError::not_supported(
                &child(path, "restartPolicy"),
                rp,
                &["Always", "OnFailure", "Never"],
            )),
        }
    }
    if let Some(dp) = s(spec, "dnsPolicy") {
        match dp {
            "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" => {}
            "None" => {
                if present(spec, "dnsConfig").is_none() {
                    errs.push(FieldError::required(
                        &child(path, "dnsConfig"),
                        "must provide `dnsConfig` when `dnsPolicy` is None",
                    ));
                }
            }
            "" => errs.push(FieldError::required(&child(path, "dnsPolicy"), "")),
            _ => errs.push(FieldError::not_supported(
                &child(path, "dnsPolicy"),
                dp,
                &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
            )),
        }
    }
    labels(spec.get("nodeSelector"), &child(path, "nodeSelector"), errs);
    for k in [
        "serviceAccountName",
        "priorityClassName",
        "runtimeClassName",
    ] {
        if let Some(v) = s(spec, k).filter(|v| !v.is_empty()) {
            dns_subdomain(v, &child(path, k), errs);
        }
    }
    if let Some(v) = s(spec, "nodeName").filter(|v| !v.is_empty()) {
        dns_subdomain(v, &child(path, "nodeName"), errs);
    }
    for k in ["hostname", "subdomain"] {
        if let Some(v) = s(spec, k).filter(|v| !v.is_empty()) {
            dns_label(v, &child(path, k), errs);
        }
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(FieldError::invalid(
                &child(path, "activeDeadlineSeconds"),
                ads,
                &names::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    tolerations(spec, path, errs);
    for (i, ps) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if sv(ps, "name").is_empty() {
            errs.push(FieldError::required(
                &child(&index(&child(path, "imagePullSecrets"), i), "name"),
                "",
            ));
        }
    }
}

fn init_container_rules(c: &Value, p: &str, errs: &mut Errs) {
    let rp = s(c, "restartPolicy");
    match rp {
        None | Some("Always") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &child(p, "restartPolicy"),
            other,
            &["Always"],
        )),
    }
    let sidecar = rp == Some("Always");
    for k in [
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
    ] {
        if let Some(v) = present(c, k) {
            if sidecar {
                if k != "lifecycle" {
                    probe(v, &child(p, k), k != "readinessProbe", errs);
                }
            } else {
                errs.push(FieldError::forbidden(
                    &child(p, k),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    }
}

fn container(
    c: &Value,
    p: &str,
    vols: &HashSet<String>,
    seen: &mut HashSet<String>,
    opts: PodOpts,
    errs: &mut Errs,
) {
    let name = sv(c, "name");
    let np = child(p, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        dns_label(name, &np, errs);
        if !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&np, name));
        }
    }
    let image = sv(c, "image");
    if image.is_empty() {
        errs.push(FieldError::required(&child(p, "image"), ""));
    } else if opts.is_pod && image.trim() != image {
        errs.push(FieldError::invalid(
            &child(p, "image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    if let Some(pp) = s(c, "imagePullPolicy") {
        if !matches!(pp, "Always" | "IfNotPresent" | "Never") {
            errs.push(FieldError::not_supported(
                &child(p, "imagePullPolicy"),
                pp,
                &["Always", "IfNotPresent", "Never"],
            ));
        }
    }
    if let Some(tmp) = s(c, "terminationMessagePolicy") {
        if !matches!(tmp, "File" | "FallbackToLogsOnError") {
            errs.push(FieldError::not_supported(
                &child(p, "terminationMessagePolicy"),
                tmp,
                &["File", "FallbackToLogsOnError"],
            ));
        }
    }
    container_ports(c, p, errs);
    env(c, p, errs);
    volume_mounts(c, p, vols, errs);
    if let Some(r) = present(c, "resources") {
        resource_requirements(r, &child(p, "resources"), errs);
    }
    if let Some(l) = present(c, "lifecycle") {
        for k in ["postStart", "preStop"] {
            if let Some(h) = present(l, k) {
                handler(h, &child(&child(p, "lifecycle"), k), errs);
            }
        }
    }
}

fn container_ports(c: &Value, p: &str, errs: &mut Errs) {
    let mut names_seen: HashSet<String> = HashSet::new();
    for (i, port) in arr(c, "ports").iter().enumerate() {
        let ip = index(&child(p, "ports"), i);
        if let Some(n) = s(port, "name").filter(|n| !n.is_empty()) {
            let msgs = names::port_name(n);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid(&child(&ip, "name"), n, &m));
                }
            } else if !names_seen.insert(n.to_string()) {
                errs.push(FieldError::duplicate(&child(&ip, "name"), n));
            }
        }
        let cp = port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if cp == 0 {
            errs.push(FieldError::required(&child(&ip, "containerPort"), ""));
        } else {
            for m in names::port_num(cp) {
                errs.push(FieldError::invalid(&child(&ip, "containerPort"), cp, &m));
            }
        }
        let hp = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
        if hp != 0 {
            for m in names::port_num(hp) {
                errs.push(FieldError::invalid(&child(&ip, "hostPort"), hp, &m));
            }
        }
        protocol(port, &ip, errs);
    }
}

/// Port protocol: present ones must be TCP/UDP/SCTP (`""` is Required).
pub(crate) fn protocol(port: &Value, ip: &str, errs: &mut Errs) {
    if let Some(proto) = s(port, "protocol") {
        match proto {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errs.push(FieldError::required(&child(ip, "protocol"), "")),
            _ => errs.push(FieldError::not_supported(
                &child(ip, "protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
}

fn env(c: &Value, p: &str, errs: &mut Errs) {
    for (i, e) in arr(c, "env").iter().enumerate() {
        let ip = index(&child(p, "env"), i);
        let name = sv(e, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&ip, "name"), ""));
        } else if name.contains('=') || !name.bytes().all(|b| (32..=126).contains(&b)) {
            errs.push(FieldError::invalid(
                &child(&ip, "name"),
                name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        let Some(vf) = present(e, "valueFrom") else {
            continue;
        };
        let vp = child(&ip, "valueFrom");
        let n = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ]
        .iter()
        .filter(|k| present(vf, k).is_some())
        .count();
        if n == 0 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
        if !sv(e, "value").is_empty() {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        for k in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = present(vf, k) {
                if sv(r, "key").is_empty() {
                    errs.push(FieldError::required(&child(&child(&vp, k), "key"), ""));
                }
            }
        }
        if let Some(fr) = present(vf, "fieldRef") {
            if sv(fr, "fieldPath").is_empty() {
                errs.push(FieldError::required(
                    &child(&child(&vp, "fieldRef"), "fieldPath"),
                    "",
                ));
            }
        }
    }
}

fn tolerations(spec: &Value, path: &str, errs: &mut Errs) {
    let tp = child(path, "tolerations");
    for (i, t) in arr(spec, "tolerations").iter().enumerate() {
        let ip = index(&tp, i);
        let key = sv(t, "key");
        let op = sv(t, "operator");
        let effect = sv(t, "effect");
        if !key.is_empty() {
            label_name(key, &child(&ip, "key"), errs);
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &child(&ip, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if present(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &child(&ip, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let v = sv(t, "value");
                for m in names::label_value(v) {
                    errs.push(FieldError::invalid(&child(&ip, "operator"), v, &m));
                }
            }
            "Exists" => {
                if !sv(t, "value").is_empty() {
                    errs.push(FieldError::invalid(
                        &child(&ip, "operator"),
                        t,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            _ => errs.push(FieldError::not_supported(
                &child(&ip, "operator"),
                op,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            taint_effect(effect, &child(&ip, "effect"), errs);
        }
    }
}

/// `validateTaintEffect`
pub(crate) fn taint_effect(effect: &str, path: &str, errs: &mut Errs) {
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        errs.push(FieldError::not_supported(
            path,
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}

/// Pod updates may only change a few spec fields (images, activeDeadlineSeconds,
/// tolerations additions, terminationGracePeriodSeconds, schedulingGates removal).
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    let (Some(ns), Some(os)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    let strip = |spec: &Value| -> Value {
        let mut s = spec.clone();
        if let Some(m) = s.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",
                "ephemeralContainers",
            ] {
                m.remove(k);
            }
            for list in ["containers", "initContainers"] {
                if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
        }
        s
    };
    if strip(ns) != strip(os) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}
