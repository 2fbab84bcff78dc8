//! Deployment status (Kubernetes' `calculateStatus` / `syncRolloutStatus`): replica counts
//! summed over the ReplicaSets, the Available condition, and the Progressing condition with
//! `progressDeadlineSeconds`. What `kubectl rollout status` reads.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::util::{self, condition, new_condition, remove_condition, set_condition};
use crate::api::object;
use crate::controllers::replicaset::{generation, spec_replicas, status_i64};

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

pub fn rfc3339(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

pub fn progress_deadline(d: &Value) -> Option<i64> {
    // Kubernetes treats MaxInt32 as "no deadline".
    d.pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
        .filter(|s| *s != i64::from(i32::MAX))
}

/// Counts from the ReplicaSets plus the Available condition; other conditions are carried over.
pub fn calculate(all: &[&Value], new_rs: Option<&Value>, d: &Value, now: &str) -> Value {
    let available = util::status_total(all, "availableReplicas");
    let total = util::spec_total(all);
    let mut status = json!({
        "observedGeneration": generation(d),
        "replicas": util::status_total(all, "replicas"),
        "updatedReplicas": new_rs.map_or(0, |rs| status_i64(rs, "replicas")),
        "readyReplicas": util::status_total(all, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": (total - available).max(0),
    });
    if let Some(c) = d.pointer("/status/collisionCount").filter(|c| !c.is_null()) {
        status["collisionCount"] = c.clone();
    }
    if let Some(c) = d.pointer("/status/conditions").filter(|c| c.is_array()) {
        status["conditions"] = c.clone();
    }
    let cond = if available >= spec_replicas(d) - util::max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, cond);
    status
}

/// Every replica is updated and available and nothing old is left (`DeploymentComplete`).
pub fn complete(d: &Value, status: &Value) -> bool {
    let replicas = spec_replicas(d);
    status_i64_of(status, "updatedReplicas") == replicas
        && status_i64_of(status, "replicas") == replicas
        && status_i64_of(status, "availableReplicas") == replicas
        && status_i64_of(status, "observedGeneration") >= generation(d)
}

fn status_i64_of(status: &Value, field: &str) -> i64 {
    status.get(field).and_then(Value::as_i64).unwrap_or(0)
}

/// Something moved since the last status (`DeploymentProgressing`).
fn progressing(d: &Value, new: &Value) -> bool {
    let old = d.get("status").cloned().unwrap_or_else(|| json!({}));
    let old_old = status_i64_of(&old, "replicas") - status_i64_of(&old, "updatedReplicas");
    let new_old = status_i64_of(new, "replicas") - status_i64_of(new, "updatedReplicas");
    status_i64_of(new, "updatedReplicas") > status_i64_of(&old, "updatedReplicas")
        || new_old < old_old
        || status_i64_of(new, "readyReplicas") > status_i64_of(&old, "readyReplicas")
        || status_i64_of(new, "availableReplicas") > status_i64_of(&old, "availableReplicas")
}

fn parse(t: Option<&Value>) -> Option<Timestamp> {
    t?.as_str()?.parse().ok()
}

/// When the Progressing condition's deadline passes (`None` = no deadline running).
fn deadline(d: &Value, status: &Value) -> Option<Timestamp> {
    let secs = progress_deadline(d)?;
    let c = condition(status, PROGRESSING)?;
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
    if reason == TIMED_OUT || reason == NEW_RS_AVAILABLE {
        return None;
    }
    parse(c.get("lastUpdateTime"))?
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .ok()
}

/// The status after a rollout step, with the Progressing condition moved on, and when to look
/// again for the progress deadline.
pub fn rollout(
    all: &[&Value],
    new_rs: Option<&Value>,
    d: &Value,
    now_ts: Timestamp,
) -> (Value, Option<Duration>) {
    let now = rfc3339(now_ts);
    let mut status = calculate(all, new_rs, d, &now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = condition(&status, PROGRESSING).cloned();
    let reason = |c: &Option<Value>| {
        c.as_ref()
            .and_then(|c| c.get("reason").and_then(Value::as_str).map(str::to_string))
    };
    let already_complete = status_i64_of(&status, "replicas")
        == status_i64_of(&status, "updatedReplicas")
        && reason(&current).as_deref() == Some(NEW_RS_AVAILABLE);
    let rs_name = new_rs.map(object::name).unwrap_or("");
    if progress_deadline(d).is_some() && !already_complete {
        if complete(d, &status) {
            let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &msg, &now),
            );
        } else if progressing(d, &status) {
            let msg = if new_rs.is_some() {
                format!("ReplicaSet \"{rs_name}\" is progressing.")
            } else {
                "Deployment is progressing.".to_string()
            };
            let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, &msg, &now);
            if let Some(cur) = &current {
                if cur.get("status").and_then(Value::as_str) == Some("True") {
                    if let Some(t) = cur.get("lastTransitionTime") {
                        c["lastTransitionTime"] = t.clone();
                    }
                }
            }
            remove_condition(&mut status, PROGRESSING);
            set_condition(&mut status, c);
        } else if deadline(d, &status).is_some_and(|t| t < now_ts) {
            let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "False", TIMED_OUT, &msg, &now),
            );
        }
    }
    // A ReplicaSet's ReplicaFailure surfaces on the Deployment.
    let failure = new_rs
        .into_iter()
        .chain(all.iter().copied())
        .find_map(|rs| {
            rs.get("status")
                .and_then(|s| condition(s, REPLICA_FAILURE))
                .cloned()
        });
    match failure {
        Some(f) => set_condition(&mut status, f),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    // Requeue for the deadline unless the rollout is done.
    let requeue = if complete(d, &status) {
        None
    } else {
        deadline(d, &status).map(|t| {
            Duration::try_from(t.duration_since(now_ts)).unwrap_or(Duration::ZERO)
                + Duration::from_secs(1)
        })
    };
    (status, requeue)
}

