//! What server-side apply needs to know about a value's type: how a list there merges (by
//! keys, as a set, or whole) and whether a map is owned whole. Built-in kinds take it from the
//! strategic merge tables (their Go types' tags); custom resources from their CRD's structural
//! schema (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`).

use serde_json::Value;

use crate::api::crd::schema::Schema;
use crate::api::patch::strategic_schema::{FieldSchema, ListStrategy, TypeSchema};

/// Where type information comes from.
#[derive(Clone, Copy, Debug)]
pub enum Types<'s> {
    /// A built-in kind: the schema of the value (of a list's elements, at a list).
    Builtin(Option<&'static TypeSchema>),
    /// A custom resource: the structural schema of the value itself.
    Custom(Option<&'s Schema>),
}

/// The key fields of a list merged by key.
#[derive(Clone, Copy, Debug)]
pub enum Keys<'s> {
    One(&'static str),
    Many(&'s [String]),
}

impl Keys<'_> {
    pub fn names(&self) -> Vec<&str> {
        match self {
            Keys::One(k) => vec![k],
            Keys::Many(ks) => ks.iter().map(String::as_str).collect(),
        }
    }
}

/// How a list merges.
#[derive(Clone, Copy, Debug)]
pub enum ListKind<'s> {
    Atomic,
    Set,
    Map(Keys<'s>),
}

/// A value's place in its kind's types.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'s> {
    pub types: Types<'s>,
    pub list: ListKind<'s>,
    /// A map or struct owned as a whole (a `LabelSelector`), a leaf for ownership.
    pub atomic: bool,
    /// A built-in kind's map-typed field (`labels`, `data`, ...).
    pub map_field: bool,
}

impl<'s> Shape<'s> {
    /// The root of a built-in kind's object.
    pub fn builtin(schema: Option<&'static TypeSchema>) -> Shape<'static> {
        Shape {
            types: Types::Builtin(schema),
            list: ListKind::Atomic,
            atomic: false,
            map_field: false,
        }
    }

    /// The root of a custom resource, by its version's structural schema.
    pub fn custom(schema: Option<&'s Schema>) -> Shape<'s> {
        Shape {
            types: Types::Custom(schema),
            list: ListKind::Atomic,
            atomic: false,
            map_field: false,
        }
    }

    /// The shape of field `name` of an object of this shape.
    pub fn field(&self, name: &str) -> Shape<'s> {
        match self.types {
            Types::Builtin(parent) => {
                let f = parent
                    .and_then(|s| s.field(name))
                    .copied()
                    .unwrap_or(FieldSchema::UNKNOWN);
                Shape {
                    types: Types::Builtin(f.child),
                    list: match f.list {
                        ListStrategy::Atomic => ListKind::Atomic,
                        ListStrategy::SetMerge => ListKind::Set,
                        ListStrategy::MergeByKey(k) => ListKind::Map(Keys::One(k)),
                    },
                    atomic: atomic_builtin_field(parent, name),
                    map_field: MAP_FIELDS.contains(&name),
                }
            }
            Types::Custom(parent) => {
                let sub = parent.and_then(|s| s.properties.get(name).or(s.additional.as_deref()));
                custom_shape(sub)
            }
        }
    }

    /// Whether a value of this shape is a map (string keys chosen by the user: labels,
    /// `data`, resource lists; a custom resource's `additionalProperties`), not a struct.
    pub fn is_map(&self) -> bool {
        match self.types {
            Types::Builtin(_) => self.map_field,
            Types::Custom(s) => {
                s.is_some_and(|s| s.additional.is_some() || s.preserve_unknown_fields)
            }
        }
    }

    /// The shape of an element of a list of this shape.
    pub fn element(&self) -> Shape<'s> {
        match self.types {
            Types::Builtin(elem) => Shape::builtin(elem),
            Types::Custom(list) => custom_shape(list.and_then(|s| s.items.as_deref())),
        }
    }
}

fn custom_shape(schema: Option<&Schema>) -> Shape<'_> {
    let list = match schema.map(|s| s.list_type.as_str()) {
        Some("set") => ListKind::Set,
        Some("map") => match schema {
            Some(s) if !s.list_map_keys.is_empty() => ListKind::Map(Keys::Many(&s.list_map_keys)),
            _ => ListKind::Atomic,
        },
        _ => ListKind::Atomic,
    };
    Shape {
        types: Types::Custom(schema),
        list,
        atomic: false,
        map_field: false,
    }
}

/// The built-in kinds' map-typed fields (Go `map[string]…`), by JSON name: owned as maps.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "parameters",
    "selector",
];

/// Fields Kubernetes owns as a whole (`x-kubernetes-map-type: atomic`): the label selectors
/// of workload specs.
fn atomic_builtin_field(parent: Option<&'static TypeSchema>, name: &str) -> bool {
    name == "selector"
        && parent
            .is_some_and(|p| p.field("template").is_some() || p.field("minAvailable").is_some())
}

/// Whether list element `item` has the same key values as `other`.
pub fn same_keys(keys: Keys, item: &Value, other: &Value) -> bool {
    keys.names().iter().all(|k| item.get(k) == other.get(k))
}

/// Merges an applied configuration into the live object as server-side apply does for a
/// custom resource: maps field by field (`null` removes), lists merged by key, as sets, or
/// replaced, as the schema says.
pub fn merge(live: &Value, config: &Value, shape: Shape) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !shape.atomic => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                let lv = l.get(k).unwrap_or(&Value::Null);
                out.insert(k.clone(), merge(lv, cv, shape.field(k)));
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match shape.list {
            ListKind::Atomic => config.clone(),
            ListKind::Set => {
                let mut out = l.clone();
                out.extend(c.iter().filter(|v| !l.contains(v)).cloned());
                Value::Array(out)
            }
            ListKind::Map(keys) => {
                let mut out = l.clone();
                for item in c {
                    match out.iter_mut().find(|o| same_keys(keys, o, item)) {
                        Some(existing) => *existing = merge(existing, item, shape.element()),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => config.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_lists_merge_as_their_schema_says() {
        let schema = crate::api::crd::schema::Schema::from_json(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["port", "protocol"],
                          "items": {"type": "object", "properties": {
                              "port": {"type": "integer"}, "protocol": {"type": "string"},
                              "name": {"type": "string"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}}}}}
        }));
        let shape = Shape::custom(Some(&schema));
        let live = json!({"spec": {
            "ports": [{"port": 80, "protocol": "TCP", "name": "a"}],
            "tags": ["x"], "args": ["1", "2"]}});
        let config = json!({"spec": {
            "ports": [{"port": 80, "protocol": "TCP", "name": "b"}, {"port": 80, "protocol": "UDP"}],
            "tags": ["y"], "args": ["3"]}});
        let merged = merge(&live, &config, shape);
        assert_eq!(
            merged["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "name": "b"}, {"port": 80, "protocol": "UDP"}])
        );
        assert_eq!(merged["spec"]["tags"], json!(["x", "y"]));
        assert_eq!(merged["spec"]["args"], json!(["3"]));
        let ports = shape.field("spec").field("ports");
        assert!(matches!(ports.list, ListKind::Map(Keys::Many(k)) if k.len() == 2));
    }
}
