//! The CronJob controller, as Kubernetes' `cronjob_controllerv2`: at each scheduled time (in
//! `spec.timeZone`, UTC by default) it creates the Job `<cronjob>-<scheduled unix minutes>` from
//! `jobTemplate` (annotated `batch.kubernetes.io/cronjob-scheduled-timestamp`), honouring
//! `concurrencyPolicy` (Allow/Forbid/Replace), `startingDeadlineSeconds`, `suspend`; keeps
//! `status.active`, `lastScheduleTime`, `lastSuccessfulTime`; prunes finished Jobs beyond
//! `successfulJobsHistoryLimit`/`failedJobsHistoryLimit`; requeues itself at the next scheduled
//! time. The time comes from a [`Clock`] so tests can move it.

pub mod schedule;

#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::clock::{parse_time, rfc3339, until, Clock};
use super::job::{controlled_by, controller_ref, status::finished_condition};
use super::runner::{Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::resources::ResourceDef;
use crate::api::{object, ApiError, ApiState};
use crate::events::{EventRecorder, EventType};
use crate::store::ObjectKey;
use schedule::Schedule;

/// Annotation with the scheduled time a Job was created for.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this get a TooManyMissedTimes warning (Kubernetes' 100).
pub const DEFAULT_MANY_MISSED: i64 = 100;
/// Requeues land this long after the scheduled time, so the clock has surely passed it
/// (Kubernetes' `nextScheduleDelta`).
pub const DEFAULT_NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

pub struct CronJobController {
    objects: Objects,
    recorder: EventRecorder,
    clock: Clock,
}

fn def(plural: &str) -> Result<&'static ResourceDef, ReconcileError> {
    super::runner::served("batch", plural)
}

/// `<cronjob>-<scheduled time in unix minutes>` (Kubernetes' `getJobName`).
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 in `tz` as Go prints it (`Z` for a zero offset).
fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job for the run at `scheduled` (Kubernetes' `getJobFromTemplate2`).
pub fn job_from_template(cj: &Value, scheduled: Timestamp, tz: &TimeZone) -> Value {
    let template = cj
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut annotations = template
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        json!(rfc3339_in(scheduled, tz)),
    );
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(object::name(cj), scheduled),
            "namespace": object::namespace(cj),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [controller_ref(cj)],
        },
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The schedule's most recent activation at or before `now` that is still due, and how many
/// were missed (Kubernetes' `mostRecentScheduleTime`). Counting starts after
/// `lastScheduleTime` (or creation), and with `deadline`, no earlier than `now - deadline`.
pub fn most_recent(
    sched: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    deadline: Option<i64>,
    now: Timestamp,
) -> Result<(Option<Timestamp>, i64), String> {
    let mut earliest = earliest;
    if let Some(secs) = deadline {
        let cutoff = now - Duration::from_secs(secs.max(0).unsigned_abs());
        if cutoff > earliest {
            earliest = cutoff;
        }
    }
    let Some(t1) = sched.next(earliest, tz) else {
        return Ok((None, 0));
    };
    if now < t1 {
        return Ok((None, 0));
    }
    let Some(t2) = sched.next(t1, tz) else {
        return Ok((Some(t1), 1));
    };
    if now < t2 {
        return Ok((Some(t1), 1));
    }
    let between = t2.as_second() - t1.as_second();
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let missed = (now.as_second() - t1.as_second()) / between + 1;
    // Walk only the tail: from about one interval before the estimated last one.
    let from = Timestamp::from_second(t1.as_second() + (missed - 2).max(0) * between).unwrap_or(t1);
    let mut recent = None;
    let mut t = sched.next(from, tz);
    while let Some(x) = t.filter(|x| *x <= now) {
        recent = Some(x);
        t = sched.next(x, tz);
    }
    Ok((recent.or(Some(t1)), missed))
}

fn active_refs(status: &Map<String, Value>) -> Vec<Value> {
    status
        .get("active")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or("")
}

fn job_ref(job: &Value) -> Value {
    json!({
        "kind": "Job",
        "namespace": object::namespace(job),
        "name": object::name(job),
        "uid": object::meta_str(job, "uid").unwrap_or(""),
        "apiVersion": "batch/v1",
        "resourceVersion": object::meta_str(job, "resourceVersion").unwrap_or(""),
    })
}

