//! GET of one object and of lists (paged by `limit` and `continue`), as JSON or as a `Table`
//! for `kubectl get`.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::{json_response, Ctx};
use crate::api::object;
use crate::api::request::{wants_table, ListVersion};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::status::{ApiError, ApiResult};
use crate::api::table::{self, IncludeObject};
use crate::store::{ListError, ListScope, PageRequest, ReadAt};

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

    /// No selector: every object passes (Kubernetes then reports `remainingItemCount`).
    pub fn is_everything(&self) -> bool {
        self.label.is_none() && self.field.is_none()
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
        let t = table::table_for_def(
            ctx.rp.def,
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

/// A list request: one page of it when `limit` asks (`metadata.continue` when more follow,
/// `remainingItemCount` without selectors), the rest through `continue` at the first page's
/// revision, as Kubernetes' etcd3 store pages.
pub async fn list(ctx: Ctx) -> ApiResult<Response> {
    let opts = ctx.q.list_options()?;
    let filter = Filter::from_ctx(&ctx)?;
    let scope = ListScope::new(&ctx.rp.def.store_resource(), ctx.rp.namespace.as_deref());
    let from = match &opts.continue_token {
        Some(token) => {
            let from = ctx.st.store.verify_continue(token, &scope).map_err(|why| {
                ApiError::bad_request(format!(
                    "invalid continue token: continue key is not valid: {why}"
                ))
            })?;
            if !matches!(
                ctx.q.resource_version.as_deref(),
                None | Some("") | Some("0")
            ) {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            Some(from)
        }
        None => None,
    };
    let (at, limit) = match opts.version {
        ListVersion::Latest => (ReadAt::Latest, opts.limit),
        // Kubernetes serves resourceVersion=0 from its watch cache, which ignores limit (a
        // continue token's list goes to storage, which honours it).
        ListVersion::Any if from.is_none() => (ReadAt::Latest, None),
        ListVersion::Any => (ReadAt::Latest, opts.limit),
        ListVersion::NotOlderThan(rv) => (ReadAt::NotOlderThan(rv), opts.limit),
        ListVersion::Exact(rv) => (ReadAt::Exact(rv), opts.limit),
    };
    let count_remaining = filter.is_everything();
    let table = wants_table(&ctx.headers);
    let req = PageRequest {
        scope,
        at,
        from,
        limit,
        count_remaining,
        encoded: !table,
    };
    let page = match ctx
        .st
        .store
        .list_page(req, move |o| filter.matches(o))
        .await
    {
        Ok(page) => page,
        Err(e) => return list_error(&ctx, e),
    };
    let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = page.continue_token {
        list_meta["continue"] = json!(token);
    }
    if let Some(n) = page.remaining_item_count {
        list_meta["remainingItemCount"] = json!(n);
    }
    if table {
        let t = table::table_for_def(
            ctx.rp.def,
            &page.items,
            jiff::Timestamp::now(),
            include_object(&ctx),
            list_meta,
        );
        return Ok(table_response(&t));
    }
    let head = json!({
        "kind": format!("{}List", ctx.rp.def.kind),
        "apiVersion": ctx.rp.def.api_version(),
        "metadata": list_meta,
    });
    let mut resp = Response::new(list_body(&head, page.encoded));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// A list's items are sent in chunks of about this many bytes: large enough that 10,000 small
/// objects are a few hundred writes, small enough that a chunk is a trifle beside the list.
const LIST_CHUNK_BYTES: usize = 64 << 10;

/// A JSON list streamed from its items' stored JSON: `head` (kind, apiVersion, metadata) with
/// `"items": [...]` added, written chunk by chunk as the client reads, each item's bytes freed
/// once sent. Holding the items as values, copying them into one list value and encoding that
/// took ten times the list's size at its peak.
fn list_body(head: &Value, items: Vec<Vec<u8>>) -> axum::body::Body {
    let mut open = serde_json::to_vec(head).unwrap_or_else(|_| b"{}".to_vec());
    // `head` is an object: reopen it for the items.
    open.pop();
    if open.len() > 1 {
        open.push(b',');
    }
    open.extend_from_slice(b"\"items\":[");
    let mut items = items.into_iter().enumerate().peekable();
    let mut pending = Some(open);
    let chunks = std::iter::from_fn(move || {
        let mut chunk = pending.take()?;
        while chunk.len() < LIST_CHUNK_BYTES {
            match items.next() {
                Some((i, item)) => {
                    if i > 0 {
                        chunk.push(b',');
                    }
                    chunk.extend_from_slice(&item);
                }
                None => {
                    chunk.extend_from_slice(b"]}");
                    return Some(Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk)));
                }
            }
        }
        pending = Some(Vec::new());
        Some(Ok(bytes::Bytes::from(chunk)))
    });
    axum::body::Body::from_stream(futures::stream::iter(chunks))
}

/// Kubernetes' message when a continue token's revision has been compacted away.
pub const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// A failed list read as Kubernetes answers it.
fn list_error(ctx: &Ctx, e: ListError) -> ApiResult<Response> {
    match e {
        ListError::Store(e) => Err(ctx.store_err(e)),
        ListError::Expired { .. } => Err(ApiError::gone(
            "The resourceVersion for the provided list is too old.",
        )),
        // 410 whose Status carries a token for the rest of the list at the newest revision.
        ListError::ContinueExpired { restart, .. } => {
            let mut body = ApiError::gone(INCONSISTENT_CONTINUE).status_body();
            if let Some(token) = restart {
                body["metadata"] = json!({"continue": token});
            }
            Ok(json_response(StatusCode::GONE, &body, &[]))
        }
        ListError::TooLarge { requested, current } => {
            let mut err = ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("Timeout: Too large resource version: {requested}, current: {current}"),
            );
            err.details = Some(json!({"causes": [{
                "reason": "ResourceVersionTooLarge",
                "message": "Too large resource version",
            }]}));
            err.retry_after = Some(1);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn streamed(items: Vec<Vec<u8>>) -> (Value, usize) {
        let head = json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}});
        let mut body = list_body(&head, items);
        let (mut bytes, mut chunks) = (Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                bytes.extend_from_slice(&data);
                chunks += 1;
            }
        }
        (serde_json::from_slice(&bytes).unwrap(), chunks)
    }

    #[tokio::test]
    async fn lists_stream_as_one_json_document_in_bounded_chunks() {
        let (empty, _) = streamed(Vec::new()).await;
        assert_eq!(empty["items"], json!([]));
        assert_eq!(empty["metadata"]["resourceVersion"], "7");

        let items: Vec<Vec<u8>> = (0..3000)
            .map(|i| serde_json::to_vec(&json!({"metadata": {"name": format!("cm-{i}")}, "data": {"k": "v".repeat(100)}})).unwrap())
            .collect();
        let total: usize = items.iter().map(Vec::len).sum();
        let (list, chunks) = streamed(items).await;
        assert_eq!(list["kind"], "ConfigMapList");
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 3000);
        assert_eq!(names[2999], "cm-2999");
        assert!(
            chunks > total / LIST_CHUNK_BYTES,
            "{chunks} chunks for {total} bytes"
        );
    }
}
