//! `/openapi/v3` (an index of group-versions with a `?hash=` each), `/openapi/v3/api/v1` and
//! `/openapi/v3/apis/G/V` (OpenAPI 3.0 documents), and `/openapi/v2` (one Swagger 2.0 document,
//! as JSON or as gnostic protobuf), with real schemas for every served kind.
//!
//! [`build`] turns a [`Catalog`] (kinds and their schemas) into all documents at once; the
//! served ones are built lazily from the built-in catalog plus whatever [`set_extra`] was given
//! (custom resources, later) and rebuilt after it changes. Every response carries an `ETag`
//! (a hash of its bytes) and answers `If-None-Match` with 304.

pub mod decorate;
pub mod paths;
pub mod render;
pub mod schemas;
pub mod v2_proto;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::status::{ApiError, ApiResult};
pub use schemas::{Body, Catalog, Gvk, KindDoc, SubDoc};

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("no generated schema for {0:?}")]
    MissingType(Gvk),
    #[error("serializing an OpenAPI document: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Proto(#[from] v2_proto::ConvertError),
    #[error("{0}")]
    Build(String),
}

/// One servable body with its (quoted) entity tag.
#[derive(Debug, Clone)]
pub struct Served {
    pub body: Bytes,
    pub etag: String,
    /// The hash inside the quotes: the `?hash=` of a v3 document.
    pub hash: String,
}

impl Served {
    fn new(body: Vec<u8>) -> Served {
        let digest = Sha256::digest(&body);
        let hash: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        Served {
            body: body.into(),
            etag: format!("\"{hash}\""),
            hash,
        }
    }
}

/// Every document, serialized.
#[derive(Debug)]
pub struct Documents {
    pub v3_index: Served,
    /// By `api/v1`, `apis/G/V`.
    pub v3: BTreeMap<String, Served>,
    pub v2_json: Served,
    pub v2_proto: Served,
}

/// `api/v1` or `apis/G/V`: the part after `/openapi/v3/`.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn info() -> Value {
    json!({
        "title": "Skiff",
        "version": format!("v1.{}.0+skiff-{}", super::KUBERNETES_MINOR, env!("CARGO_PKG_VERSION")),
    })
}

/// Completes a catalog: each kind's List schema (if missing) and the
/// `x-kubernetes-group-version-kind` of kinds, lists, and the per-group meta kinds.
fn complete(catalog: &Catalog) -> schemas::Schemas {
    let mut all = catalog.schemas.clone();
    for k in &catalog.kinds {
        if !all.contains_key(&k.list_schema) {
            let list = schemas::list_schema(&all, &k.schema, &k.gvk.kind);
            all.insert(k.list_schema.clone(), list);
        }
        schemas::add_gvk(&mut all, &k.schema, &k.gvk);
        let list_gvk = Gvk::new(&k.gvk.group, &k.gvk.version, &format!("{}List", k.gvk.kind));
        schemas::add_gvk(&mut all, &k.list_schema, &list_gvk);
        for (name, kind) in [
            (schemas::DELETE_OPTIONS, "DeleteOptions"),
            (schemas::WATCH_EVENT, "WatchEvent"),
        ] {
            schemas::add_gvk(
                &mut all,
                name,
                &Gvk::new(&k.gvk.group, &k.gvk.version, kind),
            );
        }
    }
    all
}

/// Schemas every v3 document carries besides what its paths reference.
const ALWAYS: &[&str] = &[
    schemas::STATUS,
    schemas::DELETE_OPTIONS,
    schemas::WATCH_EVENT,
    schemas::PATCH,
    schemas::LIST_META,
];

