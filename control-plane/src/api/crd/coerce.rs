//! What the API server does to a custom resource before validating it: pruning of fields its
//! structural schema does not know (apiextensions-apiserver's `pruning` package, reporting their
//! paths for `fieldValidation`), removal of `null`s the schema does not allow, and defaulting
//! from `default` (the `defaulting` package). Unknown fields of `metadata` are pruned too.

use serde_json::Value;

use super::schema::Schema;

/// The resource's own fields, kept at the root and in embedded resources whatever the schema.
const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// ObjectMeta's fields (everything else under `metadata` is unknown).
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Drops every field `schema` does not specify (where it does not preserve unknown fields)
/// and returns their paths, sorted (`spec.foo`, `spec.items[0].bar`, `metadata.foo`).
pub fn prune(obj: &mut Value, schema: &Schema) -> Vec<String> {
    let mut out = prune_metadata(obj);
    let root = Schema {
        embedded_resource: true,
        ..schema.clone()
    };
    let mut path = String::new();
    walk(obj, Some(&root), &mut path, &mut out, true);
    out.sort();
    out
}

/// The unknown fields of the root `metadata`, removed.
fn prune_metadata(obj: &mut Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let unknown: Vec<String> = meta
            .keys()
            .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            meta.remove(&k);
            out.push(format!("metadata.{k}"));
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(x: &mut Value, s: Option<&Schema>, path: &mut String, out: &mut Vec<String>, root: bool) {
    if let Some(s) = s.filter(|s| s.preserve_unknown_fields) {
        return keep(x, s, path, out, root);
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                out.extend(map.keys().map(|k| join(path, k)));
                map.clear();
                return;
            };
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if s.embedded_resource && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let sub = s.properties.get(&k).or(s.additional.as_deref());
                match sub {
                    Some(sub) => {
                        let mut p = join(path, &k);
                        if let Some(v) = map.get_mut(&k) {
                            walk(v, Some(sub), &mut p, out, false);
                        }
                    }
                    None => {
                        if !META_FIELDS.contains(&k.as_str()) || !root {
                            out.push(join(path, &k));
                        }
                        map.remove(&k);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter_mut().enumerate() {
                let mut p = format!("{path}[{i}]");
                walk(v, item_schema, &mut p, out, false);
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are pruned
/// by their own schemas.
fn keep(x: &mut Value, s: &Schema, path: &mut String, out: &mut Vec<String>, root: bool) {
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if (s.embedded_resource || root) && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(sub) = s.properties.get(k).or(s.additional.as_deref()) {
                    let mut p = join(path, k);
                    walk(v, Some(sub), &mut p, out, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, v) in items.iter_mut().enumerate() {
                    let mut p = format!("{path}[{i}]");
                    if item_schema.preserve_unknown_fields {
                        keep(v, item_schema, &mut p, out, false);
                    } else {
                        walk(v, Some(item_schema), &mut p, out, false);
                    }
                }
            }
        }
        _ => {}
    }
}

fn non_nullable_null(v: &Value, s: Option<&Schema>) -> bool {
    v.is_null() && s.is_some_and(|s| !s.nullable)
}

/// Fills absent (or disallowed-`null`) fields that have a `default`, then removes the `null`s
/// the schema neither allows nor defaults, as the API server does before validation.
pub fn default(x: &mut Value, s: &Schema) {
    apply_defaults(x, s);
    prune_nulls(x, s);
}

fn apply_defaults(x: &mut Value, s: &Schema) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                let missing = match map.get(k) {
                    None => true,
                    Some(v) => non_nullable_null(v, Some(prop)),
                };
                if missing {
                    map.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    apply_defaults(v, prop);
                } else if let Some(a) = s.additional.as_deref() {
                    if let (true, Some(d)) = (non_nullable_null(v, Some(a)), &a.default) {
                        *v = d.clone();
                    }
                    apply_defaults(v, a);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for v in items.iter_mut() {
                    if let (true, Some(d)) = (
                        non_nullable_null(v, Some(item_schema)),
                        &item_schema.default,
                    ) {
                        *v = d.clone();
                    }
                    apply_defaults(v, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn prune_nulls(x: &mut Value, s: &Schema) {
    match x {
        Value::Object(map) => {
            let drop: Vec<String> = map
                .iter()
                .filter(|(k, v)| {
                    let sub = s.properties.get(*k).or(s.additional.as_deref());
                    non_nullable_null(v, sub) && sub.is_some_and(|p| p.default.is_none())
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in drop {
                map.remove(&k);
            }
            for (k, v) in map.iter_mut() {
                if let Some(sub) = s.properties.get(k).or(s.additional.as_deref()) {
                    prune_nulls(v, sub);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for v in items.iter_mut() {
                    prune_nulls(v, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer", "default": 1},
                    "mode": {"type": "string", "default": "fast"},
                    "note": {"type": "string"},
                    "ports": {"type": "array", "items": {"type": "object", "properties": {
                        "port": {"type": "integer"},
                        "protocol": {"type": "string", "default": "TCP"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                              "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                 "properties": {"spec": {"type": "object"}}}
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        }))
    }

    #[test]
    fn prunes_unknown_fields_and_reports_their_paths() {
        let mut obj = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"replicas": 2, "colour": "red",
                     "ports": [{"port": 80, "extra": true}],
                     "labels": {"x": "y"},
                     "extra": {"anything": {"deep": 1}, "known": {"a": "x", "b": "y"}},
                     "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "junk": 1}},
            "top": 1
        });
        let unknown = prune(&mut obj, &schema());
        assert_eq!(
            unknown,
            vec![
                "metadata.bogus",
                "spec.colour",
                "spec.extra.known.b",
                "spec.ports[0].extra",
                "spec.template.junk",
                "top"
            ]
        );
        assert_eq!(obj["spec"]["extra"]["anything"]["deep"], 1);
        assert_eq!(obj["spec"]["template"]["metadata"]["name"], "p");
        assert_eq!(obj["spec"]["labels"]["x"], "y");
        assert!(obj["metadata"].get("bogus").is_none());
        assert_eq!(obj["apiVersion"], "example.com/v1");
    }

    #[test]
    fn defaults_fill_missing_and_null_fields() {
        let mut obj = json!({"spec": {"mode": null, "note": null, "ports": [{"port": 80}]}});
        default(&mut obj, &schema());
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 1, "mode": "fast",
                             "ports": [{"port": 80, "protocol": "TCP"}]}})
        );
        // A missing parent is not created: defaults apply where the object has the parent.
        let mut bare = json!({"status": {}});
        default(&mut bare, &schema());
        assert_eq!(bare, json!({"status": {}}));
    }
}
