//! Ingress admission: Kubernetes' DefaultIngressClass plugin (an Ingress created without a
//! class gets the default IngressClass's name) and the IngressClass defaults.

use serde_json::{json, Value};

use super::util::obj_mut;
use crate::api::object;
use crate::api::status::{ApiError, ApiResult};
use crate::api::ApiState;
use crate::store::ListScope;

/// The annotation that makes an IngressClass the cluster's default (value `"true"`).
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// Where IngressClasses are stored.
pub const INGRESS_CLASSES: &str = "networking.k8s.io/ingressclasses";

/// `SetDefaults_IngressClass`: a parameters reference without a scope is cluster-scoped.
pub(crate) fn ingress_class_defaults(obj: &mut Value) {
    if let Some(params) = obj
        .get_mut("spec")
        .and_then(|s| s.get_mut("parameters"))
        .and_then(Value::as_object_mut)
    {
        if params.get("scope").is_none_or(Value::is_null) {
            params.insert("scope".into(), json!("Cluster"));
        }
    }
}

fn is_default(class: &Value) -> bool {
    class
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

fn created(class: &Value) -> Option<jiff::Timestamp> {
    object::meta_str(class, "creationTimestamp")?.parse().ok()
}

/// The default IngressClass among `classes`, as the DefaultIngressClass plugin (Kubernetes
/// 1.25+) picks it: of those annotated `ingressclass.kubernetes.io/is-default-class: "true"`,
/// the newest, and of equally new ones the first by name.
pub fn default_class(classes: &[Value]) -> Option<&Value> {
    classes.iter().filter(|c| is_default(c)).min_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| object::name(a).cmp(object::name(b)))
    })
}

/// Whether an Ingress names its class, by `spec.ingressClassName` or the older
/// `kubernetes.io/ingress.class` annotation.
fn has_class(ing: &Value) -> bool {
    ing.pointer("/spec/ingressClassName")
        .is_some_and(|v| !v.is_null())
        || ing
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(super::validation::ingress::CLASS_ANNOTATION))
            .is_some()
}

/// DefaultIngressClass admission, on create only: an Ingress that names no class gets the
/// default IngressClass's name in `spec.ingressClassName`; without a default it stays unset.
pub(crate) async fn set_default_class(st: &ApiState, ing: &mut Value) -> ApiResult<()> {
    if has_class(ing) {
        return Ok(());
    }
    let classes = st
        .store
        .list(&ListScope::new(INGRESS_CLASSES, None))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let Some(class) = default_class(&classes.items) else {
        return Ok(());
    };
    let class = object::name(class).to_string();
    tracing::debug!(ingress = %object::name(ing), %class, "defaulting the ingress class");
    if let Some(spec) = obj_mut(ing, "spec") {
        spec.insert("ingressClassName".into(), json!(class));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: bool) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}, "spec": {"controller": "example.com/x"}});
        if default {
            c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        c
    }

    #[test]
    fn the_newest_default_class_wins_then_the_first_name() {
        let name = |cs: &[Value]| default_class(cs).map(|c| object::name(c).to_string());
        assert_eq!(name(&[class("a", "2024-01-01T00:00:00Z", false)]), None);
        let mut not_true = class("b", "2024-01-01T00:00:00Z", false);
        not_true["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "yes"});
        assert_eq!(name(&[not_true]), None);
        let classes = [
            class("old", "2024-01-01T00:00:00Z", true),
            class("zz", "2024-06-01T00:00:00Z", true),
            class("new", "2024-06-01T00:00:00Z", true),
            class("newest", "2025-01-01T00:00:00Z", false),
        ];
        assert_eq!(name(&classes), Some("new".into()));
        assert_eq!(name(&classes[..1]), Some("old".into()));
    }

    #[test]
    fn parameters_default_to_cluster_scope() {
        let mut c =
            json!({"spec": {"controller": "x.io/y", "parameters": {"kind": "K", "name": "n"}}});
        ingress_class_defaults(&mut c);
        assert_eq!(c["spec"]["parameters"]["scope"], "Cluster");
        let mut c =
            json!({"spec": {"parameters": {"kind": "K", "name": "n", "scope": "Namespace"}}});
        ingress_class_defaults(&mut c);
        assert_eq!(c["spec"]["parameters"]["scope"], "Namespace");
        let mut c = json!({"spec": {}});
        ingress_class_defaults(&mut c);
        assert_eq!(c, json!({"spec": {}}));
    }

    #[test]
    fn a_named_class_or_annotation_is_kept() {
        assert!(has_class(&json!({"spec": {"ingressClassName": "x"}})));
        assert!(has_class(
            &json!({"metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}}, "spec": {}})
        ));
        assert!(!has_class(&json!({"spec": {"ingressClassName": null}})));
    }
}
