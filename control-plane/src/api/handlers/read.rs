//! GET of one object and of lists, as JSON or as a `Table` for `kubectl get`.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::{json_response, Ctx};
use crate::api::object;
use crate::api::request::wants_table;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::status::{ApiError, ApiResult};
use crate::api::table::{self, IncludeObject};
use crate::store::ListScope;

/// The label and field selectors of a list or watch request.
pub struct Filter {
    label: Option<LabelSelector>,
    field: Option<FieldSelector>,
}

impl Filter {
    pub fn from_ctx(ctx: &Ctx) -> ApiResult<Filter> {
        let label = match ctx.q.label_selector.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                LabelSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))?,
            ),
        };
        let field = match ctx.q.field_selector.as_deref() {
            None | Some("") => None,
            Some(s) => {
                let f = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))?;
                f.validate_for(ctx.rp.def.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
        };
        Ok(Filter { label, field })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.label
            .as_ref()
            .is_none_or(|l| l.matches(object::labels(obj)))
            && self.field.as_ref().is_none_or(|f| f.matches(obj))
    }
}

pub fn include_object(ctx: &Ctx) -> IncludeObject {
    match ctx.q.include_object.as_deref() {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

pub async fn get(ctx: Ctx) -> ApiResult<Response> {
    let obj = ctx.current().await?;
    if wants_table(&ctx.headers) && ctx.rp.subresource.is_none() {
        let rv = object::meta_str(&obj, "resourceVersion")
            .unwrap_or("")
            .to_string();
        let t = table::table_for(
            ctx.rp.def.kind,
            std::slice::from_ref(&obj),
            jiff::Timestamp::now(),
            include_object(&ctx),
            json!({"resourceVersion": rv}),
        );
        return Ok(table_response(&t));
    }
    Ok(json_response(StatusCode::OK, &obj, &[]))
}

pub fn table_response(t: &Value) -> Response {
    let mut resp = json_response(StatusCode::OK, t, &[]);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io"),
    );
    resp
}

/// Lists the objects of the request's scope that pass its selectors.
pub async fn list_matching(ctx: &Ctx) -> ApiResult<(Vec<Value>, u64)> {
    let filter = Filter::from_ctx(ctx)?;
    let scope = ListScope::new(&ctx.rp.def.store_resource(), ctx.rp.namespace.as_deref());
    let list = ctx
        .st
        .store
        .list(&scope)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let items = list
        .items
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    Ok((items, list.revision))
}

pub async fn list(ctx: Ctx) -> ApiResult<Response> {
    let (items, revision) = list_matching(&ctx).await?;
    let list_meta = json!({"resourceVersion": revision.to_string()});
    if wants_table(&ctx.headers) {
        let t = table::table_for(
            ctx.rp.def.kind,
            &items,
            jiff::Timestamp::now(),
            include_object(&ctx),
            list_meta,
        );
        return Ok(table_response(&t));
    }
    let body = json!({
        "kind": format!("{}List", ctx.rp.def.kind),
        "apiVersion": ctx.rp.def.api_version(),
        "metadata": list_meta,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body, &[]))
}
