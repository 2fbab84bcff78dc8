//! `ValidateObjectMeta` / `ValidateObjectMetaUpdate`.

use super::common::{immutable, labels, nonneg, Errs};
use crate::api::admission::field::{child, FieldError};
use crate::api::admission::kinds;
use crate::api::admission::names::{self, NameKind};
use serde_json::Value;

/// Total size limit of annotations (keys + values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

pub(crate) fn object_meta(kind: &str, obj: &Value, errs: &mut Errs) {
    let empty = Value::Object(Default::default());
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => &empty,
        Some(m) if m.is_object() => m,
        Some(m) => {
            errs.push(FieldError::invalid("metadata", m, "must be an object"));
            return;
        }
    };
    let name_kind = kinds::name_kind(kind);
    let gen_name = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !gen_name.is_empty() {
        for m in names::validate_name(name_kind, gen_name, true) {
            errs.push(FieldError::invalid("metadata.generateName", gen_name, &m));
        }
    }
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        // The API server generates the name from generateName before
        // validating; accept a generateName-only object here.
        if gen_name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in names::validate_name(name_kind, name, false) {
            errs.push(FieldError::invalid("metadata.name", name, &m));
        }
        if kind == "CronJob" && name.len() > 52 {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
    }
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    match kinds::is_namespaced(kind) {
        Some(true) => {
            if ns.is_empty() {
                errs.push(FieldError::required("metadata.namespace", ""));
            } else {
                for m in names::validate_name(NameKind::Dns1123Label, ns, false) {
                    errs.push(FieldError::invalid("metadata.namespace", ns, &m));
                }
            }
        }
        Some(false) if !ns.is_empty() => {
            errs.push(FieldError::forbidden(
                "metadata.namespace",
                "not allowed on this type",
            ));
        }
        _ => {}
    }
    nonneg(meta.get("generation"), "metadata.generation", errs);
    labels(meta.get("labels"), "metadata.labels", errs);
    annotations(meta.get("annotations"), "metadata.annotations", errs);
    owner_references(meta, errs);
    for (i, f) in crate::api::admission::util::arr(meta, "finalizers")
        .iter()
        .enumerate()
    {
        let s = f.as_str().unwrap_or("");
        for m in names::qualified_name(s) {
            errs.push(FieldError::invalid(
                &format!("metadata.finalizers[{i}]"),
                s,
                &m,
            ));
        }
    }
}

/// `ValidateAnnotations`: keys are (case-insensitive) qualified names, total
/// size ≤ 256 KiB.
pub(crate) fn annotations(v: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(m) = v.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, val) in m {
        for msg in names::qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), &msg));
        }
        total += k.len() + val.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn owner_references(meta: &Value, errs: &mut Errs) {
    let refs = crate::api::admission::util::arr(meta, "ownerReferences");
    let path = "metadata.ownerReferences";
    let mut controllers: Vec<String> = Vec::new();
    for r in refs {
        let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &child(path, "apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for k in ["kind", "name", "uid"] {
            let v = r.get(k).and_then(Value::as_str).unwrap_or("");
            if v.is_empty() {
                errs.push(FieldError::invalid(&child(path, k), v, "must not be empty"));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!(
                "{}/{}",
                r.get("kind").and_then(Value::as_str).unwrap_or(""),
                r.get("name").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            Value::Array(refs.to_vec()).to_string(),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
}

/// `ValidateObjectMetaUpdate`: name and namespace (and a given uid) may not change.
pub(crate) fn object_meta_update(new: &Value, old: &Value, errs: &mut Errs) {
    let get = |o: &Value, k: &str| -> Option<Value> {
        o.get("metadata")
            .and_then(|m| m.get(k))
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
    };
    for k in ["name", "namespace"] {
        let (n, o) = (get(new, k), get(old, k));
        immutable(n.as_ref(), o.as_ref(), &format!("metadata.{k}"), errs);
    }
    let (n, o) = (get(new, "uid"), get(old, "uid"));
    if n.is_some() && o.is_some() {
        immutable(n.as_ref(), o.as_ref(), "metadata.uid", errs);
    }
}

/// Validates a pod template's metadata (labels/annotations only).
pub(crate) fn template_meta(tpl: &Value, path: &str, errs: &mut Errs) {
    let meta_path = child(path, "metadata");
    if let Some(m) = tpl.get("metadata") {
        labels(m.get("labels"), &child(&meta_path, "labels"), errs);
        annotations(
            m.get("annotations"),
            &child(&meta_path, "annotations"),
            errs,
        );
    }
}
