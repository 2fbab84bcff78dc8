//! What a CustomResourceDefinition may ask that this server accepts but does not enforce,
//! reported as warnings on the CRD's writes.

use serde_json::Value;

/// Warnings for what a CRD asks that this server does not enforce: CEL rules
/// (`x-kubernetes-validations`) are accepted, so CRDs that carry them install, but custom
/// resources are not checked against them; the client is told where they are.
pub fn warnings(crd: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.contains_key("x-kubernetes-validations") {
                    out.push(if path.is_empty() {
                        "<root>".into()
                    } else {
                        path.to_string()
                    });
                }
                for (k, child) in m {
                    if k != "x-kubernetes-validations" {
                        walk(child, &format!("{path}.{k}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    for (i, version) in versions.into_iter().flatten().enumerate() {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let mut paths = Vec::new();
            walk(schema, "", &mut paths);
            for p in paths {
                out.push(format!(
                    "spec.versions[{i}].schema.openAPIV3Schema{}: x-kubernetes-validations (CEL) rules are not enforced by this server; custom resources are validated by the rest of the schema only",
                    if p == "<root>" { String::new() } else { p }
                ));
            }
        }
    }
    out
}
