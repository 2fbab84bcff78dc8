//! CronJob controller against a real store with a manual clock (no Job controller running:
//! tests finish Jobs themselves).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::*;
use crate::api::resources;
use crate::controllers::test_support::TestApi;

fn cj_def() -> &'static ResourceDef {
    resources::find("batch", "v1", "cronjobs").unwrap()
}

fn job_def() -> &'static ResourceDef {
    resources::find("batch", "v1", "jobs").unwrap()
}

fn cronjob(name: &str, schedule: &str, extra: Value) -> Value {
    let mut cj = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"labels": {"app": name}},
                "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "wasm-job:v1"}],
                }}},
            },
        },
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        cj["spec"][k] = v.clone();
    }
    cj
}

struct Fixture {
    _api: TestApi,
    objects: Objects,
    ctl: CronJobController,
    clock: Clock,
}

async fn fixture() -> Fixture {
    let api = TestApi::new().await;
    let st = api.st.clone();
    let clock = Clock::manual(Timestamp::now());
    Fixture {
        objects: Objects::new(st.clone()),
        ctl: CronJobController::new(st, clock.clone()),
        clock,
        _api: api,
    }
}

impl Fixture {
    /// Creates the CronJob and sets the clock to its creation time.
    async fn create(&self, cj: Value) -> Value {
        let cj = self.objects.create(cj_def(), "default", cj).await.unwrap();
        self.clock
            .set(parse_time(cj.pointer("/metadata/creationTimestamp")).unwrap());
        cj
    }

    async fn reconcile(&self, name: &str) -> Action {
        self.ctl
            .reconcile(&ObjectKey::new("batch/cronjobs", "default", name))
            .await
            .unwrap()
    }

    async fn cj(&self, name: &str) -> Value {
        self.objects
            .get(cj_def(), "default", name)
            .await
            .unwrap()
            .unwrap()
    }

