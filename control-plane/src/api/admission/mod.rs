//! What happens to an object between the request body and the store: type checks, unknown-field
//! handling, server-set metadata, defaulting, allocation and validation — as Kubernetes does.

pub mod defaults;
pub mod field;
pub mod ingress;
pub mod kinds;
pub mod names;
pub mod quantity;
pub mod schema;
pub mod services;
pub mod status_counters;
pub mod tolerations;
mod util;
pub mod validation;

pub use crate::api::selectors::{FieldSelector, LabelSelector, SelectorError};
pub use defaults::apply_defaults;
pub use field::{FieldError, FieldErrorReason};
pub use schema::{normalize, unknown_fields, NormalizeError};
pub use validation::validate;

use serde_json::{json, Value};
use tokio::sync::OwnedMutexGuard;

use super::object::{self, meta_mut};
use super::request::{FieldValidation, Query};
use super::resources::ResourceDef;
use super::status::{ApiError, ApiResult, Cause};
use super::ApiState;
use crate::store::{ListScope, ObjectKey};

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// Everything but `status` (for kinds that have a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Only a Namespace's `spec.finalizers`.
    Finalize,
}

/// An object ready to be written, with the warnings to return and, for Services, the allocator
/// lock that must be held until the write is committed.
pub struct Prepared {
    pub object: Value,
    pub warnings: Vec<String>,
    pub _allocation: Option<OwnedMutexGuard<()>>,
    /// On a create, the object as the request's field manager owns it when that differs from
    /// `object`: defaulted, but before mutating admission (a Pod's default tolerations, service
    /// account, priority, RuntimeClass nodeSelector; an Ingress's default class). Kubernetes records managedFields before
    /// admission, so the fields admission adds belong to no manager and a later apply that
    /// omits them keeps them.
    pub tracked: Option<Value>,
}

fn invalid(def: &ResourceDef, obj: &Value, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(def.kind, def.group, object::name(obj), causes)
}

/// The body must be an object of the endpoint's kind; fills apiVersion/kind when absent.
pub fn check_type_meta(def: &ResourceDef, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object of kind {} (apiVersion {})",
            def.kind,
            def.api_version()
        )));
    };
    for field in ["apiVersion", "kind"] {
        if let Some(v) = map.get(field).filter(|v| !v.is_string() && !v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "{field}: Invalid value: {v}: must be a string (\"{}\")",
                if field == "kind" {
                    def.kind.to_string()
                } else {
                    def.api_version()
                }
            )));
        }
    }
    let want_av = def.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(def.kind));
        }
        Some(k) if k == def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}): send it to the {} endpoint instead",
                def.kind,
                k.to_lowercase()
            )))
        }
    }
    if let Some(m) = map.get("metadata") {
        if !m.is_object() && !m.is_null() {
            return Err(ApiError::bad_request("metadata: must be an object"));
        }
    }
    Ok(())
}

/// Unknown fields (per `fieldValidation`) and type errors, then the normalized object.
fn decode_fields(def: &ResourceDef, obj: &Value, q: &Query) -> ApiResult<(Value, Vec<String>)> {
    let mode = q.field_validation()?;
    let mut warnings = Vec::new();
    if mode != FieldValidation::Ignore {
        let unknown = schema::unknown_fields(def.kind, obj);
        if !unknown.is_empty() {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            if mode == FieldValidation::Strict {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {} (remove the field, or check its spelling against `kubectl explain {}`)",
                    msgs.join(", "),
                    def.plural
                )));
            }
            warnings.extend(msgs);
        }
    }
    let normalized =
        schema::normalize(def.kind, obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((normalized, warnings))
}

fn validation_causes(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    validation::validate(def.kind, obj, old)
        .into_iter()
        .map(|e| Cause {
            reason: e.reason.as_str().to_string(),
            message: e.message,
            field: e.field,
        })
        .collect()
}

async fn check_namespace(st: &ApiState, def: &ResourceDef, ns: &str) -> ApiResult<()> {
    let key = ObjectKey::new("core/namespaces", "", ns);
    let nsobj = st
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("namespaces", "", ns))?;
    if object::is_terminating(&nsobj) && def.kind != "Event" {
        return Err(ApiError::forbidden(format!(
            "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            def.plural
        )));
    }
    Ok(())
}

