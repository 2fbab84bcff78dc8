//! PersistentVolumeClaims from `volumeClaimTemplates` (Kubernetes' `stateful_pod_control.go`
//! and `stateful_set_utils.go`): one claim `<template>-<set>-<ordinal>` per template and
//! replica, labelled with the selector's matchLabels, created before its pod and kept when the
//! pod goes. The pod's volume of the template's name becomes `persistentVolumeClaim:
//! {claimName}`. `persistentVolumeClaimRetentionPolicy` (default Retain/Retain) is enforced
//! with ownerReferences as Kubernetes does: `whenDeleted: Delete` → the claim is owned by the
//! set; `whenScaled: Delete` → a scaled-down pod's claim is owned by that pod; the garbage
//! collector then deletes claims whose owners are gone.

use serde_json::{json, Map, Value};

use super::StatefulSetController;
use crate::api::handlers::Subresource;
use crate::api::object;
use crate::api::{ApiError, ApiResult};
use crate::events::EventType;

/// `<template>-<set>-<ordinal>` (Kubernetes' `getPersistentVolumeClaimName`).
pub fn claim_name(template: &str, set_name: &str, ordinal: i64) -> String {
    format!("{template}-{set_name}-{ordinal}")
}

fn templates(set: &Value) -> &[Value] {
    set.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn template_name(t: &Value) -> &str {
    t.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether the set has any volumeClaimTemplates.
pub fn has_templates(set: &Value) -> bool {
    !templates(set).is_empty()
}

/// The claims of replica `ordinal`: (template name, claim object to create), in template order
/// (Kubernetes' `getPersistentVolumeClaims`).
pub fn claims_for(set: &Value, ordinal: i64) -> Vec<(String, Value)> {
    let match_labels = set
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    templates(set)
        .iter()
        .filter(|t| !template_name(t).is_empty())
        .map(|t| {
            let tname = template_name(t).to_string();
            let mut meta = Map::new();
            meta.insert(
                "name".into(),
                json!(claim_name(&tname, object::name(set), ordinal)),
            );
            meta.insert("namespace".into(), json!(object::namespace(set)));
            let mut labels = t
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            labels.extend(match_labels.clone());
            meta.insert("labels".into(), Value::Object(labels));
            if let Some(a) = t.pointer("/metadata/annotations").filter(|a| a.is_object()) {
                meta.insert("annotations".into(), a.clone());
            }
            let claim = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": meta,
                "spec": t.get("spec").cloned().unwrap_or_else(|| json!({})),
            });
            (tname, claim)
        })
        .collect()
}

/// Puts a `persistentVolumeClaim` volume for each template first in `pod_spec.volumes`,
/// replacing any template volume of the same name (Kubernetes' `updateStorage`).
pub fn set_claim_volumes(set: &Value, ordinal: i64, pod_spec: &mut Value) {
    let claims = claims_for(set, ordinal);
    if claims.is_empty() {
        return;
    }
    let Some(spec) = pod_spec.as_object_mut() else {
        return;
    };
    let mut volumes: Vec<Value> = claims
        .iter()
        .map(|(tname, claim)| {
            json!({"name": tname, "persistentVolumeClaim": {"claimName": object::name(claim)}})
        })
        .collect();
    let current = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in current {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        if !claims.iter().any(|(t, _)| t == name) {
            volumes.push(v);
        }
    }
    spec.insert("volumes".into(), Value::Array(volumes));
}

/// `spec.persistentVolumeClaimRetentionPolicy`: (whenDeleted is Delete, whenScaled is Delete).
pub fn retention(set: &Value) -> (bool, bool) {
    let is_delete = |k: &str| {
        set.pointer(&format!("/spec/persistentVolumeClaimRetentionPolicy/{k}"))
            .and_then(Value::as_str)
            == Some("Delete")
    };
    (is_delete("whenDeleted"), is_delete("whenScaled"))
}

