//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): a stored CRD's versions are served at
//! once, through the same handlers, store and controllers as the built-in kinds.
//!
//! - `registry.rs`: the served custom resources (a snapshot swapped at every CRD change),
//!   consulted by `resources::find` & co. after the static table; `intern.rs` its
//!   `&'static ResourceDef`s;
//! - `definition.rs`: the CRD object's defaulting and validation (names, versions,
//!   subresources, printer columns, conversion); `structural.rs` the rules its schemas follow;
//! - `schema.rs`, `values.rs`, `formats.rs`, `coerce.rs`: structural schemas, validation of
//!   custom resources against them, pruning and defaulting;
//! - `admission.rs`: a custom resource's way from request body to store;
//! - `columns.rs`, `jsonpath.rs`: printer columns for `kubectl get`;
//! - `openapi.rs`: their schemas in `/openapi/v2` and `/openapi/v3` (`kubectl explain`).
//!
//! `controllers/crd.rs` writes CRD status and deletes a deleted CRD's objects.

pub mod admission;
pub mod coerce;
pub mod columns;
pub mod definition;
pub mod formats;
pub mod intern;
pub mod jsonpath;
pub mod openapi;
pub mod registry;
pub mod schema;
pub mod structural;
pub mod unenforced;
pub mod values;

use http::HeaderMap;

use super::resources::ResourceDef;
use super::status::{ApiError, ApiResult};

/// The API group of CustomResourceDefinitions.
pub const GROUP: &str = "apiextensions.k8s.io";
/// Holds a deleted CRD until its objects are gone (Kubernetes' name).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Whether `def` is CustomResourceDefinitions themselves.
pub fn is_crd(def: &ResourceDef) -> bool {
    def.group == GROUP && def.plural == "customresourcedefinitions"
}

/// Whether `def` is a custom resource (defined by a CRD).
pub fn is_custom(def: &ResourceDef) -> bool {
    !super::resources::is_builtin(def)
}

/// What a delete adds to an object's finalizers: a CRD waits for its objects to be deleted.
pub fn deletion_finalizers(def: &ResourceDef, finalizers: &mut Vec<String>) {
    if is_crd(def) && !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(CLEANUP_FINALIZER.to_string());
    }
}

/// Custom resources take JSON patches, merge patches and apply, not strategic merge patches
/// (they have no Go struct tags to merge by): 415, as Kubernetes answers. Their `scale`
/// subresource is a built-in Scale and takes all four.
pub fn check_patch_type(
    def: &ResourceDef,
    subresource: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if !is_custom(def) || subresource == Some("scale") {
        return Ok(());
    }
    let ct = super::request::content_type(headers);
    if ct == "application/strategic-merge-patch+json" {
        return Err(ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    Ok(())
}

/// A custom resource answer as the requested version shows it: objects (alone, in lists, in
/// watch events) carry that version's `apiVersion` whatever version stored them, lists the
/// CRD's list kind, and the version's schema defaults are applied, as Kubernetes applies them
/// to what it reads from storage.
pub async fn respond(
    def: &'static ResourceDef,
    resp: axum::response::Response,
    watching: bool,
) -> ApiResult<axum::response::Response> {
    let Some(cr) = registry::lookup(def) else {
        return Ok(resp);
    };
    let rewrite = move |v: serde_json::Value| shown(&cr, v);
    super::conversion::response_with(resp, watching, std::sync::Arc::new(rewrite)).await
}

fn shown(cr: &registry::CustomResource, mut v: serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let object = |mut o: Value| {
        if let Some(m) = o.as_object_mut() {
            m.insert("apiVersion".into(), json!(cr.def.api_version()));
        }
        if let Some(schema) = &cr.schema {
            coerce::default(&mut o, schema);
        }
        o
    };
    if kind == cr.def.kind {
        return object(v);
    }
    if kind == format!("{}List", cr.def.kind) || kind == cr.list_kind {
        v["apiVersion"] = json!(cr.def.api_version());
        v["kind"] = json!(cr.list_kind);
        if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                *item = object(std::mem::take(item));
            }
        }
        return v;
    }
    if v.get("type").is_some() && v.get("object").is_some() {
        if v["type"] == "BOOKMARK" {
            v["object"]["apiVersion"] = json!(cr.def.api_version());
        } else {
            let o = std::mem::take(&mut v["object"]);
            v["object"] = shown(cr, o);
        }
    }
    v
}

/// The scale subresource's paths of a custom resource.
pub fn scale_paths(def: &ResourceDef) -> Option<registry::ScalePaths> {
    if !is_custom(def) {
        return None;
    }
    registry::lookup(def).and_then(|c| c.scale.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_show_the_requested_version_with_its_defaults() {
        let _l = registry::TEST_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        registry::rebuild(&[json!({
            "metadata": {"name": "things.shown.example.com", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"group": "shown.example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing", "listKind": "ThingCollection"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v2", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 1}}}}}}}
                ]}
        })]);
        let v2 = registry::find("shown.example.com", "v2", "things").unwrap();
        let cr = registry::lookup(v2).unwrap();
        let stored = json!({"apiVersion": "shown.example.com/v1", "kind": "Thing",
            "metadata": {"name": "a"}, "spec": {}});
        let one = shown(&cr, stored.clone());
        assert_eq!(one["apiVersion"], "shown.example.com/v2");
        assert_eq!(one["spec"]["size"], 1);
        let list = shown(
            &cr,
            json!({"apiVersion": "shown.example.com/v1", "kind": "ThingList", "items": [stored.clone()]}),
        );
        assert_eq!(list["kind"], "ThingCollection");
        assert_eq!(list["items"][0]["apiVersion"], "shown.example.com/v2");
        let event = shown(&cr, json!({"type": "MODIFIED", "object": stored}));
        assert_eq!(event["object"]["spec"]["size"], 1);
        let status = json!({"kind": "Status", "code": 404});
        assert_eq!(shown(&cr, status.clone()), status);
        registry::rebuild(&[]);
    }
}
