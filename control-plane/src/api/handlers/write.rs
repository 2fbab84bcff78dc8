//! POST (create), PUT (update) and PATCH, including server-side apply and status writes.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::{json_response, Ctx};
use crate::api::admission::{self, Prepared};
use crate::api::managed::{self, ManagedFields, Writer};
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
    create_object(&ctx, obj, &Track::Update).await
}

async fn create_object(ctx: &Ctx, obj: Value, track: &Track<'_>) -> ApiResult<Response> {
    let (status, stored, warnings) = create_tracked(ctx, obj, track).await?;
    Ok(json_response(status, &stored, &warnings))
}

/// How a write's `managedFields` are recorded.
pub(crate) enum Track<'a> {
    /// Create, update and the non-apply patches: the manager owns what it changed.
    Update,
    /// Server-side apply of this configuration.
    Apply { config: &'a Value, force: bool },
}

/// The manager and version a request writes as.
fn writer<'a>(
    ctx: &'a Ctx,
    manager: &'a str,
    api_version: &'a str,
    sub: Subresource,
    custom: Option<&'a crate::api::crd::schema::Schema>,
) -> Writer<'a> {
    Writer {
        manager,
        api_version,
        subresource: if sub == Subresource::Status {
            "status"
        } else {
            ""
        },
        kind: ctx.rp.def.kind,
        has_status: ctx.rp.def.has_status(),
        builtin: crate::api::resources::is_builtin(ctx.rp.def),
        custom,
    }
}

/// The request's field manager: `fieldManager`, else the client's user agent.
fn manager_name(ctx: &Ctx) -> ApiResult<String> {
    match ctx.q.field_manager.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => {
            managed::check_manager(m)?;
            Ok(m.to_string())
        }
        None => Ok(managed::default_manager(
            ctx.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        )),
    }
}

/// Admits and stores a new object; what `POST` does, for in-process callers too.
pub(crate) async fn create_value(
    ctx: &Ctx,
    obj: Value,
) -> ApiResult<(StatusCode, Value, Vec<String>)> {
    create_tracked(ctx, obj, &Track::Update).await
}

async fn create_tracked(
    ctx: &Ctx,
    obj: Value,
    track: &Track<'_>,
) -> ApiResult<(StatusCode, Value, Vec<String>)> {
    let dry_run = ctx.q.dry_run()?;
    let manager = manager_name(ctx)?;
    let api_version = ctx.rp.def.api_version();
    let cr = crate::api::crd::registry::lookup(ctx.rp.def);
    let schema = cr.as_ref().and_then(|c| c.schema.as_deref());
    let w = writer(ctx, &manager, &api_version, Subresource::Main, schema);
    let mut mf = ManagedFields::default();
    let obj = match track {
        Track::Update => obj,
        // Applied to nothing: the object is the configuration (with the URL's name).
        Track::Apply { force, .. } => match mf.apply(&w, &Value::Null, &obj, *force)? {
            Ok(merged) => merged,
            Err(c) => {
                return Err(c.to_api_error(ctx.rp.def.plural, ctx.rp.def.group, object::name(&obj)))
            }
        },
    };
    let mut prepared = admission::prepare_create(
        &ctx.st,
        ctx.rp.def,
        ctx.rp.namespace.as_deref(),
        obj,
        &ctx.q,
    )
    .await?;
    if matches!(track, Track::Update) {
        let owned = prepared.tracked.as_ref().unwrap_or(&prepared.object);
        mf.record_update(&w, &Value::Null, owned)?;
    }
    mf.encode_into(&mut prepared.object);
    let name = object::name(&prepared.object).to_string();
    if dry_run {
        return Ok((StatusCode::CREATED, prepared.object, prepared.warnings));
    }
    let Prepared {
        object: obj,
        warnings,
        _allocation,
        ..
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
        return create_object(&ctx, obj, &Track::Update).await;
    }
    let (stored, warnings) = write_loop(&ctx, sub, client_rv, &Track::Update, |_current| {
        Ok(obj.clone())
    })
    .await?;
    Ok(json_response(StatusCode::OK, &stored, &warnings))
}