    async fn jobs(&self) -> Vec<Value> {
        let mut jobs: Vec<Value> = self
            .objects
            .list(job_def(), "default", None)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| !object::is_terminating(j))
            .collect();
        jobs.sort_by_key(|j| object::name(j).to_string());
        jobs
    }

    /// Moves the clock to `secs` past the next whole minute.
    fn to_next_minute(&self, secs: i64) {
        let now = self.clock.now().as_second();
        self.clock
            .set(Timestamp::from_second(now - now.rem_euclid(60) + 60 + secs).unwrap());
    }

    /// Marks a Job finished as the Job controller would.
    async fn finish(&self, name: &str, kind: &str) {
        let now = rfc3339(self.clock.now());
        self.objects
            .modify(job_def(), "default", name, Subresource::Status, |j| {
                j["status"] = json!({
                    "startTime": now,
                    "conditions": [{"type": kind, "status": "True", "lastTransitionTime": now}],
                });
                if kind == "Complete" {
                    j["status"]["completionTime"] = json!(now);
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn event_reasons(&self) -> Vec<String> {
        let events = resources::find("", "v1", "events").unwrap();
        self.objects
            .list(events, "default", None)
            .await
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

#[test]
fn job_names_use_unix_minutes() {
    let t: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
    assert_eq!(
        job_name("hello", t),
        format!("hello-{}", t.as_second() / 60)
    );
    let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
    assert_eq!(rfc3339_in(t, &tokyo), "2024-01-01T09:01:00+09:00");
    assert_eq!(rfc3339_in(t, &TimeZone::UTC), "2024-01-01T00:01:00Z");
}

#[test]
fn most_recent_counts_missed_runs() {
    let s = schedule::parse("*/5 * * * *").unwrap().schedule;
    let t = |x: &str| x.parse::<Timestamp>().unwrap();
    let utc = TimeZone::UTC;
    assert_eq!(
        most_recent(
            &s,
            &utc,
            t("2024-01-01T00:00:00Z"),
            None,
            t("2024-01-01T00:04:59Z")
        )
        .unwrap(),
        (None, 0)
    );
    assert_eq!(
        most_recent(
            &s,
            &utc,
            t("2024-01-01T00:00:00Z"),
            None,
            t("2024-01-01T00:07:00Z")
        )
        .unwrap(),
        (Some(t("2024-01-01T00:05:00Z")), 1)
    );
    assert_eq!(
        most_recent(
            &s,
            &utc,
            t("2024-01-01T00:00:00Z"),
            None,
            t("2024-01-01T01:00:00Z")
        )
        .unwrap(),
        (Some(t("2024-01-01T01:00:00Z")), 12)
    );
    // A starting deadline moves the earliest time up: older runs are not counted.
    assert_eq!(
        most_recent(
            &s,
            &utc,
            t("2024-01-01T00:00:00Z"),
            Some(60),
            t("2024-01-01T01:00:30Z")
        )
        .unwrap(),
        (Some(t("2024-01-01T01:00:00Z")), 1)
    );
    let (_, missed) = most_recent(
        &s,
        &utc,
        t("2023-01-01T00:00:00Z"),
        None,
        t("2024-01-01T00:00:00Z"),
    )
    .unwrap();
    assert!(missed > DEFAULT_MANY_MISSED);
}

#[tokio::test]
async fn creates_a_job_each_minute_and_prunes_history() {
    let f = fixture().await;
    let cj = f.create(cronjob("tick", "*/1 * * * *", json!({}))).await;
    let Action::RequeueAfter(d) = f.reconcile("tick").await else {
        panic!("no requeue")
    };
    assert!(d <= Duration::from_secs(61), "{d:?}");
    assert!(f.jobs().await.is_empty());

    let mut created = Vec::new();
    for i in 0..5 {
        f.to_next_minute(1);
        let action = f.reconcile("tick").await;
        assert_eq!(
            action,
            Action::RequeueAfter(Duration::from_secs(59) + DEFAULT_NEXT_SCHEDULE_DELTA)
        );
        let scheduled = Timestamp::from_second(f.clock.now().as_second() - 1).unwrap();
        let name = job_name("tick", scheduled);
        let job = f
            .objects
            .get(job_def(), "default", &name)
            .await
            .unwrap()
            .expect("job created");
        assert_eq!(
            job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION],
            rfc3339(scheduled)
        );
        assert_eq!(job["metadata"]["labels"]["app"], "tick");
        assert_eq!(
            job["metadata"]["ownerReferences"][0]["uid"],
            cj["metadata"]["uid"]
        );
        let st = f.cj("tick").await["status"].clone();
        assert_eq!(st["lastScheduleTime"], rfc3339(scheduled));
        assert_eq!(st["active"][0]["name"], name.as_str());
        // Nothing more within the same minute, and no rewrite of the status.
        let rv = f.cj("tick").await["metadata"]["resourceVersion"].clone();
        f.reconcile("tick").await;
        assert_eq!(f.cj("tick").await["metadata"]["resourceVersion"], rv);
        assert_eq!(f.jobs().await.len(), created.len() + 1 - pruned(i));
        f.finish(
            &name,
            if i == 1 || i == 3 {
                "Failed"
            } else {
                "Complete"
            },
        )
        .await;
        created.push(name);
        f.reconcile("tick").await;
        let st = f.cj("tick").await["status"].clone();
        assert!(st.get("active").is_none(), "{st}");
    }
    // 3 successful (0, 2, 4) kept; of the failed (1, 3) only the newest.
    let names: Vec<String> = f
        .jobs()
        .await
        .iter()
        .map(|j| object::name(j).to_string())
        .collect();
    let mut want = vec![
        created[0].clone(),
        created[2].clone(),
        created[3].clone(),
        created[4].clone(),
    ];
    want.sort();
    assert_eq!(names, want);
    assert!(f.cj("tick").await["status"]["lastSuccessfulTime"].is_string());
    let reasons = f.event_reasons().await;
    for r in ["SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }

    fn pruned(i: usize) -> usize {
        // Failed jobs beyond 1 are pruned once the second failure (i = 3) is seen.
        usize::from(i >= 4)
    }
}

#[tokio::test]
async fn forbid_skips_and_replace_replaces() {
    let f = fixture().await;
    f.create(cronjob(
        "solo",
        "* * * * *",
        json!({"concurrencyPolicy": "Forbid"}),
    ))
    .await;
    f.to_next_minute(0);
    f.reconcile("solo").await;
    assert_eq!(f.jobs().await.len(), 1);
    f.to_next_minute(0);
    f.reconcile("solo").await;
    assert_eq!(f.jobs().await.len(), 1, "the first is still running");
    assert!(f
        .event_reasons()
        .await
        .iter()
        .any(|r| r == "JobAlreadyActive"));

    f.create(cronjob(
        "swap",
        "* * * * *",
        json!({"concurrencyPolicy": "Replace"}),
    ))
    .await;
    f.to_next_minute(0);
    f.reconcile("swap").await;
    let first = f.cj("swap").await["status"]["active"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    f.to_next_minute(0);
    f.reconcile("swap").await;
    let st = f.cj("swap").await["status"].clone();
    assert_eq!(st["active"].as_array().unwrap().len(), 1);
    assert_ne!(st["active"][0]["name"], first.as_str());
    assert!(f
        .objects
        .get(job_def(), "default", &first)
        .await
        .unwrap()
        .is_none_or(|j| object::is_terminating(&j)));
}

#[tokio::test]
async fn starting_deadline_suspend_and_missed_runs() {
    let f = fixture().await;
    f.create(cronjob(
        "late",
        "*/10 * * * *",
        json!({"startingDeadlineSeconds": 30}),
    ))
    .await;
    // Ten minutes later, 45 s after the activation: too late, skipped.
    let now = f.clock.now().as_second();
    f.clock
        .set(Timestamp::from_second(now - now.rem_euclid(600) + 600 + 45).unwrap());
    f.reconcile("late").await;
    assert!(f.jobs().await.is_empty());
    // The next activation, on time.
    f.clock.advance(Duration::from_secs(600 - 45 + 5));
    f.reconcile("late").await;
    assert_eq!(f.jobs().await.len(), 1);

    f.create(cronjob("off", "* * * * *", json!({"suspend": true})))
        .await;
    f.to_next_minute(0);
    assert_eq!(f.reconcile("off").await, Action::Done);
    assert!(f
        .jobs()
        .await
        .iter()
        .all(|j| !object::name(j).starts_with("off-")));

    // Hours of missed minutes: one Job for the latest, and a warning.
    f.create(cronjob("behind", "* * * * *", json!({}))).await;
    f.clock.advance(Duration::from_secs(3 * 3600));
    f.reconcile("behind").await;
    let behind: Vec<Value> = f
        .jobs()
        .await
        .into_iter()
        .filter(|j| object::name(j).starts_with("behind-"))
        .collect();
    assert_eq!(behind.len(), 1);
    let now = f.clock.now().as_second();
    assert_eq!(object::name(&behind[0]), format!("behind-{}", now / 60));
    assert!(f
        .event_reasons()
        .await
        .iter()
        .any(|r| r == "TooManyMissedTimes"));
}

#[tokio::test]
async fn time_zone_sets_the_hour_and_the_annotation() {
    let f = fixture().await;
    f.create(cronjob(
        "tokyo",
        "0 9 * * *",
        json!({"timeZone": "Asia/Tokyo"}),
    ))
    .await;
    // 00:00 UTC is 09:00 in Tokyo.
    let now = f.clock.now().as_second();
    f.clock
        .set(Timestamp::from_second(now - now.rem_euclid(86400) + 86400 + 10).unwrap());
    f.reconcile("tokyo").await;
    let jobs = f.jobs().await;
    assert_eq!(jobs.len(), 1);
    let ann = jobs[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(ann.ends_with("T09:00:00+09:00"), "{ann}");

    f.create(cronjob(
        "nowhere",
        "* * * * *",
        json!({"timeZone": "Mars/Olympus"}),
    ))
    .await;
    f.to_next_minute(0);
    assert_eq!(f.reconcile("nowhere").await, Action::Done);
    assert!(f
        .event_reasons()
        .await
        .iter()
        .any(|r| r == "UnknownTimeZone"));
}