/// Locks the allocator and reads every other Service (for Services only).
async fn service_context(
    st: &ApiState,
    def: &ResourceDef,
    own: Option<(&str, &str)>,
) -> ApiResult<(Option<OwnedMutexGuard<()>>, Vec<Value>)> {
    if def.kind != "Service" {
        return Ok((None, Vec::new()));
    }
    let guard = st.services.lock().await;
    let all = st
        .store
        .list(&ListScope::new("core/services", None))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let others = all
        .items
        .into_iter()
        .filter(|s| own != Some((object::namespace(s), object::name(s))))
        .collect();
    Ok((Some(guard), others))
}

/// Prepares a new object for `POST`.
pub async fn prepare_create(
    st: &ApiState,
    def: &ResourceDef,
    namespace: Option<&str>,
    mut obj: Value,
    q: &Query,
) -> ApiResult<Prepared> {
    // Custom resources have their CRD's schema, not a built-in kind's rules.
    if crate::api::crd::is_custom(def) {
        return crate::api::crd::admission::prepare_create(st, def, namespace, obj, q).await;
    }
    check_type_meta(def, &mut obj)?;
    let (mut obj, mut warnings) = decode_fields(def, &obj, q)?;
    if crate::api::crd::is_crd(def) {
        warnings.extend(crate::api::crd::unenforced::warnings(&obj));
    }
    set_create_metadata(def, namespace, &mut obj)?;
    if object::name(&obj).is_empty() {
        return Err(invalid(
            def,
            &obj,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            }],
        ));
    }
    initial_status(def, &mut obj);
    fold_string_data(def, &mut obj);
    // What the request's manager owns: the object defaulted, before mutating admission. A
    // Pod's admission runs before its defaults (their order matters), so its snapshot is
    // defaulted apart; an Ingress's default class is the other admission step.
    let mut tracked = (def.kind == "Pod").then(|| {
        let mut before_admission = obj.clone();
        defaults::apply_defaults(def.kind, &mut before_admission);
        before_admission
    });
    if def.kind == "Pod" {
        // Before the generic defaults' fixed 300 s: the configured value wins.
        tolerations::add_default_tolerations(&mut obj, st.config.default_toleration_seconds);
    }
    kind_specific_create(def, &mut obj);
    defaults::apply_defaults(def.kind, &mut obj);
    status_counters::fill(def.kind, &mut obj);
    if def.kind == "Ingress" {
        let before_admission = obj.clone();
        ingress::set_default_class(st, &mut obj).await?;
        if before_admission != obj {
            tracked = Some(before_admission);
        }
    }
    let (guard, others) = service_context(st, def, None).await?;
    let mut causes = validation_causes(def, &obj, None);
    if def.kind == "Service" && causes.is_empty() {
        causes = st.services.assign(&mut obj, None, &others);
    }
    if !causes.is_empty() {
        return Err(invalid(def, &obj, causes));
    }
    if let (true, Some(ns)) = (def.namespaced, namespace) {
        check_namespace(st, def, ns).await?;
    }
    if def.kind == "Pod" {
        apply_runtime_class(st, &mut obj).await?;
    }
    Ok(Prepared {
        object: obj,
        warnings,
        _allocation: guard,
        tracked,
    })
}

/// The metadata the server sets on a new object (Kubernetes' `FillObjectMetaSystemFields` and
/// create strategy): the namespace from the URL (a different one in the body is refused), a
/// name from `generateName`, a fresh uid and creation time, generation 1 for kinds that count
/// spec changes, and nothing a client may not set.
pub(crate) fn set_create_metadata(
    def: &ResourceDef,
    namespace: Option<&str>,
    obj: &mut Value,
) -> ApiResult<()> {
    let meta = meta_mut(obj);
    match (def.namespaced, namespace) {
        (true, Some(ns)) => {
            if let Some(given) = meta.get("namespace").and_then(Value::as_str) {
                if !given.is_empty() && given != ns {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
                    )));
                }
            }
            meta.insert("namespace".into(), json!(ns));
        }
        _ => {
            meta.remove("namespace");
        }
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
            if !prefix.is_empty() {
                let name = format!("{prefix}{}", object::random_suffix(5));
                meta.insert("name".into(), json!(name));
            }
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(k);
    }
    if def.has_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    Ok(())
}

