//! The pure part of the Job controller: counting a Job's pods, how many should run, the
//! pod-failure backoff, conditions — as Kubernetes' job controller computes them.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::api::object;
use crate::controllers::clock::{parse_time, rfc3339, until};

pub fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

pub fn is_finished_pod(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Running or waiting to run, and not being deleted (what `status.active` counts).
pub fn is_active_pod(pod: &Value) -> bool {
    !is_finished_pod(pod) && !object::is_terminating(pod)
}

fn condition_true(obj: &Value, kind: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

pub fn is_ready_pod(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// When a finished pod finished: its containers' latest `finishedAt`, else its last
/// condition change, else its creation.
pub fn finish_time(pod: &Value) -> Option<Timestamp> {
    let containers = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let finished = containers
        .into_iter()
        .flatten()
        .filter_map(|c| parse_time(c.pointer("/state/terminated/finishedAt")))
        .max();
    finished
        .or_else(|| {
            pod.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| parse_time(c.get("lastTransitionTime")))
                .max()
        })
        .or_else(|| parse_time(pod.pointer("/metadata/creationTimestamp")))
}

fn restarts(pod: &Value) -> i64 {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| pod.get("status")?.get(*k)?.as_array())
        .flatten()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .sum()
}

/// What a Job's pods add up to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub active: i64,
    pub ready: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Container restarts of active pods (restartPolicy OnFailure counts them as failures).
    pub active_restarts: i64,
    /// Failed pods since the last success, and when the latest of them failed: the backoff.
    pub failures_after_success: u32,
    pub last_failure: Option<Timestamp>,
}

pub fn summarize(pods: &[Value]) -> Summary {
    let mut s = Summary::default();
    let mut finished: Vec<(Timestamp, bool)> = Vec::new();
    for p in pods {
        match phase(p) {
            "Succeeded" => {
                s.succeeded += 1;
                finished.extend(finish_time(p).map(|t| (t, true)));
            }
            "Failed" => {
                s.failed += 1;
                finished.extend(finish_time(p).map(|t| (t, false)));
            }
            _ if object::is_terminating(p) => {}
            _ => {
                s.active += 1;
                s.ready += i64::from(is_ready_pod(p));
                if matches!(phase(p), "Running" | "Pending") {
                    s.active_restarts += restarts(p);
                }
            }
        }
    }
    finished.sort_by_key(|(t, _)| *t);
    for (t, ok) in finished {
        if ok {
            s.failures_after_success = 0;
        } else {
            s.failures_after_success += 1;
            s.last_failure = Some(t);
        }
    }
    if s.failures_after_success == 0 {
        s.last_failure = None;
    }
    s
}

/// How many pods should be active (`manageJob`'s `wantActive`).
pub fn want_active(completions: Option<i64>, parallelism: i64, succeeded: i64, active: i64) -> i64 {
    match completions {
        // Work-queue mode: once any pod succeeded, let the running ones finish, start no more.
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - succeeded).clamp(0, parallelism.max(0)),
    }
}

/// The wait before the next pod after `failures` consecutive failures: `base` doubling per
/// failure, capped at `max`, minus what already passed since the last one.
pub fn backoff_remaining(
    base: Duration,
    max: Duration,
    failures: u32,
    last_failure: Option<Timestamp>,
    now: Timestamp,
) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut backoff = base;
    for _ in 1..failures {
        backoff = backoff.saturating_mul(2);
        if backoff >= max {
            backoff = max;
            break;
        }
    }
    backoff.min(max).saturating_sub(until(last, now))
}

/// `pastBackoffLimitOnFailure`: with restartPolicy OnFailure, container restarts of active
/// pods count toward backoffLimit.
pub fn past_backoff_limit_on_failure(
    restart_policy: &str,
    backoff_limit: i64,
    active_restarts: i64,
) -> bool {
    restart_policy == "OnFailure"
        && if backoff_limit == 0 {
            active_restarts > 0
        } else {
            active_restarts >= backoff_limit
        }
}

/// The type (`Complete`/`Failed`) of a Job's true finished condition.
pub fn finished_condition(job: &Value) -> Option<&'static str> {
    ["Complete", "Failed"]
        .into_iter()
        .find(|t| condition_true(job, t))
}

/// When a finished Job finished: `completionTime`, or its finished condition's transition.
pub fn finished_at(job: &Value) -> Option<Timestamp> {
    let kind = finished_condition(job)?;
    parse_time(job.pointer("/status/completionTime")).or_else(|| {
        job.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .and_then(|c| parse_time(c.get("lastTransitionTime")))
    })
}

/// Sets condition `kind` in `status.conditions` (keeping `lastTransitionTime` when the status
/// does not change).
pub fn set_condition(
    status: &mut Map<String, Value>,
    kind: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    let now = rfc3339(now);
    let fresh = json!({
        "type": kind, "status": value, "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now,
    });
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(value) => {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        Some(c) => *c = fresh,
        None => list.push(fresh),
    }
}

pub fn has_condition(status: &Map<String, Value>, kind: &str, value: &str) -> bool {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some(value)
            })
        })
}

