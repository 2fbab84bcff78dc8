//! Controller references (Kubernetes' `ControllerRefManager`): an owner claims the objects
//! its selector matches — keeps those it controls, adopts matching orphans, releases those it
//! controls that no longer match. Used for ReplicaSet → pods and Deployment → ReplicaSets.

use serde_json::{json, Value};

use crate::api::handlers::{Objects, Subresource};
use crate::api::object;
use crate::api::resources::ResourceDef;
use crate::api::selectors::LabelSelector;
use crate::api::{ApiError, ApiResult};

/// The ownerReference a controller puts on what it creates or adopts.
pub fn controller_ref_to(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": object::name(owner),
        "uid": object::meta_str(owner, "uid").unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The ownerReference with `controller: true`.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_refs(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

pub fn controller_uid(obj: &Value) -> Option<&str> {
    controller_ref(obj)?.get("uid")?.as_str()
}

/// What an owner does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by the owner and matching: it counts.
    Owned,
    /// A matching orphan: take it.
    Adopt,
    /// Controlled by the owner but no longer matching: let it go.
    Release,
    /// Someone else's, or not ours to touch now.
    Ignore,
}

/// Kubernetes' `ClaimObject` decision for `obj` and `owner` with `selector`.
pub fn classify(owner: &Value, selector: &LabelSelector, obj: &Value) -> Claim {
    let owner_uid = object::meta_str(owner, "uid").unwrap_or("");
    let matches = selector.matches_object(obj);
    match controller_uid(obj) {
        Some(uid) if uid == owner_uid => {
            if matches {
                Claim::Owned
            } else if object::is_terminating(owner) {
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None => {
            if matches && !object::is_terminating(owner) && !object::is_terminating(obj) {
                Claim::Adopt
            } else {
                Claim::Ignore
            }
        }
    }
}

/// Makes `owner` the controller of `obj`, unless another controller got there first or `obj`
/// was replaced (then `Ok(None)`). Returns the adopted object.
pub async fn adopt(
    objects: &Objects,
    def: &'static ResourceDef,
    obj: &Value,
    owner: &Value,
) -> ApiResult<Option<Value>> {
    let uid = object::meta_str(obj, "uid").unwrap_or("").to_string();
    let reference = controller_ref_to(owner);
    let result = objects
        .modify(
            def,
            object::namespace(obj),
            object::name(obj),
            Subresource::Main,
            |o| {
                if object::meta_str(o, "uid") != Some(uid.as_str())
                    || controller_ref(o).is_some()
                    || object::is_terminating(o)
                {
                    return Err(skip(def, o));
                }
                let meta = object::meta_mut(o);
                let refs = meta.entry("ownerReferences").or_insert_with(|| json!([]));
                match refs.as_array_mut() {
                    Some(a) => a.push(reference.clone()),
                    None => *refs = json!([reference.clone()]),
                }
                Ok(())
            },
        )
        .await;
    skipped(result)
}

/// Removes every ownerReference to `owner_uid` from `obj` (release or orphaning). Returns the
/// updated object, or `None` when it is gone, was replaced, or held no such reference.
pub async fn remove_owner(
    objects: &Objects,
    def: &'static ResourceDef,
    obj: &Value,
    owner_uid: &str,
) -> ApiResult<Option<Value>> {
    let uid = object::meta_str(obj, "uid").unwrap_or("").to_string();
    let result = objects
        .modify(
            def,
            object::namespace(obj),
            object::name(obj),
            Subresource::Main,
            |o| {
                let has = owner_refs(o)
                    .iter()
                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid));
                if object::meta_str(o, "uid") != Some(uid.as_str()) || !has {
                    return Err(skip(def, o));
                }
                let meta = object::meta_mut(o);
                let kept: Vec<Value> = meta
                    .get("ownerReferences")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                if kept.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), Value::Array(kept));
                }
                Ok(())
            },
        )
        .await;
    skipped(result)
}

/// The marker error a `modify` closure returns to leave the object alone.
fn skip(def: &ResourceDef, o: &Value) -> ApiError {
    let mut e = ApiError::conflict(def.plural, def.group, object::name(o));
    e.reason = SKIP_REASON;
    e
}

const SKIP_REASON: &str = "SkiffClaimSkipped";

fn skipped(result: ApiResult<Option<Value>>) -> ApiResult<Option<Value>> {
    match result {
        Err(e) if e.reason == SKIP_REASON => Ok(None),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel() -> LabelSelector {
        LabelSelector::from_k8s(&json!({"matchLabels": {"app": "web"}})).unwrap()
    }

    fn owner() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "uid": "u1"}})
    }

    #[test]
    fn claims_as_kubernetes() {
        let mine = json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [controller_ref_to(&owner())]}});
        assert_eq!(classify(&owner(), &sel(), &mine), Claim::Owned);
        let mut relabeled = mine.clone();
        relabeled["metadata"]["labels"] = json!({"app": "other"});
        assert_eq!(classify(&owner(), &sel(), &relabeled), Claim::Release);
        let orphan = json!({"metadata": {"labels": {"app": "web"}}});
        assert_eq!(classify(&owner(), &sel(), &orphan), Claim::Adopt);
        let mut dying = orphan.clone();
        dying["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(classify(&owner(), &sel(), &dying), Claim::Ignore);
        let theirs = json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [{"uid": "u2", "controller": true}]}});
        assert_eq!(classify(&owner(), &sel(), &theirs), Claim::Ignore);
        let mut deleting_owner = owner();
        deleting_owner["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(classify(&deleting_owner, &sel(), &orphan), Claim::Ignore);
        assert_eq!(classify(&deleting_owner, &sel(), &relabeled), Claim::Ignore);
    }
}
