//! Workload printers: Deployment, ReplicaSet, DaemonSet, ControllerRevision, StatefulSet,
//! ReplicationController (apps/core) and Job, CronJob (batch).

use jiff::Timestamp;
use serde_json::{json, Value};

use super::access::{
    arr_at, at, condition_status, created, deleting, format_label_selector, format_labels, int_at,
    layout_containers, name, opt_int, selector_string, str_at, time_at,
};
use super::duration::{human_duration_nanos, since, sub_nanos};
use super::{col, Col, Printer, Row, AGE, CONTAINERS, IMAGES, NAME, SELECTOR};

fn age(v: &Value, now: Timestamp) -> Value {
    json!(since(created(v), now))
}

/// `spec.replicas`, which the API server defaults to 1.
fn desired_replicas(v: &Value) -> i64 {
    opt_int(v, &["spec", "replicas"]).unwrap_or(1)
}

/// Names and images of `spec.template.spec.containers`.
fn template_containers(v: &Value) -> (Value, Value) {
    let (names, images) = layout_containers(at(v, &["spec", "template", "spec"]));
    (json!(names), json!(images))
}

fn selector(v: &Value) -> Value {
    json!(format_label_selector(at(v, &["spec", "selector"])))
}

// ---------------------------------------------------------------- Deployment

