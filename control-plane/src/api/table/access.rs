//! Tolerant accessors over Kubernetes JSON, and the small formatting helpers
//! shared by the printers (labels, selectors, container lists). Nothing here
//! panics on odd input: a missing or mistyped field reads as Go's zero value.

use jiff::Timestamp;
use serde_json::Value;

use super::duration::parse_time;

/// The value at `path`, treating JSON `null` as absent (a nil pointer in Go).
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

/// Whether `path` holds a non-null value (a non-nil pointer in Go).
pub(crate) fn has(v: &Value, path: &[&str]) -> bool {
    at(v, path).is_some()
}

/// A string field, `""` when absent or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// A string field, `None` when absent or not a string.
pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// A string field, or `default` when absent or empty (API-server defaulting).
pub(crate) fn str_or<'a>(v: &'a Value, path: &[&str], default: &'a str) -> &'a str {
    match str_at(v, path) {
        "" => default,
        s => s,
    }
}

/// An integer field as Go would decode it; `None` when absent or not a number.
pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    let n = at(v, path)?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if let Some(u) = n.as_u64() {
        return Some(i64::try_from(u).unwrap_or(i64::MAX));
    }
    // Whole floats such as `3.0`; the cast saturates, so it cannot panic.
    n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)
}

/// An integer field, `0` when absent.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

/// A boolean field, `false` when absent.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// An array field, empty when absent or not an array.
pub(crate) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The number of entries of an object (map) field, 0 when absent.
pub(crate) fn map_len(v: &Value, path: &[&str]) -> usize {
    at(v, path)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

/// A timestamp field; `None` when absent, unparseable or Go's zero time.
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    opt_str(v, path).and_then(parse_time)
}

/// `metadata.name`.
pub(crate) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

/// `metadata.creationTimestamp`.
pub(crate) fn created(v: &Value) -> Option<Timestamp> {
    time_at(v, &["metadata", "creationTimestamp"])
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn deleting(v: &Value) -> bool {
    has(v, &["metadata", "deletionTimestamp"])
}

/// A string-to-string map as sorted `(key, value)` pairs; non-string values
/// are skipped.
pub(crate) fn string_map<'a>(v: &'a Value, path: &[&str]) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = at(v, path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort_unstable();
    pairs
}

/// `labels.FormatLabels`: sorted `k=v` joined by `,`, or `<none>`.
pub(crate) fn format_labels(v: &Value, path: &[&str]) -> String {
    let s = string_map(v, path)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// `metav1.LabelSelectorAsSelector(sel).String()`; `Err` where Go errors.
/// A nil selector selects nothing and an empty one everything: both `""`.
pub(crate) fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in string_map(sel, &["matchLabels"]) {
        reqs.push((k.to_string(), format!("{k}={v}")));
    }
    for expr in arr_at(sel, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values: Vec<&str> = arr_at(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match str_at(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        if key.is_empty() {
            return Err(());
        }
        reqs.push((key.to_string(), text));
    }
    // `selector.Add` sorts requirements by key.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// `layoutContainerCells`: container names and images, each `,`-joined.
pub(crate) fn layout_containers(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map_or(&[][..], |s| arr_at(s, &["containers"]));
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// Go's `fmt` of an `IntOrString` (`intstr.IntOrString.String()`).
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A condition's `status` for the first condition of `kind` in `conds`.
pub(crate) fn condition_status<'a>(conds: &'a [Value], kind: &str) -> Option<&'a str> {
    conds
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .map(|c| str_at(c, &["status"]))
}

/// Trims like Go's `strings.TrimSpace`.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let sel = json!({"matchLabels": {"tier": "web", "app": "shop"}});
        assert_eq!(format_label_selector(Some(&sel)), "app=shop,tier=web");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        let exprs = json!({
            "matchLabels": {"app": "db"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"}
            ]
        });
        assert_eq!(
            format_label_selector(Some(&exprs)),
            "app=db,!canary,env in (dev,prod),gpu,zone notin (b)"
        );
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        assert_eq!(selector_string(None), Ok(String::new()));
    }

    #[test]
    fn labels_and_numbers() {
        let v = json!({"m": {"b": "2", "a": "1", "n": 3}, "x": 3.0, "y": "nope"});
        assert_eq!(format_labels(&v, &["m"]), "a=1,b=2");
        assert_eq!(format_labels(&v, &["missing"]), "<none>");
        assert_eq!(int_at(&v, &["x"]), 3);
        assert_eq!(int_at(&v, &["y"]), 0);
        assert_eq!(str_at(&v, &["m", "a", "deeper"]), "");
        assert!(!has(&json!({"a": null}), &["a"]));
    }
}
