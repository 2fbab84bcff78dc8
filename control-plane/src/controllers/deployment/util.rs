//! Pure Deployment helpers, after Kubernetes' `deployment/util`: the pod-template hash,
//! template equality ignoring it, maxSurge/maxUnavailable arithmetic, revisions and the
//! annotations a Deployment puts on its ReplicaSets, proportional scaling, conditions.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use crate::api::object;
use crate::controllers::replicaset::{generation, spec_replicas, status_i64};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The label (and selector term) that tells a Deployment's ReplicaSets apart.
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Longest `revision-history` annotation kept (Kubernetes' `--max-revision-history-length-in-chars`... default 2000).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Annotations never copied from a Deployment to its ReplicaSets (nor back by `rollout undo`).
pub fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// A JSON value with sorted keys and without nulls, empty objects and empty arrays, so two
/// templates that mean the same compare (and hash) the same.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let c = canonical(&m[k]);
                let empty = match &c {
                    Value::Null => true,
                    Value::Object(o) => o.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), c);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    canonical(&t)
}

/// Kubernetes' `EqualIgnoreHash`: the templates are equal apart from `pod-template-hash`.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    without_hash(a) == without_hash(b)
}

/// `rand.SafeEncodeString`: each byte mapped onto consonants and digits (no vowels, no
/// look-alikes), so the result can't spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The pod-template hash (Kubernetes' `ComputeHash`): [`compute_hash`] of the template
/// without its own `pod-template-hash` label.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    compute_hash(&without_hash(template), collision_count)
}

