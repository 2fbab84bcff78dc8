//! Admission of custom resources, in place of the built-in kinds' (which dispatch on kind
//! names a CRD may reuse): apiVersion/kind, object metadata as for every object, pruning of
//! unknown fields (`fieldValidation` Strict/Warn/Ignore as for built-in kinds), defaulting and
//! validation against the version's structural schema, the `status` subresource's split, the
//! `generation` count, and the terminating CRD's refusal of new objects. Objects are stored at
//! the CRD's storage version.

use std::sync::Arc;

use serde_json::{json, Value};

use super::coerce;
use super::registry::{self, CustomResource};
use super::values;
use crate::api::admission::{self, check_type_meta, FieldError, Prepared, Subresource};
use crate::api::object;
use crate::api::request::{FieldValidation, Query};
use crate::api::resources::ResourceDef;
use crate::api::status::{qualified, ApiError, ApiResult, Cause};
use crate::api::ApiState;
use crate::store::ObjectKey;

fn served(def: &ResourceDef) -> ApiResult<Arc<CustomResource>> {
    registry::lookup(def).ok_or_else(|| {
        ApiError::new(
            http::StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "the server could not find the requested resource ({} is no longer served)",
                qualified(def.plural, def.group)
            ),
        )
    })
}

fn invalid(def: &ResourceDef, obj: &Value, errs: Vec<FieldError>) -> ApiError {
    let causes = errs
        .into_iter()
        .map(|e| Cause {
            reason: e.reason.as_str().to_string(),
            message: e.message,
            field: e.field,
        })
        .collect();
    ApiError::invalid(def.kind, def.group, object::name(obj), causes)
}

/// `metadata` must decode as ObjectMeta (labels a map of strings, …), as the API server
/// requires before anything else.
fn check_metadata(def: &ResourceDef, obj: &Value) -> ApiResult<()> {
    let Some(meta) = obj.get("metadata").filter(|m| !m.is_null()) else {
        return Ok(());
    };
    let decoded = serde_path_to_error::deserialize::<
        _,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    >(meta.clone());
    match decoded {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "metadata".to_string()
            } else {
                format!("metadata.{path}")
            };
            Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {field}: {}",
                def.kind,
                def.version,
                def.kind,
                e.into_inner()
            )))
        }
    }
}

/// Prunes what the schema does not know and reports it per `fieldValidation`.
fn prune(
    def: &ResourceDef,
    cr: &CustomResource,
    obj: &mut Value,
    q: &Query,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let mode = q.field_validation()?;
    let unknown = match (&cr.schema, cr.preserve_unknown_fields) {
        (Some(schema), false) => coerce::prune(obj, schema),
        _ => Vec::new(),
    };
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(());
    }
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            def.kind,
            def.version,
            def.kind,
            crate::api::admission::validation::strict_decoding_message(&unknown)
        )));
    }
    warnings.extend(unknown.iter().map(|p| format!("unknown field \"{p}\"")));
    Ok(())
}

/// Schema and metadata problems of the object to store.
fn problems(cr: &CustomResource, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = admission::validate("", obj, old);
    if let Some(schema) = &cr.schema {
        errs.extend(values::validate(obj, schema));
    }
    errs
}

fn set_api_version(obj: &mut Value, api_version: &str) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
    }
}

async fn check_namespace(st: &ApiState, def: &ResourceDef, ns: &str) -> ApiResult<()> {
    let nsobj = st
        .store
        .get(&ObjectKey::new("core/namespaces", "", ns))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("namespaces", "", ns))?;
    if object::is_terminating(&nsobj) {
        return Err(ApiError::forbidden(format!(
            "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            qualified(def.plural, def.group)
        )));
    }
    Ok(())
}

