//! Strict field checking and schema normalization by round-tripping through
//! the `k8s-openapi` types (which ignore unknown fields on input).

use crate::api::admission::quantity::number_to_quantity_string;
use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// A decoding problem: wrong JSON type at `path`, wrong apiVersion/kind, or a
/// non-object body. `Display` follows Kubernetes:
/// `Deployment in version "v1" cannot be handled as a Deployment: spec.replicas: invalid type: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeError {
    pub kind: String,
    pub version: String,
    /// JSON path like `spec.template.spec.containers[0].name` (empty for the root).
    pub path: String,
    pub message: String,
}

impl fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in version \"{}\" cannot be handled as a {}: ",
            self.kind, self.version, self.kind
        )?;
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for NormalizeError {}

struct Roundtrip {
    api_version: &'static str,
    kind: &'static str,
    /// `Err((path, message))` when the input does not fit the type
    output: Result<Value, (String, String)>,
}

fn roundtrip<T>(input: Value) -> Roundtrip
where
    T: DeserializeOwned + Serialize + Resource,
{
    let output = match serde_path_to_error::deserialize::<_, T>(input) {
        Ok(typed) => serde_json::to_value(&typed).map_err(|e| (String::new(), e.to_string())),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            Err((path, e.into_inner().to_string()))
        }
    };
    Roundtrip {
        api_version: T::API_VERSION,
        kind: T::KIND,
        output,
    }
}

macro_rules! dispatch {
    ($kind:expr, $input:expr, { $($name:literal => $ty:ty,)* }) => {
        match $kind {
            $($name => Some(roundtrip::<$ty>($input)),)*
            _ => None,
        }
    };
}

fn run(kind: &str, input: Value) -> Option<Roundtrip> {
    dispatch!(kind, input, {
        "Namespace" => api::core::v1::Namespace,
        "Pod" => api::core::v1::Pod,
        "Node" => api::core::v1::Node,
        "Service" => api::core::v1::Service,
        "Endpoints" => api::core::v1::Endpoints,
        "ConfigMap" => api::core::v1::ConfigMap,
        "Secret" => api::core::v1::Secret,
        "Event" => api::core::v1::Event,
        "ServiceAccount" => api::core::v1::ServiceAccount,
        "PersistentVolumeClaim" => api::core::v1::PersistentVolumeClaim,
        "PersistentVolume" => api::core::v1::PersistentVolume,
        "PodTemplate" => api::core::v1::PodTemplate,
        "ReplicationController" => api::core::v1::ReplicationController,
        "LimitRange" => api::core::v1::LimitRange,
        "ResourceQuota" => api::core::v1::ResourceQuota,
        "Deployment" => api::apps::v1::Deployment,
        "ReplicaSet" => api::apps::v1::ReplicaSet,
        "DaemonSet" => api::apps::v1::DaemonSet,
        "StatefulSet" => api::apps::v1::StatefulSet,
        "ControllerRevision" => api::apps::v1::ControllerRevision,
        "Job" => api::batch::v1::Job,
        "CronJob" => api::batch::v1::CronJob,
        "Lease" => api::coordination::v1::Lease,
        "EndpointSlice" => api::discovery::v1::EndpointSlice,
        "HorizontalPodAutoscaler" => api::autoscaling::v2::HorizontalPodAutoscaler,
        "RuntimeClass" => api::node::v1::RuntimeClass,
        "PodDisruptionBudget" => api::policy::v1::PodDisruptionBudget,
        "Role" => api::rbac::v1::Role,
        "RoleBinding" => api::rbac::v1::RoleBinding,
        "ClusterRole" => api::rbac::v1::ClusterRole,
        "ClusterRoleBinding" => api::rbac::v1::ClusterRoleBinding,
        "StorageClass" => api::storage::v1::StorageClass,
        "PriorityClass" => api::scheduling::v1::PriorityClass,
        "Ingress" => api::networking::v1::Ingress,
        "IngressClass" => api::networking::v1::IngressClass,
        "NetworkPolicy" => api::networking::v1::NetworkPolicy,
        "CustomResourceDefinition" => apiext::CustomResourceDefinition,
    })
}

/// Whether `normalize`/`unknown_fields` know a typed schema for `kind`.
pub fn has_schema(kind: &str) -> bool {
    run(kind, Value::Object(Map::new())).is_some()
}

const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "overhead",
];
const LIMIT_RANGE_MAPS: &[&str] = &[
    "max",
    "min",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
];
const QUANTITY_SCALARS: &[&str] = &["sizeLimit", "divisor"];

fn num_to_quantity(v: &mut Value) {
    if let Value::Number(n) = v {
        *v = Value::String(number_to_quantity_string(n));
    }
}

