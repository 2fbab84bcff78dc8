//! ControllerRevision history shared by the DaemonSet and StatefulSet controllers, after
//! Kubernetes' `pkg/controller/history`. A revision is an immutable snapshot (`data`) of the
//! owner's pod template with a monotonically increasing `revision`; `kubectl rollout history`
//! lists them (by the owner's selector, filtered by controller uid) and `kubectl rollout undo`
//! applies a revision's `data` to the owner as a strategic merge patch. Undoing makes the old
//! template current again, and the controller re-numbers that revision to max+1.
//!
//! Public API (stable; other controllers build on it):
//!
//! ```text
//! pub const DAEMONSET_HASH_LABEL: &str = "controller-revision-hash";   // DaemonSet revisions + pods
//! pub const HISTORY_HASH_LABEL: &str = "controller.kubernetes.io/hash"; // StatefulSet revisions (history.NewControllerRevision)
//! pub const DEFAULT_REVISION_HISTORY_LIMIT: usize = 10;
//! pub fn hash_data(data: &Value, collision_count: Option<i64>) -> String
//! pub fn revision_name(owner_name: &str, hash: &str) -> String          // "<owner>-<hash>", prefix cut at 223
//! pub fn revision_number(cr: &Value) -> i64                             // `.revision`, 0 when absent
//! pub fn data_equal(a: &Value, b: &Value) -> bool                       // canonical JSON equality
//! pub fn history_limit(owner: &Value) -> usize                          // spec.revisionHistoryLimit or 10
//! pub fn controllerrevisions() -> ApiResult<&'static ResourceDef>
//! pub async fn list_owned(objects: &Objects, namespace: &str, owner: &Value) -> ApiResult<Vec<Value>>
//!     // revisions whose controller ownerReference uid is the owner's, sorted by (revision, name)
//! pub async fn claim_owned(objects: &Objects, owner: &Value, selector: &LabelSelector) -> ApiResult<Vec<Value>>
//!     // list_owned after adopting orphan revisions the selector matches and releasing owned
//!     // ones it no longer matches (`ClaimControllerRevisions`), e.g. after `--cascade=orphan`
//! pub async fn ensure_current(objects: &Objects, owner: &Value, data: Value,
//!     labels: &Map<String, Value>, hash_label: &str, existing: &[Value]) -> ApiResult<(Value, bool)>
//!     // -> (current revision, created?). `owner` is the stored object (apiVersion, kind, uid,
//!     // annotations, status.collisionCount); `labels` = the owner's template labels; `existing` =
//!     // list_owned(..). Equal data found → that revision (re-numbered to max+1 when not the
//!     // highest, as after `rollout undo`); else creates `<owner>-<hash>` with revision max+1,
//!     // labels + {hash_label: hash}, the owner's annotations, a controller ownerReference with
//!     // blockOwnerDeletion. Name collisions with different data bump the collision count.
//! pub fn template_data(owner: &Value) -> Value   // {"spec":{"template":{…,"$patch":"replace"}}}
//! pub fn to_truncate(revisions: &[Value], live: &HashSet<String>, limit: usize) -> Vec<Value>
//! pub async fn truncate(objects: &Objects, revisions: &[Value], live: &HashSet<String>,
//!     limit: usize) -> ApiResult<usize>
//!     // deletes the oldest revisions whose *names* are not in `live` beyond `limit`; returns how many
//! ```

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::deployment::util::{canonical, compute_hash};
use super::replicaset::claim::{self, controller_ref_to, controller_uid, Claim};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::object;
use crate::api::resources::{self, ResourceDef};
use crate::api::selectors::LabelSelector;
use crate::api::{ApiError, ApiResult};

