//! The structural-schema rules a CRD version's `openAPIV3Schema` must follow
//! (apiextensions-apiserver's `ValidateStructural`, the OpenAPI subset CRDs may use, and
//! `ValidateDefaults`), with Kubernetes' field paths and messages.

use serde_json::{json, Value};

use super::schema::{compile_pattern, Schema};
use super::values;
use crate::api::admission::field::{child, index, key, FieldError};

const SCHEMA_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The structural-schema rules and the OpenAPI subset CRDs may use.
pub fn validate_schema(
    schema: &Value,
    path: &str,
    status_enabled: bool,
    errs: &mut Vec<FieldError>,
) {
    let ty = s(schema, "/type");
    if ty.is_empty() {
        if schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            != Some(true)
        {
            errs.push(FieldError::required(
                &child(path, "type"),
                "must not be empty at the root",
            ));
        }
    } else if ty != "object" {
        let detail = if status_enabled {
            "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled"
        } else {
            "must be object at the root"
        };
        errs.push(FieldError::invalid(&child(path, "type"), ty, detail));
    }
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::forbidden(
            &child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    if schema
        .get("additionalProperties")
        .is_some_and(|a| !a.is_null())
    {
        errs.push(FieldError::forbidden(
            &child(path, "additionalProperties"),
            "must not be used at the root",
        ));
    }
    if let Some(meta) = schema.pointer("/properties/metadata") {
        root_metadata(meta, &key(&child(path, "properties"), "metadata"), errs);
    }
    node(schema, path, Level::Root, false, errs);
    defaults(schema, path, true, errs);
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

/// The root `metadata` may only restrict `name` and `generateName`.
fn root_metadata(meta: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = meta.as_object() else { return };
    if let Some(t) = m.get("type").and_then(Value::as_str) {
        if t != "object" {
            errs.push(FieldError::invalid(
                &child(path, "type"),
                t,
                "must be object",
            ));
        }
    }
    let allowed_props = m
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
    let other_keys = m
        .keys()
        .any(|k| !matches!(k.as_str(), "type" | "properties" | "description"));
    if !allowed_props || other_keys {
        errs.push(FieldError::forbidden(
            path,
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
}

fn node(v: &Value, path: &str, level: Level, embedded_meta: bool, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else { return };
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let flag = |k: &str| m.get(k).and_then(Value::as_bool) == Some(true);
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    let embedded = flag("x-kubernetes-embedded-resource");
    if !ty.is_empty() && ty != "null" && !SCHEMA_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            &child(path, "type"),
            ty,
            SCHEMA_TYPES,
        ));
    }
    if ty == "null" {
        errs.push(FieldError::forbidden(
            &child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    for (k, what) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if m.get(k).is_some_and(|x| !x.is_null()) {
            errs.push(FieldError::forbidden(&child(path, k), what));
        }
    }
    if flag("uniqueItems") {
        errs.push(FieldError::forbidden(
            &child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            &child(path, "x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if embedded && embedded_meta {
        errs.push(FieldError::forbidden(
            &child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    if embedded && ty != "object" {
        if ty.is_empty() {
            errs.push(FieldError::required(
                &child(path, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errs.push(FieldError::invalid(
                &child(path, "type"),
                ty,
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !int_or_string && !preserve && level != Level::Root {
        let detail = if level == Level::Item {
            "must not be empty for specified array items"
        } else {
            "must not be empty for specified object fields"
        };
        errs.push(FieldError::required(&child(path, "type"), detail));
    }
    let props = m.get("properties").and_then(Value::as_object);
    if embedded && !preserve && props.is_none_or(|p| p.is_empty()) {
        errs.push(FieldError::required(
            &child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
    match m.get("additionalProperties") {
        Some(Value::Object(a)) => {
            if props.is_some_and(|p| !p.is_empty()) {
                errs.push(FieldError::forbidden(
                    &child(path, "additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                ));
            }
            if embedded {
                errs.push(FieldError::forbidden(
                    &child(path, "additionalProperties"),
                    "must not be used if x-kubernetes-embedded-resource is set",
                ));
            }
            node(
                &Value::Object(a.clone()),
                &child(path, "additionalProperties"),
                Level::Field,
                embedded_meta,
                errs,
            );
        }
        Some(Value::Bool(false)) if props.is_some_and(|p| !p.is_empty()) => {
            errs.push(FieldError::forbidden(
                &child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        _ => {}
    }
    if let Some(p) = m.get("pattern").and_then(Value::as_str) {
        if let Err(e) = compile_pattern(p) {
            errs.push(FieldError::invalid(
                &child(path, "pattern"),
                p,
                &format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
    match m.get("items") {
        Some(Value::Array(_)) => errs.push(FieldError::forbidden(
            &child(path, "items"),
            "items must be a schema object and not an array",
        )),
        Some(items @ Value::Object(_)) => node(
            items,
            &child(path, "items"),
            Level::Item,
            embedded_meta,
            errs,
        ),
        _ if ty == "array" => errs.push(FieldError::required(
            &child(path, "items"),
            "must be specified",
        )),
        _ => {}
    }
    list_type(m, path, ty, errs);
    for (k, sub) in props.into_iter().flatten() {
        let in_meta = embedded_meta
            || ((level == Level::Root || embedded)
                && matches!(k.as_str(), "metadata" | "apiVersion" | "kind"));
        let sub_path = key(&child(path, "properties"), k);
        if embedded && matches!(k.as_str(), "kind" | "apiVersion") {
            if let Some(t) = sub.get("type").and_then(Value::as_str) {
                if t != "string" {
                    errs.push(FieldError::invalid(
                        &child(&sub_path, "type"),
                        t,
                        "must be string",
                    ));
                }
            }
        }
        node(sub, &sub_path, Level::Field, in_meta, errs);
    }
    for comb in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in m
            .get(comb)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            value_validation(
                sub,
                &index(&child(path, comb), i),
                int_or_string && comb != "oneOf",
                errs,
            );
        }
    }
    if let Some(not) = m.get("not").filter(|n| n.is_object()) {
        value_validation(not, &child(path, "not"), false, errs);
    }
}

fn list_type(m: &serde_json::Map<String, Value>, path: &str, ty: &str, errs: &mut Vec<FieldError>) {
    let lt = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = m
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(lt) = lt {
        if ty != "array" {
            let detail = "must be array if x-kubernetes-list-type is specified";
            if ty.is_empty() {
                errs.push(FieldError::required(&child(path, "type"), detail));
            } else {
                errs.push(FieldError::invalid(&child(path, "type"), ty, detail));
            }
        }
        if !matches!(lt, "atomic" | "set" | "map") {
            errs.push(FieldError::not_supported(
                &child(path, "x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
        if lt == "map" && keys.is_empty() {
            errs.push(FieldError::required(
                &child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
    }
    if !keys.is_empty() && lt != Some("map") {
        let p = child(path, "x-kubernetes-list-type");
        match lt {
            None => errs.push(FieldError::required(
                &p,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) => errs.push(FieldError::invalid(
                &p,
                lt,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
}

/// A schema inside `allOf`/`anyOf`/`oneOf`/`not`: value validations only, the structural part
/// (types, defaults, descriptions, extensions) belongs outside.
fn value_validation(
    v: &Value,
    path: &str,
    int_or_string_pattern: bool,
    errs: &mut Vec<FieldError>,
) {
    let Some(m) = v.as_object() else { return };
    let forbidden = |k: &str, what: &str, errs: &mut Vec<FieldError>| {
        errs.push(FieldError::forbidden(&child(path, k), what));
    };
    if m.contains_key("type") && !int_or_string_pattern {
        forbidden("type", "must be empty to be structural", errs);
    }
    if m.contains_key("additionalProperties") {
        forbidden(
            "additionalProperties",
            "must be undefined to be structural",
            errs,
        );
    }
    if m.contains_key("default") {
        forbidden("default", "must be undefined to be structural", errs);
    }
    for k in ["title", "description"] {
        if m.get(k)
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
        {
            forbidden(k, "must be empty to be structural", errs);
        }
    }
    if m.get("nullable").and_then(Value::as_bool) == Some(true) {
        forbidden("nullable", "must be false to be structural", errs);
    }
    for k in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if m.get(k).and_then(Value::as_bool) == Some(true) {
            forbidden(k, "must be false to be structural", errs);
        }
    }
    if m.contains_key("x-kubernetes-list-type") {
        forbidden(
            "x-kubernetes-list-type",
            "must be undefined to be structural",
            errs,
        );
    }
    if m.contains_key("x-kubernetes-list-map-keys") {
        forbidden(
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
            errs,
        );
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, sub) in p {
            let sub_path = key(&child(path, "properties"), k);
            if k == "metadata" {
                errs.push(FieldError::forbidden(
                    &sub_path,
                    "must not be specified in a nested context",
                ));
            }
            value_validation(sub, &sub_path, false, errs);
        }
    }
    if let Some(items) = m.get("items").filter(|i| i.is_object()) {
        value_validation(items, &child(path, "items"), false, errs);
    }
    for comb in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in m
            .get(comb)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            value_validation(sub, &index(&child(path, comb), i), false, errs);
        }
    }
    if let Some(not) = m.get("not").filter(|n| n.is_object()) {
        value_validation(not, &child(path, "not"), false, errs);
    }
}

/// Each `default` must be valid for its schema and hold no field the schema would prune.
/// Defaults are not allowed in the root's `metadata`, `apiVersion` and `kind`.
fn defaults(v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else { return };
    if let Some(d) = m.get("default") {
        let schema = Schema::from_json(v);
        let dpath = child(path, "default");
        let mut pruned = d.clone();
        if !schema.preserve_unknown_fields {
            let probe = Schema {
                embedded_resource: false,
                ..schema.clone()
            };
            let mut wrapper = json!({"x": pruned});
            let holder = Schema {
                ty: "object".into(),
                properties: [("x".to_string(), probe)].into_iter().collect(),
                ..Schema::default()
            };
            super::coerce::prune(&mut wrapper, &holder);
            pruned = wrapper["x"].take();
        }
        if &pruned != d {
            errs.push(FieldError::invalid(
                &dpath,
                d,
                "must not have unknown fields",
            ));
        }
        errs.extend(values::validate_at(d, &schema, &dpath));
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, sub) in p {
            let sub_path = key(&child(path, "properties"), k);
            if root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                forbid_defaults_in(sub, &sub_path, k, errs);
                continue;
            }
            defaults(sub, &sub_path, false, errs);
        }
    }
    if let Some(items) = m.get("items").filter(|i| i.is_object()) {
        defaults(items, &child(path, "items"), false, errs);
    }
    if let Some(a) = m.get("additionalProperties").filter(|a| a.is_object()) {
        defaults(a, &child(path, "additionalProperties"), false, errs);
    }
}

fn forbid_defaults_in(v: &Value, path: &str, field: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else { return };
    if m.contains_key("default") {
        errs.push(FieldError::forbidden(
            &child(path, "default"),
            &format!("must not be set in top-level {field}"),
        ));
    }
    if let Some(p) = m.get("properties").and_then(Value::as_object) {
        for (k, sub) in p {
            forbid_defaults_in(sub, &key(&child(path, "properties"), k), field, errs);
        }
    }
}