/// Which `n` active pods to delete first (`activePodsForRemoval`): unscheduled, then
/// pending, then not ready, then the newest.
pub fn pods_for_removal(active: &[&Value], n: usize) -> Vec<Value> {
    let mut ranked: Vec<&Value> = active.to_vec();
    ranked.sort_by_key(|p| {
        let scheduled = p
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let running = phase(p) == "Running";
        let created =
            parse_time(p.pointer("/metadata/creationTimestamp")).map_or(0, |t| t.as_second());
        (
            scheduled,
            running,
            is_ready_pod(p),
            std::cmp::Reverse(created),
        )
    });
    ranked.into_iter().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, finished: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": phase}});
        if let Some(f) = finished {
            p["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "finishedAt": f}}}]);
        }
        p
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn counts_pods_and_failures_since_last_success() {
        let mut running = pod("r", "Running", None);
        running["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        running["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 2}]);
        let mut gone = pod("g", "Running", None);
        gone["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:09Z");
        let pods = vec![
            pod("f1", "Failed", Some("2024-01-01T00:00:01Z")),
            pod("s1", "Succeeded", Some("2024-01-01T00:00:02Z")),
            pod("f2", "Failed", Some("2024-01-01T00:00:03Z")),
            pod("f3", "Failed", Some("2024-01-01T00:00:05Z")),
            running,
            pod("p", "Pending", None),
            gone,
        ];
        let s = summarize(&pods);
        assert_eq!((s.active, s.ready, s.succeeded, s.failed), (2, 1, 1, 3));
        assert_eq!(s.active_restarts, 2);
        assert_eq!(s.failures_after_success, 2);
        assert_eq!(s.last_failure, Some(t("2024-01-01T00:00:05Z")));
        let s = summarize(&[
            pod("f", "Failed", Some("2024-01-01T00:00:01Z")),
            pod("s", "Succeeded", Some("2024-01-01T00:00:02Z")),
        ]);
        assert_eq!((s.failures_after_success, s.last_failure), (0, None));
    }

    #[test]
    fn want_active_follows_completions_and_parallelism() {
        assert_eq!(want_active(Some(3), 2, 0, 0), 2);
        assert_eq!(want_active(Some(3), 2, 2, 1), 1);
        assert_eq!(want_active(Some(3), 2, 3, 0), 0);
        assert_eq!(want_active(Some(3), 2, 5, 0), 0);
        assert_eq!(want_active(Some(1), 0, 0, 0), 0);
        assert_eq!(want_active(None, 4, 0, 1), 4);
        assert_eq!(want_active(None, 4, 1, 3), 3);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(360);
        let last = t("2024-01-01T00:00:00Z");
        let at = |s: u64| t("2024-01-01T00:00:00Z") + Duration::from_secs(s);
        assert_eq!(
            backoff_remaining(base, max, 0, Some(last), at(0)),
            Duration::ZERO
        );
        assert_eq!(
            backoff_remaining(base, max, 1, Some(last), at(3)),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff_remaining(base, max, 2, Some(last), at(0)),
            Duration::from_secs(20)
        );
        assert_eq!(
            backoff_remaining(base, max, 3, Some(last), at(50)),
            Duration::ZERO
        );
        assert_eq!(backoff_remaining(base, max, 10, Some(last), at(0)), max);
        assert_eq!(backoff_remaining(base, max, 2, None, at(0)), Duration::ZERO);
    }

    #[test]
    fn restarts_count_only_with_on_failure() {
        assert!(past_backoff_limit_on_failure("OnFailure", 2, 2));
        assert!(!past_backoff_limit_on_failure("OnFailure", 2, 1));
        assert!(past_backoff_limit_on_failure("OnFailure", 0, 1));
        assert!(!past_backoff_limit_on_failure("Never", 0, 5));
    }

    #[test]
    fn conditions_keep_transition_time_and_finish_is_read_back() {
        let mut st = Map::new();
        set_condition(
            &mut st,
            "Complete",
            "True",
            "CompletionsReached",
            "m",
            t("2024-01-01T00:00:05Z"),
        );
        set_condition(
            &mut st,
            "Complete",
            "True",
            "CompletionsReached",
            "m2",
            t("2024-01-01T00:00:09Z"),
        );
        assert_eq!(
            st["conditions"][0]["lastTransitionTime"],
            "2024-01-01T00:00:05Z"
        );
        assert_eq!(st["conditions"][0]["message"], "m2");
        assert!(has_condition(&st, "Complete", "True"));
        let job = json!({"status": st});
        assert_eq!(finished_condition(&job), Some("Complete"));
        assert_eq!(finished_at(&job), Some(t("2024-01-01T00:00:05Z")));
        assert_eq!(finished_condition(&json!({"status": {}})), None);
    }

    #[test]
    fn removal_prefers_unscheduled_then_not_ready_then_newest() {
        let mut a = pod("a", "Running", None);
        a["spec"] = json!({"nodeName": "n"});
        a["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        let mut b = pod("b", "Running", None);
        b["spec"] = json!({"nodeName": "n"});
        let mut c = pod("c", "Running", None);
        c["spec"] = json!({"nodeName": "n"});
        c["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        c["metadata"]["creationTimestamp"] = json!("2024-01-01T00:01:00Z");
        let d = pod("d", "Pending", None);
        let names: Vec<String> = pods_for_removal(&[&a, &b, &c, &d], 3)
            .iter()
            .map(|p| object::name(p).to_string())
            .collect();
        assert_eq!(names, ["d", "b", "c"]);
    }
}
