//! Validation of a custom resource against its structural schema, with the field paths and
//! the wording Kubernetes returns (kube-openapi's validator, turned into field errors by
//! apiextensions-apiserver): `spec.replicas: Invalid value: "string": spec.replicas in body
//! must be of type integer: "string"`.

use std::collections::HashSet;

use serde_json::Value;

use super::schema::{is_integer, type_name, Schema};
use crate::api::admission::field::{child, index, FieldError, FieldErrorReason};
use crate::api::admission::names;

/// Every problem of `obj` against `schema`. The root is the resource itself: its `apiVersion`,
/// `kind` and `metadata` are checked by the generic object validation, not here.
pub fn validate(obj: &Value, schema: &Schema) -> Vec<FieldError> {
    let mut errs = Vec::new();
    node(obj, schema, "", true, &mut errs);
    // By field (a field's own problems keep their order), so the answer does not depend on
    // the order of the object's keys.
    errs.sort_by(|a, b| a.field.cmp(&b.field));
    errs
}

/// A value at `path` against the schema for it (its default, for a CRD's validation).
pub fn validate_at(v: &Value, schema: &Schema, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    node(v, schema, path, false, &mut errs);
    errs
}

fn in_body(path: &str) -> String {
    format!("{path} in body")
}

/// `field.Invalid(path, value, "<path> in body <detail>")`.
fn invalid(path: &str, v: &Value, detail: &str) -> FieldError {
    FieldError::invalid(path, v, &format!("{} {detail}", in_body(path)))
}

fn type_invalid(path: &str, want: &str, got: &str) -> FieldError {
    let mut e = FieldError::invalid(
        path,
        got,
        &format!("{} must be of type {want}: {}", in_body(path), quote(got)),
    );
    e.reason = FieldErrorReason::TypeInvalid;
    e
}

fn quote(s: &str) -> String {
    crate::api::admission::field::go_quote(s)
}

/// Go's `%v` of a float64 bound (`0`, `1.5`, `1e+06`).
fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn node(v: &Value, s: &Schema, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        let typed = !s.ty.is_empty() || s.int_or_string;
        if typed && !s.nullable {
            errs.push(type_invalid(path, &expected_type(s), "null"));
        }
        return;
    }
    if !type_matches(v, s) {
        errs.push(type_invalid(path, &expected_type(s), type_name(v)));
        return;
    }
    if let Some(allowed) = &s.enumeration {
        if !allowed.iter().any(|a| json_equal(a, v)) {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            errs.push(FieldError::not_supported(path, v, &names));
        }
    }
    match v {
        Value::String(text) => string(text, v, s, path, errs),
        Value::Number(_) => number(v, s, path, errs),
        Value::Array(items) => array(items, v, s, path, errs),
        Value::Object(map) => {
            if s.embedded_resource && !root {
                embedded(map, path, errs);
            }
            object(map, s, path, root, errs);
        }
        Value::Bool(_) | Value::Null => {}
    }
    composition(v, s, path, errs);
}

fn expected_type(s: &Schema) -> String {
    if s.int_or_string {
        "integer,string".to_string()
    } else {
        s.ty.clone()
    }
}

fn type_matches(v: &Value, s: &Schema) -> bool {
    if s.int_or_string {
        return v.is_string() || is_integer(v);
    }
    match s.ty.as_str() {
        "" => true,
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

/// JSON equality where `1` and `1.0` are the same number (the API server compares decoded
/// values).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_equal(p, q)))
        }
        _ => a == b,
    }
}

fn string(text: &str, v: &Value, s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let chars = text.chars().count() as u64;
    if let Some(max) = s.max_length {
        if chars > max {
            errs.push(FieldError::too_long(path, max as usize));
        }
    }
    if let Some(min) = s.min_length {
        if chars < min {
            errs.push(invalid(
                path,
                v,
                &format!("should be at least {min} chars long"),
            ));
        }
    }
    if let Some(p) = &s.pattern {
        if !p.regex.is_match(text) {
            errs.push(invalid(path, v, &format!("should match '{}'", p.source)));
        }
    }
    if !s.format.is_empty() && !super::formats::valid(&s.format, text) {
        let mut e = FieldError::invalid(
            path,
            v,
            &format!(
                "{} must be of type {}: {}",
                in_body(path),
                s.format,
                quote(text)
            ),
        );
        e.reason = FieldErrorReason::TypeInvalid;
        errs.push(e);
    }
}