/// All documents of a catalog.
pub fn build(catalog: &Catalog) -> Result<Documents, OpenApiError> {
    let all = complete(catalog);
    let mut gvs: Vec<(String, String)> = Vec::new();
    for k in &catalog.kinds {
        let gv = (k.gvk.group.clone(), k.gvk.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    let mut v3 = BTreeMap::new();
    let mut index = Map::new();
    let mut every_path = Vec::new();
    for (group, version) in &gvs {
        let kinds = catalog
            .kinds
            .iter()
            .filter(|k| &k.gvk.group == group && &k.gvk.version == version);
        let paths: Vec<paths::PathDoc> = kinds.flat_map(paths::for_kind).collect();
        let rendered = render::render_v3(&paths);
        let mut roots = Vec::new();
        schemas::refs_in(&Value::Object(rendered.clone()), &mut roots);
        roots.extend(ALWAYS.iter().map(|s| s.to_string()));
        let mut components = schemas::closure(&all, roots);
        // The meta kinds name only this group-version (and core), so that a document's hash
        // changes with its own group-version alone.
        for name in [schemas::DELETE_OPTIONS, schemas::WATCH_EVENT] {
            if let Some(Value::Array(gvks)) = components
                .get_mut(name)
                .and_then(|s| s.get_mut("x-kubernetes-group-version-kind"))
            {
                gvks.retain(|g| {
                    (g["group"] == "" && g["version"] == "v1")
                        || (g["group"] == group.as_str() && g["version"] == version.as_str())
                });
            }
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": info(),
            "paths": rendered,
            "components": {
                "schemas": components,
                "securitySchemes": {"BearerToken": {"type": "apiKey", "in": "header", "name": "authorization", "description": "Bearer Token authentication"}},
            },
            "security": [{"BearerToken": []}],
        });
        let served = Served::new(serde_json::to_vec(&doc)?);
        let key = gv_key(group, version);
        index.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", served.hash)}),
        );
        v3.insert(key, served);
        every_path.extend(paths);
    }
    let v2 = json!({
        "swagger": "2.0",
        "info": info(),
        "paths": render::render_v2(&every_path),
        "definitions": schemas::v2_definitions(&all),
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "in": "header", "name": "authorization", "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    });
    Ok(Documents {
        v3_index: Served::new(serde_json::to_vec(&json!({"paths": index}))?),
        v3,
        v2_proto: Served::new(v2_proto::encode(&v2)?),
        v2_json: Served::new(serde_json::to_vec(&v2)?),
    })
}

/// The served documents, built on first use and after [`set_extra`].
struct Cache {
    docs: RwLock<Option<Arc<Documents>>>,
    extra: RwLock<Arc<Catalog>>,
    /// Bumped by [`set_extra`]; a build that started before stores nothing.
    generation: Mutex<u64>,
    building: Mutex<()>,
}

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Cache {
        docs: RwLock::new(None),
        extra: RwLock::new(Arc::new(Catalog::default())),
        generation: Mutex::new(0),
        building: Mutex::new(()),
    })
}

fn builtin() -> Result<&'static Catalog, OpenApiError> {
    static BUILTIN: OnceLock<Result<Catalog, String>> = OnceLock::new();
    BUILTIN
        .get_or_init(|| schemas::builtin().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| OpenApiError::Build(e.clone()))
}

/// Replaces the kinds served besides the built-in ones (custom resources): their `KindDoc`s and
/// their schemas in OpenAPI 3 form (`$ref`s to `#/components/schemas/NAME`; they may refer to the
/// built-in ones, e.g. `ObjectMeta`). List schemas and `x-kubernetes-group-version-kind`s are
/// added by [`build`]. The documents are rebuilt on their next request, and only the changed
/// group-versions' hashes change.
pub fn set_extra(extra: Catalog) {
    let c = cache();
    let mut generation = c.generation.lock().unwrap_or_else(PoisonError::into_inner);
    *c.extra.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(extra);
    *c.docs.write().unwrap_or_else(PoisonError::into_inner) = None;
    *generation += 1;
}

/// The current documents (building them if needed; blocking).
pub fn documents() -> Result<Arc<Documents>, OpenApiError> {
    let c = cache();
    if let Some(d) = c
        .docs
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Ok(d.clone());
    }
    let _building = c.building.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(d) = c
        .docs
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Ok(d.clone());
    }
    let generation = *c.generation.lock().unwrap_or_else(PoisonError::into_inner);
    let extra = c
        .extra
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut catalog = builtin()?.clone();
    catalog.extend(&extra);
    let docs = Arc::new(build(&catalog)?);
    let current = c.generation.lock().unwrap_or_else(PoisonError::into_inner);
    if *current == generation {
        *c.docs.write().unwrap_or_else(PoisonError::into_inner) = Some(docs.clone());
    }
    Ok(docs)
}

