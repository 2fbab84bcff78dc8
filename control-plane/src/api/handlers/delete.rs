//! DELETE of one object (graceful for pods, held by finalizers) and of collections.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::read::list_matching;
use super::write::namespace_finalized;
use super::{json_response, Ctx};
use crate::api::object;
use crate::api::request::content_type;
use crate::api::status::{ApiError, ApiResult};
use crate::store::{object_revision, Precondition, StoreError};

/// Namespaces Kubernetes never lets anyone delete.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
/// The finalizer that holds an owner until the garbage collector has deleted its blocking
/// dependents (`propagationPolicy: Foreground`).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer that holds an owner until the garbage collector has removed its
/// ownerReference from every dependent (`propagationPolicy: Orphan`).
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;
const MAX_RETRIES: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptionsBody {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
    preconditions: Option<PreconditionsBody>,
    #[serde(default)]
    dry_run: Vec<String>,
    orphan_dependents: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreconditionsBody {
    uid: Option<String>,
    resource_version: Option<String>,
}

/// DeleteOptions from the body and the query (the query wins, as in Kubernetes).
#[derive(Debug, Default, Clone)]
pub struct DeleteOpts {
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<u64>,
    pub dry_run: bool,
    /// `Background`, `Foreground` or `Orphan` (from `propagationPolicy` or the legacy
    /// `orphanDependents`); `None` = keep the object's GC finalizers, else the kind's default.
    pub propagation: Option<String>,
}

impl DeleteOpts {
    pub fn from_value(ctx: &Ctx, body: Option<Value>) -> ApiResult<DeleteOpts> {
        if let Some(kind) = body
            .as_ref()
            .and_then(|b| b.get("kind"))
            .and_then(Value::as_str)
        {
            if !kind.is_empty() && kind != "DeleteOptions" {
                return Err(ApiError::bad_request(format!(
                    "the body of a DELETE is DeleteOptions, not {kind}: send no body, or \
                     {{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",…}}"
                )));
            }
        }
        let b: DeleteOptionsBody = match body {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
            None => DeleteOptionsBody::default(),
        };
        let policy = ctx.q.propagation_policy.clone().or(b.propagation_policy);
        if let Some(p) = policy.as_deref() {
            if !matches!(p, "Background" | "Foreground" | "Orphan") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Background\", \"Foreground\", \"Orphan\""
                )));
            }
        }
        let policy = match (policy, b.orphan_dependents) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "DeleteOptions.orphanDependents: Invalid value: orphanDependents and deletionPropagation cannot be both set",
                ))
            }
            (Some(p), None) => Some(p),
            (None, Some(true)) => Some("Orphan".to_string()),
            (None, Some(false)) => Some("Background".to_string()),
            (None, None) => None,
        };
        let grace = ctx
            .q
            .int_param("gracePeriodSeconds", &ctx.q.grace_period_seconds)?
            .or(b.grace_period_seconds);
        if grace.is_some_and(|g| g < 0) {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds: Invalid value: must be >= 0",
            ));
        }
        let pre = b.preconditions.unwrap_or_default();
        let resource_version = match pre.resource_version.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "preconditions.resourceVersion: Invalid value: \"{s}\""
                ))
            })?),
        };
        Ok(DeleteOpts {
            grace,
            uid: pre.uid.filter(|u| !u.is_empty()),
            resource_version,
            dry_run: ctx.q.dry_run()? || b.dry_run.iter().any(|d| d == "All"),
            propagation: policy,
        })
    }

    async fn from_body(ctx: &Ctx, body: Body) -> ApiResult<DeleteOpts> {
        let bytes = ctx.body(body).await?;
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match content_type(&ctx.headers).as_str() {
                "" | "application/json" => Some(crate::api::request::decode_json(&bytes)?),
                "application/yaml" => Some(crate::api::request::decode_yaml(&bytes)?),
                other => return Err(ApiError::unsupported_media_type(other)),
            }
        };
        DeleteOpts::from_value(ctx, value)
    }
}

pub async fn delete(ctx: Ctx, body: Body) -> ApiResult<Response> {
    let opts = DeleteOpts::from_body(&ctx, body).await?;
    let name = ctx.name().to_string();
    let obj = delete_one(&ctx, &name, &opts).await?;
    Ok(json_response(StatusCode::OK, &obj, &[]))
}

pub async fn delete_collection(ctx: Ctx, body: Body) -> ApiResult<Response> {
    let opts = DeleteOpts::from_body(&ctx, body).await?;
    let (items, _) = list_matching(&ctx).await?;
    let mut deleted = Vec::new();
    for item in items {
        let name = object::name(&item).to_string();
        match delete_one(&ctx, &name, &opts).await {
            Ok(obj) => deleted.push(obj),
            Err(e) if e.code == StatusCode::NOT_FOUND => {}
            Err(e) if e.code == StatusCode::FORBIDDEN => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": format!("{}List", ctx.rp.def.kind),
        "apiVersion": ctx.rp.def.api_version(),
        "metadata": {},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &body, &[]))
}