/// Kubernetes' `ComputeHash` / `HashControllerRevision`: FNV-32a of the value — here its
/// canonical JSON, so it is stable across restarts and versions — plus `collisionCount`,
/// printed in decimal and safe-encoded. Shared with ControllerRevisions (`revisions.rs`).
pub fn compute_hash(value: &Value, collision_count: Option<i64>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(canonical(value).to_string().as_bytes());
    if let Some(c) = collision_count {
        feed(&u32::try_from(c.max(0)).unwrap_or(u32::MAX).to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// An int-or-percent scaled against `total` (Kubernetes' `GetScaledValueFromIntOrPercent`):
/// percents round up or down as asked.
pub fn scaled_value(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%') {
            Some(p) => {
                let p: i64 = p.trim().parse().unwrap_or(0);
                let x = p * total;
                if round_up {
                    (x + 99).div_euclid(100)
                } else {
                    x.div_euclid(100)
                }
            }
            None => s.trim().parse().unwrap_or(0),
        },
        _ => 0,
    }
}

pub fn is_rolling(d: &Value) -> bool {
    d.pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// (maxSurge, maxUnavailable) for `desired` replicas: surge rounds up, unavailable down, and
/// both 0 becomes unavailable 1 (Kubernetes' `ResolveFenceposts`).
pub fn resolve_fenceposts(d: &Value, desired: i64) -> (i64, i64) {
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let default = json!("25%");
    let surge_v = ru.and_then(|r| r.get("maxSurge")).unwrap_or(&default);
    let unavail_v = ru.and_then(|r| r.get("maxUnavailable")).unwrap_or(&default);
    let surge = scaled_value(Some(surge_v), desired, true).max(0);
    let unavailable = scaled_value(Some(unavail_v), desired, false).max(0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

pub fn max_surge(d: &Value) -> i64 {
    if !is_rolling(d) {
        return 0;
    }
    resolve_fenceposts(d, spec_replicas(d)).0
}

pub fn max_unavailable(d: &Value) -> i64 {
    let replicas = spec_replicas(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    resolve_fenceposts(d, replicas).1.min(replicas)
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn annotation_i64(obj: &Value, key: &str) -> Option<i64> {
    annotation(obj, key)?.parse().ok()
}

pub fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    let meta = object::meta_mut(obj);
    let ann = meta.entry("annotations").or_insert_with(|| json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    ann[key] = json!(value);
}

/// The revision a ReplicaSet carries (0 when none).
pub fn revision(rs: &Value) -> i64 {
    annotation_i64(rs, REVISION).unwrap_or(0)
}

pub fn max_revision(rss: &[&Value]) -> i64 {
    rss.iter().map(|r| revision(r)).max().unwrap_or(0)
}

/// Oldest first; ties by name (Kubernetes' `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    let ts = |v: &Value| {
        object::meta_str(v, "creationTimestamp").and_then(|s| s.parse::<jiff::Timestamp>().ok())
    };
    ts(a)
        .cmp(&ts(b))
        .then_with(|| object::name(a).cmp(object::name(b)))
}

/// Sum of `spec.replicas`.
pub fn spec_total(rss: &[&Value]) -> i64 {
    rss.iter().map(|r| spec_replicas(r)).sum()
}

/// Sum of a status field.
pub fn status_total(rss: &[&Value], field: &str) -> i64 {
    rss.iter().map(|r| status_i64(r, field)).sum()
}

/// The ReplicaSet's status describes its current spec (its controller has caught up).
pub fn status_fresh(rs: &Value) -> bool {
    status_i64(rs, "observedGeneration") >= generation(rs)
}

/// How many replicas the new ReplicaSet may have now (Kubernetes' `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Value, all: &[&Value], new_rs: &Value) -> i64 {
    let replicas = spec_replicas(d);
    let current = spec_replicas(new_rs);
    if !is_rolling(d) {
        return replicas;
    }
    let max_total = replicas + max_surge(d);
    let pods = spec_total(all);
    if pods >= max_total {
        return current;
    }
    let up = (max_total - pods).min((replicas - current).max(0));
    current + up
}

/// Copies the Deployment's annotations (but the ones it manages) onto `rs`. Returns whether
/// anything changed.
fn copy_annotations(d: &Value, rs: &mut Value) -> bool {
    let Some(from) = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return false;
    };
    let mut changed = false;
    for (k, v) in from {
        if skip_copy(k) || annotation(rs, k) == v.as_str() {
            continue;
        }
        if let Some(v) = v.as_str() {
            set_annotation(rs, k, v);
            changed = true;
        }
    }
    changed
}

/// desired-replicas / max-replicas on a ReplicaSet. Returns whether they changed.
pub fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let s = v.to_string();
        if annotation(rs, k) != Some(s.as_str()) {
            set_annotation(rs, k, &s);
            changed = true;
        }
    }
    changed
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copied annotations, the new revision (keeping
/// the previous ones in `revision-history` when a ReplicaSet is reused), and for a new
/// ReplicaSet the replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(d: &Value, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
    let mut changed = copy_annotations(d, rs);
    let old = annotation(rs, REVISION).map(str::to_string);
    let old_int = old
        .as_deref()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    if old_int < new_revision {
        set_annotation(rs, REVISION, &new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|s| !s.is_empty()) {
            let history = annotation(rs, REVISION_HISTORY).unwrap_or("");
            let mut next = if history.is_empty() {
                old
            } else {
                format!("{history},{old}")
            };
            while next.len() > MAX_REVISION_HISTORY_CHARS {
                match next.split_once(',') {
                    Some((_, rest)) => next = rest.to_string(),
                    None => break,
                }
            }
            set_annotation(rs, REVISION_HISTORY, &next);
        }
    }
    if !exists {
        let replicas = spec_replicas(d);
        changed |= set_replicas_annotations(rs, replicas, replicas + max_surge(d));
    }
    changed
}

/// Whether the new ReplicaSet runs every replica, all available (`IsSaturated`).
pub fn is_saturated(d: &Value, rs: Option<&Value>) -> bool {
    let Some(rs) = rs else { return false };
    let replicas = spec_replicas(d);
    spec_replicas(rs) == replicas
        && annotation_i64(rs, DESIRED_REPLICAS) == Some(replicas)
        && status_i64(rs, "availableReplicas") == replicas
}

/// The share of a scale change `rs` takes (Kubernetes' `GetProportion`).
pub fn proportion(rs: &Value, d: &Value, to_add: i64, added: i64) -> i64 {
    let size = spec_replicas(rs);
    if size == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if spec_replicas(d) == 0 {
        -size
    } else {
        let max_now = spec_replicas(d) + max_surge(d);
        let before = match annotation_i64(rs, MAX_REPLICAS) {
            Some(m) if m != 0 => m,
            _ => status_i64(d, "replicas"),
        };
        if before == 0 {
            0
        } else {
            ((size * max_now) as f64 / before as f64).round() as i64 - size
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

pub fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

pub fn new_condition(kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
}

/// Kubernetes' `SetDeploymentCondition`: same status and reason = no change; otherwise
/// replace, keeping the transition time when only the reason changed.
pub fn set_condition(status: &mut Value, mut cond: Value) {
    let kind = cond
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(cur) = condition(status, &kind) {
        if cur.get("status") == cond.get("status") && cur.get("reason") == cond.get("reason") {
            return;
        }
        if cur.get("status") == cond.get("status") {
            if let Some(t) = cur.get("lastTransitionTime") {
                cond["lastTransitionTime"] = t.clone();
            }
        }
    }
    remove_condition(status, &kind);
    if !status.is_object() {
        *status = json!({});
    }
    match status.get_mut("conditions").and_then(Value::as_array_mut) {
        Some(a) => a.push(cond),
        None => status["conditions"] = json!([cond]),
    }
}

pub fn remove_condition(status: &mut Value, kind: &str) {
    if let Some(a) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        a.retain(|c| c.get("type").and_then(Value::as_str) != Some(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, surge: Value, unavailable: Value) -> Value {
        json!({"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}})
    }

    #[test]
    fn fenceposts_round_as_kubernetes() {
        assert_eq!(
            resolve_fenceposts(&deploy(10, json!("25%"), json!("25%")), 10),
            (3, 2)
        );
        assert_eq!(
            resolve_fenceposts(&deploy(3, json!("25%"), json!("25%")), 3),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(&deploy(3, json!(0), json!("10%")), 3),
            (0, 1),
            "both 0 → unavailable 1"
        );
        assert_eq!(
            resolve_fenceposts(&deploy(4, json!(2), json!(1)), 4),
            (2, 1)
        );
        assert_eq!(
            max_unavailable(&deploy(2, json!(0), json!(5))),
            2,
            "capped at replicas"
        );
        let recreate = json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}});
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        assert_eq!(
            max_surge(&json!({"spec": {"replicas": 4}})),
            1,
            "default 25%"
        );
    }

    #[test]
    fn hash_is_stable_and_ignores_its_own_label_and_empties() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}});
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)) && h.len() <= 10);
        let mut labeled = t.clone();
        labeled["metadata"]["labels"][HASH_LABEL] = json!(h.clone());
        labeled["metadata"]["creationTimestamp"] = Value::Null;
        labeled["spec"]["containers"][0]["resources"] = json!({});
        assert!(equal_ignore_hash(&t, &labeled));
        assert_eq!(template_hash(&labeled, None), h);
        assert_ne!(template_hash(&t, Some(1)), h, "collisions change the hash");
        let mut v2 = t.clone();
        v2["spec"]["containers"][0]["image"] = json!("v2");
        assert!(!equal_ignore_hash(&t, &v2));
        assert_ne!(template_hash(&v2, None), h);
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deploy(3, json!(1), json!(0));
        let old = json!({"spec": {"replicas": 3}});
        let new = json!({"spec": {"replicas": 0}});
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 1);
        let old2 = json!({"spec": {"replicas": 2}});
        let new1 = json!({"spec": {"replicas": 1}});
        assert_eq!(new_rs_new_replicas(&d, &[&old2, &new1], &new1), 2);
        let new3 = json!({"spec": {"replicas": 3}});
        assert_eq!(new_rs_new_replicas(&d, &[&new3], &new3), 3);
    }

    #[test]
    fn reused_replica_sets_get_the_next_revision() {
        let d = json!({"metadata": {"annotations": {CHANGE_CAUSE: "undo", LAST_APPLIED: "{}", REVISION: "2"}}, "spec": {"replicas": 3}});
        let mut rs = json!({"metadata": {"annotations": {REVISION: "1"}}});
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        assert_eq!(annotation(&rs, REVISION), Some("3"));
        assert_eq!(annotation(&rs, REVISION_HISTORY), Some("1"));
        assert_eq!(annotation(&rs, CHANGE_CAUSE), Some("undo"));
        assert_eq!(annotation(&rs, LAST_APPLIED), None);
        assert!(!set_new_rs_annotations(&d, &mut rs, 3, true), "idempotent");
        let mut fresh = json!({"metadata": {}});
        set_new_rs_annotations(&d, &mut fresh, 1, false);
        assert_eq!(annotation(&fresh, DESIRED_REPLICAS), Some("3"));
        assert_eq!(annotation(&fresh, MAX_REPLICAS), Some("4"));
    }

    #[test]
    fn proportional_scaling_uses_max_replicas() {
        let d = json!({"spec": {"replicas": 20, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}, "status": {"replicas": 10}});
        let rs =
            json!({"metadata": {"annotations": {MAX_REPLICAS: "10"}}, "spec": {"replicas": 6}});
        assert_eq!(proportion(&rs, &d, 10, 0), 6);
        assert_eq!(proportion(&rs, &d, 10, 7), 3, "capped by what is left");
    }

    #[test]
    fn conditions_keep_transition_times() {
        let mut st = json!({});
        set_condition(
            &mut st,
            new_condition("Progressing", "True", "ReplicaSetUpdated", "a", "t1"),
        );
        set_condition(
            &mut st,
            new_condition("Progressing", "True", "ReplicaSetUpdated", "b", "t2"),
        );
        assert_eq!(
            condition(&st, "Progressing").unwrap()["message"],
            "a",
            "same status+reason: unchanged"
        );
        set_condition(
            &mut st,
            new_condition("Progressing", "True", "NewReplicaSetAvailable", "c", "t3"),
        );
        let c = condition(&st, "Progressing").unwrap();
        assert_eq!(
            (
                c["lastTransitionTime"].as_str(),
                c["lastUpdateTime"].as_str()
            ),
            (Some("t1"), Some("t3"))
        );
        assert_eq!(st["conditions"].as_array().unwrap().len(), 1);
    }
}
