//! Resource request handlers: dispatch by method, name and subresource.

mod delete;
pub mod internal;
mod pods;
mod proxy;
mod read;
mod scale;
mod watch;
mod write;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use super::path::{self, ResourcePath};
use super::request::Query;
use super::status::{ApiError, ApiResult};
use super::ApiState;
use crate::store::ObjectKey;

pub use delete::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
pub use internal::{DeleteOptions, Objects};
pub use write::Subresource;

pub async fn core(State(st): State<ApiState>, Path(rest): Path<String>, req: Request) -> Response {
    respond(dispatch(st, "", "v1", &rest, req).await)
}

pub async fn grouped(
    State(st): State<ApiState>,
    Path((group, version, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    respond(dispatch(st, &group, &version, &rest, req).await)
}

fn respond(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(|e| e.into_response())
}

/// What every handler gets about its request.
pub struct Ctx {
    pub st: ApiState,
    pub rp: ResourcePath,
    pub q: Query,
    pub headers: HeaderMap,
    /// The request is at a version the kind is converted from (`rp.def` is then the stored
    /// version's): bodies come in and answers go out through it.
    pub served: Option<&'static crate::api::conversion::Conversion>,
}

impl Ctx {
    /// A request body's object at the stored version.
    pub fn incoming(&self, obj: serde_json::Value) -> serde_json::Value {
        match self.served {
            Some(c) => (c.to_storage)(obj),
            None => obj,
        }
    }

    pub fn key(&self, name: &str) -> ObjectKey {
        ObjectKey::new(
            &self.rp.def.store_resource(),
            self.rp.namespace.as_deref().unwrap_or(""),
            name,
        )
    }

    pub fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or("")
    }

    pub fn not_found(&self) -> ApiError {
        ApiError::not_found(self.rp.def.plural, self.rp.def.group, self.name())
    }

    pub fn store_err(&self, e: crate::store::StoreError) -> ApiError {
        ApiError::from_store(e, self.rp.def.plural, self.rp.def.group, self.name())
    }

    /// The object the request names, or 404.
    pub async fn current(&self) -> ApiResult<serde_json::Value> {
        self.st
            .store
            .get(&self.key(self.name()))
            .await
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| self.not_found())
    }

    pub async fn exists(&self) -> ApiResult<bool> {
        Ok(self
            .st
            .store
            .get(&self.key(self.name()))
            .await
            .map_err(|e| self.store_err(e))?
            .is_some())
    }

    pub async fn body(&self, body: Body) -> ApiResult<bytes::Bytes> {
        let config = &self.st.config;
        super::request::read_body(
            &self.headers,
            body,
            config.max_body_bytes,
            config.limits.request_body_timeout,
        )
        .await
    }
}

async fn dispatch(
    st: ApiState,
    group: &str,
    version: &str,
    rest: &str,
    req: Request,
) -> ApiResult<Response> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if let Some(bad) = segments.iter().find(|s| **s == "." || **s == "..") {
        return Err(ApiError::bad_request(format!(
            "invalid path segment \"{bad}\": a namespace, resource or name may not be \".\" or \"..\""
        )));
    }
    let mut rp = path::parse(group, version, &segments)?;
    // A kind served at a second version: handled at its stored version, converted at the edges.
    let served = rp.def.conversion;
    if served.is_some() {
        rp.def = crate::api::resources::RESOURCES
            .iter()
            .find(|r| r.group == rp.def.group && r.plural == rp.def.plural)
            .ok_or_else(|| ApiError::internal("a converted kind has no stored version"))?;
    }
    let q = Query::parse(req.uri().query())?;
    let watching = q.is_watch();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    if parts.method == Method::PATCH {
        crate::api::crd::check_patch_type(rp.def, rp.subresource.as_deref(), &parts.headers)?;
    }
    // A CRD written: its resources are served (or gone) when the answer arrives.
    let crd_store =
        (crate::api::crd::is_crd(rp.def) && parts.method != Method::GET).then(|| st.store.clone());
    let def = rp.def;
    let ctx = Ctx {
        st,
        rp,
        q,
        headers: parts.headers,
        served,
    };
    let resp = route(ctx, parts.method, body, upgrade, &raw_query).await?;
    if let Some(store) = crd_store {
        if let Err(e) = crate::api::crd::registry::sync(&store).await {
            tracing::warn!(error = %e, "re-reading CustomResourceDefinitions failed");
        }
    }
    match served {
        Some(c) => crate::api::conversion::response(c, resp, watching).await,
        None if crate::api::crd::is_custom(def) => {
            crate::api::crd::respond(def, resp, watching).await
        }
        None => Ok(resp),
    }
}

