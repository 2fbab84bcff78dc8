//! PersistentVolumeClaim validation (`ValidatePersistentVolumeClaim` and
//! `ValidatePersistentVolumeClaimSpec`, the essentials): access modes, the storage request,
//! volumeMode, and spec immutability on update. StatefulSet `volumeClaimTemplates` use the
//! same spec rules.

use super::common::Errs;
use crate::api::admission::field::{child, index, key, FieldError};
use crate::api::admission::quantity::{number_to_quantity_string, Quantity};
use crate::api::admission::util::{arr, s};
use serde_json::Value;

const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

pub(crate) fn persistent_volume_claim(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    claim_spec(spec, "spec", errs);
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&null);
        if mutable_stripped(spec, old_spec) != mutable_stripped(old_spec, old_spec) {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
    }
}

/// `spec` without the fields an update may change: `resources.requests`,
/// `volumeAttributesClassName`, and `volumeName` while the old claim had none (binding).
fn mutable_stripped(spec: &Value, old_spec: &Value) -> Value {
    let mut out = spec.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("volumeAttributesClassName");
        if s(old_spec, "volumeName").unwrap_or("").is_empty() {
            m.remove("volumeName");
        }
        if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
            r.remove("requests");
            if r.is_empty() {
                m.remove("resources");
            }
        }
    }
    out
}

/// `ValidatePersistentVolumeClaimSpec` at `path`.
pub(crate) fn claim_spec(spec: &Value, path: &str, errs: &mut Errs) {
    let modes = arr(spec, "accessModes");
    let modes_path = child(path, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            &modes_path,
            "at least 1 access mode is required",
        ));
    }
    let mut pod_only = false;
    for (i, m) in modes.iter().enumerate() {
        let mode = m.as_str().unwrap_or("");
        pod_only |= mode == "ReadWriteOncePod";
        if !ACCESS_MODES.contains(&mode) {
            errs.push(FieldError::not_supported(
                &index(&modes_path, i),
                mode,
                ACCESS_MODES,
            ));
        }
    }
    if pod_only && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            &modes_path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let storage_path = key(&child(path, "resources"), "storage");
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => errs.push(FieldError::required(&storage_path, "")),
        Some(v) => {
            let text = match v {
                Value::String(t) => Some(t.clone()),
                Value::Number(n) => Some(number_to_quantity_string(n)),
                _ => None,
            };
            match text.as_deref().map(|t| (t, Quantity::parse(t))) {
                Some((_, Ok(q))) if q.is_negative() || q.is_zero() => {
                    errs.push(FieldError::invalid(
                        &storage_path,
                        text.clone().unwrap_or_default().as_str(),
                        "must be greater than zero",
                    ))
                }
                Some((_, Ok(_))) => {}
                Some((t, Err(msg))) => errs.push(FieldError::invalid(&storage_path, t, msg)),
                None => errs.push(FieldError::invalid(
                    &storage_path,
                    v,
                    crate::api::admission::quantity::FORMAT_ERROR,
                )),
            }
        }
    }
    if let Some(m) = s(spec, "volumeMode") {
        if !VOLUME_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                &child(path, "volumeMode"),
                m,
                VOLUME_MODES,
            ));
        }
    }
}

/// `spec.volumeClaimTemplates` of a StatefulSet: each a claim with a name and a valid spec.
pub(crate) fn claim_templates(spec: &Value, errs: &mut Errs) {
    for (i, t) in arr(spec, "volumeClaimTemplates").iter().enumerate() {
        let p = index("spec.volumeClaimTemplates", i);
        if t.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            errs.push(FieldError::required(
                &child(&child(&p, "metadata"), "name"),
                "",
            ));
        }
        claim_spec(
            t.get("spec").unwrap_or(&Value::Null),
            &child(&p, "spec"),
            errs,
        );
    }
}

/// A StatefulSet spec whose pod template also has a `persistentVolumeClaim` volume for each
/// volumeClaimTemplate (unless a volume of that name exists), as the controller stamps pods
/// out, so container mounts of claim templates validate.
pub(crate) fn with_claim_volumes(spec: &Value) -> Value {
    let mut out = spec.clone();
    let names: Vec<String> = arr(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return out;
    }
    let Some(pod) = out
        .pointer_mut("/template/spec")
        .and_then(Value::as_object_mut)
    else {
        return out;
    };
    let vols = pod
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !vols.is_array() {
        return out;
    }
    if let Some(list) = vols.as_array_mut() {
        for n in names {
            if !list
                .iter()
                .any(|v| v.get("name").and_then(Value::as_str) == Some(n.as_str()))
            {
                list.push(
                    serde_json::json!({"name": n, "persistentVolumeClaim": {"claimName": n}}),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(obj: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errs = Vec::new();
        persistent_volume_claim(obj, old, &mut errs);
        errs.iter()
            .map(|e| e.to_cause()["field"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn essentials_are_required() {
        let ok = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(fields(&ok, None).is_empty());
        let bad = json!({"spec": {}});
        assert_eq!(
            fields(&bad, None),
            vec!["spec.accessModes", "spec.resources[storage]"]
        );
        let bad = json!({"spec": {"accessModes": ["Sometimes"], "resources": {"requests": {"storage": "0"}}}});
        assert_eq!(
            fields(&bad, None),
            vec!["spec.accessModes[0]", "spec.resources[storage]"]
        );
    }

    #[test]
    fn spec_is_immutable_but_requests_and_binding_change() {
        let old = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let mut grown = old.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        grown["spec"]["volumeName"] = json!("pv-1");
        assert!(fields(&grown, Some(&old)).is_empty());
        let mut changed = old.clone();
        changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(fields(&changed, Some(&old)), vec!["spec"]);
    }
}