/// Kubernetes accepts JSON numbers for quantities (`cpu: 1`); k8s-openapi
/// wants strings, so convert numbers at quantity positions first.
fn fix_quantities(v: &mut Value, kind: &str) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let is_map = QUANTITY_MAPS.contains(&k.as_str())
                    || (kind == "LimitRange" && LIMIT_RANGE_MAPS.contains(&k.as_str()));
                if is_map {
                    if let Value::Object(q) = child {
                        q.values_mut().for_each(num_to_quantity);
                    }
                } else if QUANTITY_SCALARS.contains(&k.as_str()) {
                    num_to_quantity(child);
                } else if kind == "HorizontalPodAutoscaler" && (k == "target" || k == "current") {
                    if let Value::Object(t) = child {
                        for kk in ["value", "averageValue"] {
                            if let Some(x) = t.get_mut(kk) {
                                num_to_quantity(x);
                            }
                        }
                    }
                }
                fix_quantities(child, kind);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| fix_quantities(x, kind)),
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn diff(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                match o.get(k) {
                    None => out.push(join(path, k)),
                    Some(ov) => diff(v, ov, &join(path, k), out),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o.iter()).enumerate() {
                diff(iv, ov, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Drops what the round-trip added (zero values of required fields).
fn prune(output: &mut Value, input: &Value) {
    match (output, input) {
        (Value::Object(o), Value::Object(i)) => {
            o.retain(|k, _| i.get(k).is_some_and(|v| !v.is_null()));
            for (k, ov) in o.iter_mut() {
                if let Some(iv) = i.get(k) {
                    prune(ov, iv);
                }
            }
        }
        (Value::Array(o), Value::Array(i)) => {
            for (ov, iv) in o.iter_mut().zip(i.iter()) {
                prune(ov, iv);
            }
        }
        _ => {}
    }
}

struct Prepared {
    input: Value,
    rt: Roundtrip,
}

fn prepare(kind: &str, obj: &Value) -> Option<Prepared> {
    let mut input = obj.clone();
    if let Value::Object(m) = &mut input {
        m.remove("apiVersion");
        m.remove("kind");
    }
    fix_quantities(&mut input, kind);
    let rt = run(kind, input.clone())?;
    Some(Prepared { input, rt })
}

/// Paths of fields the kind's schema does not know (for
/// `fieldValidation=Strict`/`Warn`), e.g. `spec.replicasss`,
/// `spec.template.spec.containers[0].imagee`. Keys with `null` values are
/// ignored; free-form maps (labels, data, …) never report. Unknown kinds and
/// undecodable objects (see `normalize`) report nothing.
pub fn unknown_fields(kind: &str, obj: &Value) -> Vec<String> {
    let Some(p) = prepare(kind, obj) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(output) = &p.rt.output {
        diff(&p.input, output, "", &mut out);
    }
    out
}

/// Kubernetes' strict-decoding message for unknown fields:
/// `strict decoding error: unknown field "spec.replicasss", unknown field "…"`.
pub fn strict_decoding_message(paths: &[String]) -> String {
    let parts: Vec<String> = paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    format!("strict decoding error: {}", parts.join(", "))
}

/// One warning per unknown field (`unknown field "spec.replicasss"`), as
/// `fieldValidation=Warn` returns them.
pub fn unknown_field_warnings(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect()
}

/// Decodes `obj` as `kind` and re-encodes it: unknown fields are dropped,
/// wrong JSON types are errors naming the field, quantities given as numbers
/// become strings, apiVersion/kind are set. Fields the input did not have are
/// not added. Unknown kinds are returned unchanged.
pub fn normalize(kind: &str, obj: &Value) -> Result<Value, NormalizeError> {
    let version = crate::api::admission::kinds::api_version_of(kind)
        .map(|v| v.rsplit('/').next().unwrap_or("v1").to_string())
        .unwrap_or_else(|| "v1".into());
    let err = |path: &str, message: String| NormalizeError {
        kind: kind.to_string(),
        version: version.clone(),
        path: path.to_string(),
        message,
    };
    if !obj.is_object() {
        return Err(err("", "expected a JSON object".into()));
    }
    let Some(p) = prepare(kind, obj) else {
        return Ok(obj.clone());
    };
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != p.rt.api_version {
            return Err(err(
                "",
                format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    p.rt.api_version
                ),
            ));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != p.rt.kind {
            return Err(err(
                "",
                format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    p.rt.kind
                ),
            ));
        }
    }
    match p.rt.output {
        Err((path, msg)) => Err(err(&path, msg)),
        Ok(mut out) => {
            prune(&mut out, &p.input);
            if let Value::Object(m) = &mut out {
                m.insert("apiVersion".into(), Value::String(p.rt.api_version.into()));
                m.insert("kind".into(), Value::String(p.rt.kind.into()));
            }
            Ok(out)
        }
    }
}
