//! Indexed completion mode (`spec.completionMode: Indexed`), as Kubernetes'
//! `indexed_job_utils.go`: each pod runs one completion index in [0, completions), carried by
//! the `batch.kubernetes.io/job-completion-index` annotation and label, a `<job>-<i>` hostname
//! and the `JOB_COMPLETION_INDEX` env var; an index is complete once a pod with it succeeded;
//! `status.completedIndexes` lists them as intervals ("0-2,4").

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::status;
use crate::api::object;

/// The annotation and label holding a pod's completion index.
pub const COMPLETION_INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The env var every container of an indexed pod gets (from the label, downward API).
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Longest `generateName` prefix (`names.MaxGeneratedNameLength`: 63 minus the random suffix).
const MAX_GENERATED_NAME_LENGTH: usize = 58;
/// Longest hostname (a DNS label).
const MAX_HOSTNAME_LENGTH: usize = 63;

pub fn is_indexed(job: &Value) -> bool {
    job.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed")
}

/// A pod's completion index (annotation, else label); None when missing or not a number.
pub fn completion_index(pod: &Value) -> Option<i64> {
    ["annotations", "labels"].iter().find_map(|k| {
        pod.pointer(&format!("/metadata/{k}"))?
            .get(COMPLETION_INDEX_KEY)?
            .as_str()?
            .parse::<i64>()
            .ok()
            .filter(|i| *i >= 0)
    })
}

/// Parses `status.completedIndexes` ("1,3-5"), keeping indexes below `completions`;
/// malformed parts are skipped (as `parseIndexesFromString`).
pub fn parse_indexes(s: &str, completions: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i64>(), b.parse::<i64>()),
            None => (part.parse::<i64>(), part.parse::<i64>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            continue;
        };
        out.extend(first.max(0)..=last.min(completions - 1));
    }
    out
}

/// Formats indexes as Kubernetes' `orderedIntervals.String()`: "0-2,4,6-7".
pub fn format_indexes(set: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    let flush = |r: (i64, i64), parts: &mut Vec<String>| {
        parts.push(if r.0 == r.1 {
            r.0.to_string()
        } else {
            format!("{}-{}", r.0, r.1)
        });
    };
    for &i in set {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                flush(r, &mut parts);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut parts);
    }
    parts.join(",")
}

/// The complete indexes: those already in `status.completedIndexes` plus those of succeeded
/// pods with a valid index (`calculateSucceededIndexes`).
pub fn completed_indexes(
    previous: Option<&str>,
    pods: &[Value],
    completions: i64,
) -> BTreeSet<i64> {
    let mut set = parse_indexes(previous.unwrap_or(""), completions);
    set.extend(
        pods.iter()
            .filter(|p| status::phase(p) == "Succeeded")
            .filter_map(completion_index)
            .filter(|i| *i < completions),
    );
    set
}

/// The `n` lowest indexes in [0, completions) neither complete nor taken by an active pod
/// (`firstPendingIndexes`).
pub fn first_pending(
    completed: &BTreeSet<i64>,
    active: &BTreeSet<i64>,
    completions: i64,
    n: usize,
) -> Vec<i64> {
    (0..completions)
        .filter(|i| !completed.contains(i) && !active.contains(i))
        .take(n)
        .collect()
}

/// Splits active pods into those to keep (at most one per pending index: the one
/// `pods_for_removal` would delete last — scheduled, running, ready, oldest) and those to
/// delete: no or an out-of-range index, a duplicate, or an index already complete
/// (`appendDuplicatedIndexPodsForRemoval`).
pub fn split_active<'a>(
    active: &[&'a Value],
    completions: i64,
    completed: &BTreeSet<i64>,
) -> (Vec<&'a Value>, Vec<Value>) {
    let mut remove = Vec::new();
    let mut by_index: BTreeMap<i64, Vec<&'a Value>> = BTreeMap::new();
    for p in active {
        match completion_index(p) {
            Some(i) if i < completions && !completed.contains(&i) => {
                by_index.entry(i).or_default().push(p)
            }
            _ => remove.push((*p).clone()),
        }
    }
    let mut keep = Vec::new();
    for group in by_index.into_values() {
        let mut ranked = status::pods_for_removal(&group, group.len());
        let Some(best) = ranked.pop() else { continue };
        if let Some(p) = group
            .iter()
            .find(|p| object::name(p) == object::name(&best))
        {
            keep.push(*p);
        }
        remove.extend(ranked);
    }
    (keep, remove)
}