/// Deletes one object: at once, or by marking it terminating when finalizers, a pod's grace
/// period or a namespace's contents must finish first. Returns the object's last state.
pub async fn delete_one(ctx: &Ctx, name: &str, opts: &DeleteOpts) -> ApiResult<Value> {
    let def = ctx.rp.def;
    let err = |e: StoreError| ApiError::from_store(e, def.plural, def.group, name);
    if def.kind == "Namespace" && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    let key = ctx.key(name);
    for _ in 0..MAX_RETRIES {
        let current = ctx
            .st
            .store
            .get(&key)
            .await
            .map_err(err)?
            .ok_or_else(|| ApiError::not_found(def.plural, def.group, name))?;
        let current_rv = object_revision(&current).unwrap_or(0);
        if let Some(uid) = &opts.uid {
            let actual = object::meta_str(&current, "uid").unwrap_or("");
            if actual != uid {
                return Err(err(StoreError::UidMismatch {
                    expected: uid.clone(),
                    actual: actual.to_string(),
                }));
            }
        }
        if opts.resource_version.is_some_and(|rv| rv != current_rv) {
            return Err(ApiError::conflict(def.plural, def.group, name));
        }
        if opts.dry_run {
            return Ok(current);
        }
        let is_pod = def.kind == "Pod";
        let grace = if is_pod {
            let spec_grace = current
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(DEFAULT_POD_GRACE_SECONDS);
            let phase = current
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let scheduled = current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            // Unscheduled and finished pods have nothing to stop: they go at once.
            if !scheduled || phase == "Succeeded" || phase == "Failed" {
                0
            } else {
                opts.grace.unwrap_or(spec_grace)
            }
        } else {
            0
        };
        let mut finalizers = gc_finalizers(&current, def.kind, opts.propagation.as_deref());
        // A CRD stays until its objects are deleted (`controllers/crd.rs`).
        crate::api::crd::deletion_finalizers(def, &mut finalizers);
        let finalizers_changed = finalizers != object::finalizers(&current);
        let waits = !finalizers.is_empty() || grace > 0 || !namespace_finalized(&current);
        let precondition = Precondition {
            resource_version: Some(current_rv),
            uid: None,
        };
        let result = if waits {
            let mut restart_clock = true;
            if object::is_terminating(&current) {
                // Already terminating: a shorter grace period may replace the longer one, and
                // another propagation policy may swap the GC finalizers (as in Kubernetes).
                let old = current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                restart_clock = is_pod && grace < old;
                if !restart_clock && !finalizers_changed {
                    return Ok(current);
                }
            }
            let mut obj = current.clone();
            let at = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(grace))
                .unwrap_or_else(|_| jiff::Timestamp::now());
            let at = jiff::Timestamp::from_second(at.as_second()).unwrap_or(at);
            let meta = object::meta_mut(&mut obj);
            if restart_clock {
                meta.insert("deletionTimestamp".into(), json!(at.to_string()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if finalizers_changed {
                if finalizers.is_empty() {
                    meta.remove("finalizers");
                } else {
                    meta.insert("finalizers".into(), json!(finalizers));
                }
            }
            if def.kind == "Namespace" {
                if let Some(m) = obj.as_object_mut() {
                    m.insert("status".into(), json!({"phase": "Terminating"}));
                }
            }
            ctx.st.store.update(key.clone(), obj, precondition).await
        } else {
            ctx.st.store.delete(key.clone(), precondition).await
        };
        match result {
            Ok(obj) => {
                tracing::debug!(resource = def.plural, %name, graceful = waits, "deleted");
                return Ok(obj);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(ApiError::conflict(def.plural, def.group, name))
}

/// The object's finalizers after a delete with `policy` (Kubernetes'
/// `deletionFinalizersForGarbageCollection`): `orphan` for Orphan, `foregroundDeletion` for
/// Foreground, neither for Background; with no policy the object's own GC finalizer stays, else
/// the kind's default applies (Orphan for ReplicationControllers and Jobs, Background otherwise).
pub fn gc_finalizers(obj: &Value, kind: &str, policy: Option<&str>) -> Vec<String> {
    let current = object::finalizers(obj);
    let has = |f: &str| current.iter().any(|x| x == f);
    let (orphan, foreground) = match policy {
        Some("Orphan") => (true, false),
        Some("Foreground") => (false, true),
        Some(_) => (false, false),
        None if has(ORPHAN_FINALIZER) => (true, false),
        None if has(FOREGROUND_FINALIZER) => (false, true),
        None => (default_orphans(kind), false),
    };
    let mut out: Vec<String> = current
        .into_iter()
        .filter(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        .collect();
    if orphan {
        out.push(ORPHAN_FINALIZER.to_string());
    }
    if foreground {
        out.push(FOREGROUND_FINALIZER.to_string());
    }
    out
}

/// Kinds whose API default is to orphan dependents (`DefaultGarbageCollectionPolicy`).
fn default_orphans(kind: &str) -> bool {
    matches!(kind, "ReplicationController" | "Job")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_finalizers_follow_the_policy() {
        let plain = json!({"metadata": {"finalizers": ["example.com/x"]}});
        assert_eq!(
            gc_finalizers(&plain, "Deployment", None),
            vec!["example.com/x"]
        );
        assert_eq!(
            gc_finalizers(&plain, "Deployment", Some("Background")),
            vec!["example.com/x"]
        );
        assert_eq!(
            gc_finalizers(&plain, "Deployment", Some("Orphan")),
            vec!["example.com/x", "orphan"]
        );
        assert_eq!(
            gc_finalizers(&plain, "Deployment", Some("Foreground")),
            vec!["example.com/x", "foregroundDeletion"]
        );
        assert_eq!(gc_finalizers(&json!({}), "Job", None), vec!["orphan"]);
        let orphaning = json!({"metadata": {"finalizers": ["orphan"]}});
        assert_eq!(
            gc_finalizers(&orphaning, "Deployment", None),
            vec!["orphan"]
        );
        assert_eq!(
            gc_finalizers(&orphaning, "Deployment", Some("Foreground")),
            vec!["foregroundDeletion"]
        );
        assert!(gc_finalizers(&orphaning, "Deployment", Some("Background")).is_empty());
    }
}
