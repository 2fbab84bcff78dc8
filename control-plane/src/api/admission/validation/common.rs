//! Shared validators: labels, label selectors, int-or-percent, immutability.

use crate::api::admission::field::{child, index, Bad, FieldError};
use crate::api::admission::names;
use crate::api::selectors::LabelSelector;
use serde_json::Value;

pub(crate) type Errs = Vec<FieldError>;

pub(crate) const NEGATIVE_MSG: &str = "must be greater than or equal to 0";

/// `ValidateNonnegativeField` on an optional integer.
pub(crate) fn nonneg(v: Option<&Value>, path: &str, errs: &mut Errs) {
    if let Some(n) = v.and_then(Value::as_i64) {
        if n < 0 {
            errs.push(FieldError::invalid(path, n, NEGATIVE_MSG));
        }
    }
}

/// `ValidateImmutableField`: JSON-equal or `field is immutable`.
pub(crate) fn immutable(new: Option<&Value>, old: Option<&Value>, path: &str, errs: &mut Errs) {
    let norm = |v: Option<&Value>| v.filter(|x| !x.is_null()).cloned();
    if norm(new) != norm(old) {
        let bad: Bad = new.map_or(Bad::Raw("null".into()), Bad::from);
        errs.push(FieldError::invalid(path, bad, "field is immutable"));
    }
}

/// `ValidateLabelName` (qualified name) at `path`.
pub(crate) fn label_name(k: &str, path: &str, errs: &mut Errs) {
    for m in names::qualified_name(k) {
        errs.push(FieldError::invalid(path, k, &m));
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; the path
/// is the map's own path (Kubernetes does not index it).
pub(crate) fn labels(v: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(m) = v.and_then(Value::as_object) else {
        return;
    };
    for (k, val) in m {
        label_name(k, path, errs);
        let s = val.as_str().unwrap_or("");
        for msg in names::label_value(s) {
            errs.push(FieldError::invalid(path, s, &msg));
        }
    }
}

/// `ValidateLabelSelector` on a `metav1.LabelSelector` object.
pub(crate) fn label_selector(sel: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return;
    };
    labels(sel.get("matchLabels"), &child(path, "matchLabels"), errs);
    let exprs = crate::api::admission::util::arr(sel, "matchExpressions");
    for (i, e) in exprs.iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = crate::api::admission::util::arr(e, "values");
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                &child(&p, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        label_name(key, &child(&p, "key"), errs);
        for (vi, v) in values.iter().enumerate() {
            let s = v.as_str().unwrap_or("");
            for msg in names::label_value(s) {
                errs.push(FieldError::invalid(
                    &index(&child(&p, "values"), vi),
                    s,
                    &msg,
                ));
            }
        }
    }
}

/// True when the selector object has no matchLabels and no matchExpressions.
pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    let ml = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    let me = crate::api::admission::util::arr(sel, "matchExpressions").len();
    ml + me == 0
}

/// Checks that the selector matches the template labels; `path` is the
/// workload spec path.
pub(crate) fn selector_matches_template(spec: &Value, path: &str, errs: &mut Errs) {
    let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) else {
        return;
    };
    let Ok(selector) = LabelSelector::from_k8s(sel) else {
        return;
    };
    if selector.is_empty() {
        return;
    }
    let tlabels = spec.pointer("/template/metadata/labels");
    if !selector.matches(tlabels.and_then(Value::as_object)) {
        errs.push(FieldError::invalid(
            &child(path, "template.metadata.labels"),
            Bad::string_map(tlabels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// `ValidatePositiveIntOrPercent` + optional `IsNotMoreThan100Percent`.
pub(crate) fn int_or_percent(v: Option<&Value>, path: &str, max100: bool, errs: &mut Errs) {
    match v {
        Some(Value::String(s)) => {
            let digits = s.strip_suffix('%').unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
            } else if max100 && digits.parse::<u64>().map_or(true, |p| p > 100) {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i < 0) => {
            errs.push(FieldError::invalid(
                path,
                n.as_i64().unwrap_or(0),
                NEGATIVE_MSG,
            ));
        }
        _ => {}
    }
}

/// The integer value of an int-or-percent (`"0%"` and `0` are zero).
pub(crate) fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// `ValidatePortNumOrName` for an int-or-string port.
pub(crate) fn port_num_or_name(v: Option<&Value>, path: &str, errs: &mut Errs) {
    match v {
        Some(Value::Number(n)) => {
            let p = n.as_i64().unwrap_or(0);
            for m in names::port_num(p) {
                errs.push(FieldError::invalid(path, p, &m));
            }
        }
        Some(Value::String(s)) => {
            for m in names::port_name(s) {
                errs.push(FieldError::invalid(path, s.as_str(), &m));
            }
        }
        _ => {}
    }
}

/// DNS-1123 label check with field errors.
pub(crate) fn dns_label(v: &str, path: &str, errs: &mut Errs) {
    for m in names::dns1123_label(v) {
        errs.push(FieldError::invalid(path, v, &m));
    }
}

/// DNS-1123 subdomain check with field errors.
pub(crate) fn dns_subdomain(v: &str, path: &str, errs: &mut Errs) {
    for m in names::dns1123_subdomain(v) {
        errs.push(FieldError::invalid(path, v, &m));
    }
}

/// Validates an IP address string (`must be a valid IP address`).
pub(crate) fn ip_address(v: &str, path: &str, errs: &mut Errs) {
    if v.parse::<std::net::IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            path,
            v,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
}