/// Sort key of a finished Job for pruning: oldest start first, Jobs without a start last.
fn start_key(job: &Value) -> (bool, i64, String) {
    let start = parse_time(job.pointer("/status/startTime"));
    (
        start.is_none(),
        start.map_or(0, |t| t.as_second()),
        object::name(job).to_string(),
    )
}

impl CronJobController {
    pub fn new(st: ApiState, clock: Clock) -> Self {
        CronJobController {
            recorder: EventRecorder::new(st.store.clone(), "cronjob-controller"),
            objects: Objects::new(st),
            clock,
        }
    }

    async fn event(&self, cj: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(cj, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "recording an event failed");
        }
    }

    async fn delete_job(&self, cj: &Value, job: &Value) -> Result<(), ReconcileError> {
        let opts = DeleteOptions {
            uid: object::meta_str(job, "uid").map(str::to_string),
            propagation_policy: Some("Background".into()),
            ..DeleteOptions::default()
        };
        match self
            .objects
            .delete(
                def("jobs")?,
                object::namespace(job),
                object::name(job),
                opts,
            )
            .await
        {
            Ok(_) => {
                self.event(
                    cj,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted job {}", object::name(job)),
                )
                .await;
                Ok(())
            }
            Err(e) if e.code == http::StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the oldest finished Jobs beyond the history limits (`cleanupFinishedJobs`).
    async fn prune(&self, cj: &Value, jobs: &[Value]) -> Result<(), ReconcileError> {
        for (kind, limit_field) in [
            ("Complete", "successfulJobsHistoryLimit"),
            ("Failed", "failedJobsHistoryLimit"),
        ] {
            let Some(limit) = cj
                .pointer(&format!("/spec/{limit_field}"))
                .and_then(Value::as_i64)
            else {
                continue;
            };
            let mut done: Vec<&Value> = jobs
                .iter()
                .filter(|j| !object::is_terminating(j) && finished_condition(j) == Some(kind))
                .collect();
            let excess = done
                .len()
                .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
            done.sort_by_key(|j| start_key(j));
            for j in done.into_iter().take(excess) {
                self.delete_job(cj, j).await?;
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        cj: &Value,
        status: Map<String, Value>,
    ) -> Result<(), ReconcileError> {
        let status = Value::Object(status);
        if cj.get("status").unwrap_or(&json!({})) == &status {
            return Ok(());
        }
        let uid = object::meta_str(cj, "uid").unwrap_or("").to_string();
        let name = object::name(cj).to_string();
        self.objects
            .modify(
                def("cronjobs")?,
                object::namespace(cj),
                &name,
                Subresource::Status,
                |cur| {
                    if object::meta_str(cur, "uid").unwrap_or("") != uid {
                        return Err(ApiError::conflict("cronjobs", "batch", &name));
                    }
                    cur["status"] = status.clone();
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }

    /// Brings `status.active`/`lastSuccessfulTime` in line with the Jobs that exist.
    async fn track_jobs(
        &self,
        cj: &Value,
        jobs: &[Value],
        st: &mut Map<String, Value>,
    ) -> Result<(), ReconcileError> {
        let mut active = active_refs(st);
        for j in jobs {
            let uid = object::meta_str(j, "uid").unwrap_or("");
            let listed = active.iter().any(|r| ref_uid(r) == uid);
            let finished = finished_condition(j);
            match (listed, finished) {
                (false, None) if object::is_terminating(j) => {}
                (false, None) => {
                    if j.pointer("/metadata/annotations")
                        .and_then(|a| a.get(SCHEDULED_TIMESTAMP_ANNOTATION))
                        .is_some()
                    {
                        // Ours, but the status write after creating it was lost: take it back.
                        active.push(job_ref(j));
                    } else {
                        let msg = format!(
                            "Saw a job that the controller did not create or forgot: {}",
                            object::name(j)
                        );
                        self.event(cj, EventType::Warning, "UnexpectedJob", &msg)
                            .await;
                    }
                }
                (true, Some(cond)) => {
                    active.retain(|r| ref_uid(r) != uid);
                    let msg = format!("Saw completed job: {}, condition: {cond}", object::name(j));
                    self.event(cj, EventType::Normal, "SawCompletedJob", &msg)
                        .await;
                }
                _ => {}
            }
            if finished == Some("Complete") {
                let done = parse_time(j.pointer("/status/completionTime"));
                let last = parse_time(st.get("lastSuccessfulTime"));
                if let Some(done) = done.filter(|d| last.is_none_or(|l| *d > l)) {
                    st.insert("lastSuccessfulTime".into(), json!(rfc3339(done)));
                }
            }
        }
        // Active references to Jobs that are gone.
        let mut kept = Vec::new();
        for r in active {
            if jobs
                .iter()
                .any(|j| object::meta_str(j, "uid") == Some(ref_uid(&r)))
            {
                kept.push(r);
                continue;
            }
            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
            let live = self
                .objects
                .get(def("jobs")?, object::namespace(cj), name)
                .await?;
            if live
                .as_ref()
                .is_some_and(|l| object::meta_str(l, "uid") == Some(ref_uid(&r)))
            {
                kept.push(r);
            } else {
                self.event(
                    cj,
                    EventType::Normal,
                    "MissingJob",
                    &format!("Active job went missing: {name}"),
                )
                .await;
            }
        }
        if kept.is_empty() {
            st.remove("active");
        } else {
            st.insert("active".into(), Value::Array(kept));
        }
        Ok(())
    }

    /// When to look again: just after the next activation (`nextScheduleTimeDuration`).
    fn requeue(
        &self,
        sched: &Schedule,
        tz: &TimeZone,
        earliest: Timestamp,
        now: Timestamp,
    ) -> Action {
        let base = match most_recent(sched, tz, earliest, None, now) {
            Ok((Some(t), _)) => t,
            Ok((None, _)) => earliest,
            Err(_) => return Action::RequeueAfter(DEFAULT_NEXT_SCHEDULE_DELTA),
        };
        match sched.next(base, tz) {
            Some(next) => Action::RequeueAfter(until(now, next) + DEFAULT_NEXT_SCHEDULE_DELTA),
            None => Action::Done,
        }
    }

    /// One step of `syncCronJob`; changes `st` and returns when to come back.
    async fn schedule(
        &self,
        cj: &Value,
        st: &mut Map<String, Value>,
    ) -> Result<Action, ReconcileError> {
        let spec = cj.get("spec").cloned().unwrap_or_else(|| json!({}));
        let raw = spec.get("schedule").and_then(Value::as_str).unwrap_or("");
        let tz_name = spec.get("timeZone").and_then(Value::as_str);
        if tz_name.is_some() && raw.contains("TZ") {
            let msg = format!("CRON_TZ or TZ used in schedule {raw:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details");
            self.event(cj, EventType::Warning, "UnsupportedSchedule", &msg)
                .await;
        }
        let parsed = match schedule::parse(raw) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("unparseable schedule: {raw:?} : {e}");
                self.event(cj, EventType::Warning, "UnparseableSchedule", &msg)
                    .await;
                return Ok(Action::Done);
            }
        };
        let tz = match tz_name.or(parsed.time_zone.as_deref()) {
            None => TimeZone::UTC,
            Some(name) => match TimeZone::get(name) {
                Ok(tz) => tz,
                Err(e) => {
                    self.event(
                        cj,
                        EventType::Warning,
                        "UnknownTimeZone",
                        &format!("invalid timeZone: {name:?}: {e}"),
                    )
                    .await;
                    return Ok(Action::Done);
                }
            },
        };
        if spec.get("suspend").and_then(Value::as_bool) == Some(true) {
            return Ok(Action::Done);
        }
        let sched = parsed.schedule;
        let now = self.clock.now();
        let earliest = parse_time(st.get("lastScheduleTime"))
            .or_else(|| parse_time(cj.pointer("/metadata/creationTimestamp")))
            .unwrap_or(now);
        let deadline = spec.get("startingDeadlineSeconds").and_then(Value::as_i64);
        let (scheduled, missed) = match most_recent(&sched, &tz, earliest, deadline, now) {
            Ok(r) => r,
            Err(e) => {
                self.event(
                    cj,
                    EventType::Warning,
                    "InvalidSchedule",
                    &format!("invalid schedule: {raw} : {e}"),
                )
                .await;
                return Ok(Action::Done);
            }
        };
        let Some(scheduled) = scheduled else {
            return Ok(self.requeue(&sched, &tz, earliest, now));
        };
        if missed > DEFAULT_MANY_MISSED {
            let msg = format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew");
            self.event(cj, EventType::Warning, "TooManyMissedTimes", &msg)
                .await;
        }
        let requeue = self.requeue(&sched, &tz, scheduled, now);
        if let Some(secs) = deadline {
            if scheduled + Duration::from_secs(secs.max(0).unsigned_abs()) < now {
                let msg = format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled
                        .to_zoned(TimeZone::UTC)
                        .strftime("%a, %d %b %Y %H:%M:%S %z")
                );
                self.event(cj, EventType::Normal, "MissSchedule", &msg)
                    .await;
                return Ok(requeue);
            }
        }
        let name = job_name(object::name(cj), scheduled);
        let mut active = active_refs(st);
        if active
            .iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some(name.as_str()))
            || parse_time(st.get("lastScheduleTime")) == Some(scheduled)
        {
            return Ok(requeue);
        }
        let policy = spec
            .get("concurrencyPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Allow");
        if policy == "Forbid" && !active.is_empty() {
            let msg = "Not starting job because prior execution is running and concurrency policy is Forbid";
            self.event(cj, EventType::Normal, "JobAlreadyActive", msg)
                .await;
            return Ok(requeue);
        }
        if policy == "Replace" {
            for r in std::mem::take(&mut active) {
                let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(job) = self
                    .objects
                    .get(def("jobs")?, object::namespace(cj), name)
                    .await?
                {
                    self.delete_job(cj, &job).await?;
                }
            }
            st.remove("active");
        }
        let job = match self
            .objects
            .create(
                def("jobs")?,
                object::namespace(cj),
                job_from_template(cj, scheduled, &tz),
            )
            .await
        {
            Ok(job) => {
                self.event(
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {name}"),
                )
                .await;
                job
            }
            Err(e) if e.reason == "AlreadyExists" => {
                // Created by an earlier reconcile whose status write was lost: adopt it if ours.
                let existing = self
                    .objects
                    .get(def("jobs")?, object::namespace(cj), &name)
                    .await?;
                match existing
                    .filter(|j| controlled_by(j, object::meta_str(cj, "uid").unwrap_or("")))
                {
                    Some(j) => j,
                    None => return Err(e.into()),
                }
            }
            Err(e) => {
                self.event(
                    cj,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating job: {}", e.message),
                )
                .await;
                return Err(e.into());
            }
        };
        if finished_condition(&job).is_none()
            && !active
                .iter()
                .any(|r| ref_uid(r) == object::meta_str(&job, "uid").unwrap_or(""))
        {
            active.push(job_ref(&job));
        }
        st.insert("active".into(), Value::Array(active));
        st.insert("lastScheduleTime".into(), json!(rfc3339(scheduled)));
        Ok(requeue)
    }
}

impl Reconciler for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    fn triggers(&self) -> Vec<Trigger> {
        vec![
            Trigger::own("batch/cronjobs"),
            Trigger::owner("batch/jobs", "CronJob", "batch/cronjobs"),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(cj) = self
            .objects
            .get(def("cronjobs")?, &key.namespace, &key.name)
            .await?
        else {
            return Ok(Action::Done);
        };
        let uid = object::meta_str(&cj, "uid").unwrap_or("");
        let jobs: Vec<Value> = self
            .objects
            .list(def("jobs")?, &key.namespace, None)
            .await?
            .into_iter()
            .filter(|j| controlled_by(j, uid))
            .collect();
        let mut st: Map<String, Value> = cj
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.track_jobs(&cj, &jobs, &mut st).await?;
        if object::is_terminating(&cj) {
            self.write_status(&cj, st).await?;
            return Ok(Action::Done);
        }
        let action = self.schedule(&cj, &mut st).await;
        // Write what is known even when scheduling failed (e.g. the Job just created).
        self.write_status(&cj, st).await?;
        let action = action?;
        self.prune(&cj, &jobs).await?;
        Ok(action)
    }
}
