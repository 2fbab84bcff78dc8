//! The Job controller (batch/v1), as Kubernetes' job controller: runs up to `parallelism` pods
//! from the template until `completions` succeed (or, without `completions`, until one succeeds
//! and the rest have finished); in Indexed completion mode (`indexed.rs`) each pod runs one
//! index in [0, completions) and the Job completes once every index has succeeded, tracked in
//! `status.completedIndexes` (no `backoffLimitPerIndex` yet); failed pods count against
//! `backoffLimit` (with restartPolicy OnFailure, container restarts do), and a replacement after
//! a failure waits the pod-failure backoff; `activeDeadlineSeconds` fails the Job; `suspend`
//! stops its pods; the Complete/Failed conditions (with SuccessCriteriaMet/FailureTarget) and
//! `status.{active,ready,succeeded,failed,startTime,completionTime}`;
//! `ttlSecondsAfterFinished` deletes a finished Job (Background propagation).
//!
//! Counting reads the pods that exist (Kubernetes keeps finished pods with a tracking finalizer
//! instead); counters never go down, so deleting a finished pod does not undo its count.

pub mod indexed;
pub mod status;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::clock::{parse_time, rfc3339, until, Clock};
use super::runner::{Action, Reconciler, Trigger};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::{object, ApiError, ApiState};
use crate::controllers::runner::ReconcileError;
use crate::events::{EventRecorder, EventType};
use crate::store::ObjectKey;
use status::Summary;

/// First wait before replacing a failed pod (Kubernetes' `DefaultJobPodFailureBackOff`).
pub const DEFAULT_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait (Kubernetes' `MaxJobPodFailureBackOff`).
pub const DEFAULT_MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);
/// Pods created or deleted in one reconcile at most (Kubernetes' `MaxPodCreateDeletePerSync`).
pub const DEFAULT_MAX_POD_CHANGES_PER_SYNC: i64 = 500;
/// Reconcile workers (Jobs are independent of each other).
pub const DEFAULT_WORKERS: usize = 2;
/// The controller-uid label pods carry (the generated selector matches on it).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// Cluster-level tuning of the Job controller.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Backoff after the first failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            backoff_base: DEFAULT_POD_FAILURE_BACKOFF,
            backoff_max: DEFAULT_MAX_POD_FAILURE_BACKOFF,
        }
    }
}

pub struct JobController {
    objects: Objects,
    recorder: EventRecorder,
    config: JobConfig,
    clock: Clock,
}

use super::replicaset::claim::controller_uid;
use super::runner::served as def;

fn i64_at(v: &Value, path: &str) -> Option<i64> {
    v.pointer(path).and_then(Value::as_i64)
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    controller_uid(obj) == Some(uid)
}

pub use crate::controllers::replicaset::claim::controller_ref_to as controller_ref;