fn number(v: &Value, s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let Some(x) = v.as_f64() else { return };
    if let Some(max) = s.maximum {
        if (s.exclusive_maximum && x >= max) || x > max {
            let detail = if s.exclusive_maximum {
                format!("should be less than {}", num(max))
            } else {
                format!("should be less than or equal to {}", num(max))
            };
            errs.push(invalid(path, v, &detail));
        }
    }
    if let Some(min) = s.minimum {
        if (s.exclusive_minimum && x <= min) || x < min {
            let detail = if s.exclusive_minimum {
                format!("should be greater than {}", num(min))
            } else {
                format!("should be greater than or equal to {}", num(min))
            };
            errs.push(invalid(path, v, &detail));
        }
    }
    if let Some(m) = s.multiple_of.filter(|m| *m > 0.0) {
        let q = x / m;
        if (q - q.round()).abs() > 1e-9 {
            errs.push(invalid(
                path,
                v,
                &format!("should be a multiple of {}", num(m)),
            ));
        }
    }
}

fn array(items: &[Value], v: &Value, s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let n = items.len() as u64;
    if let Some(min) = s.min_items {
        if n < min {
            errs.push(invalid(
                path,
                &Value::from(n),
                &format!("should have at least {min} items"),
            ));
        }
    }
    if let Some(max) = s.max_items {
        if n > max {
            errs.push(FieldError::too_many(path, n as usize, max as usize));
        }
    }
    if s.unique_items {
        let distinct: HashSet<String> = items.iter().map(Value::to_string).collect();
        if distinct.len() != items.len() {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{} shouldn't contain duplicates", in_body(path)),
            ));
        }
    }
    match s.list_type.as_str() {
        "set" => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errs.push(FieldError::duplicate(&index(path, i), item));
                }
            }
        }
        "map" if !s.list_map_keys.is_empty() => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<String> = s
                    .list_map_keys
                    .iter()
                    .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
                    .collect();
                if !seen.insert(key) {
                    let shown: serde_json::Map<String, Value> = s
                        .list_map_keys
                        .iter()
                        .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                        .collect();
                    errs.push(FieldError::duplicate(
                        &index(path, i),
                        &Value::Object(shown),
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(item_schema) = &s.items {
        for (i, item) in items.iter().enumerate() {
            node(item, item_schema, &index(path, i), false, errs);
        }
    }
}

fn object(
    map: &serde_json::Map<String, Value>,
    s: &Schema,
    path: &str,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    let n = map.len() as u64;
    if let Some(max) = s.max_properties {
        if n > max {
            errs.push(FieldError::too_many(path, n as usize, max as usize));
        }
    }
    if let Some(min) = s.min_properties {
        if n < min {
            errs.push(invalid(
                path,
                &Value::from(n),
                &format!("should have at least {min} properties"),
            ));
        }
    }
    for r in &s.required {
        if map.get(r).is_none() {
            errs.push(FieldError::required(&child(path, r), ""));
        }
    }
    for (k, v) in map {
        // The resource's own type and object metadata have their own validation.
        if (root || s.embedded_resource) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
        {
            continue;
        }
        match s.properties.get(k) {
            Some(p) => node(v, p, &child(path, k), false, errs),
            None => match &s.additional {
                Some(a) => node(v, a, &child(path, k), false, errs),
                None if s.no_additional => errs.push(FieldError::forbidden(
                    &child(path, k),
                    &format!("{}.{k} in body is a forbidden property", in_body(path)),
                )),
                None => {}
            },
        }
    }
}

/// An `x-kubernetes-embedded-resource` object needs its own `apiVersion` and `kind`.
fn embedded(map: &serde_json::Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for k in ["apiVersion", "kind"] {
        match map.get(k) {
            None => errs.push(FieldError::required(&child(path, k), "")),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(FieldError::invalid(&child(path, k), s, "must not be empty"))
            }
            Some(Value::String(s)) if k == "kind" => {
                let problems = names::dns1035_label(&s.to_lowercase());
                if !problems.is_empty() {
                    errs.push(FieldError::invalid(
                        &child(path, k),
                        s,
                        &format!(
                            "may have mixed case, but should otherwise match: {}",
                            problems.join(",")
                        ),
                    ));
                }
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(FieldError::invalid(
                &child(path, k),
                other,
                "must be a string",
            )),
        }
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not` (value validations layered on the structural part).
fn composition(v: &Value, s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    for sub in &s.all_of {
        node(v, sub, path, false, errs);
    }
    let passes = |sub: &Schema| {
        let mut e = Vec::new();
        node(v, sub, path, false, &mut e);
        e.is_empty()
    };
    // The int-or-string pattern (anyOf integer / string) is the type check already done.
    if !s.any_of.is_empty() && !s.int_or_string && !s.any_of.iter().any(passes) {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!(
                "{} must validate at least one schema (anyOf)",
                in_body(path)
            ),
        ));
    }
    if !s.one_of.is_empty() && s.one_of.iter().filter(|x| passes(x)).count() != 1 {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!(
                "{} must validate one and only one schema (oneOf)",
                in_body(path)
            ),
        ));
    }
    if let Some(not) = &s.not {
        if passes(not) {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{} must not validate the schema (not)", in_body(path)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "required": ["image"], "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "image": {"type": "string", "minLength": 3, "maxLength": 8, "pattern": "^[a-z:.0-9]+$"},
                "color": {"type": "string", "enum": ["red", "green"]},
                "port": {"x-kubernetes-int-or-string": true},
                "note": {"type": "string", "nullable": true},
                "when": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"}},
                "env": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                             "x-kubernetes-preserve-unknown-fields": true}
            }}}
        }))
    }

    fn messages(obj: Value) -> Vec<String> {
        validate(&obj, &schema())
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn type_errors_use_kubernetes_wording() {
        let errs = validate(
            &json!({"spec": {"image": "nginx", "replicas": "three"}}),
            &schema(),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        assert_eq!(errs[0].reason.as_str(), "FieldValueTypeInvalid");
        assert_eq!(
            messages(json!({"spec": {"image": "nginx", "replicas": null}})),
            vec!["spec.replicas: Invalid value: \"null\": spec.replicas in body must be of type integer: \"null\""]
        );
        assert!(
            messages(json!({"spec": {"image": "nginx", "note": null, "replicas": 3.0}})).is_empty()
        );
        assert_eq!(
            messages(json!({"spec": {"image": "nginx", "port": true}})),
            vec!["spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""]
        );
        assert!(messages(json!({"spec": {"image": "nginx", "port": "http"}})).is_empty());
    }

    #[test]
    fn value_constraints() {
        let got = messages(json!({"spec": {
            "replicas": 11, "color": "blue", "tags": ["a", "b", "c"],
            "when": "yesterday"}}));
        assert_eq!(
            got,
            vec![
                "spec.color: Unsupported value: \"blue\": supported values: \"red\", \"green\"",
                "spec.image: Required value",
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            ]
        );
        let got = messages(json!({"spec": {"image": "ab", "replicas": -1, "tags": []}}));
        assert_eq!(
            got,
            vec![
                "spec.image: Invalid value: \"ab\": spec.image in body should be at least 3 chars long",
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
                "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
            ]
        );
        let got = messages(json!({"spec": {"image": "NGINX-LATEST"}}));
        assert_eq!(
            got,
            vec![
                "spec.image: Too long: must have at most 8 bytes",
                "spec.image: Invalid value: \"NGINX-LATEST\": spec.image in body should match '^[a-z:.0-9]+$'",
            ]
        );
    }

    #[test]
    fn lists_and_embedded_resources() {
        let got = messages(json!({"spec": {"image": "nginx",
            "env": [{"name": "a"}, {"name": "a"}],
            "tags": ["x", 5],
            "template": {"kind": "Pod"}}}));
        assert_eq!(
            got,
            vec![
                "spec.env[1]: Duplicate value: {\"name\":\"a\"}",
                "spec.tags[1]: Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\"",
                "spec.template.apiVersion: Required value",
            ]
        );
    }
}
