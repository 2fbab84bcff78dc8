//! The served custom resources in the OpenAPI documents, so `kubectl explain`, client-side
//! validation and clients' schema discovery see them: each served version's `openAPIV3Schema`
//! under Kubernetes' name for it (`com.example.v1.Widget`), with `apiVersion`, `kind` and
//! `metadata` as the API server adds them, and its status and scale subresources' paths.

use std::sync::{Mutex, PoisonError};

use serde_json::{json, Value};

use super::registry::CustomResource;
use crate::api::openapi::{self, Body, Catalog, Gvk, KindDoc, SubDoc};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// The name Kubernetes gives a custom resource's schema: the group reversed, the version, the
/// kind (`widgets.example.com/v1` → `com.example.v1.Widget`).
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn schema_of(c: &CustomResource) -> Value {
    let mut schema = c
        .openapi_schema
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(m) = schema.as_object_mut() {
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
            );
            p.insert(
                "kind".into(),
                json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
            );
            p.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("{}{OBJECT_META}", openapi::schemas::V3_PREFIX)}],
                       "description": "Standard object's metadata."}),
            );
        }
        m.entry("type").or_insert_with(|| json!("object"));
    }
    schema
}

/// The catalog of every served custom resource version.
pub fn catalog(served: &[std::sync::Arc<CustomResource>]) -> Catalog {
    let mut out = Catalog::default();
    for c in served {
        let d = c.def;
        let name = schema_name(d.group, d.version, d.kind);
        let mut subresources = Vec::new();
        if d.has_status() {
            subresources.push(SubDoc::Status);
        }
        if c.scale.is_some() {
            subresources.push(SubDoc::Scale(Body {
                gvk: Gvk::new("autoscaling", "v1", "Scale"),
                schema: SCALE.into(),
            }));
        }
        out.schemas.insert(name.clone(), schema_of(c));
        out.kinds.push(KindDoc {
            gvk: Gvk::new(d.group, d.version, d.kind),
            plural: d.plural.into(),
            namespaced: d.namespaced,
            list_schema: format!("{name}List"),
            schema: name,
            subresources,
            strategic_merge: false,
        });
    }
    out
}

/// Hands the served custom resources to the OpenAPI documents when they changed.
pub fn publish(served: &[std::sync::Arc<CustomResource>]) {
    static LAST: Mutex<Option<String>> = Mutex::new(None);
    let catalog = catalog(served);
    let fingerprint = format!("{catalog:?}");
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if last.as_deref() == Some(fingerprint.as_str()) {
        return;
    }
    *last = Some(fingerprint);
    openapi::set_extra(catalog);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_reverse_the_group() {
        assert_eq!(
            schema_name("py.example.com", "v1", "Widget"),
            "com.example.py.v1.Widget"
        );
        assert_eq!(
            schema_name("kpt.dev", "v1alpha1", "ResourceGroup"),
            "dev.kpt.v1alpha1.ResourceGroup"
        );
    }
}
