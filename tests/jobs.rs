//! Jobs and CronJobs end to end on Wasm pods: a real server with its embedded node agent,
//! driven by kubectl.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::BufReader;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use common::{guest, Skiff};
use serde_json::Value;

/// Polls `f` every 500 ms until it returns Some, failing after `limit` (longer than
/// `common::WAIT`: Jobs back off for tens of seconds, CronJobs run once a minute).
fn wait_long<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn job_yaml(name: &str, image: &str, spec: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    spec:\n      runtimeClassName: wasm\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn event_reasons(s: &Skiff, object: &str) -> Result<Vec<String>> {
    Ok(items(&s.json(&["get", "events"])?)
        .iter()
        .filter(|e| e["involvedObject"]["name"] == object)
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect())
}

/// Watches a Job's pods (`kubectl get pods -w`) and records the most ever active at once.
struct ActiveWatch {
    child: std::process::Child,
    max: Arc<Mutex<usize>>,
}

impl ActiveWatch {
    fn start(s: &Skiff, job: &str) -> Result<ActiveWatch> {
        let mut child = s
            .kubectl_cmd(&[
                "get",
                "pods",
                "-l",
                &format!("job-name={job}"),
                "-w",
                "--output-watch-events",
                "-o",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let max = Arc::new(Mutex::new(0));
        let m = max.clone();
        std::thread::spawn(move || {
            let mut active: HashMap<String, bool> = HashMap::new();
            for ev in
                serde_json::Deserializer::from_reader(BufReader::new(out)).into_iter::<Value>()
            {
                let Ok(ev) = ev else { return };
                let pod = &ev["object"];
                let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
                let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
                let is_active = ev["type"] != "DELETED"
                    && !matches!(phase, "Succeeded" | "Failed")
                    && pod["metadata"]["deletionTimestamp"].is_null();
                active.insert(name, is_active);
                let n = active.values().filter(|a| **a).count();
                if let Ok(mut m) = m.lock() {
                    *m = (*m).max(n);
                }
            }
        });
        Ok(ActiveWatch { child, max })
    }

    fn max(&self) -> usize {
        self.max.lock().map(|m| *m).unwrap_or(0)
    }
}

impl Drop for ActiveWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn job_with_completions_and_parallelism_completes() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("wasm-job")?, "wasm-job:v1")?;
    let watch = ActiveWatch::start(&s, "calc")?;
    let f = s.write(
        "calc.yaml",
        &job_yaml(
            "calc",
            "wasm-job:v1",
            "  completions: 3\n  parallelism: 2\n",
        ),
    )?;
    s.ok(&["apply", "-f", &f.to_string_lossy()])?;
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/calc",
        "--timeout=120s",
    ])?;

    let job = s.json(&["get", "job", "calc"])?;
    ensure!(job["status"]["succeeded"] == 3, "{}", job["status"]);
    ensure!(job["status"]["completionTime"].is_string() && job["status"]["startTime"].is_string());
    let pods = items(&s.json(&["get", "pods", "-l", "job-name=calc"])?);
    ensure!(pods.len() == 3, "3 pods, got {}", pods.len());
    for p in &pods {
        ensure!(p["status"]["phase"] == "Succeeded", "{}", p["status"]);
        ensure!(p["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("calc-"));
        ensure!(
            p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]
        );
        ensure!(p["metadata"]["ownerReferences"][0]["kind"] == "Job");
    }
    std::thread::sleep(Duration::from_millis(500));
    ensure!(watch.max() <= 2, "{} pods were active at once", watch.max());
    ensure!(watch.max() >= 1, "the watch saw no pods");

    let table = s.ok(&["get", "job", "calc"])?;
    let row = table.lines().nth(1).unwrap_or("");
    ensure!(row.contains("Complete") && row.contains("3/3"), "{table}");
    let log = s.ok(&["logs", pods[0]["metadata"]["name"].as_str().unwrap_or("")])?;
    ensure!(log.contains("sum:"), "{log}");
    let reasons = event_reasons(&s, "calc")?;
    for r in ["SuccessfulCreate", "Completed"] {
        ensure!(reasons.iter().any(|x| x == r), "{r} not in {reasons:?}");
    }
    Ok(())
}

#[test]
fn failing_job_stops_at_the_backoff_limit() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("fail-exit")?, "fail-exit:v1")?;
    let f = s.write(
        "bad.yaml",
        &job_yaml("bad", "fail-exit:v1", "  backoffLimit: 2\n"),
    )?;
    s.ok(&["apply", "-f", &f.to_string_lossy()])?;
    // Three failures with 10 s and 20 s of backoff between them.
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/bad",
        "--timeout=150s",
    ])?;
    let job = s.json(&["get", "job", "bad"])?;
    let failed = condition(&job, "Failed").cloned().unwrap_or_default();
    ensure!(
        failed["reason"] == "BackoffLimitExceeded",
        "{}",
        job["status"]
    );
    ensure!(job["status"]["failed"] == 3, "{}", job["status"]);
    ensure!(condition(&job, "Complete").is_none());
    let pods = items(&s.json(&["get", "pods", "-l", "job-name=bad"])?);
    ensure!(pods.len() == 3, "3 pods, got {}", pods.len());
    ensure!(pods.iter().all(|p| p["status"]["phase"] == "Failed"));
    // Stopped: no fourth pod turns up.
    std::thread::sleep(Duration::from_secs(3));
    ensure!(items(&s.json(&["get", "pods", "-l", "job-name=bad"])?).len() == 3);
    let table = s.ok(&["get", "job", "bad"])?;
    ensure!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("Failed") && l.contains("0/1")),
        "{table}"
    );
    ensure!(event_reasons(&s, "bad")?
        .iter()
        .any(|r| r == "BackoffLimitExceeded"));
    Ok(())
}