/// The label a DaemonSet puts on its revisions and pods (`DefaultDaemonSetUniqueLabelKey`).
pub const DAEMONSET_HASH_LABEL: &str = "controller-revision-hash";
/// The label `history.NewControllerRevision` puts on revisions (StatefulSet).
pub const HISTORY_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// `spec.revisionHistoryLimit` when unset (Kubernetes' default for both kinds).
pub const DEFAULT_REVISION_HISTORY_LIMIT: usize = 10;
/// Names tried (with increasing collision counts) before giving up on a hash collision.
const MAX_COLLISION_RETRIES: i64 = 16;
/// Kubernetes cuts the owner-name prefix of revision names here, leaving room for the hash.
const MAX_PREFIX_LEN: usize = 223;

/// The hash of a revision's data (Kubernetes' `HashControllerRevision`): FNV-32a of the
/// canonical JSON plus the collision count, safe-encoded (at most 10 characters).
pub fn hash_data(data: &Value, collision_count: Option<i64>) -> String {
    compute_hash(data, collision_count)
}

/// `<owner>-<hash>` (Kubernetes' `ControllerRevisionName`).
pub fn revision_name(owner_name: &str, hash: &str) -> String {
    let mut end = owner_name.len().min(MAX_PREFIX_LEN);
    while !owner_name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &owner_name[..end])
}

/// `.revision` of a ControllerRevision (0 when absent).
pub fn revision_number(cr: &Value) -> i64 {
    cr.get("revision").and_then(Value::as_i64).unwrap_or(0)
}

/// Whether two revision payloads mean the same (nulls and empties ignored, keys sorted).
pub fn data_equal(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

/// `spec.revisionHistoryLimit`, defaulting to 10.
pub fn history_limit(owner: &Value) -> usize {
    owner
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .map_or(DEFAULT_REVISION_HISTORY_LIMIT, |n| {
            usize::try_from(n).unwrap_or(0)
        })
}

/// What a DaemonSet or StatefulSet revision stores (Kubernetes' `getPatch`): the owner's pod
/// template, as a strategic merge patch that replaces it (`kubectl rollout undo`).
pub fn template_data(owner: &Value) -> Value {
    let mut template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), serde_json::json!("replace"));
    }
    serde_json::json!({"spec": {"template": template}})
}

pub fn controllerrevisions() -> ApiResult<&'static ResourceDef> {
    resources::find("apps", "v1", "controllerrevisions")
        .ok_or_else(|| ApiError::internal("apps/v1 controllerrevisions is not served"))
}

fn by_revision(a: &Value, b: &Value) -> std::cmp::Ordering {
    revision_number(a)
        .cmp(&revision_number(b))
        .then_with(|| object::name(a).cmp(object::name(b)))
}

/// The ControllerRevisions in `namespace` controlled by `owner` (by uid), oldest revision first.
pub async fn list_owned(
    objects: &Objects,
    namespace: &str,
    owner: &Value,
) -> ApiResult<Vec<Value>> {
    let uid = object::meta_str(owner, "uid").unwrap_or("");
    let mut owned: Vec<Value> = objects
        .list(controllerrevisions()?, namespace, None)
        .await?
        .into_iter()
        .filter(|cr| !uid.is_empty() && controller_uid(cr) == Some(uid))
        .collect();
    owned.sort_by(by_revision);
    Ok(owned)
}

/// [`list_owned`] after adopting orphans the selector matches and releasing owned revisions it
/// no longer matches (Kubernetes' `ClaimControllerRevisions`).
pub async fn claim_owned(
    objects: &Objects,
    owner: &Value,
    selector: &LabelSelector,
) -> ApiResult<Vec<Value>> {
    let def = controllerrevisions()?;
    let uid = object::meta_str(owner, "uid").unwrap_or("");
    let mut owned = Vec::new();
    for cr in objects.list(def, object::namespace(owner), None).await? {
        match claim::classify(owner, selector, &cr) {
            Claim::Owned => owned.push(cr),
            Claim::Adopt => {
                if let Some(cr) = claim::adopt(objects, def, &cr, owner).await? {
                    owned.push(cr);
                }
            }
            Claim::Release => {
                claim::remove_owner(objects, def, &cr, uid).await?;
            }
            Claim::Ignore => {}
        }
    }
    owned.sort_by(by_revision);
    Ok(owned)
}