/// On update, the metadata the server owns always comes from the stored object (uid, times,
/// namespace, generation, the name), and managedFields are the field manager's to write.
pub(crate) fn keep_server_metadata(current: &Value, obj: &mut Value, name: &str) {
    let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(obj);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ] {
        match cur_meta.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.insert("name".into(), json!(name));
    meta.remove("managedFields");
    meta.remove("selfLink");
}

/// An update that changed what `metadata.generation` counts: the next generation.
pub(crate) fn bump_generation(current: &Value, obj: &mut Value) {
    let generation = current
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    meta_mut(obj).insert("generation".into(), json!(generation + 1));
}

/// A terminating object may drop finalizers but not gain new ones.
pub(crate) fn refuse_new_finalizers(
    def: &ResourceDef,
    current: &Value,
    obj: &Value,
    name: &str,
) -> ApiResult<()> {
    if !object::is_terminating(current) {
        return Ok(());
    }
    let old = object::finalizers(current);
    let added: Vec<String> = object::finalizers(obj)
        .into_iter()
        .filter(|f| !old.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{} \"{name}\" is being deleted: no new finalizers can be added ({})",
        crate::api::status::qualified(def.plural, def.group),
        added.join(", ")
    )))
}

/// What a freshly created object's status is (Kubernetes' PrepareForCreate).
fn initial_status(def: &ResourceDef, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match def.kind {
        "Namespace" => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        "Pod" => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        // Go's encoder keeps their non-pointer `loadBalancer` struct.
        "Service" | "Ingress" => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        // Nodes report their own status when they register.
        "Node" => {}
        _ if def.has_status() => {
            map.insert("status".into(), json!({}));
        }
        _ => {}
    }
}

/// A Secret's `stringData` is write-only: Kubernetes folds it into `data` (base64).
fn fold_string_data(def: &ResourceDef, obj: &mut Value) {
    if def.kind != "Secret" {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(d) = data.as_object_mut() {
        use base64::Engine;
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            d.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn kind_specific_create(def: &ResourceDef, obj: &mut Value) {
    match def.kind {
        "Namespace" => {
            if let Some(map) = obj.as_object_mut() {
                let spec = map.entry("spec").or_insert_with(|| json!({}));
                if spec.get("finalizers").is_none() {
                    spec["finalizers"] = json!(["kubernetes"]);
                }
            }
            let name = object::name(obj).to_string();
            let meta = meta_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        "Job" => defaults::job_generate_selector(obj),
        "Pod" => defaults::pod_admission_defaults(obj),
        _ => {}
    }
}

/// Prepares a replacement of `current` for `PUT`/`PATCH` (of the object or a subresource).
pub async fn prepare_update(
    st: &ApiState,
    def: &ResourceDef,
    current: &Value,
    mut new: Value,
    sub: Subresource,
    q: &Query,
) -> ApiResult<Prepared> {
    if crate::api::crd::is_custom(def) {
        return crate::api::crd::admission::prepare_update(def, current, new, sub, q).await;
    }
    check_type_meta(def, &mut new)?;
    let (new, mut warnings) = decode_fields(def, &new, q)?;
    if crate::api::crd::is_crd(def) && sub == Subresource::Main {
        warnings.extend(crate::api::crd::unenforced::warnings(&new));
    }
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
                if let (Some(map), Some(status)) = (obj.as_object_mut(), current.get("status")) {
                    map.insert("status".into(), status.clone());
                }
            }
            obj
        }
        Subresource::Status => {
            let mut obj = current.clone();
            if let Some(map) = obj.as_object_mut() {
                map.insert(
                    "status".into(),
                    new.get("status").cloned().unwrap_or(json!({})),
                );
            }
            // Labels and annotations may change through status writes, as in Kubernetes.
            merge_meta_maps(&mut obj, &new);
            obj
        }
        Subresource::Finalize => {
            let mut obj = current.clone();
            let fins = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), fins);
            }
            obj
        }
    };
    keep_server_metadata(current, &mut obj, &name);
    fold_string_data(def, &mut obj);
    if def.kind == "Service" && sub == Subresource::Main {
        services::drop_type_dependent_fields(&mut obj, current);
        defaults::service_carry_over_allocations(&mut obj, current);
    }
    defaults::apply_defaults(def.kind, &mut obj);
    status_counters::fill(def.kind, &mut obj);
    if def.has_generation && object::spec_part(&obj) != object::spec_part(current) {
        bump_generation(current, &mut obj);
    }
    refuse_new_finalizers(def, current, &obj, &name)?;
    let own = (object::namespace(current).to_string(), name.clone());
    // Only a change of a Service's spec can need addresses or ports: a metadata or status
    // change (an annotation, a controller's mark) does not take the allocator's lock or read
    // every Service.
    let allocates =
        def.kind == "Service" && sub == Subresource::Main && obj.get("spec") != current.get("spec");
    let (guard, others) = if allocates {
        service_context(st, def, Some((own.0.as_str(), own.1.as_str()))).await?
    } else {
        (None, Vec::new())
    };
    let mut causes = validation_causes(def, &obj, Some(current));
    if allocates && causes.is_empty() {
        causes = st.services.assign(&mut obj, Some(current), &others);
    }
    if !causes.is_empty() {
        return Err(invalid(def, &obj, causes));
    }
    Ok(Prepared {
        object: obj,
        warnings,
        _allocation: guard,
        tracked: None,
    })
}