#[test]
fn cronjob_creates_jobs_and_prunes_history() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("wasm-job")?, "wasm-job:v1")?;
    let yaml = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"*/1 * * * *\"\n  successfulJobsHistoryLimit: 1\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          runtimeClassName: wasm\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: wasm-job:v1\n";
    let f = s.write("tick.yaml", yaml)?;
    s.ok(&["apply", "-f", &f.to_string_lossy()])?;

    // A Job made by hand from the CronJob's template (client-side in kubectl).
    s.ok(&["create", "job", "by-hand", "--from=cronjob/tick"])?;
    let manual = s.json(&["get", "job", "by-hand"])?;
    ensure!(
        manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual",
        "{manual}"
    );
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ])?;

    // Two scheduled runs (at most ~2 minutes), then history pruned to one successful Job.
    let mut seen = BTreeSet::new();
    wait_long(
        "two scheduled Jobs, history pruned to 1",
        Duration::from_secs(150),
        || {
            let jobs: Vec<Value> = items(&s.json(&["get", "jobs"])?)
                .into_iter()
                .filter(|j| {
                    j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
                        .is_string()
                })
                .collect();
            for j in &jobs {
                let name = j["metadata"]["name"].as_str().unwrap_or("").to_string();
                ensure!(name.starts_with("tick-"), "{name}");
                ensure!(
                    name["tick-".len()..].parse::<i64>().is_ok(),
                    "{name} is not tick-<unix minutes>"
                );
                seen.insert(name);
            }
            let live: Vec<&Value> = jobs
                .iter()
                .filter(|j| j["metadata"]["deletionTimestamp"].is_null())
                .collect();
            let done = live
                .iter()
                .filter(|j| condition(j, "Complete").is_some())
                .count();
            Ok((seen.len() >= 2 && done == 1 && live.len() == 1).then_some(()))
        },
    )?;
    let cj = s.json(&["get", "cronjob", "tick"])?;
    ensure!(
        cj["status"]["lastScheduleTime"].is_string(),
        "{}",
        cj["status"]
    );
    ensure!(
        cj["status"]["lastSuccessfulTime"].is_string(),
        "{}",
        cj["status"]
    );
    let table = s.ok(&["get", "cronjob", "tick"])?;
    ensure!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("*/1 * * * *")),
        "{table}"
    );
    let reasons = event_reasons(&s, "tick")?;
    for r in ["SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"] {
        ensure!(reasons.iter().any(|x| x == r), "{r} not in {reasons:?}");
    }
    // The hand-made Job is owned by the CronJob too (as kubectl makes it), so it was the
    // oldest successful Job in the history and got pruned, as on Kubernetes.
    ensure!(
        !s.kubectl(&["get", "job", "by-hand"])?.status.success(),
        "by-hand was not pruned"
    );
    Ok(())
}

#[test]
fn indexed_job_completes_every_index() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("wasm-job")?, "wasm-job:v1")?;
    let f = s.write(
        "idx.yaml",
        &job_yaml(
            "idx",
            "wasm-job:v1",
            "  completions: 3\n  parallelism: 2\n  completionMode: Indexed\n",
        ),
    )?;
    s.ok(&["apply", "-f", &f.to_string_lossy()])?;
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=120s",
    ])?;
    let job = s.json(&["get", "job", "idx"])?;
    ensure!(
        job["status"]["completedIndexes"] == "0-2",
        "{}",
        job["status"]
    );
    ensure!(job["status"]["succeeded"] == 3, "{}", job["status"]);
    let mut indexes = BTreeSet::new();
    for p in items(&s.json(&["get", "pods", "-l", "job-name=idx"])?) {
        let ix = p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap_or("")
            .to_string();
        ensure!(
            p["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("idx-{ix}-")),
            "{}",
            p["metadata"]["name"]
        );
        ensure!(
            p["spec"]["hostname"] == format!("idx-{ix}"),
            "{}",
            p["spec"]
        );
        ensure!(p["status"]["phase"] == "Succeeded", "{}", p["status"]);
        indexes.insert(ix);
    }
    ensure!(
        indexes == BTreeSet::from(["0".to_string(), "1".to_string(), "2".to_string()]),
        "{indexes:?}"
    );
    Ok(())
}