/// The pod a Job runs: its template with `generateName: <job>-` and a controller reference.
pub fn pod_from_template(job: &Value) -> Value {
    let template = job
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut meta = template
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.remove("name");
    meta.remove("creationTimestamp");
    meta.insert(
        "generateName".into(),
        json!(format!("{}-", object::name(job))),
    );
    meta.insert("namespace".into(), json!(object::namespace(job)));
    meta.insert("ownerReferences".into(), json!([controller_ref(job)]));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// What one reconcile decided, besides the status.
struct Step {
    requeue: Option<Duration>,
}

impl Step {
    fn after(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

impl JobController {
    pub fn new(st: ApiState, config: JobConfig, clock: Clock) -> Self {
        JobController {
            recorder: EventRecorder::new(st.store.clone(), "job-controller"),
            objects: Objects::new(st),
            config,
            clock,
        }
    }

    async fn delete_pods(&self, job: &Value, pods: &[Value]) -> Result<usize, ReconcileError> {
        let pods_def = def("", "pods")?;
        let mut n = 0;
        for p in pods {
            let opts = DeleteOptions {
                uid: object::meta_str(p, "uid").map(str::to_string),
                ..DeleteOptions::default()
            };
            match self
                .objects
                .delete(pods_def, object::namespace(p), object::name(p), opts)
                .await
            {
                Ok(_) => {
                    n += 1;
                    self.event(
                        job,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {}", object::name(p)),
                    )
                    .await;
                }
                Err(e) if e.code == http::StatusCode::CONFLICT => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// Creates one pod per entry of `indexes` (`Some(i)`: the pod for completion index `i`).
    async fn create_pods(
        &self,
        job: &Value,
        indexes: &[Option<i64>],
    ) -> Result<i64, ReconcileError> {
        let pods_def = def("", "pods")?;
        let mut created = 0;
        let most = usize::try_from(DEFAULT_MAX_POD_CHANGES_PER_SYNC).unwrap_or(usize::MAX);
        for index in indexes.iter().take(most) {
            let mut pod = pod_from_template(job);
            if let Some(i) = index {
                indexed::apply_index(&mut pod, object::name(job), *i);
            }
            match self
                .objects
                .create(pods_def, object::namespace(job), pod)
                .await
            {
                Ok(pod) => {
                    created += 1;
                    self.event(
                        job,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", object::name(&pod)),
                    )
                    .await;
                }
                Err(e) => {
                    self.event(
                        job,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                    )
                    .await;
                    return Err(e.into());
                }
            }
        }
        Ok(created)
    }

    async fn event(&self, job: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(job, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "recording an event failed");
        }
    }

    /// Writes `status` when it differs from the Job's (only to the Job with this uid).
    async fn write_status(
        &self,
        job: &Value,
        status: Map<String, Value>,
    ) -> Result<(), ReconcileError> {
        let status = Value::Object(status);
        if job.get("status") == Some(&status) {
            return Ok(());
        }
        let jobs = def("batch", "jobs")?;
        let uid = object::meta_str(job, "uid").unwrap_or("").to_string();
        let name = object::name(job).to_string();
        self.objects
            .modify(
                jobs,
                object::namespace(job),
                &name,
                Subresource::Status,
                |cur| {
                    if object::meta_str(cur, "uid").unwrap_or("") != uid {
                        return Err(ApiError::conflict("jobs", "batch", &name));
                    }
                    cur["status"] = status.clone();
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }

    /// A finished Job: delete it once `ttlSecondsAfterFinished` has passed.
    async fn ttl(&self, job: &Value) -> Result<Action, ReconcileError> {
        let Some(ttl) = i64_at(job, "/spec/ttlSecondsAfterFinished") else {
            return Ok(Action::Done);
        };
        let Some(finished) = status::finished_at(job) else {
            return Ok(Action::Done);
        };
        let expires = finished + Duration::from_secs(ttl.max(0).unsigned_abs());
        let now = self.clock.now();
        if now < expires {
            return Ok(Action::RequeueAfter(until(now, expires)));
        }
        let opts = DeleteOptions {
            uid: object::meta_str(job, "uid").map(str::to_string),
            propagation_policy: Some("Background".into()),
            ..DeleteOptions::default()
        };
        match self
            .objects
            .delete(
                def("batch", "jobs")?,
                object::namespace(job),
                object::name(job),
                opts,
            )
            .await
        {
            Ok(_) => Ok(Action::Done),
            Err(e) if e.code == http::StatusCode::CONFLICT => Ok(Action::Done),
            Err(e) => Err(e.into()),
        }
    }

    async fn sync(&self, job: &Value) -> Result<Action, ReconcileError> {
        let uid = object::meta_str(job, "uid").unwrap_or("");
        let pods: Vec<Value> = self
            .objects
            .list(def("", "pods")?, object::namespace(job), None)
            .await?
            .into_iter()
            .filter(|p| controlled_by(p, uid))
            .collect();
        let now = self.clock.now();
        let spec = job.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut st: Map<String, Value> = job
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let sum: Summary = status::summarize(&pods);
        let completions = spec.get("completions").and_then(Value::as_i64);
        let mut succeeded = sum
            .succeeded
            .max(i64_at(job, "/status/succeeded").unwrap_or(0));
        let failed = sum.failed.max(i64_at(job, "/status/failed").unwrap_or(0));
        let mut active_pods: Vec<&Value> =
            pods.iter().filter(|p| status::is_active_pod(p)).collect();
        let mut active = sum.active;
        let mut step = Step { requeue: None };

        // Indexed: succeeded counts complete indexes; pods without a valid pending index of
        // their own (out of range, duplicate, index already complete) go.
        let indexed = indexed::is_indexed(job);
        let mut completed = BTreeSet::new();
        if indexed {
            let c = completions.unwrap_or(0);
            let previous = st.get("completedIndexes").and_then(Value::as_str);
            completed = indexed::completed_indexes(previous, &pods, c);
            succeeded = i64::try_from(completed.len()).unwrap_or(i64::MAX);
            let (keep, surplus) = indexed::split_active(&active_pods, c, &completed);
            if !surplus.is_empty() {
                self.delete_pods(job, &surplus).await?;
            }
            active_pods = keep;
            active = i64::try_from(active_pods.len()).unwrap_or(i64::MAX);
        }

        let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
        if suspended {
            if !active_pods.is_empty() {
                let victims: Vec<Value> = active_pods.iter().map(|p| (*p).clone()).collect();
                self.delete_pods(job, &victims).await?;
                active_pods.clear();
                active = 0;
            }
            if !status::has_condition(&st, "Suspended", "True") {
                status::set_condition(
                    &mut st,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                );
                self.event(job, EventType::Normal, "Suspended", "Job suspended")
                    .await;
            }
        } else {
            if status::has_condition(&st, "Suspended", "True") {
                status::set_condition(
                    &mut st,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                );
                self.event(job, EventType::Normal, "Resumed", "Job resumed")
                    .await;
                st.insert("startTime".into(), json!(rfc3339(now)));
            }
            st.entry("startTime").or_insert_with(|| json!(rfc3339(now)));
        }

        let backoff_limit = spec
            .get("backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6);
        let restart_policy = spec
            .pointer("/template/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Never");
        let parallelism = spec.get("parallelism").and_then(Value::as_i64).unwrap_or(1);
        let start = parse_time(st.get("startTime"));
        let deadline = spec
            .get("activeDeadlineSeconds")
            .and_then(Value::as_i64)
            .zip(start)
            .map(|(secs, s)| s + Duration::from_secs(secs.max(0).unsigned_abs()));

        let failure = if failed > backoff_limit
            || status::past_backoff_limit_on_failure(
                restart_policy,
                backoff_limit,
                sum.active_restarts,
            ) {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if !suspended && deadline.is_some_and(|d| now >= d) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };

        let mut finished = false;
        if let Some((reason, message)) = failure {
            let victims: Vec<Value> = active_pods.iter().map(|p| (*p).clone()).collect();
            self.delete_pods(job, &victims).await?;
            active = 0;
            status::set_condition(&mut st, "FailureTarget", "True", reason, message, now);
            status::set_condition(&mut st, "Failed", "True", reason, message, now);
            self.event(job, EventType::Warning, reason, message).await;
            finished = true;
        } else if !suspended {
            let want = status::want_active(completions, parallelism, succeeded, active);
            if active > want {
                let victims = status::pods_for_removal(
                    &active_pods,
                    usize::try_from(active - want).unwrap_or(0),
                );
                let n = self.delete_pods(job, &victims).await?;
                active -= i64::try_from(n).unwrap_or(0);
                active_pods.retain(|p| !victims.iter().any(|v| object::name(v) == object::name(p)));
            }
            let complete = match completions {
                // Indexed: every index succeeded; pods still running are stopped.
                Some(c) if indexed => succeeded >= c,
                Some(c) => succeeded >= c && active == 0,
                None => succeeded > 0 && active == 0,
            };
            if complete && active > 0 {
                let victims: Vec<Value> = active_pods.iter().map(|p| (*p).clone()).collect();
                self.delete_pods(job, &victims).await?;
                active = 0;
            }
            if complete {
                let msg = "Reached expected number of succeeded pods";
                status::set_condition(
                    &mut st,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    msg,
                    now,
                );
                status::set_condition(&mut st, "Complete", "True", "CompletionsReached", msg, now);
                st.insert("completionTime".into(), json!(rfc3339(now)));
                self.event(job, EventType::Normal, "Completed", "Job completed")
                    .await;
                finished = true;
            } else if active < want {
                let wait = status::backoff_remaining(
                    self.config.backoff_base,
                    self.config.backoff_max,
                    sum.failures_after_success,
                    sum.last_failure,
                    now,
                );
                if wait.is_zero() {
                    let n = usize::try_from(want - active).unwrap_or(0);
                    let indexes: Vec<Option<i64>> = if indexed {
                        let taken: BTreeSet<i64> = active_pods
                            .iter()
                            .filter_map(|p| indexed::completion_index(p))
                            .collect();
                        let c = completions.unwrap_or(0);
                        indexed::first_pending(&completed, &taken, c, n)
                            .into_iter()
                            .map(Some)
                            .collect()
                    } else {
                        vec![None; n]
                    };
                    active += self.create_pods(job, &indexes).await?;
                } else {
                    step.after(wait);
                }
            }
            if let Some(d) = deadline.filter(|_| !finished) {
                step.after(until(now, d).max(Duration::from_millis(100)));
            }
        }

        for (k, v) in [
            ("active", active),
            ("succeeded", succeeded),
            ("failed", failed),
        ] {
            if v > 0 {
                st.insert(k.into(), json!(v));
            } else {
                st.remove(k);
            }
        }
        if indexed && !completed.is_empty() {
            st.insert(
                "completedIndexes".into(),
                json!(indexed::format_indexes(&completed)),
            );
        } else {
            st.remove("completedIndexes");
        }
        let ready = if finished { 0 } else { sum.ready.min(active) };
        st.insert("ready".into(), json!(ready));
        st.entry("uncountedTerminatedPods")
            .or_insert_with(|| json!({}));
        self.write_status(job, st).await?;
        if finished && spec.get("ttlSecondsAfterFinished").is_some() {
            // Come back when the TTL runs out.
            let ttl = i64_at(&spec, "/ttlSecondsAfterFinished")
                .unwrap_or(0)
                .max(0)
                .unsigned_abs();
            step.after(Duration::from_secs(ttl));
        }
        Ok(step.requeue.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn triggers(&self) -> Vec<Trigger> {
        vec![
            Trigger::own("batch/jobs"),
            Trigger::owner("core/pods", "Job", "batch/jobs"),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(job) = self
            .objects
            .get(def("batch", "jobs")?, &key.namespace, &key.name)
            .await?
        else {
            return Ok(Action::Done);
        };
        if object::is_terminating(&job) {
            return Ok(Action::Done);
        }
        if status::finished_condition(&job).is_some() {
            return self.ttl(&job).await;
        }
        self.sync(&job).await
    }
}
