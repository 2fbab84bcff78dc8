//! `ValidateResourceRequirements` for containers.

use super::common::{Errs, NEGATIVE_MSG};
use crate::api::admission::field::{child, key, FieldError};
use crate::api::admission::names;
use crate::api::admission::quantity::Quantity;
use serde_json::{Map, Value};

fn is_native(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Native non-hugepage resources may be overcommitted (requests < limits).
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn resource_name(name: &str, path: &str, errs: &mut Errs) {
    for m in names::qualified_name(name) {
        errs.push(FieldError::invalid(path, name, &m));
    }
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage") || is_hugepages(name);
        if !standard {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name)
        && (name.starts_with("requests.")
            || !names::qualified_name(&format!("requests.{name}")).is_empty())
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

fn quantity_of(v: &Value) -> Result<(String, Quantity), &'static str> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => crate::api::admission::quantity::number_to_quantity_string(n),
        _ => return Err(crate::api::admission::quantity::FORMAT_ERROR),
    };
    let q = Quantity::parse(&s)?;
    Ok((s, q))
}

fn check_list(
    m: &Map<String, Value>,
    path: &str,
    errs: &mut Errs,
) -> Vec<(String, String, Quantity)> {
    let mut out = Vec::new();
    for (name, v) in m {
        let p = key(path, name);
        resource_name(name, &p, errs);
        match quantity_of(v) {
            Err(msg) => errs.push(FieldError::invalid(&p, v, msg)),
            Ok((s, q)) => {
                if q.is_negative() {
                    errs.push(FieldError::invalid(&p, s.as_str(), NEGATIVE_MSG));
                } else if !is_native(name) && q.nanos() % 1_000_000_000 != 0 {
                    errs.push(FieldError::invalid(&p, s.as_str(), "must be an integer"));
                }
                out.push((name.clone(), s, q));
            }
        }
    }
    out
}

/// Validates `resources` of a container at `path`.
pub(crate) fn resource_requirements(r: &Value, path: &str, errs: &mut Errs) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let empty = Map::new();
    let limits = r.get("limits").and_then(Value::as_object).unwrap_or(&empty);
    let requests = r
        .get("requests")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let lims = check_list(limits, &lim_path, errs);
    let reqs = check_list(requests, &req_path, errs);
    for (name, s, q) in &reqs {
        match lims.iter().find(|(n, _, _)| n == name) {
            Some((_, ls, lq)) => {
                if q != lq && !overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        s.as_str(),
                        &format!("must be equal to {name} limit of {ls}"),
                    ));
                } else if q > lq {
                    errs.push(FieldError::invalid(
                        &req_path,
                        s.as_str(),
                        &format!("must be less than or equal to {name} limit of {ls}"),
                    ));
                }
            }
            None => {
                if !overcommit_allowed(name) {
                    errs.push(FieldError::required(
                        &lim_path,
                        "Limit must be set for non overcommitable resources",
                    ));
                }
            }
        }
    }
}