/// The revision object `ensure_current` would create, named with `collision_count`.
fn new_revision(
    owner: &Value,
    data: &Value,
    labels: &Map<String, Value>,
    hash_label: &str,
    revision: i64,
    collision_count: Option<i64>,
) -> Value {
    let hash = hash_data(data, collision_count);
    let mut labels = labels.clone();
    labels.insert(hash_label.to_string(), json!(hash));
    let mut meta = Map::new();
    meta.insert(
        "name".into(),
        json!(revision_name(object::name(owner), &hash)),
    );
    meta.insert("namespace".into(), json!(object::namespace(owner)));
    meta.insert("labels".into(), Value::Object(labels));
    if let Some(a) = owner
        .pointer("/metadata/annotations")
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
    {
        meta.insert("annotations".into(), a.clone());
    }
    meta.insert("ownerReferences".into(), json!([controller_ref_to(owner)]));
    json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": meta,
        "data": data,
        "revision": revision,
    })
}

/// Makes the revision holding `data` the current (highest) one; see the module docs.
/// Returns it and whether it was created now.
pub async fn ensure_current(
    objects: &Objects,
    owner: &Value,
    data: Value,
    labels: &Map<String, Value>,
    hash_label: &str,
    existing: &[Value],
) -> ApiResult<(Value, bool)> {
    let def = controllerrevisions()?;
    let max = existing.iter().map(revision_number).max().unwrap_or(0);
    let equal = existing
        .iter()
        .filter(|cr| cr.get("data").is_some_and(|d| data_equal(d, &data)))
        .max_by(|a, b| by_revision(a, b));
    if let Some(cr) = equal {
        if revision_number(cr) == max {
            return Ok((cr.clone(), false));
        }
        let uid = object::meta_str(cr, "uid").unwrap_or("").to_string();
        let next = max + 1;
        let updated = objects
            .modify(
                def,
                object::namespace(cr),
                object::name(cr),
                Subresource::Main,
                |o| {
                    if object::meta_str(o, "uid") != Some(uid.as_str()) {
                        return Err(ApiError::conflict(
                            "controllerrevisions",
                            "apps",
                            object::name(o),
                        ));
                    }
                    o["revision"] = json!(next);
                    Ok(())
                },
            )
            .await?;
        return match updated {
            Some(u) => Ok((u, false)),
            None => Err(ApiError::conflict(
                "controllerrevisions",
                "apps",
                object::name(cr),
            )),
        };
    }
    let ns = object::namespace(owner);
    let owner_uid = object::meta_str(owner, "uid").unwrap_or("");
    let mut collision_count = owner
        .pointer("/status/collisionCount")
        .and_then(Value::as_i64);
    for _ in 0..MAX_COLLISION_RETRIES {
        let cr = new_revision(owner, &data, labels, hash_label, max + 1, collision_count);
        match objects.create(def, ns, cr.clone()).await {
            Ok(created) => return Ok((created, true)),
            Err(e) if e.reason == "AlreadyExists" => {
                // AlreadyExists: ours with the same data (a stale `existing`), or a collision.
                if let Some(found) = objects.get(def, ns, object::name(&cr)).await? {
                    let same = found.get("data").is_some_and(|d| data_equal(d, &data));
                    if same && controller_uid(&found) == Some(owner_uid) {
                        return Ok((found, false));
                    }
                }
                collision_count = Some(collision_count.unwrap_or(0) + 1);
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::internal(format!(
        "no free ControllerRevision name for {} after {MAX_COLLISION_RETRIES} hash collisions",
        object::name(owner)
    )))
}

/// The revisions `truncate` deletes: the oldest of those not in `live`, beyond `limit`.
pub fn to_truncate(revisions: &[Value], live: &HashSet<String>, limit: usize) -> Vec<Value> {
    let mut old: Vec<&Value> = revisions
        .iter()
        .filter(|cr| !live.contains(object::name(cr)))
        .collect();
    old.sort_by(|a, b| by_revision(a, b));
    let excess = old.len().saturating_sub(limit);
    old.into_iter().take(excess).cloned().collect()
}

/// Deletes the oldest unused revisions beyond `limit` (`revisionHistoryLimit`). Returns how
/// many were deleted.
pub async fn truncate(
    objects: &Objects,
    revisions: &[Value],
    live: &HashSet<String>,
    limit: usize,
) -> ApiResult<usize> {
    let def = controllerrevisions()?;
    let mut deleted = 0;
    for cr in to_truncate(revisions, live, limit) {
        let opts = DeleteOptions {
            uid: object::meta_str(&cr, "uid").map(str::to_string),
            ..DeleteOptions::default()
        };
        match objects
            .delete(def, object::namespace(&cr), object::name(&cr), opts)
            .await
        {
            Ok(Some(_)) => deleted += 1,
            Ok(None) => {}
            Err(e) if e.code == http::StatusCode::CONFLICT => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::test_support::{def, TestApi};

    fn data(image: &str) -> Value {
        json!({"spec": {"template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
            "$patch": "replace",
        }}})
    }

    async fn owner(api: &TestApi) -> Value {
        api.create(
            def("apps", "daemonsets"),
            json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "ds", "namespace": "default",
                    "annotations": {"kubernetes.io/change-cause": "first"}},
                "spec": {"selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "x"}},
                        "spec": {"containers": [{"name": "c", "image": "v1"}]}}},
            }),
        )
        .await
    }

    fn labels() -> Map<String, Value> {
        json!({"app": "x"}).as_object().cloned().unwrap()
    }

    #[test]
    fn hash_and_names() {
        let h = hash_data(&data("v1"), None);
        assert_eq!(h, hash_data(&data("v1"), None));
        assert_ne!(h, hash_data(&data("v2"), None));
        assert_ne!(h, hash_data(&data("v1"), Some(1)));
        assert!(h.len() <= 10 && !h.is_empty());
        assert_eq!(revision_name("web", "abc"), "web-abc");
        assert_eq!(revision_name(&"a".repeat(300), "h").len(), 225);
        assert!(data_equal(
            &data("v1"),
            &json!({"spec": {"template": {"$patch": "replace", "spec": {"containers": [{"image": "v1", "name": "c"}]}, "metadata": {"labels": {"app": "x"}, "annotations": null}}}})
        ));
    }

    #[test]
    fn truncation_keeps_live_and_newest() {
        let crs: Vec<Value> = (1..=5)
            .map(|i| json!({"metadata": {"name": format!("r{i}")}, "revision": i}))
            .collect();
        let live: HashSet<String> = ["r1".to_string(), "r5".to_string()].into();
        let names = |v: Vec<Value>| {
            v.iter()
                .map(|c| object::name(c).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(to_truncate(&crs, &live, 1)), ["r2", "r3"]);
        assert_eq!(names(to_truncate(&crs, &live, 0)), ["r2", "r3", "r4"]);
        assert!(to_truncate(&crs, &live, 10).is_empty());
    }

    #[tokio::test]
    async fn creates_reuses_renumbers_and_truncates() {
        let api = TestApi::new().await;
        let ds = owner(&api).await;
        let objects = &api.objects;
        let (r1, created) = ensure_current(
            objects,
            &ds,
            data("v1"),
            &labels(),
            DAEMONSET_HASH_LABEL,
            &[],
        )
        .await
        .unwrap();
        assert!(created);
        assert_eq!(revision_number(&r1), 1);
        let hash = hash_data(&data("v1"), None);
        assert_eq!(object::name(&r1), format!("ds-{hash}"));
        assert_eq!(r1["metadata"]["labels"][DAEMONSET_HASH_LABEL], json!(hash));
        assert_eq!(r1["metadata"]["labels"]["app"], "x");
        assert_eq!(
            r1["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "first"
        );
        assert_eq!(r1["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert_eq!(
            r1["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );

        // Same data again: nothing new, even with a stale (empty) `existing`.
        let all = list_owned(objects, "default", &ds).await.unwrap();
        assert_eq!(all.len(), 1);
        let (again, created) = ensure_current(
            objects,
            &ds,
            data("v1"),
            &labels(),
            DAEMONSET_HASH_LABEL,
            &[],
        )
        .await
        .unwrap();
        assert!(!created);
        assert_eq!(object::name(&again), object::name(&r1));

        // v2 → revision 2; undo to v1 → revision 1 becomes 3.
        let (r2, created) = ensure_current(
            objects,
            &ds,
            data("v2"),
            &labels(),
            DAEMONSET_HASH_LABEL,
            &all,
        )
        .await
        .unwrap();
        assert!(created);
        assert_eq!(revision_number(&r2), 2);
        let all = list_owned(objects, "default", &ds).await.unwrap();
        let (r3, created) = ensure_current(
            objects,
            &ds,
            data("v1"),
            &labels(),
            DAEMONSET_HASH_LABEL,
            &all,
        )
        .await
        .unwrap();
        assert!(!created);
        assert_eq!(object::name(&r3), object::name(&r1));
        assert_eq!(revision_number(&r3), 3);
        let all = list_owned(objects, "default", &ds).await.unwrap();
        assert_eq!(
            all.iter().map(revision_number).collect::<Vec<_>>(),
            [2, 3],
            "sorted by revision"
        );

        // Another owner's revisions are not listed.
        let mut other = ds.clone();
        other["metadata"]["uid"] = json!("someone-else");
        assert!(list_owned(objects, "default", &other)
            .await
            .unwrap()
            .is_empty());

        // An orphaned revision (e.g. after `--cascade=orphan`) is adopted by a matching owner.
        let sel = LabelSelector::from_k8s(&json!({"matchLabels": {"app": "x"}})).unwrap();
        claim::remove_owner(
            objects,
            controllerrevisions().unwrap(),
            &all[0],
            object::meta_str(&ds, "uid").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(list_owned(objects, "default", &ds).await.unwrap().len(), 1);
        let claimed = claim_owned(objects, &ds, &sel).await.unwrap();
        assert_eq!(
            claimed.iter().map(revision_number).collect::<Vec<_>>(),
            [2, 3]
        );
        let all = claimed;

        // Truncate to 0 old ones, keeping the current.
        let live: HashSet<String> = [object::name(&r3).to_string()].into();
        assert_eq!(truncate(objects, &all, &live, 0).await.unwrap(), 1);
        let left = list_owned(objects, "default", &ds).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(object::name(&left[0]), object::name(&r1));
    }

    #[tokio::test]
    async fn hash_collisions_pick_another_name() {
        let api = TestApi::new().await;
        let ds = owner(&api).await;
        let objects = &api.objects;
        // Someone else's revision squats on the name v1 would get.
        let squat = json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": revision_name("ds", &hash_data(&data("v1"), None)), "namespace": "default"},
            "data": {"other": true}, "revision": 1,
        });
        api.create(controllerrevisions().unwrap(), squat).await;
        let (cr, created) = ensure_current(
            objects,
            &ds,
            data("v1"),
            &labels(),
            DAEMONSET_HASH_LABEL,
            &[],
        )
        .await
        .unwrap();
        assert!(created);
        let hash = hash_data(&data("v1"), Some(1));
        assert_eq!(object::name(&cr), format!("ds-{hash}"));
        assert_eq!(cr["metadata"]["labels"][DAEMONSET_HASH_LABEL], json!(hash));
    }
}
