//! ConfigMap, Secret and ServiceAccount validation.

use super::common::{dns_subdomain, Errs};
use crate::api::admission::field::{key, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, base64_decoded_len, obj as get_obj, sv};
use serde_json::Value;

/// `core.MaxSecretSize` (also the ConfigMap limit).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn key_errors(k: &str, path: &str, errs: &mut Errs) {
    for m in names::config_map_key(k) {
        errs.push(FieldError::invalid(&key(path, k), k, &m));
    }
}

fn immutable_rules(obj: &Value, old: Option<&Value>, fields: &[&str], errs: &mut Errs) {
    let Some(old) = old else {
        return;
    };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        let norm = |v: Option<&Value>| v.filter(|x| !x.is_null()).cloned();
        if norm(obj.get(*f)) != norm(old.get(*f)) {
            errs.push(FieldError::forbidden(
                f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

pub(crate) fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let mut total = 0usize;
    let data = get_obj(obj, "data");
    let binary = get_obj(obj, "binaryData");
    if let Some(d) = data {
        for (k, v) in d {
            key_errors(k, "data", errs);
            if binary.is_some_and(|b| b.contains_key(k)) {
                errs.push(FieldError::invalid(
                    &key("data", k),
                    k.clone(),
                    "duplicate of key present in binaryData",
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if let Some(b) = binary {
        for (k, v) in b {
            key_errors(k, "binaryData", errs);
            if data.is_some_and(|d| d.contains_key(k)) {
                errs.push(FieldError::invalid(
                    &key("binaryData", k),
                    k.clone(),
                    "duplicate of key present in data",
                ));
            }
            total += v.as_str().map_or(0, base64_decoded_len);
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    immutable_rules(obj, old, &["data", "binaryData"], errs);
}

pub(crate) fn secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let mut total = 0usize;
    let data = get_obj(obj, "data");
    if let Some(d) = data {
        for (k, v) in d {
            key_errors(k, "data", errs);
            total += v.as_str().map_or(0, base64_decoded_len);
        }
    }
    // stringData is merged into data by the API server; validate its keys too.
    if let Some(sd) = get_obj(obj, "stringData") {
        for (k, v) in sd {
            key_errors(k, "data", errs);
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| {
        data.is_some_and(|d| d.contains_key(k))
            || get_obj(obj, "stringData").is_some_and(|d| d.contains_key(k))
    };
    let ty = sv(obj, "type");
    match ty {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            errs.push(FieldError::required("data[.dockercfg]", ""));
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(FieldError::required("data[.dockerconfigjson]", ""));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(FieldError::required(&key("data", k), ""));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let old_ty = sv(old, "type");
        if !old_ty.is_empty() && !ty.is_empty() && old_ty != ty {
            errs.push(FieldError::invalid("type", ty, "field is immutable"));
        }
    }
    immutable_rules(obj, old, &["data"], errs);
}

pub(crate) fn service_account(obj: &Value, errs: &mut Errs) {
    for (i, s) in arr(obj, "secrets").iter().enumerate() {
        let name = sv(s, "name");
        if !name.is_empty() {
            dns_subdomain(name, &format!("secrets[{i}].name"), errs);
        }
    }
    for (i, s) in arr(obj, "imagePullSecrets").iter().enumerate() {
        let name = sv(s, "name");
        if !name.is_empty() {
            dns_subdomain(name, &format!("imagePullSecrets[{i}].name"), errs);
        }
    }
}
