//! A CustomResourceDefinition version's `openAPIV3Schema`, read into the structural form the
//! API server validates, defaults and prunes custom resources with (apiextensions-apiserver's
//! `structuralschema.Structural`). Reading is lenient: what a schema gets wrong is reported by
//! the CRD's validation (`definition.rs`), which refuses the CRD before it is ever served.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One node of a structural schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `object`, `array`, `string`, `integer`, `number`, `boolean` (empty: any).
    pub ty: String,
    pub format: String,
    pub nullable: bool,
    pub properties: BTreeMap<String, Schema>,
    /// `additionalProperties`: a schema for every other key (maps).
    pub additional: Option<Box<Schema>>,
    /// `additionalProperties: false` (keys beyond `properties` are refused).
    pub no_additional: bool,
    pub items: Option<Box<Schema>>,
    pub required: Vec<String>,
    pub enumeration: Option<Vec<Value>>,
    pub pattern: Option<Pattern>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub default: Option<Value>,
    pub preserve_unknown_fields: bool,
    pub int_or_string: bool,
    pub embedded_resource: bool,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`.
    pub list_type: String,
    pub list_map_keys: Vec<String>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
}

/// A compiled `pattern` and its source (kept for messages).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

impl Schema {
    /// Reads a schema; parts that do not parse are left out (see the module comment).
    pub fn from_json(v: &Value) -> Schema {
        let Some(m) = v.as_object() else {
            return Schema::default();
        };
        let str_of = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let bool_of = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
        let f64_of = |k: &str| m.get(k).and_then(Value::as_f64);
        let u64_of = |k: &str| m.get(k).and_then(Value::as_u64);
        let list = |k: &str| -> Vec<Schema> {
            m.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Schema::from_json).collect())
                .unwrap_or_default()
        };
        let properties = m
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), Schema::from_json(v)))
                    .collect()
            })
            .unwrap_or_default();
        let (additional, no_additional) = match m.get("additionalProperties") {
            Some(Value::Object(a)) => (
                Some(Box::new(Schema::from_json(&Value::Object(a.clone())))),
                false,
            ),
            Some(Value::Bool(false)) => (None, true),
            // `true`: any value, kept as it is.
            Some(Value::Bool(true)) => (
                Some(Box::new(Schema {
                    preserve_unknown_fields: true,
                    ..Schema::default()
                })),
                false,
            ),
            _ => (None, false),
        };
        let pattern = m
            .get("pattern")
            .and_then(Value::as_str)
            .and_then(|p| compile_pattern(p).ok());
        Schema {
            ty: str_of("type"),
            format: str_of("format"),
            nullable: bool_of("nullable"),
            properties,
            additional,
            no_additional,
            items: m
                .get("items")
                .filter(|i| i.is_object())
                .map(|i| Box::new(Schema::from_json(i))),
            required: strings(m.get("required")),
            enumeration: m.get("enum").and_then(Value::as_array).cloned(),
            pattern,
            minimum: f64_of("minimum"),
            maximum: f64_of("maximum"),
            exclusive_minimum: bool_of("exclusiveMinimum"),
            exclusive_maximum: bool_of("exclusiveMaximum"),
            multiple_of: f64_of("multipleOf"),
            min_length: u64_of("minLength"),
            max_length: u64_of("maxLength"),
            min_items: u64_of("minItems"),
            max_items: u64_of("maxItems"),
            unique_items: bool_of("uniqueItems"),
            min_properties: u64_of("minProperties"),
            max_properties: u64_of("maxProperties"),
            default: m.get("default").cloned(),
            preserve_unknown_fields: bool_of("x-kubernetes-preserve-unknown-fields"),
            int_or_string: bool_of("x-kubernetes-int-or-string"),
            embedded_resource: bool_of("x-kubernetes-embedded-resource"),
            list_type: str_of("x-kubernetes-list-type"),
            list_map_keys: strings(m.get("x-kubernetes-list-map-keys")),
            all_of: list("allOf"),
            any_of: list("anyOf"),
            one_of: list("oneOf"),
            not: m
                .get("not")
                .filter(|n| n.is_object())
                .map(|n| Box::new(Schema::from_json(n))),
        }
    }

    /// The schema of a child key of an object this schema describes.
    pub fn child(&self, key: &str) -> Option<&Schema> {
        self.properties.get(key).or(self.additional.as_deref())
    }
}

/// Compiles a `pattern` as the API server does (Go's RE2 syntax, which Rust's `regex` shares).
pub fn compile_pattern(p: &str) -> Result<Pattern, String> {
    regex::Regex::new(p)
        .map(|regex| Pattern {
            source: p.to_string(),
            regex,
        })
        .map_err(|e| e.to_string())
}

/// The strings of a JSON list (other items skipped; not a list: none).
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON type name of a value as the schema validator reports it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a JSON number holds an integer (`3` and `3.0` both do, as for the API server).
pub fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// An empty JSON object.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_structural_parts() {
        let s = Schema::from_json(&json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                    "port": {"x-kubernetes-int-or-string": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}
            }
        }));
        assert_eq!(s.ty, "object");
        assert_eq!(s.required, vec!["spec"]);
        let spec = &s.properties["spec"];
        assert_eq!(spec.properties["replicas"].minimum, Some(0.0));
        assert_eq!(spec.properties["replicas"].default, Some(json!(1)));
        assert!(spec.properties["name"].pattern.is_some());
        assert!(spec.properties["port"].int_or_string);
        assert_eq!(spec.properties["labels"].child("x").unwrap().ty, "string");
        assert!(spec.properties["any"].preserve_unknown_fields);
        assert_eq!(type_name(&json!(1.5)), "number");
        assert!(is_integer(&json!(3.0)));
    }
}