fn refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or("")
}

/// A plain (non-controller) ownerReference, as Kubernetes' `setOwnerRef`.
fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": object::name(owner),
        "uid": object::meta_str(owner, "uid").unwrap_or(""),
    })
}

/// The ownerReferences `claim` should have under the set's retention policy for the claim of
/// `pod` (Kubernetes' `updateClaimOwnerRefForSetAndPod`); `None` when they already match.
pub fn desired_refs(
    claim: &Value,
    set: &Value,
    pod: &Value,
    scaled_down: bool,
) -> Option<Vec<Value>> {
    let (when_deleted, when_scaled) = retention(set);
    let set_uid = object::meta_str(set, "uid").unwrap_or("");
    let pod_uid = object::meta_str(pod, "uid").unwrap_or("");
    let (want_set, want_pod) = match (when_scaled, when_deleted) {
        (false, false) => (false, false),
        (false, true) => (true, false),
        (true, false) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    };
    let current = refs(claim);
    let mut next: Vec<Value> = current
        .iter()
        .filter(|r| {
            let uid = ref_uid(r);
            (want_set || uid != set_uid) && (want_pod || uid != pod_uid)
        })
        .cloned()
        .collect();
    if want_set && !next.iter().any(|r| ref_uid(r) == set_uid) {
        next.push(owner_ref(set, "apps/v1", "StatefulSet"));
    }
    if want_pod && !pod_uid.is_empty() && !next.iter().any(|r| ref_uid(r) == pod_uid) {
        next.push(owner_ref(pod, "v1", "Pod"));
    }
    (next != current).then_some(next)
}

/// A claim is stale for a pod about to be created when it is owned by an earlier pod of the
/// same name (scaled down with `whenScaled: Delete`, not yet collected): Kubernetes waits.
pub fn is_stale(claim: &Value, pod_name: &str) -> bool {
    refs(claim).iter().any(|r| {
        r.get("kind").and_then(Value::as_str) == Some("Pod")
            && r.get("name").and_then(Value::as_str) == Some(pod_name)
    })
}