/// Paused/resumed bookkeeping on the Progressing condition (`checkPausedConditions`). Returns
/// whether the status changed.
pub fn paused_conditions(d: &mut Value, now: &str) -> bool {
    if progress_deadline(d).is_none() {
        return false;
    }
    let paused = d
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let status = d.get("status").cloned().unwrap_or_else(|| json!({}));
    let reason = condition(&status, PROGRESSING)
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let was_paused = reason.as_deref() == Some(PAUSED);
    let cond = if paused && !was_paused {
        new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    } else if !paused && was_paused {
        new_condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed",
            now,
        )
    } else {
        return false;
    };
    let mut status = status;
    set_condition(&mut status, cond);
    d["status"] = status;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, spec: i64, replicas: i64, available: i64) -> Value {
        json!({"metadata": {"name": name, "generation": 1}, "spec": {"replicas": spec},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available, "observedGeneration": 1}})
    }

    fn deploy(status: Value) -> Value {
        json!({"metadata": {"generation": 2}, "spec": {"replicas": 3, "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}, "status": status})
    }

    #[test]
    fn counts_and_completion() {
        let old = rs("web-old", 1, 1, 1);
        let new = rs("web-new", 3, 3, 2);
        let d = deploy(json!({}));
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let (st, requeue) = rollout(&[&old, &new], Some(&new), &d, now);
        assert_eq!(st["replicas"], 4);
        assert_eq!(st["updatedReplicas"], 3);
        assert_eq!(st["availableReplicas"], 3);
        assert_eq!(st["unavailableReplicas"], 1);
        assert_eq!(st["observedGeneration"], 2);
        assert_eq!(condition(&st, AVAILABLE).unwrap()["status"], "True");
        assert_eq!(condition(&st, PROGRESSING).unwrap()["reason"], RS_UPDATED);
        assert_eq!(requeue, Some(Duration::from_secs(601)));
        assert!(!complete(&d, &st));

        let done = rs("web-new", 3, 3, 3);
        let old0 = rs("web-old", 0, 0, 0);
        let d = deploy(st);
        let (st, requeue) = rollout(&[&old0, &done], Some(&done), &d, now);
        assert!(complete(&d, &st));
        let p = condition(&st, PROGRESSING).unwrap();
        assert_eq!(p["reason"], NEW_RS_AVAILABLE);
        assert_eq!(
            p["message"],
            "ReplicaSet \"web-new\" has successfully progressed."
        );
        assert_eq!(requeue, None);
    }

    #[test]
    fn stalled_rollouts_time_out() {
        let new = rs("web-new", 3, 3, 0);
        let started = json!({"replicas": 3, "updatedReplicas": 3, "conditions": [
            new_condition(PROGRESSING, "True", RS_UPDATED, "x", "2024-01-01T00:00:00Z")]});
        let d = deploy(started);
        let early: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        let (st, requeue) = rollout(&[&new], Some(&new), &d, early);
        assert_eq!(condition(&st, PROGRESSING).unwrap()["reason"], RS_UPDATED);
        assert_eq!(requeue, Some(Duration::from_secs(301)));
        assert_eq!(condition(&st, AVAILABLE).unwrap()["status"], "False");
        let late: Timestamp = "2024-01-01T00:10:01Z".parse().unwrap();
        let (st, _) = rollout(&[&new], Some(&new), &d, late);
        let p = condition(&st, PROGRESSING).unwrap();
        assert_eq!(
            (p["status"].as_str(), p["reason"].as_str()),
            (Some("False"), Some(TIMED_OUT))
        );
    }

    #[test]
    fn pausing_and_resuming_mark_progressing_unknown() {
        let mut d = deploy(json!({}));
        d["spec"]["paused"] = json!(true);
        assert!(paused_conditions(&mut d, "t"));
        assert_eq!(
            condition(&d["status"], PROGRESSING).unwrap()["reason"],
            PAUSED
        );
        assert!(!paused_conditions(&mut d, "t"));
        d["spec"]["paused"] = json!(false);
        assert!(paused_conditions(&mut d, "t"));
        assert_eq!(
            condition(&d["status"], PROGRESSING).unwrap()["reason"],
            RESUMED
        );
    }
}