pub async fn patch(ctx: Ctx, body: Body, sub: Subresource) -> ApiResult<Response> {
    let pt = PatchType::from_content_type(&content_type(&ctx.headers))?;
    let bytes = ctx.body(body).await?;
    let p = patch::parse_patch(pt, &bytes)?;
    if pt == PatchType::Apply && ctx.q.field_manager.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(
            "fieldManager: Required value: is required for apply patch (kubectl sends --field-manager, default \"kubectl\")",
        ));
    }
    let force = crate::api::request::is_true(&ctx.q.force);
    if force && pt != PatchType::Apply {
        return Err(ApiError::bad_request(
            "force: Invalid value: true: may not be specified for non-apply patch",
        ));
    }
    // Server-side apply tracks ownership at the stored version; a kind served converted
    // (autoscaling/v1 HPAs) is applied as a merge recorded as an update.
    let ssa = pt == PatchType::Apply && ctx.served.is_none();
    let track = if ssa {
        Track::Apply { config: &p, force }
    } else {
        Track::Update
    };
    if pt == PatchType::Apply && sub == Subresource::Main {
        let exists = ctx.exists().await?;
        if !exists {
            let given = object::name(&p);
            if !given.is_empty() && given != ctx.name() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({})",
                    ctx.name()
                )));
            }
            let mut obj = ctx.incoming(p.clone());
            object::meta_mut(&mut obj).insert("name".into(), Value::String(ctx.name().to_string()));
            return create_object(&ctx, obj, &track).await;
        }
    }
    // A resourceVersion inside the patch is a precondition, as in Kubernetes.
    let client_rv = match pt {
        PatchType::Json => None,
        _ => object::meta_str(&p, "resourceVersion").map(str::to_string),
    };
    let kind = ctx.rp.def.kind;
    let (stored, warnings) = write_loop(&ctx, sub, client_rv, &track, |current| {
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
        check_patched_metadata(&ctx, current, &patched)?;
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
    track: &Track<'_>,
    build: F,
) -> ApiResult<(Value, Vec<String>)>
where
    F: Fn(&Value) -> ApiResult<Value>,
{
    let dry_run = ctx.q.dry_run()?;
    let manager = manager_name(ctx)?;
    let api_version = ctx.rp.def.api_version();
    let cr = crate::api::crd::registry::lookup(ctx.rp.def);
    let schema = cr.as_ref().and_then(|c| c.schema.as_deref());
    let w = writer(ctx, &manager, &api_version, sub, schema);
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
        // Stored entries are ours; unreadable ones (written before tracking) start afresh.
        let mut mf = ManagedFields::decode(&current).unwrap_or_default();
        let new = match track {
            Track::Update => {
                let new = build(&current)?;
                // A client may rewrite managedFields (kubectl's client-side → server-side
                // apply upgrade does); `[{}]` clears them.
                if new.pointer("/metadata/managedFields")
                    != current.pointer("/metadata/managedFields")
                    && new
                        .pointer("/metadata/managedFields")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
                {
                    mf = ManagedFields::decode(&new)?;
                }
                new
            }
            Track::Apply { config, force } => {
                let mut live = current.clone();
                object::meta_mut(&mut live).remove("managedFields");
                match mf.apply(&w, &live, config, *force)? {
                    Ok(merged) => merged,
                    Err(c) => {
                        return Err(c.to_api_error(ctx.rp.def.plural, ctx.rp.def.group, &name))
                    }
                }
            }
        };
        let mut prepared =
            admission::prepare_update(&ctx.st, ctx.rp.def, &current, new, sub, &ctx.q).await?;
        if matches!(track, Track::Update) {
            mf.record_update(&w, &current, &prepared.object)?;
        }
        mf.encode_into(&mut prepared.object);
        // Nothing changed: nothing is written and the resourceVersion stays, as in Kubernetes.
        if unchanged(&current, &prepared.object) {
            return Ok((current, prepared.warnings));
        }
        if dry_run {
            return Ok((prepared.object, prepared.warnings));
        }
        let Prepared {
            object: obj,
            warnings,
            _allocation,
            ..
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

/// A patch may change metadata but not remove it, and a resourceVersion it sets is a
/// precondition like one sent in the body: a stale one is a conflict, garbage a bad request.
fn check_patched_metadata(ctx: &Ctx, current: &Value, patched: &Value) -> ApiResult<()> {
    if !patched.get("metadata").is_some_and(Value::is_object) {
        return Err(ApiError::bad_request(
            "metadata: Required value: a patch may change the object's metadata but not remove or replace it",
        ));
    }
    let Some(rv) = object::meta_str(patched, "resourceVersion").filter(|rv| !rv.is_empty()) else {
        return Ok(());
    };
    if Some(rv) == object::meta_str(current, "resourceVersion") {
        return Ok(());
    }
    if rv.parse::<u64>().is_err() {
        return Err(ApiError::bad_request(format!(
            "metadata.resourceVersion: Invalid value: \"{rv}\": must be a resourceVersion the server gave out"
        )));
    }
    Err(ApiError::conflict(
        ctx.rp.def.plural,
        ctx.rp.def.group,
        ctx.name(),
    ))
}

/// Whether `new` says nothing `current` does not: equal but for the resourceVersion and the
/// times of managedFields entries. Compared in place, without copying either object.
fn unchanged(current: &Value, new: &Value) -> bool {
    let (Some(cur), Some(new)) = (current.as_object(), new.as_object()) else {
        return current == new;
    };
    if cur.len() != new.len() {
        return false;
    }
    cur.iter()
        .all(|(key, value)| match (key.as_str(), new.get(key)) {
            ("metadata", Some(other)) => same_metadata(value, other),
            (_, Some(other)) => value == other,
            (_, None) => false,
        })
}

fn same_metadata(current: &Value, new: &Value) -> bool {
    let (Some(cur), Some(new)) = (current.as_object(), new.as_object()) else {
        return current == new;
    };
    let keys =
        |m: &serde_json::Map<String, Value>| m.keys().filter(|k| *k != "resourceVersion").count();
    if keys(cur) != keys(new) {
        return false;
    }
    cur.iter()
        .filter(|(k, _)| *k != "resourceVersion")
        .all(|(key, value)| match (key.as_str(), new.get(key)) {
            ("managedFields", Some(other)) => same_managed_fields(value, other),
            (_, Some(other)) => value == other,
            (_, None) => false,
        })
}

fn same_managed_fields(current: &Value, new: &Value) -> bool {
    let (Some(cur), Some(new)) = (current.as_array(), new.as_array()) else {
        return current == new;
    };
    cur.len() == new.len()
        && cur
            .iter()
            .zip(new)
            .all(|(a, b)| match (a.as_object(), b.as_object()) {
                (Some(a), Some(b)) => {
                    a.len() == b.len()
                        && a.iter()
                            .all(|(k, v)| k == "time" || b.get(k).is_some_and(|w| w == v))
                }
                _ => a == b,
            })
}

#[cfg(test)]
mod tests {
    use super::unchanged;
    use serde_json::json;

    #[test]
    fn unchanged_ignores_only_the_resource_version_and_managed_field_times() {
        let cur = json!({"metadata": {"name": "a", "resourceVersion": "4",
            "managedFields": [{"manager": "k", "time": "t1", "fieldsV1": {"f:data": {}}}]},
            "data": {"x": "1"}});
        let same = json!({"metadata": {"name": "a", "resourceVersion": "4",
            "managedFields": [{"manager": "k", "time": "t2", "fieldsV1": {"f:data": {}}}]},
            "data": {"x": "1"}});
        assert!(unchanged(&cur, &same));
        let data = json!({"metadata": {"name": "a", "resourceVersion": "4",
            "managedFields": [{"manager": "k", "time": "t2", "fieldsV1": {"f:data": {}}}]},
            "data": {"x": "2"}});
        assert!(!unchanged(&cur, &data));
        let owner = json!({"metadata": {"name": "a", "resourceVersion": "4",
            "managedFields": [{"manager": "other", "time": "t1", "fieldsV1": {"f:data": {}}}]},
            "data": {"x": "1"}});
        assert!(!unchanged(&cur, &owner));
        let label = json!({"metadata": {"name": "a", "labels": {"l": "v"}, "resourceVersion": "4",
            "managedFields": [{"manager": "k", "time": "t1", "fieldsV1": {"f:data": {}}}]},
            "data": {"x": "1"}});
        assert!(!unchanged(&cur, &label));
    }
}
