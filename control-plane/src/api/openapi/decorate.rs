//! Decorations of the generated schemas with what kube-apiserver adds to its own: the patch
//! strategies, merge keys and list types of the strategic merge patch tables the server applies
//! (`patch/strategic_schema.rs`), atomic struct types, and the `IntOrString` and `Quantity`
//! forms.

use serde_json::{json, Map, Value};

use super::super::patch::strategic_schema::{ListStrategy, TypeSchema};
use super::schemas::{Schemas, INT_OR_STRING, QUANTITY, V3_PREFIX};

/// Structs Kubernetes marks `+structType=atomic` (`x-kubernetes-map-type: atomic`): a change
/// replaces them whole.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
];

/// The forms kube-apiserver gives a few types that k8s-openapi describes otherwise.
pub fn kubernetes_forms(schemas: &mut Schemas) {
    if let Some(Value::Object(s)) = schemas.get_mut(INT_OR_STRING) {
        s.insert("format".into(), "int-or-string".into());
        s.insert(
            "oneOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if let Some(Value::Object(s)) = schemas.get_mut(QUANTITY) {
        // A quantity takes numbers and strings, but is no int-or-string.
        s.remove("x-kubernetes-int-or-string");
        s.insert(
            "oneOf".into(),
            json!([{"type": "string"}, {"type": "number"}]),
        );
    }
    // Any JSON value (a CRD schema's `default`, `example`, `enum`): untyped, as Kubernetes has it.
    if let Some(Value::Object(s)) =
        schemas.get_mut("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON")
    {
        s.remove("type");
    }
    for name in ATOMIC_STRUCTS {
        if let Some(Value::Object(s)) = schemas.get_mut(*name) {
            s.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
}

/// The schema name a property refers to: `{"$ref"}`, `{"allOf": [{"$ref"}]}`.
fn ref_name(schema: &Value) -> Option<&str> {
    schema.as_object().and_then(map_ref)
}

fn map_ref(schema: &Map<String, Value>) -> Option<&str> {
    let r = match schema.get("$ref") {
        Some(r) => r,
        None => schema.get("allOf")?.get(0)?.get("$ref")?,
    };
    r.as_str()?.strip_prefix(V3_PREFIX)
}

/// Writes the strategic-merge tables' knowledge into the schemas: on each list field the
/// patch strategy and merge key (`x-kubernetes-patch-*`) and the list type
/// (`x-kubernetes-list-*`), following the tables' nested types through the schemas' `$ref`s.
/// Returns the table fields the schema lacks (a unit test keeps this empty).
pub fn decorate(
    schemas: &mut Schemas,
    name: &str,
    table: &TypeSchema,
    depth: usize,
) -> Vec<String> {
    let mut missing = Vec::new();
    if depth > 8 {
        return missing;
    }
    for (field, fs) in table.fields {
        let Some(prop) = schemas
            .get_mut(name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
            .and_then(Value::as_object_mut)
        else {
            missing.push(format!("{name}.{field}"));
            continue;
        };
        let is_list = prop.get("type").and_then(Value::as_str) == Some("array");
        if is_list {
            let ext: &[(&str, Value)] = match fs.list {
                ListStrategy::MergeByKey(key) => &[
                    ("x-kubernetes-patch-strategy", json!("merge")),
                    ("x-kubernetes-patch-merge-key", json!(key)),
                    ("x-kubernetes-list-type", json!("map")),
                    ("x-kubernetes-list-map-keys", json!([key])),
                ],
                ListStrategy::SetMerge => &[
                    ("x-kubernetes-patch-strategy", json!("merge")),
                    ("x-kubernetes-list-type", json!("set")),
                ],
                ListStrategy::Atomic => &[("x-kubernetes-list-type", json!("atomic"))],
            };
            for (k, v) in ext {
                prop.insert((*k).into(), v.clone());
            }
        }
        let target = if is_list {
            prop.get("items").and_then(ref_name)
        } else {
            map_ref(prop)
        }
        .map(str::to_string);
        if let (Some(child), Some(target)) = (fs.child, target) {
            missing.extend(decorate(schemas, &target, child, depth + 1));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::super::super::patch::strategic_schema::schema_for_kind;
    use super::super::super::resources::ALSO_SERVED;
    use super::super::schemas::{builtin, Catalog, KindDoc};
    use super::*;

    fn catalog() -> Catalog {
        builtin().expect("the built-in catalog")
    }

    #[test]
    fn merge_keys_and_list_types_come_from_the_strategic_tables() {
        let c = catalog();
        let containers = &c.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], json!("name"));
        assert_eq!(containers["x-kubernetes-patch-strategy"], json!("merge"));
        assert_eq!(containers["x-kubernetes-list-type"], json!("map"));
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let ports = &c.schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-patch-merge-key"],
            json!("containerPort")
        );
        let finalizers = &c.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
            ["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-list-type"], json!("set"));
        let tolerations = &c.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["tolerations"];
        assert_eq!(tolerations["x-kubernetes-list-type"], json!("atomic"));
        let conditions =
            &c.schemas["io.k8s.api.apps.v1.DeploymentStatus"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-patch-merge-key"], json!("type"));
        assert_eq!(
            c.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]
                ["x-kubernetes-map-type"],
            json!("atomic")
        );
        assert_eq!(
            c.schemas[INT_OR_STRING]["x-kubernetes-int-or-string"],
            json!(true)
        );
    }

    #[test]
    fn every_strategic_table_field_exists_in_the_schemas() {
        let mut c = catalog();
        let mut missing = Vec::new();
        // Kinds served converted (autoscaling/v1 HPAs) are patched as their stored version.
        let converted = |k: &KindDoc| {
            ALSO_SERVED.iter().any(|r| {
                r.group == k.gvk.group && r.version == k.gvk.version && r.kind == k.gvk.kind
            })
        };
        for k in c.kinds.clone().iter().filter(|k| !converted(k)) {
            if let Some(table) = schema_for_kind(&k.gvk.kind) {
                missing.extend(decorate(&mut c.schemas, &k.schema, table, 0));
            }
        }
        assert!(
            missing.is_empty(),
            "table fields not in the schemas: {missing:?}"
        );
    }
}
