//! Kubernetes validation (ValidateObjectMeta + per-kind rules, the subset
//! that matters for a working cluster), with Kubernetes' field paths and
//! wording. Run `apply_defaults` first, as the API server does: fields
//! defaulting would fill are reported as `Required value` only when a kind's
//! Kubernetes validation does so after defaulting.

mod cluster;
mod common;
mod config;
mod cron;
mod endpoints;
pub mod ingress;
mod meta;
mod pod;
mod probes;
mod pvc;
mod resources;
pub mod scale_annotations;
mod service;
mod service_ips;
mod volumes;
mod workloads;

pub use crate::api::admission::field::{
    invalid_message, invalid_status, Bad, FieldError, FieldErrorReason,
};
pub use crate::api::admission::schema::{
    normalize, strict_decoding_message, unknown_fields, NormalizeError,
};
pub use cron::validate_schedule;

use serde_json::Value;

/// Validates `obj` as `kind`; `old` is the stored object for updates (enables
/// immutability checks). Returns every problem found (empty = valid).
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !obj.is_object() {
        errs.push(FieldError::invalid("", obj, "must be a JSON object"));
        return errs;
    }
    let old = old.filter(|o| o.is_object());
    meta::object_meta(kind, obj, &mut errs);
    if let Some(o) = old {
        meta::object_meta_update(obj, o, &mut errs);
    }
    match kind {
        "Pod" => pod::validate_pod(obj, old, &mut errs),
        "Deployment" => {
            workloads::deployment(obj, old, &mut errs);
            scale_annotations::validate(obj, &mut errs);
        }
        "ReplicaSet" => workloads::replica_set(obj, old, &mut errs),
        "DaemonSet" => workloads::daemon_set(obj, old, &mut errs),
        "StatefulSet" => workloads::stateful_set(obj, old, &mut errs),
        "Job" => workloads::job(obj, old, &mut errs),
        "CronJob" => workloads::cron_job(obj, old, &mut errs),
        "ControllerRevision" => workloads::controller_revision(obj, old, &mut errs),
        "PersistentVolumeClaim" => pvc::persistent_volume_claim(obj, old, &mut errs),
        "Service" => service::service(obj, old, &mut errs),
        "Endpoints" => endpoints::endpoints(obj, &mut errs),
        "EndpointSlice" => endpoints::endpoint_slice(obj, old, &mut errs),
        "ConfigMap" => config::config_map(obj, old, &mut errs),
        "Secret" => config::secret(obj, old, &mut errs),
        "ServiceAccount" => config::service_account(obj, &mut errs),
        "Namespace" => cluster::namespace(obj, &mut errs),
        "Node" => cluster::node(obj, &mut errs),
        "Event" => cluster::event(obj, &mut errs),
        "Lease" => cluster::lease(obj, &mut errs),
        "HorizontalPodAutoscaler" => cluster::hpa(obj, &mut errs),
        "RuntimeClass" => cluster::runtime_class(obj, old, &mut errs),
        "PodDisruptionBudget" => cluster::pdb(obj, &mut errs),
        "Ingress" => ingress::ingress(obj, old, &mut errs),
        "IngressClass" => ingress::ingress_class(obj, old, &mut errs),
        "CustomResourceDefinition" => crate::api::crd::definition::validate(obj, old, &mut errs),
        _ => {}
    }
    errs
}