async fn served_documents() -> ApiResult<Arc<Documents>> {
    let cached = cache()
        .docs
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(d) = cached {
        return Ok(d);
    }
    tokio::task::spawn_blocking(documents)
        .await
        .map_err(|e| ApiError::internal(format!("building the OpenAPI documents: {e}")))?
        .map_err(|e| ApiError::internal(format!("building the OpenAPI documents: {e}")))
}

/// Whether `If-None-Match` names `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn respond(
    headers: &HeaderMap,
    served: &Served,
    content_type: &str,
    extra: &[(header::HeaderName, &str)],
) -> Response {
    let mut resp = if not_modified(headers, &served.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = served.body.clone().into_response();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&served.etag) {
        h.insert(header::ETAG, v);
    }
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name.clone(), v);
        }
    }
    resp
}

/// The formats a document is offered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

/// The protobuf media type of `/openapi/v2` as kube-apiserver answers it, and the spelling
/// client-go asks for.
const PROTO_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
const PROTO_V2_AT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const V2_OFFERS: &[(&str, Format)] = &[
    ("application/json", Format::Json),
    (PROTO_V2_AT, Format::Protobuf),
    (PROTO_V2, Format::Protobuf),
];
const V3_OFFERS: &[(&str, Format)] = &[("application/json", Format::Json)];

/// The offered format the `Accept` header prefers (by q, then specificity, then order);
/// `None` if it accepts none of them.
fn negotiate(accept: Option<&str>, offers: &[(&str, Format)]) -> Option<Format> {
    let accept = accept
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("*/*");
    let mut clauses: Vec<(f32, u8, usize, &str, &str)> = Vec::new();
    for (i, clause) in accept.split(',').enumerate() {
        let mut parts = clause.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
        if q <= 0.0 {
            continue;
        }
        let specificity = u8::from(ty != "*") + u8::from(sub != "*");
        clauses.push((q, specificity, i, ty, sub));
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    clauses.iter().find_map(|(_, _, _, ty, sub)| {
        offers.iter().find_map(|(offer, format)| {
            let (oty, osub) = offer.split_once('/').unwrap_or((offer, ""));
            ((*ty == "*" || *ty == oty) && (*sub == "*" || *sub == osub)).then_some(*format)
        })
    })
}

fn not_acceptable(offers: &[(&str, Format)]) -> ApiError {
    let types: Vec<&str> = offers.iter().map(|(t, _)| *t).collect();
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: {}",
            types.join(", ")
        ),
    )
}

/// `GET /openapi/v2`: JSON, or gnostic protobuf when asked.
pub async fn v2(headers: HeaderMap) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = negotiate(accept, V2_OFFERS).ok_or_else(|| not_acceptable(V2_OFFERS))?;
    let docs = served_documents().await?;
    let vary = [(header::VARY, "Accept")];
    Ok(match format {
        Format::Json => respond(&headers, &docs.v2_json, "application/json", &vary),
        Format::Protobuf => respond(&headers, &docs.v2_proto, PROTO_V2, &vary),
    })
}

/// `GET /openapi/v3`: the group-versions with the URL (and hash) of each document.
pub async fn index(headers: HeaderMap) -> ApiResult<Response> {
    let docs = served_documents().await?;
    Ok(respond(&headers, &docs.v3_index, "application/json", &[]))
}

/// `GET /openapi/v3/api/v1`, `/openapi/v3/apis/G/V`. With a `?hash=` of an older document it
/// redirects to the current one; with the current hash the answer may be cached for good.
pub async fn group_version(
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    negotiate(accept, V3_OFFERS).ok_or_else(|| not_acceptable(V3_OFFERS))?;
    let docs = served_documents().await?;
    let served = docs
        .v3
        .get(rest.trim_end_matches('/'))
        .ok_or_else(|| not_found(&rest))?;
    let hash = query.as_deref().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find_map(|(k, v)| (k == "hash").then_some(v))
    });
    match hash {
        Some(h) if h != served.hash => {
            let location = format!(
                "/openapi/v3/{}?hash={}",
                rest.trim_end_matches('/'),
                served.hash
            );
            let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        Some(_) => Ok(respond(
            &headers,
            served,
            "application/json",
            &[
                (header::VARY, "Accept"),
                (header::CACHE_CONTROL, "public, immutable"),
            ],
        )),
        None => Ok(respond(&headers, served, "application/json", &[])),
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("the server could not find the requested resource (OpenAPI document {what:?})"),
    )
}

#[cfg(test)]
mod tests;
