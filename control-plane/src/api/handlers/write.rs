//! POST (create), PUT (update) and PATCH, including server-side apply and status writes.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::{json_response, Ctx};
use crate::api::admission::{self, Prepared};
use crate::api::object;
use crate::api::patch::{self, PatchType};
use crate::api::request::{content_type, decode_object};
use crate::api::status::{ApiError, ApiResult};
use crate::store::{object_revision, Precondition, StoreError};

pub use crate::api::admission::Subresource;

/// How often a write retries after losing a race it did not ask to detect (no client
/// resourceVersion): Kubernetes' GuaranteedUpdate loops the same way.
const MAX_INTERNAL_RETRIES: usize = 16;

pub async fn create(ctx: Ctx, body: Body) -> ApiResult<Response> {
    let bytes = ctx.body(body).await?;
    let obj = ctx.incoming(decode_object(&ctx.headers, &bytes)?);
    create_object(&ctx, obj).await
}

async fn create_object(ctx: &Ctx, obj: Value) -> ApiResult<Response> {
    let (status, stored, warnings) = create_value(ctx, obj).await?;
    Ok(json_response(status, &stored, &warnings))
}

/// Admits and stores a new object; what `POST` does, for in-process callers too.
pub(crate) async fn create_value(
    ctx: &Ctx,
    obj: Value,
) -> ApiResult<(StatusCode, Value, Vec<String>)> {
    let dry_run = ctx.q.dry_run()?;
    let prepared = admission::prepare_create(
        &ctx.st,
        ctx.rp.def,
        ctx.rp.namespace.as_deref(),
        obj,
        &ctx.q,
    )
    .await?;
    let name = object::name(&prepared.object).to_string();
    if dry_run {
        return Ok((StatusCode::CREATED, prepared.object, prepared.warnings));
    }
    let Prepared {
        object: obj,
        warnings,
        _allocation,
    } = prepared;
    let stored = ctx
        .st
        .store
        .create(ctx.key(&name), obj)
        .await
        .map_err(|e| ApiError::from_store(e, ctx.rp.def.plural, ctx.rp.def.group, &name))?;
    tracing::debug!(resource = ctx.rp.def.plural, namespace = ?ctx.rp.namespace, %name, "created");
    Ok((StatusCode::CREATED, stored, warnings))
}

pub async fn update(ctx: Ctx, body: Body, sub: Subresource) -> ApiResult<Response> {
    let bytes = ctx.body(body).await?;
    let obj = ctx.incoming(decode_object(&ctx.headers, &bytes)?);
    let client_rv = object::meta_str(&obj, "resourceVersion")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let exists = ctx.exists().await?;
    if !exists && ctx.rp.def.create_on_update && sub == Subresource::Main {
        return create_object(&ctx, obj).await;
    }
    let (stored, warnings) = write_loop(&ctx, sub, client_rv, |_current| Ok(obj.clone())).await?;
    Ok(json_response(StatusCode::OK, &stored, &warnings))
}

pub async fn patch(ctx: Ctx, body: Body, sub: Subresource) -> ApiResult<Response> {
    let pt = PatchType::from_content_type(&content_type(&ctx.headers))?;
    let bytes = ctx.body(body).await?;
    let p = patch::parse_patch(pt, &bytes)?;
    if pt == PatchType::Apply && sub == Subresource::Main {
        if ctx.q.field_manager.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::bad_request(
                "fieldManager: Required value: is required for apply patch (kubectl sends --field-manager, default \"kubectl\")",
            ));
        }
        let exists = ctx.exists().await?;
        if !exists {
            let given = object::name(&p);
            if !given.is_empty() && given != ctx.name() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({})",
                    ctx.name()
                )));
            }
            let mut obj = ctx.incoming(p);
            object::meta_mut(&mut obj).insert("name".into(), Value::String(ctx.name().to_string()));
            return create_object(&ctx, obj).await;
        }
    }
    // A resourceVersion inside the patch is a precondition, as in Kubernetes.
    let client_rv = match pt {
        PatchType::Json => None,
        _ => object::meta_str(&p, "resourceVersion").map(str::to_string),
    };
    let kind = ctx.rp.def.kind;
    let (stored, warnings) = write_loop(&ctx, sub, client_rv, |current| {
        let mut base = current.clone();
        if pt == PatchType::Apply {
            // Applied configuration never carries server-owned fields.
            if let Some(m) = base.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
        }
        // A converted kind is patched as the client sees it.
        let base = match ctx.served {
            Some(c) => (c.from_storage)(base),
            None => base,
        };
        let patched = patch::apply_patch(pt, &base, &p, kind)?;
        Ok(ctx.incoming(patched))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &stored, &warnings))
}

/// Reads the current object, builds the new one, and writes it under the current
/// resourceVersion; retries internal races unless the client pinned a resourceVersion.
pub(crate) async fn write_loop<F>(
    ctx: &Ctx,
    sub: Subresource,
    client_rv: Option<String>,
    build: F,
) -> ApiResult<(Value, Vec<String>)>
where
    F: Fn(&Value) -> ApiResult<Value>,
{
    let dry_run = ctx.q.dry_run()?;
    let name = ctx.name().to_string();
    let key = ctx.key(&name);
    for _ in 0..MAX_INTERNAL_RETRIES {
        let current = ctx
            .st
            .store
            .get(&key)
            .await
            .map_err(|e| ctx.store_err(e))?
            .ok_or_else(|| ctx.not_found())?;
        let current_rv = object_revision(&current).unwrap_or(0);
        if let Some(rv) = &client_rv {
            if rv.parse::<u64>().ok() != Some(current_rv) {
                return Err(ApiError::conflict(
                    ctx.rp.def.plural,
                    ctx.rp.def.group,
                    &name,
                ));
            }
        }
        let new = build(&current)?;
        let prepared =
            admission::prepare_update(&ctx.st, ctx.rp.def, &current, new, sub, &ctx.q).await?;
        if dry_run {
            return Ok((prepared.object, prepared.warnings));
        }
        let Prepared {
            object: obj,
            warnings,
            _allocation,
        } = prepared;
        let precondition = Precondition {
            resource_version: Some(current_rv),
            uid: None,
        };
        // The last finalizer gone from a terminating object: it is deleted now.
        let finished = object::is_terminating(&obj)
            && object::finalizers(&obj).is_empty()
            && namespace_finalized(&obj)
            && (ctx.rp.def.kind != "Pod"
                || obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    == Some(0));
        let result = if finished {
            ctx.st.store.delete(key.clone(), precondition).await
        } else {
            ctx.st.store.update(key.clone(), obj, precondition).await
        };
        match result {
            Ok(stored) => return Ok((stored, warnings)),
            Err(StoreError::Conflict) if client_rv.is_none() => continue,
            Err(e) => return Err(ctx.store_err(e)),
        }
    }
    Err(ApiError::conflict(
        ctx.rp.def.plural,
        ctx.rp.def.group,
        &name,
    ))
}

/// Namespaces also wait for their `spec.finalizers` (the namespace controller empties them).
pub fn namespace_finalized(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) != Some("Namespace")
        || obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
}