/// Kubernetes' RuntimeClass admission: the class must exist, and its `scheduling`
/// nodeSelector and tolerations are merged into the pod so it lands on a node with that runtime.
async fn apply_runtime_class(st: &ApiState, pod: &mut Value) -> ApiResult<()> {
    let Some(class) = pod
        .pointer("/spec/runtimeClassName")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(());
    };
    let name = object::name(pod).to_string();
    let rc = st
        .store
        .get(&ObjectKey::new("node.k8s.io/runtimeclasses", "", &class))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: pod rejected: RuntimeClass \"{class}\" not found (kubectl get runtimeclasses lists the ones this cluster has)"
            ))
        })?;
    if rc.get("handler").and_then(Value::as_str) == Some(crate::bootstrap::WASM_HANDLER) {
        reject_exec_probes(pod, &name, &class)?;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(sel) = rc
        .pointer("/scheduling/nodeSelector")
        .and_then(Value::as_object)
    {
        let target = spec.entry("nodeSelector").or_insert_with(|| json!({}));
        if let Some(target) = target.as_object_mut() {
            for (k, v) in sel {
                match target.get(k) {
                    Some(existing) if existing != v => {
                        return Err(ApiError::forbidden(format!(
                            "pods \"{name}\" is forbidden: pod rejected: conflict: runtimeClass.scheduling.nodeSelector[{k}] = {v}; pod.spec.nodeSelector[{k}] = {existing}"
                        )))
                    }
                    _ => {
                        target.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    if let Some(tols) = rc
        .pointer("/scheduling/tolerations")
        .and_then(Value::as_array)
    {
        let target = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(target) = target.as_array_mut() {
            for t in tols {
                if !target.contains(t) {
                    target.push(t.clone());
                }
            }
        }
    }
    Ok(())
}

/// A Wasm component has no shell and no processes to run a command in, so an `exec` probe
/// could never succeed: refuse it up front, naming the probe and what to use instead.
fn reject_exec_probes(pod: &Value, name: &str, class: &str) -> ApiResult<()> {
    let mut causes = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if c.pointer(&format!("/{probe}/exec")).is_some() {
                    causes.push(Cause {
                        reason: "FieldValueForbidden".into(),
                        message: format!(
                            "Forbidden: exec probes cannot run in a Wasm pod (runtimeClassName \"{class}\"): a component has no shell; use an httpGet or tcpSocket probe"
                        ),
                        field: format!("spec.{list}[{i}].{probe}.exec"),
                    });
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("Pod", "", name, causes))
    }
}

fn merge_meta_maps(obj: &mut Value, from: &Value) {
    for field in ["labels", "annotations"] {
        if let Some(v) = from.get("metadata").and_then(|m| m.get(field)) {
            meta_mut(obj).insert(field.into(), v.clone());
        }
    }
}