/// Prepares a new custom resource for `POST`.
pub async fn prepare_create(
    st: &ApiState,
    def: &ResourceDef,
    namespace: Option<&str>,
    mut obj: Value,
    q: &Query,
) -> ApiResult<Prepared> {
    let cr = served(def)?;
    check_type_meta(def, &mut obj)?;
    check_metadata(def, &obj)?;
    if cr.terminating {
        return Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: create not allowed while custom resource definition is terminating",
            qualified(def.plural, def.group),
            object::name(&obj)
        )));
    }
    let mut warnings: Vec<String> = cr.deprecation_warning.iter().cloned().collect();
    prune(def, &cr, &mut obj, q, &mut warnings)?;
    crate::api::admission::set_create_metadata(def, namespace, &mut obj)?;
    if object::name(&obj).is_empty() {
        return Err(invalid(
            def,
            &obj,
            vec![FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )],
        ));
    }
    // With the status subresource, status is only written through it.
    if def.has_status() {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    if let Some(schema) = &cr.schema {
        coerce::default(&mut obj, schema);
    }
    let errs = problems(&cr, &obj, None);
    if !errs.is_empty() {
        return Err(invalid(def, &obj, errs));
    }
    if let (true, Some(ns)) = (def.namespaced, namespace) {
        check_namespace(st, def, ns).await?;
    }
    set_api_version(&mut obj, &cr.storage_api_version);
    Ok(Prepared {
        object: obj,
        warnings,
        _allocation: None,
        tracked: None,
    })
}

/// Everything but metadata (and `status`, when it has its own subresource): what
/// `generation` counts changes of.
fn counted(obj: &Value, with_status: bool) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    let own = matches!(k.as_str(), "metadata" | "apiVersion" | "kind");
                    let split_off = with_status && k.as_str() == "status";
                    !(own || split_off)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Prepares a replacement of `current` for `PUT`/`PATCH` of the object or its status.
pub async fn prepare_update(
    def: &ResourceDef,
    current: &Value,
    mut new: Value,
    sub: Subresource,
    q: &Query,
) -> ApiResult<Prepared> {
    let cr = served(def)?;
    // A patch applies to the stored object, which carries the storage version.
    let stored_av = current.get("apiVersion").and_then(Value::as_str);
    if new.get("apiVersion").and_then(Value::as_str) == stored_av {
        set_api_version(&mut new, &def.api_version());
    }
    check_type_meta(def, &mut new)?;
    check_metadata(def, &new)?;
    let mut warnings: Vec<String> = cr.deprecation_warning.iter().cloned().collect();
    prune(def, &cr, &mut new, q, &mut warnings)?;
    let name = object::name(current).to_string();
    let given = object::name(&new);
    if !given.is_empty() && given != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    let mut obj = match sub {
        Subresource::Main => {
            let mut obj = new;
            if def.has_status() {
                if let Some(m) = obj.as_object_mut() {
                    match current.get("status") {
                        Some(st) => m.insert("status".into(), st.clone()),
                        None => m.remove("status"),
                    };
                }
            }
            obj
        }
        Subresource::Status => {
            let mut obj = current.clone();
            set_api_version(&mut obj, &def.api_version());
            if let Some(m) = obj.as_object_mut() {
                match new.get("status") {
                    Some(st) => m.insert("status".into(), st.clone()),
                    None => m.remove("status"),
                };
            }
            obj
        }
        Subresource::Finalize => {
            return Err(ApiError::method_not_allowed(format!(
                "{} have no finalize subresource",
                def.plural
            )))
        }
    };
    crate::api::admission::keep_server_metadata(current, &mut obj, &name);
    if let Some(schema) = &cr.schema {
        coerce::default(&mut obj, schema);
    }
    if counted(&obj, def.has_status()) != counted(current, def.has_status()) {
        crate::api::admission::bump_generation(current, &mut obj);
    }
    crate::api::admission::refuse_new_finalizers(def, current, &obj, &name)?;
    let errs = problems(&cr, &obj, Some(current));
    if !errs.is_empty() {
        return Err(invalid(def, &obj, errs));
    }
    set_api_version(&mut obj, &cr.storage_api_version);
    Ok(Prepared {
        object: obj,
        warnings,
        _allocation: None,
        tracked: None,
    })
}