impl StatefulSetController {
    /// Creates the missing claims of replica `ordinal` (Kubernetes'
    /// `createPersistentVolumeClaims`); a claim being deleted is an error.
    pub(super) async fn create_claims(
        &self,
        set: &Value,
        ordinal: i64,
        pod_name: &str,
    ) -> Result<(), String> {
        let ns = object::namespace(set);
        let mut errors = Vec::new();
        for (_, claim) in claims_for(set, ordinal) {
            let name = object::name(&claim).to_string();
            match self.objects.get(self.pvcs, ns, &name).await {
                Ok(None) => match self.objects.create(self.pvcs, ns, claim).await {
                    Ok(_) => {
                        let msg = format!(
                            "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                            object::name(set)
                        );
                        self.event(set, EventType::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => {
                        let msg = format!(
                            "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {}",
                            object::name(set),
                            e.message
                        );
                        self.event(set, EventType::Warning, "FailedCreate", &msg)
                            .await;
                        errors.push(format!("failed to create PVC {name}: {}", e.message));
                    }
                },
                Ok(Some(existing)) if object::is_terminating(&existing) => {
                    errors.push(format!("pvc {name} is being deleted"));
                }
                Ok(Some(_)) => {}
                Err(e) => errors.push(format!("failed to retrieve PVC {name}: {}", e.message)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Whether a claim of the pod about to be created still belongs to its predecessor
    /// (Kubernetes' `PodClaimIsStale`; only with `whenScaled: Delete`).
    pub(super) async fn claim_is_stale(
        &self,
        set: &Value,
        ordinal: i64,
        pod_name: &str,
    ) -> ApiResult<bool> {
        if !retention(set).1 {
            return Ok(false);
        }
        for (_, claim) in claims_for(set, ordinal) {
            if let Some(c) = self
                .objects
                .get(self.pvcs, object::namespace(set), object::name(&claim))
                .await?
            {
                if is_stale(&c, pod_name) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Brings the ownerReferences of `pod`'s claims in line with the retention policy
    /// (Kubernetes' `UpdatePodClaimForRetentionPolicy`). Missing claims are skipped.
    pub(super) async fn sync_retention(
        &self,
        set: &Value,
        pod: &Value,
        ordinal: i64,
        scaled_down: bool,
    ) -> ApiResult<()> {
        for (_, claim) in claims_for(set, ordinal) {
            let ns = object::namespace(set);
            let Some(current) = self
                .objects
                .get(self.pvcs, ns, object::name(&claim))
                .await?
            else {
                continue;
            };
            if desired_refs(&current, set, pod, scaled_down).is_none() {
                continue;
            }
            self.objects
                .modify(
                    self.pvcs,
                    ns,
                    object::name(&claim),
                    Subresource::Main,
                    |c| {
                        if object::is_terminating(c) {
                            return Err(ApiError::conflict(
                                "persistentvolumeclaims",
                                "",
                                object::name(c),
                            ));
                        }
                        if let Some(next) = desired_refs(c, set, pod, scaled_down) {
                            let meta = object::meta_mut(c);
                            if next.is_empty() {
                                meta.remove("ownerReferences");
                            } else {
                                meta.insert("ownerReferences".into(), Value::Array(next));
                            }
                        }
                        Ok(())
                    },
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(policy: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "set-uid"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "persistentVolumeClaimRetentionPolicy": policy,
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    "status": {"phase": "Pending"}}],
            },
        })
    }

    #[test]
    fn claims_are_named_and_labelled() {
        let s = set(json!({}));
        let claims = claims_for(&s, 2);
        assert_eq!(claims.len(), 1);
        let (t, c) = &claims[0];
        assert_eq!(t, "data");
        assert_eq!(c["metadata"]["name"], "data-web-2");
        assert_eq!(c["metadata"]["labels"], json!({"tier": "db", "app": "web"}));
        assert_eq!(c["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert!(c.get("status").is_none());
    }

    #[test]
    fn retention_policy_owner_references() {
        let pod = json!({"metadata": {"name": "web-2", "uid": "pod-uid"}});
        let claim = json!({"metadata": {"name": "data-web-2"}});
        let uids = |v: Option<Vec<Value>>| -> Option<Vec<String>> {
            v.map(|r| r.iter().map(|x| ref_uid(x).to_string()).collect())
        };
        // Retain/Retain: nothing to add.
        assert_eq!(desired_refs(&claim, &set(json!({})), &pod, true), None);
        // whenDeleted=Delete: owned by the set.
        let s = set(json!({"whenDeleted": "Delete", "whenScaled": "Retain"}));
        assert_eq!(
            uids(desired_refs(&claim, &s, &pod, false)),
            Some(vec!["set-uid".to_string()])
        );
        // whenScaled=Delete: owned by the pod once scaled down; the set ref moves to the pod.
        let s = set(json!({"whenDeleted": "Delete", "whenScaled": "Delete"}));
        let owned_by_set =
            json!({"metadata": {"ownerReferences": [owner_ref(&s, "apps/v1", "StatefulSet")]}});
        assert_eq!(desired_refs(&owned_by_set, &s, &pod, false), None);
        assert_eq!(
            uids(desired_refs(&owned_by_set, &s, &pod, true)),
            Some(vec!["pod-uid".to_string()])
        );
        // Back to Retain: references are removed.
        assert_eq!(
            uids(desired_refs(&owned_by_set, &set(json!({})), &pod, false)),
            Some(vec![])
        );
        let stale = json!({"metadata": {"ownerReferences": [{"kind": "Pod", "name": "web-2", "uid": "old"}]}});
        assert!(is_stale(&stale, "web-2"));
        assert!(!is_stale(&claim, "web-2"));
    }
}
