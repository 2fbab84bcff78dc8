//! A StatefulSet pod's stable identity (Kubernetes' `stateful_set_utils.go`): the name
//! `<set>-<ordinal>`, the `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`
//! labels, hostname and subdomain, the `controller-revision-hash` label naming the revision a
//! pod was made from, and the revision data (`{"spec":{"template":{…,"$patch":"replace"}}}`).

use serde_json::{json, Map, Value};

use super::claims;
use crate::api::object;
use crate::controllers::replicaset::claim::controller_ref_to;

/// The label holding a pod's own name (a stable selector for one replica).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a pod's ordinal (Kubernetes' PodIndexLabel feature, on by default).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label naming the ControllerRevision a pod was made from (its full name).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// `<set>-<ordinal>`.
pub fn pod_name(set_name: &str, ordinal: i64) -> String {
    format!("{set_name}-{ordinal}")
}

/// The parent name and ordinal encoded in a pod name (`web-12` → `("web", 12)`), as
/// Kubernetes' `getParentNameAndOrdinal` (`^(.*)-([0-9]+)$`).
pub fn parent_and_ordinal(pod_name: &str) -> Option<(&str, i64)> {
    let (parent, digits) = pod_name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse().ok()?))
}

/// The ordinal of a pod of `set` (`None` when its name does not belong to the set).
pub fn ordinal_of(set: &Value, pod: &Value) -> Option<i64> {
    match parent_and_ordinal(object::name(pod)) {
        Some((parent, ord)) if parent == object::name(set) => Some(ord),
        _ => None,
    }
}

/// `spec.replicas` (defaulted to 1, as the API does).
pub fn replicas(set: &Value) -> i64 {
    set.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0)
}

/// `spec.ordinals.start` (0 when unset).
pub fn start_ordinal(set: &Value) -> i64 {
    set.pointer("/spec/ordinals/start")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0)
}

/// Whether `ordinal` is in `[start, start + replicas)`.
pub fn in_range(set: &Value, ordinal: i64) -> bool {
    let start = start_ordinal(set);
    ordinal >= start && ordinal < start + replicas(set)
}

/// The ControllerRevision name a pod was made from.
pub fn pod_revision(pod: &Value) -> &str {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(REVISION_LABEL))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub use crate::controllers::revisions::template_data as revision_data;

/// The pod template a revision holds (its data's template without the patch directive).
pub fn revision_template(revision: &Value) -> Option<Value> {
    let mut t = revision.pointer("/data/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    Some(t)
}

/// The pod with `ordinal` as `template` stamps it out for `set` at `revision` (Kubernetes'
/// `newStatefulSetPod` + `setPodRevision`): template labels, annotations and finalizers, a
/// controller ownerReference, the identity labels, hostname/subdomain, and the claim volumes.
pub fn new_pod(set: &Value, template: &Value, revision: &str, ordinal: i64) -> Value {
    let name = pod_name(object::name(set), ordinal);
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    meta.insert("namespace".into(), json!(object::namespace(set)));
    for field in ["annotations", "finalizers"] {
        if let Some(v) = template
            .pointer(&format!("/metadata/{field}"))
            .filter(|v| !v.is_null())
        {
            meta.insert(field.into(), v.clone());
        }
    }
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert("ownerReferences".into(), json!([controller_ref_to(set)]));
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(s) = spec.as_object_mut() {
        s.insert("hostname".into(), json!(name));
        match set.pointer("/spec/serviceName").and_then(Value::as_str) {
            Some(svc) if !svc.is_empty() => {
                s.insert("subdomain".into(), json!(svc));
            }
            _ => {}
        }
    }
    claims::set_claim_volumes(set, ordinal, &mut spec);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
    })
}

/// Kubernetes' `identityMatches`: name, namespace and identity labels are the set's.
pub fn identity_matches(set: &Value, pod: &Value) -> bool {
    let Some(ordinal) = ordinal_of(set, pod) else {
        return false;
    };
    let labels = object::labels(pod);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    object::name(pod) == pod_name(object::name(set), ordinal)
        && object::namespace(pod) == object::namespace(set)
        && label(POD_NAME_LABEL) == Some(object::name(pod))
        && label(POD_INDEX_LABEL) == Some(ordinal.to_string().as_str())
}

/// Kubernetes' `updateIdentity` for a stored pod: the identity labels.
pub fn update_identity(pod: &mut Value, ordinal: i64) {
    let name = object::name(pod).to_string();
    let meta = object::meta_mut(pod);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(POD_NAME_LABEL.into(), json!(name));
        l.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {
                "replicas": 3, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "counter:v1",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            },
        })
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
        assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        let pod = json!({"metadata": {"name": "web-2"}});
        assert_eq!(ordinal_of(&set(), &pod), Some(2));
        assert_eq!(
            ordinal_of(&set(), &json!({"metadata": {"name": "webx-2"}})),
            None
        );
        assert!(in_range(&set(), 2));
        assert!(!in_range(&set(), 3));
    }

    #[test]
    fn pods_carry_identity_revision_and_claims() {
        let s = set();
        let tpl = s["spec"]["template"].clone();
        let pod = new_pod(&s, &tpl, "web-abc", 1);
        assert_eq!(pod["metadata"]["name"], "web-1");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[POD_NAME_LABEL], "web-1");
        assert_eq!(labels[POD_INDEX_LABEL], "1");
        assert_eq!(labels[REVISION_LABEL], "web-abc");
        assert_eq!(pod["spec"]["hostname"], "web-1");
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        // The template's `data` volume is replaced by the claim; others are kept.
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
                   {"name": "cfg", "configMap": {"name": "x"}}])
        );
        assert!(identity_matches(&s, &pod));
        let mut stripped = pod.clone();
        stripped["metadata"]["labels"] = json!({"app": "web"});
        assert!(!identity_matches(&s, &stripped));
        update_identity(&mut stripped, 1);
        assert!(identity_matches(&s, &stripped));
    }

    #[test]
    fn revision_data_round_trips_the_template() {
        let s = set();
        let data = revision_data(&s);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let cr = json!({"data": data});
        assert_eq!(revision_template(&cr).unwrap(), s["spec"]["template"]);
    }
}