/// `podGenerateNameWithIndex`: `<job>-<i>-`, the job name cut to fit.
pub fn generate_name(job: &str, index: i64) -> String {
    let suffix = format!("-{index}-");
    let room = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
    format!("{}{suffix}", truncate(job, room))
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Makes `pod` (from the Job's template) the pod for `index`: annotation and label, name,
/// hostname, and `JOB_COMPLETION_INDEX` in every container and init container that lacks it.
pub fn apply_index(pod: &mut Value, job_name: &str, index: i64) {
    let ix = index.to_string();
    pod["metadata"]["generateName"] = json!(generate_name(job_name, index));
    for k in ["annotations", "labels"] {
        let m = &mut pod["metadata"][k];
        if !m.is_object() {
            *m = json!({});
        }
        m[COMPLETION_INDEX_KEY] = json!(ix);
    }
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    let hostname = format!("{job_name}-{index}");
    pod["spec"]["hostname"] =
        json!(truncate(&hostname, MAX_HOSTNAME_LENGTH).trim_end_matches(['-', '.']));
    let env = json!({
        "name": COMPLETION_INDEX_ENV,
        "valueFrom": {"fieldRef": {
            "apiVersion": "v1",
            "fieldPath": format!("metadata.labels['{COMPLETION_INDEX_KEY}']"),
        }},
    });
    for k in ["initContainers", "containers"] {
        let Some(cs) = pod["spec"].get_mut(k).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter(|c| c.is_object()) {
            if !c["env"].is_array() {
                c["env"] = json!([]);
            }
            if let Some(list) = c["env"].as_array_mut() {
                if !list.iter().any(|e| e["name"] == COMPLETION_INDEX_ENV) {
                    list.push(env.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[i64]) -> BTreeSet<i64> {
        v.iter().copied().collect()
    }

    fn pod(name: &str, phase: &str, index: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "uid": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": phase}});
        if let Some(i) = index {
            p["metadata"]["annotations"] = json!({COMPLETION_INDEX_KEY: i});
        }
        p
    }

    #[test]
    fn formats_and_parses_intervals() {
        assert_eq!(format_indexes(&set(&[])), "");
        assert_eq!(format_indexes(&set(&[3])), "3");
        assert_eq!(format_indexes(&set(&[0, 1, 2])), "0-2");
        assert_eq!(format_indexes(&set(&[0, 1, 2, 4, 6, 7])), "0-2,4,6-7");
        assert_eq!(format_indexes(&set(&[1, 3, 4])), "1,3-4");
        assert_eq!(parse_indexes("0-2,4,6-7", 10), set(&[0, 1, 2, 4, 6, 7]));
        assert_eq!(parse_indexes("", 10), set(&[]));
        assert_eq!(parse_indexes("1,x,3-4", 10), set(&[1, 3, 4]));
        assert_eq!(
            parse_indexes("2-9", 4),
            set(&[2, 3]),
            "clamped to completions"
        );
        for s in ["0-2,4,6-7", "5", "0,2,4"] {
            assert_eq!(format_indexes(&parse_indexes(s, 100)), s);
        }
    }

    #[test]
    fn pending_indexes_skip_complete_and_active() {
        let done = set(&[0, 2]);
        let active = set(&[1]);
        assert_eq!(first_pending(&done, &active, 6, 2), [3, 4]);
        assert_eq!(first_pending(&done, &active, 6, 10), [3, 4, 5]);
        assert_eq!(
            first_pending(&set(&[0, 1, 2]), &set(&[]), 3, 2),
            Vec::<i64>::new()
        );
        assert_eq!(first_pending(&set(&[]), &set(&[]), 3, 2), [0, 1]);
    }

    #[test]
    fn completed_indexes_merge_status_and_succeeded_pods() {
        let pods = vec![
            pod("a", "Succeeded", Some("1")),
            pod("b", "Failed", Some("2")),
            pod("c", "Succeeded", Some("9")),
            pod("d", "Succeeded", None),
            pod("e", "Running", Some("3")),
        ];
        assert_eq!(completed_indexes(Some("0"), &pods, 5), set(&[0, 1]));
        let mut labelled = pod("f", "Succeeded", None);
        labelled["metadata"]["labels"] = json!({COMPLETION_INDEX_KEY: "4"});
        assert_eq!(completion_index(&labelled), Some(4));
        assert_eq!(completion_index(&pod("g", "Running", Some("-1"))), None);
        assert_eq!(completion_index(&pod("h", "Running", Some("x"))), None);
    }

    #[test]
    fn duplicates_and_out_of_range_pods_are_removed() {
        let mut older = pod("old", "Running", Some("0"));
        older["spec"] = json!({"nodeName": "n"});
        let mut newer = pod("new", "Running", Some("0"));
        newer["spec"] = json!({"nodeName": "n"});
        newer["metadata"]["creationTimestamp"] = json!("2024-01-01T00:01:00Z");
        let out = pod("out", "Running", Some("7"));
        let none = pod("none", "Pending", None);
        let done = pod("done", "Running", Some("2"));
        let one = pod("one", "Pending", Some("1"));
        let (keep, remove) =
            split_active(&[&newer, &older, &out, &none, &done, &one], 3, &set(&[2]));
        let names = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<BTreeSet<_>>();
        assert_eq!(
            keep.iter()
                .map(|p| object::name(p).to_string())
                .collect::<BTreeSet<_>>(),
            names(vec!["old", "one"])
        );
        assert_eq!(
            remove
                .iter()
                .map(|p| object::name(p).to_string())
                .collect::<BTreeSet<_>>(),
            names(vec!["new", "out", "none", "done"])
        );
    }

    #[test]
    fn pods_get_index_name_hostname_and_env() {
        let mut p = json!({"metadata": {"labels": {"app": "x"}}, "spec": {
            "subdomain": "svc",
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "env": [{"name": "K", "value": "v"}]},
                           {"name": "b", "env": [{"name": COMPLETION_INDEX_ENV, "value": "mine"}]}],
        }});
        apply_index(&mut p, "calc", 2);
        assert_eq!(p["metadata"]["generateName"], "calc-2-");
        assert_eq!(p["metadata"]["labels"][COMPLETION_INDEX_KEY], "2");
        assert_eq!(p["metadata"]["labels"]["app"], "x");
        assert_eq!(p["metadata"]["annotations"][COMPLETION_INDEX_KEY], "2");
        assert_eq!(p["spec"]["hostname"], "calc-2");
        assert_eq!(p["spec"]["subdomain"], "svc");
        let a = &p["spec"]["containers"][0]["env"];
        assert_eq!(a[1]["name"], COMPLETION_INDEX_ENV);
        assert_eq!(
            a[1]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(
            p["spec"]["initContainers"][0]["env"][0]["name"],
            COMPLETION_INDEX_ENV
        );
        let b = p["spec"]["containers"][1]["env"].as_array().unwrap();
        assert_eq!((b.len(), &b[0]["value"]), (1, &json!("mine")));

        let long = "j".repeat(70);
        let g = generate_name(&long, 12);
        assert_eq!(g.len(), MAX_GENERATED_NAME_LENGTH);
        assert!(g.ends_with("-12-"));
    }
}
