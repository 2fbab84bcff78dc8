//! Job controller against a real store and the in-process API (no agent: tests set pod phases
//! themselves, as a node would).

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::api::resources::{self, ResourceDef};
use crate::controllers::test_support::TestApi;

fn job_def() -> &'static ResourceDef {
    resources::find("batch", "v1", "jobs").unwrap()
}

fn pod_def() -> &'static ResourceDef {
    resources::find("", "v1", "pods").unwrap()
}

fn job_manifest(name: &str, extra: Value) -> Value {
    let mut j = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {"spec": {
                "restartPolicy": "Never",
                "runtimeClassName": "wasm",
                "containers": [{"name": "main", "image": "wasm-job:v1"}],
            }},
        },
    });
    if let (Some(spec), Some(extra)) = (j["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    j
}

struct Fixture {
    _api: TestApi,
    objects: Objects,
    ctl: JobController,
    clock: Clock,
}

async fn fixture(base: Duration) -> Fixture {
    let api = TestApi::new().await;
    let st = api.st.clone();
    let clock =
        Clock::manual(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap());
    let cfg = JobConfig {
        backoff_base: base,
        backoff_max: base * 36,
    };
    Fixture {
        objects: Objects::new(st.clone()),
        ctl: JobController::new(st, cfg, clock.clone()),
        clock,
        _api: api,
    }
}

impl Fixture {
    async fn create(&self, job: Value) -> Value {
        self.objects
            .create(job_def(), "default", job)
            .await
            .unwrap()
    }

    async fn reconcile(&self, name: &str) -> Action {
        self.ctl
            .reconcile(&ObjectKey::new("batch/jobs", "default", name))
            .await
            .unwrap()
    }

    async fn job(&self, name: &str) -> Value {
        self.objects
            .get(job_def(), "default", name)
            .await
            .unwrap()
            .unwrap()
    }

    async fn pods(&self, job: &str) -> Vec<Value> {
        self.objects
            .list(
                pod_def(),
                "default",
                Some(&format!("batch.kubernetes.io/job-name={job}")),
            )
            .await
            .unwrap()
    }

    async fn active(&self, job: &str) -> Vec<Value> {
        self.pods(job)
            .await
            .into_iter()
            .filter(status::is_active_pod)
            .collect()
    }

    /// Finishes a pod as a node would (phase and a terminated container).
    async fn finish(&self, pod: &Value, phase: &str) {
        let finished = rfc3339(self.clock.now());
        self.objects
            .modify(pod_def(), "default", object::name(pod), Subresource::Status, |p| {
                p["status"] = json!({
                    "phase": phase,
                    "containerStatuses": [{"name": "main", "restartCount": 0, "ready": false, "image": "wasm-job:v1", "imageID": "",
                        "state": {"terminated": {"exitCode": if phase == "Succeeded" {0} else {3}, "finishedAt": finished}}}],
                });
                Ok(())
            })
            .await
            .unwrap();
    }
}

fn condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

#[tokio::test]
async fn completions_with_parallelism_never_exceed_parallelism() {
    let f = fixture(Duration::from_secs(10)).await;
    f.create(job_manifest(
        "calc",
        json!({"completions": 3, "parallelism": 2}),
    ))
    .await;
    assert_eq!(f.reconcile("calc").await, Action::Done);
    let pods = f.pods("calc").await;
    assert_eq!(pods.len(), 2);
    let p = &pods[0];
    assert!(object::name(p).starts_with("calc-"));
    let labels = &p["metadata"]["labels"];
    let job = f.job("calc").await;
    assert_eq!(labels["batch.kubernetes.io/job-name"], "calc");
    assert_eq!(labels["job-name"], "calc");
    assert_eq!(labels["controller-uid"], job["metadata"]["uid"]);
    assert_eq!(
        labels["batch.kubernetes.io/controller-uid"],
        job["metadata"]["uid"]
    );
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(p["spec"]["runtimeClassName"], "wasm");
    assert_eq!(job["status"]["active"], 2);
    assert!(job["status"]["startTime"].is_string());

    // A second reconcile with nothing changed creates and writes nothing.
    f.reconcile("calc").await;
    assert_eq!(f.pods("calc").await.len(), 2);
    assert_eq!(
        f.job("calc").await["metadata"]["resourceVersion"],
        job["metadata"]["resourceVersion"]
    );

    f.finish(&pods[0], "Succeeded").await;
    f.reconcile("calc").await;
    assert_eq!(
        f.active("calc").await.len(),
        2,
        "one replacement for the success"
    );
    assert_eq!(f.pods("calc").await.len(), 3);
    for p in f.active("calc").await {
        f.finish(&p, "Succeeded").await;
    }
    f.reconcile("calc").await;
    let job = f.job("calc").await;
    assert_eq!(f.pods("calc").await.len(), 3, "no fourth pod");
    assert_eq!(job["status"]["succeeded"], 3);
    assert_eq!(condition(&job, "Complete").unwrap()["status"], "True");
    assert_eq!(
        condition(&job, "SuccessCriteriaMet").unwrap()["status"],
        "True"
    );
    assert!(job["status"]["completionTime"].is_string());
    assert!(job["status"].get("active").is_none());
}

#[tokio::test]
async fn failures_back_off_and_stop_at_the_backoff_limit() {
    let f = fixture(Duration::from_secs(10)).await;
    f.create(job_manifest("bad", json!({"backoffLimit": 2})))
        .await;
    f.reconcile("bad").await;
    for round in 1..=3u32 {
        let active = f.active("bad").await;
        assert_eq!(active.len(), 1, "round {round}");
        f.finish(&active[0], "Failed").await;
        let action = f.reconcile("bad").await;
        if round < 3 {
            // The replacement waits 10 s, then 20 s.
            let wait = Duration::from_secs(10 * 2u64.pow(round - 1));
            assert_eq!(action, Action::RequeueAfter(wait), "round {round}");
            assert!(f.active("bad").await.is_empty());
            f.clock.advance(wait);
            f.reconcile("bad").await;
        }
    }
    let job = f.job("bad").await;
    assert_eq!(job["status"]["failed"], 3);
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert!(condition(&job, "Complete").is_none());
    assert_eq!(f.pods("bad").await.len(), 3);
    // Finished: nothing more happens.
    assert_eq!(f.reconcile("bad").await, Action::Done);
    assert_eq!(f.pods("bad").await.len(), 3);
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_deletes_its_pods() {
    let f = fixture(Duration::from_secs(10)).await;
    f.create(job_manifest(
        "slow",
        json!({"activeDeadlineSeconds": 30, "parallelism": 2, "completions": 4}),
    ))
    .await;
    let action = f.reconcile("slow").await;
    assert_eq!(action, Action::RequeueAfter(Duration::from_secs(30)));
    assert_eq!(f.active("slow").await.len(), 2);
    f.clock.advance(Duration::from_secs(31));
    f.reconcile("slow").await;
    let job = f.job("slow").await;
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "DeadlineExceeded"
    );
    assert!(
        f.active("slow").await.is_empty(),
        "running pods are deleted"
    );
}

#[tokio::test]
async fn ttl_after_finished_deletes_the_job() {
    let f = fixture(Duration::from_secs(10)).await;
    f.create(job_manifest(
        "short",
        json!({"ttlSecondsAfterFinished": 60}),
    ))
    .await;
    f.reconcile("short").await;
    let pod = f.active("short").await.remove(0);
    f.finish(&pod, "Succeeded").await;
    assert_eq!(
        f.reconcile("short").await,
        Action::RequeueAfter(Duration::from_secs(60))
    );
    f.clock.advance(Duration::from_secs(20));
    assert_eq!(
        f.reconcile("short").await,
        Action::RequeueAfter(Duration::from_secs(40))
    );
    f.clock.advance(Duration::from_secs(40));
    assert_eq!(f.reconcile("short").await, Action::Done);
    assert!(f
        .objects
        .get(job_def(), "default", "short")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn work_queue_mode_completes_when_one_succeeds_and_the_rest_finish() {
    let f = fixture(Duration::from_secs(10)).await;
    let mut m = job_manifest("queue", json!({"parallelism": 3}));
    m["spec"].as_object_mut().unwrap().remove("completions");
    let created = f.create(m).await;
    assert!(created["spec"]
        .get("completions")
        .is_none_or(Value::is_null));
    f.reconcile("queue").await;
    let pods = f.active("queue").await;
    assert_eq!(pods.len(), 3);
    f.finish(&pods[0], "Succeeded").await;
    f.reconcile("queue").await;
    assert_eq!(
        f.active("queue").await.len(),
        2,
        "no new pods after a success"
    );
    f.finish(&pods[1], "Succeeded").await;
    f.finish(&pods[2], "Succeeded").await;
    f.reconcile("queue").await;
    assert_eq!(
        condition(&f.job("queue").await, "Complete").unwrap()["status"],
        "True"
    );
}

#[tokio::test]
async fn on_failure_restarts_count_toward_the_limit() {
    let f = fixture(Duration::from_secs(10)).await;
    let mut m = job_manifest("flaky", json!({"backoffLimit": 2}));
    m["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    f.create(m).await;
    f.reconcile("flaky").await;
    let pod = f.active("flaky").await.remove(0);
    f.objects
        .modify(pod_def(), "default", object::name(&pod), Subresource::Status, |p| {
            p["status"] = json!({"phase": "Running", "containerStatuses": [{"name": "main", "restartCount": 2, "ready": false, "image": "x", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
            Ok(())
        })
        .await
        .unwrap();
    f.reconcile("flaky").await;
    let job = f.job("flaky").await;
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert!(f.active("flaky").await.is_empty());
}

#[tokio::test]
async fn suspend_deletes_pods_and_resume_restarts() {
    let f = fixture(Duration::from_secs(10)).await;
    f.create(job_manifest(
        "paused",
        json!({"parallelism": 2, "completions": 2}),
    ))
    .await;
    f.reconcile("paused").await;
    assert_eq!(f.active("paused").await.len(), 2);
    f.objects
        .modify(job_def(), "default", "paused", Subresource::Main, |j| {
            j["spec"]["suspend"] = json!(true);
            Ok(())
        })
        .await
        .unwrap();
    f.reconcile("paused").await;
    assert!(f.active("paused").await.is_empty());
    assert_eq!(
        condition(&f.job("paused").await, "Suspended").unwrap()["status"],
        "True"
    );
    f.objects
        .modify(job_def(), "default", "paused", Subresource::Main, |j| {
            j["spec"]["suspend"] = json!(false);
            Ok(())
        })
        .await
        .unwrap();
    f.reconcile("paused").await;
    assert_eq!(f.active("paused").await.len(), 2);
    assert_eq!(
        condition(&f.job("paused").await, "Suspended").unwrap()["status"],
        "False"
    );
}

/// The controller under the real runner: watches on Jobs and their pods drive it.
#[tokio::test]
async fn runner_drives_a_job_to_completion_on_pod_changes() {
    let api = TestApi::new().await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let ctl = JobController::new(api.st.clone(), JobConfig::default(), Clock::System);
    let tasks = crate::controllers::runner::spawn(
        std::sync::Arc::new(ctl),
        api.st.store.clone(),
        1,
        shutdown,
    );
    let objects = api.objects.clone();
    objects
        .create(
            job_def(),
            "default",
            job_manifest("driven", json!({"completions": 2, "parallelism": 1})),
        )
        .await
        .unwrap();
    let wait = |what: &'static str| {
        let objects = objects.clone();
        async move {
            for _ in 0..100 {
                let pods = objects
                    .list(pod_def(), "default", Some("job-name=driven"))
                    .await
                    .unwrap();
                let job = objects
                    .get(job_def(), "default", "driven")
                    .await
                    .unwrap()
                    .unwrap();
                let done = what == "complete" && condition(&job, "Complete").is_some();
                let active: Vec<Value> = pods.into_iter().filter(status::is_active_pod).collect();
                if done || (what == "pod" && active.len() == 1) {
                    return active;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("timed out waiting for {what}");
        }
    };
    for _ in 0..2 {
        let pod = wait("pod").await.remove(0);
        objects
            .modify(
                pod_def(),
                "default",
                object::name(&pod),
                Subresource::Status,
                |p| {
                    p["status"] = json!({"phase": "Succeeded"});
                    Ok(())
                },
            )
            .await
            .unwrap();
    }
    wait("complete").await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
}

fn index_of(p: &Value) -> i64 {
    indexed::completion_index(p).unwrap()
}

async fn active_by_index(f: &Fixture, job: &str) -> Vec<(i64, Value)> {
    let mut v: Vec<(i64, Value)> = f
        .active(job)
        .await
        .into_iter()
        .map(|p| (index_of(&p), p))
        .collect();
    v.sort_by_key(|(i, _)| *i);
    v
}

#[tokio::test]
async fn indexed_job_runs_each_index_once_and_completes() {
    let f = fixture(Duration::from_secs(10)).await;
    f.create(job_manifest(
        "idx",
        json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}),
    ))
    .await;
    assert_eq!(f.reconcile("idx").await, Action::Done);
    let active = active_by_index(&f, "idx").await;
    assert_eq!(active.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
    for (i, p) in &active {
        let ix = i.to_string();
        assert!(
            object::name(p).starts_with(&format!("idx-{i}-")),
            "{}",
            object::name(p)
        );
        assert_eq!(
            p["metadata"]["labels"][indexed::COMPLETION_INDEX_KEY],
            ix.as_str()
        );
        assert_eq!(
            p["metadata"]["annotations"][indexed::COMPLETION_INDEX_KEY],
            ix.as_str()
        );
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "idx"
        );
        assert_eq!(p["spec"]["hostname"], format!("idx-{i}"));
        let env = &p["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
    }

    // Index 1 succeeds: index 2 starts; index 0 fails: it is retried after the backoff.
    f.finish(&active[1].1, "Succeeded").await;
    f.clock.advance(Duration::from_secs(1));
    f.finish(&active[0].1, "Failed").await;
    assert_eq!(
        f.reconcile("idx").await,
        Action::RequeueAfter(Duration::from_secs(10))
    );
    let job = f.job("idx").await;
    assert_eq!(job["status"]["completedIndexes"], "1");
    assert_eq!(job["status"]["succeeded"], 1);
    assert_eq!(job["status"]["failed"], 1);
    f.clock.advance(Duration::from_secs(10));
    f.reconcile("idx").await;
    let active = active_by_index(&f, "idx").await;
    assert_eq!(active.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(f.job("idx").await["status"]["active"], 2);

    f.finish(&active[1].1, "Succeeded").await;
    f.reconcile("idx").await;
    let job = f.job("idx").await;
    assert_eq!(job["status"]["completedIndexes"], "1-2");
    assert!(condition(&job, "Complete").is_none());
    assert_eq!(
        active_by_index(&f, "idx").await.len(),
        1,
        "only index 0 left"
    );

    f.finish(&active[0].1, "Succeeded").await;
    f.reconcile("idx").await;
    let job = f.job("idx").await;
    assert_eq!(job["status"]["completedIndexes"], "0-2");
    assert_eq!(job["status"]["succeeded"], 3);
    assert_eq!(condition(&job, "Complete").unwrap()["status"], "True");
    assert_eq!(
        f.pods("idx").await.len(),
        4,
        "indexes 0 and 1, then 2 and the retry of 0"
    );
}

#[tokio::test]
async fn indexed_job_deletes_duplicate_and_out_of_range_pods() {
    let f = fixture(Duration::from_secs(10)).await;
    let job = f
        .create(job_manifest(
            "dup",
            json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed"}),
        ))
        .await;
    f.reconcile("dup").await;
    let first = active_by_index(&f, "dup").await;
    assert_eq!(first.len(), 2);
    // The first pod of index 0 is running and ready: it is the one kept.
    f.objects
        .modify(
            pod_def(),
            "default",
            object::name(&first[0].1),
            Subresource::Status,
            |p| {
                p["status"] = json!({"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}]});
                Ok(())
            },
        )
        .await
        .unwrap();
    for i in [0, 5] {
        let mut p = pod_from_template(&job);
        indexed::apply_index(&mut p, "dup", i);
        f.objects.create(pod_def(), "default", p).await.unwrap();
    }
    assert_eq!(f.active("dup").await.len(), 4);
    f.reconcile("dup").await;
    let left = active_by_index(&f, "dup").await;
    assert_eq!(left.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        object::name(&left[0].1),
        object::name(&first[0].1),
        "the ready pod of index 0 stays"
    );
    assert_eq!(f.job("dup").await["status"]["active"], 2);
}

#[tokio::test]
async fn backoff_limit_per_index_is_rejected() {
    let f = fixture(Duration::from_secs(10)).await;
    let err = f
        .objects
        .create(
            job_def(),
            "default",
            job_manifest(
                "per",
                json!({"completions": 2, "completionMode": "Indexed", "backoffLimitPerIndex": 1}),
            ),
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("not supported yet"), "{}", err.message);
}
