//! A minimal OpenAPI v3 document: enough for kubectl to see that every kind accepts
//! `fieldValidation` (so `apply`/`create -f`/`edit` validate server-side). Schemas are empty.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::resources::{self, ResourceDef};
use super::status::{ApiError, ApiResult};

/// Changes whenever the served document can change, so kubectl's cache of it stays right.
const DOC_HASH: &str = concat!("skiff-", env!("CARGO_PKG_VERSION"));

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub async fn index() -> Response {
    let mut paths = Map::new();
    for (group, version) in resources::group_versions() {
        let p = gv_path(group, version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={DOC_HASH}")}),
        );
    }
    axum::Json(json!({"paths": paths})).into_response()
}

fn operation(r: &ResourceDef, action: &str, with_validation: bool) -> Value {
    let mut params = vec![json!({"name": "dryRun", "in": "query", "schema": {"type": "string"}})];
    if with_validation {
        params.push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
        params.push(json!({"name": "fieldManager", "in": "query", "schema": {"type": "string"}}));
    }
    json!({
        "operationId": format!("{action}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
    })
}

pub async fn group_version(Path(rest): Path<String>) -> ApiResult<Response> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return Err(not_found(&rest)),
    };
    if resources::resources_in(group, version).next().is_none() {
        return Err(not_found(&rest));
    }
    let base = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for r in resources::resources_in(group, version) {
        let (collection, item) = if r.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", r.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            )
        } else {
            (
                format!("{base}/{}", r.plural),
                format!("{base}/{}/{{name}}", r.plural),
            )
        };
        paths.insert(
            collection,
            json!({"get": operation(r, "list", false), "post": operation(r, "post", true)}),
        );
        paths.insert(
            item,
            json!({
                "get": operation(r, "get", false),
                "put": operation(r, "put", true),
                "patch": operation(r, "patch", true),
                "delete": operation(r, "delete", false),
            }),
        );
    }
    Ok(axum::Json(json!({
        "openapi": "3.0.0",
        "info": {"title": "Skiff", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
    .into_response())
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "NotFound",
        format!("the server could not find the requested resource (OpenAPI document {what:?})"),
    )
}
