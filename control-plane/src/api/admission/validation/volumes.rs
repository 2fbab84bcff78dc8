//! Pod volumes and container volume mounts.

use super::common::{dns_label, Errs};
use crate::api::admission::field::{child, index, FieldError};
use crate::api::admission::util::{arr, present, s, sv};
use serde_json::Value;
use std::collections::HashSet;

use crate::api::admission::defaults::VOLUME_SOURCES;

pub(crate) fn volume_mounts(c: &Value, p: &str, vols: &HashSet<String>, errs: &mut Errs) {
    let mut points: HashSet<String> = HashSet::new();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let ip = index(&child(p, "volumeMounts"), i);
        let name = sv(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&ip, "name"), ""));
        }
        if !vols.contains(name) {
            errs.push(FieldError::not_found(&child(&ip, "name"), name));
        }
        let mp = sv(m, "mountPath");
        if mp.is_empty() {
            errs.push(FieldError::required(&child(&ip, "mountPath"), ""));
        }
        if !points.insert(mp.to_string()) {
            errs.push(FieldError::invalid(
                &child(&ip, "mountPath"),
                mp,
                "must be unique",
            ));
        }
        let sub = sv(m, "subPath");
        if !sub.is_empty() {
            if sub.starts_with('/') {
                errs.push(FieldError::invalid(
                    &child(&ip, "subPath"),
                    sub,
                    "must be a relative path",
                ));
            }
            if sub.split('/').any(|seg| seg == "..") {
                errs.push(FieldError::invalid(
                    &child(&ip, "subPath"),
                    sub,
                    "must not contain '..'",
                ));
            }
        }
    }
}

/// Validates volumes and returns their names.
pub(crate) fn volumes(spec: &Value, path: &str, errs: &mut Errs) -> HashSet<String> {
    let mut all: HashSet<String> = HashSet::new();
    let vp = child(path, "volumes");
    for (i, v) in arr(spec, "volumes").iter().enumerate() {
        let ip = index(&vp, i);
        let np = child(&ip, "name");
        let name = sv(v, "name");
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|k| present(v, k).is_some())
            .collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&ip, "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for k in rest {
                    errs.push(FieldError::forbidden(
                        &child(&ip, k),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
        for k in &sources {
            volume_source(v, k, &ip, errs);
        }
        if name.is_empty() {
            errs.push(FieldError::required(&np, ""));
        } else {
            dns_label(name, &np, errs);
        }
        if !all.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&np, name));
        }
    }
    all
}

fn default_mode(src: &Value, p: &str, errs: &mut Errs) {
    if let Some(m) = src.get("defaultMode").and_then(Value::as_i64) {
        if !(0..=0o777).contains(&m) {
            errs.push(FieldError::invalid(
                &child(p, "defaultMode"),
                m,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    }
}

fn volume_source(v: &Value, k: &str, ip: &str, errs: &mut Errs) {
    let Some(src) = present(v, k) else {
        return;
    };
    let p = child(ip, k);
    let required = match k {
        "configMap" => Some("name"),
        "secret" => Some("secretName"),
        "persistentVolumeClaim" => Some("claimName"),
        "hostPath" | "nfs" => Some("path"),
        "csi" => Some("driver"),
        _ => None,
    };
    if let Some(f) = required {
        if sv(src, f).is_empty() {
            errs.push(FieldError::required(&child(&p, f), ""));
        }
    }
    if matches!(k, "configMap" | "secret" | "downwardAPI" | "projected") {
        default_mode(src, &p, errs);
    }
    if k == "hostPath" {
        if let Some(t) = s(src, "type") {
            const TYPES: &[&str] = &[
                "",
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ];
            if !TYPES.contains(&t) {
                errs.push(FieldError::not_supported(&child(&p, "type"), t, TYPES));
            }
        }
    }
    if k == "emptyDir" {
        if let Some(m) = s(src, "medium") {
            if !matches!(m, "" | "Memory" | "HugePages") && !m.starts_with("HugePages-") {
                errs.push(FieldError::not_supported(
                    &child(&p, "medium"),
                    m,
                    &["", "Memory", "HugePages"],
                ));
            }
        }
    }
}
