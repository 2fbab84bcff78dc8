//! `printPod`: the Ready/Status/Restarts logic of `kubectl get pods`.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::access::{arr_at, at, bool_at, deleting, has, int_at, name, str_at, time_at};
use super::duration::since;
use super::{col, wide, Col, Printer, Row, AGE, NAME};

pub(crate) static POD: Printer = Printer {
    kinds: &["Pod"],
    columns: &COLUMNS,
    row: pod_row,
};

const COLUMNS: [Col; 9] = [
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", "IP address allocated to the pod."),
    wide("Node", "string", "Name of the node the pod is bound to."),
    wide(
        "Nominated Node",
        "string",
        "Name of the node the scheduler nominated for this pod after preemption.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "Readiness gates met, of those the pod declares.",
    ),
];

/// Go's `podutil.IsRestartableInitContainer` (a sidecar).
fn is_restartable(init_specs: &[Value], container_name: &str) -> bool {
    // Go indexes init containers in a map, so the last of a name wins.
    init_specs
        .iter()
        .rev()
        .find(|c| str_at(c, &["name"]) == container_name)
        .is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

/// Keeps the later of `current` and a container's last termination time.
fn note_termination(current: &mut Option<Timestamp>, status: &Value) {
    if let Some(t) = time_at(status, &["lastState", "terminated", "finishedAt"]) {
        if current.is_none_or(|c| c < t) {
            *current = Some(t);
        }
    }
}

/// `Signal:N` / `ExitCode:N` for a terminated state without a reason.
fn exit_text(terminated: &Value) -> String {
    let signal = int_at(terminated, &["signal"]);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int_at(terminated, &["exitCode"]))
    }
}

fn condition_true(conditions: &[Value], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

/// `isPodInitializedConditionTrue`: the first `Initialized` condition decides.
fn initialized(conditions: &[Value]) -> bool {
    conditions
        .iter()
        .find(|c| str_at(c, &["type"]) == "Initialized")
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn pod_row(pod: &Value, now: Timestamp) -> Row {
    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let conditions = arr_at(pod, &["status", "conditions"]);
    let phase = str_at(pod, &["status", "phase"]);
    let status_reason = str_at(pod, &["status", "reason"]);

    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut total = arr_at(pod, &["spec", "containers"]).len();
    let mut ready: usize = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_restart: Option<Timestamp> = None;

    let mut reason = if status_reason.is_empty() {
        phase.to_string()
    } else {
        status_reason.to_string()
    };
    if conditions.iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = "SchedulingGated".to_string();
    }

    let row_conditions = match phase {
        "Succeeded" => Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }])),
        "Failed" => Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": "Failed",
            "message": "The pod failed.",
        }])),
        _ => None,
    };

    total += init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();

    let mut initializing = false;
    for (i, cs) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts = restarts.saturating_add(int_at(cs, &["restartCount"]));
        note_termination(&mut last_restart, cs);
        let restartable = is_restartable(init_specs, str_at(cs, &["name"]));
        if restartable {
            restartable_restarts =
                restartable_restarts.saturating_add(int_at(cs, &["restartCount"]));
            note_termination(&mut last_restartable_restart, cs);
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if restartable && bool_at(cs, &["started"]) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            // Initialization failed.
            let t_reason = str_at(t, &["reason"]);
            reason = if t_reason.is_empty() {
                format!("Init:{}", exit_text(t))
            } else {
                format!("Init:{t_reason}")
            };
        } else if has(cs, &["state", "waiting"])
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || initialized(conditions) {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for cs in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(int_at(cs, &["restartCount"]));
            note_termination(&mut last_restart, cs);
            let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
            let terminated = at(cs, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let t_reason = str_at(t, &["reason"]);
                reason = if t_reason.is_empty() {
                    exit_text(t)
                } else {
                    t_reason.to_string()
                };
            } else if bool_at(cs, &["ready"]) && has(cs, &["state", "running"]) {
                has_running = true;
                ready += 1;
            }
        }
        // Back to "Running" if a container still reports running.
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if deleting(pod) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let mut ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map_or("", |p| str_at(p, &["ip"]));
    if ip.is_empty() && arr_at(pod, &["status", "podIPs"]).is_empty() {
        // A v1 object may carry only the legacy `podIP`.
        ip = str_at(pod, &["status", "podIP"]);
    }
    let none_if_empty = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };

    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| {
                let kind = str_at(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == kind)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };

    Row {
        cells: vec![
            json!(name(pod)),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_text),
            json!(since(super::access::created(pod), now)),
            json!(none_if_empty(ip)),
            json!(none_if_empty(str_at(pod, &["spec", "nodeName"]))),
            json!(none_if_empty(str_at(pod, &["status", "nominatedNodeName"]))),
            json!(readiness_gates),
        ],
        conditions: row_conditions,
    }
}