async fn route(
    ctx: Ctx,
    method: Method,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    raw_query: &str,
) -> ApiResult<Response> {
    let has_name = ctx.rp.name.is_some();
    let sub = ctx.rp.subresource.clone();
    if let Some(s) = &sub {
        if !ctx.rp.def.has_subresource(s) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({}/{s} is not a subresource Skiff serves)",
                    ctx.rp.def.plural
                ),
            ));
        }
    }
    if ctx.rp.def.namespaced && ctx.rp.namespace.is_none() && method != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "{} are namespaced: use /namespaces/NAMESPACE/{} in the path",
            ctx.rp.def.plural, ctx.rp.def.plural
        )));
    }
    match (&method, has_name, sub.as_deref()) {
        (&Method::GET, false, None) if ctx.q.is_watch() => watch::watch(ctx, None).await,
        (&Method::GET, false, None) => read::list(ctx).await,
        (&Method::GET, true, None) if ctx.q.is_watch() => {
            let name = ctx.name().to_string();
            watch::watch(ctx, Some(name)).await
        }
        (&Method::GET, true, None | Some("status")) => read::get(ctx).await,
        (&Method::POST, false, None) => write::create(ctx, body).await,
        (&Method::PUT, true, None) => write::update(ctx, body, Subresource::Main).await,
        (&Method::PUT, true, Some("status")) => write::update(ctx, body, Subresource::Status).await,
        (&Method::PUT, true, Some("finalize")) => {
            write::update(ctx, body, Subresource::Finalize).await
        }
        (&Method::PATCH, true, None) => write::patch(ctx, body, Subresource::Main).await,
        (&Method::PATCH, true, Some("status")) => {
            write::patch(ctx, body, Subresource::Status).await
        }
        (&Method::DELETE, true, None) => delete::delete(ctx, body).await,
        (&Method::DELETE, false, None) => delete::delete_collection(ctx, body).await,
        (&Method::GET, true, Some("scale")) => scale::get(ctx).await,
        (&Method::PUT, true, Some("scale")) => scale::update(ctx, body, false).await,
        (&Method::PATCH, true, Some("scale")) => scale::update(ctx, body, true).await,
        (&Method::POST, true, Some("binding")) => pods::binding(ctx, body).await,
        (&Method::POST, true, Some("eviction")) => pods::eviction(ctx, body).await,
        (&Method::GET, true, Some("log")) => pods::node_stream(ctx).await,
        (_, true, Some("proxy")) if matches!(ctx.rp.def.plural, "pods" | "services") => {
            proxy::forward(ctx, method, raw_query, body).await
        }
        (&Method::GET, true, Some("proxy")) => pods::node_proxy(ctx, raw_query).await,
        (&Method::GET | &Method::POST, true, Some("exec" | "attach" | "portforward")) => {
            pods::stream(ctx, &method, raw_query, upgrade).await
        }
        (m, _, s) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported on {}{}{}",
            ctx.rp.def.plural,
            if has_name { "/NAME" } else { "" },
            s.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

/// A JSON response with a status code.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, axum::Json(body)).into_response();
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}