pub(crate) static DEPLOYMENT: Printer = Printer {
    kinds: &["Deployment"],
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col(
            "Up-to-date",
            "string",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        col(
            "Available",
            "string",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |d, now| {
        let ready = int_at(d, &["status", "readyReplicas"]);
        // Deployments print `LabelSelectorAsSelector(...).String()` as is.
        let sel = selector_string(at(d, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".to_string());
        let (names, images) = template_containers(d);
        vec![
            json!(name(d)),
            json!(format!("{ready}/{}", desired_replicas(d))),
            json!(int_at(d, &["status", "updatedReplicas"])),
            json!(int_at(d, &["status", "availableReplicas"])),
            age(d, now),
            names,
            images,
            json!(sel),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- ReplicaSet, ReplicationController

const REPLICA_COLUMNS: [Col; 8] = [
    NAME,
    col("Desired", "integer", "Number of desired pods."),
    col(
        "Current",
        "integer",
        "The most recently observed number of replicas.",
    ),
    col("Ready", "integer", "The number of ready replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) static REPLICA_SET: Printer = Printer {
    kinds: &["ReplicaSet"],
    columns: &REPLICA_COLUMNS,
    row: |rs, now| {
        let (names, images) = template_containers(rs);
        vec![
            json!(name(rs)),
            json!(desired_replicas(rs)),
            json!(int_at(rs, &["status", "replicas"])),
            json!(int_at(rs, &["status", "readyReplicas"])),
            age(rs, now),
            names,
            images,
            selector(rs),
        ]
        .into()
    },
};

pub(crate) static REPLICATION_CONTROLLER: Printer = Printer {
    kinds: &["ReplicationController"],
    columns: &REPLICA_COLUMNS,
    row: |rc, now| {
        let (names, images) = template_containers(rc);
        vec![
            json!(name(rc)),
            json!(desired_replicas(rc)),
            json!(int_at(rc, &["status", "replicas"])),
            json!(int_at(rc, &["status", "readyReplicas"])),
            age(rc, now),
            names,
            images,
            // A ReplicationController's selector is a plain label map.
            json!(format_labels(rc, &["spec", "selector"])),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- DaemonSet

pub(crate) static DAEMON_SET: Printer = Printer {
    kinds: &["DaemonSet"],
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            "The total number of nodes that should be running the daemon pod.",
        ),
        col(
            "Current",
            "integer",
            "The number of nodes running at least one daemon pod and supposed to.",
        ),
        col(
            "Ready",
            "integer",
            "The number of nodes running the daemon pod with a Ready condition.",
        ),
        col(
            "Up-to-date",
            "integer",
            "The total number of nodes running the updated daemon pod.",
        ),
        col(
            "Available",
            "integer",
            "The number of nodes running the daemon pod available for minReadySeconds.",
        ),
        col(
            "Node Selector",
            "string",
            "The node labels the pods must match to be scheduled.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |ds, now| {
        let (names, images) = template_containers(ds);
        let status = |field: &str| json!(int_at(ds, &["status", field]));
        vec![
            json!(name(ds)),
            status("desiredNumberScheduled"),
            status("currentNumberScheduled"),
            status("numberReady"),
            status("updatedNumberScheduled"),
            status("numberAvailable"),
            json!(format_labels(
                ds,
                &["spec", "template", "spec", "nodeSelector"]
            )),
            age(ds, now),
            names,
            images,
            selector(ds),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- ControllerRevision

/// `kubectl get controllerrevisions`: the controller as `kind.group/name` (Kubernetes'
/// `formatResourceName` with the kind) and the revision number.
pub(crate) static CONTROLLER_REVISION: Printer = Printer {
    kinds: &["ControllerRevision"],
    columns: &[
        NAME,
        col("Controller", "string", "Controller of the object"),
        col(
            "Revision",
            "integer",
            "Revision indicates the revision of the state represented by Data.",
        ),
        AGE,
    ],
    row: |cr, now| {
        let controller = arr_at(cr, &["metadata", "ownerReferences"])
            .iter()
            .find(|r| r["controller"] == true)
            .map(|r| {
                let kind = r["kind"].as_str().unwrap_or("").to_lowercase();
                let group = r["apiVersion"]
                    .as_str()
                    .and_then(|v| v.rsplit_once('/'))
                    .map(|(g, _)| g)
                    .unwrap_or("");
                let name = r["name"].as_str().unwrap_or("");
                match group {
                    "" => format!("{kind}/{name}"),
                    g => format!("{kind}.{g}/{name}"),
                }
            })
            .unwrap_or_else(|| "<none>".to_string());
        vec![
            json!(name(cr)),
            json!(controller),
            json!(int_at(cr, &["revision"])),
            age(cr, now),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- StatefulSet

pub(crate) static STATEFUL_SET: Printer = Printer {
    kinds: &["StatefulSet"],
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    row: |ss, now| {
        let (names, images) = template_containers(ss);
        let ready = int_at(ss, &["status", "readyReplicas"]);
        vec![
            json!(name(ss)),
            json!(format!("{ready}/{}", desired_replicas(ss))),
            age(ss, now),
            names,
            images,
        ]
        .into()
    },
};

// ---------------------------------------------------------------- Job

pub(crate) static JOB: Printer = Printer {
    kinds: &["Job"],
    columns: &[
        NAME,
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: job_row,
};

/// `hasJobCondition`: the first condition of the type decides.
fn job_condition(job: &Value, kind: &str) -> bool {
    condition_status(arr_at(job, &["status", "conditions"]), kind) == Some("True")
}

fn job_row(job: &Value, now: Timestamp) -> Row {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(job, &["spec", "parallelism"]).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = time_at(job, &["status", "startTime"]);
    let end = time_at(job, &["status", "completionTime"]);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration_nanos(sub_nanos(now, s)),
        (Some(s), Some(e)) => human_duration_nanos(sub_nanos(e, s)),
    };
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = template_containers(job);
    vec![
        json!(name(job)),
        json!(status),
        json!(completions),
        json!(duration),
        age(job, now),
        names,
        images,
        selector(job),
    ]
    .into()
}

// ---------------------------------------------------------------- CronJob

pub(crate) static CRON_JOB: Printer = Printer {
    kinds: &["CronJob"],
    columns: &[
        NAME,
        col("Schedule", "string", "The schedule in Cron format."),
        col(
            "Timezone",
            "string",
            "The time zone name for the given schedule.",
        ),
        col(
            "Suspend",
            "boolean",
            "Whether subsequent executions are suspended.",
        ),
        col(
            "Active",
            "integer",
            "A list of pointers to currently running jobs.",
        ),
        col(
            "Last Schedule",
            "string",
            "Information when was the last time the job was successfully scheduled.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |cj, now| {
        let last_schedule = match time_at(cj, &["status", "lastScheduleTime"]) {
            Some(t) => since(Some(t), now),
            None => "<none>".to_string(),
        };
        let time_zone = at(cj, &["spec", "timeZone"])
            .and_then(Value::as_str)
            .unwrap_or("<none>");
        // `printBoolPtr`; the API server defaults `suspend` to false.
        let suspend = match at(cj, &["spec", "suspend"]).and_then(Value::as_bool) {
            Some(true) => "True",
            _ => "False",
        };
        let job_spec = at(cj, &["spec", "jobTemplate", "spec"]);
        let (names, images) =
            layout_containers(job_spec.and_then(|s| at(s, &["template", "spec"])));
        vec![
            json!(name(cj)),
            json!(str_at(cj, &["spec", "schedule"])),
            json!(time_zone),
            json!(suspend),
            json!(arr_at(cj, &["status", "active"]).len()),
            json!(last_schedule),
            age(cj, now),
            json!(names),
            json!(images),
            json!(format_label_selector(
                job_spec.and_then(|s| at(s, &["selector"]))
            )),
        ]
        .into()
    },
};
