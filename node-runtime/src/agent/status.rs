//! A pod's status as the agent reports it: phase, conditions, containerStatuses.

use serde_json::{json, Value};

use super::node::now;

/// The state of one container, as `containerStatuses[].state` shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum CState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl CState {
    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        CState::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            CState::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            CState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            CState::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at});
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// What status needs to know about a container.
pub struct ContainerView<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub image_id: &'a str,
    pub container_id: String,
    pub state: &'a CState,
    pub last: Option<&'a CState>,
    pub restarts: i32,
    pub ready: bool,
    pub started: bool,
    /// Whether a terminated container will not be started again.
    pub done: bool,
}

fn container_status(c: &ContainerView) -> Value {
    let mut s = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": c.ready,
        "restartCount": c.restarts,
        "started": c.started,
        "state": c.state.to_json(),
        "lastState": c.last.map(CState::to_json).unwrap_or(json!({})),
    });
    if !c.container_id.is_empty() {
        s["containerID"] = json!(c.container_id);
    }
    s
}

/// Kubernetes' pod phase from its containers.
pub fn phase(init_done: bool, containers: &[ContainerView], failed_init: bool) -> &'static str {
    if failed_init {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    if containers.iter().all(|c| c.done) && !containers.is_empty() {
        let ok = containers
            .iter()
            .all(|c| matches!(c.state, CState::Terminated { exit_code: 0, .. }));
        return if ok { "Succeeded" } else { "Failed" };
    }
    let ever_ran = containers
        .iter()
        .any(|c| !matches!(c.state, CState::Waiting { .. }) || c.restarts > 0 || c.last.is_some());
    if ever_ran {
        "Running"
    } else {
        "Pending"
    }
}

fn condition(previous: &Value, kind: &str, ok: bool, reason: Option<&str>) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now()));
    let mut c =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

pub struct PodView<'a> {
    pub previous: &'a Value,
    pub phase: &'static str,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub init_done: bool,
    pub init: Vec<ContainerView<'a>>,
    pub containers: Vec<ContainerView<'a>>,
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
    pub start_time: &'a str,
}

/// The full `status` object.
pub fn pod_status(v: &PodView) -> Value {
    let all_ready = !v.containers.is_empty() && v.containers.iter().all(|c| c.ready);
    let terminal = v.phase == "Succeeded" || v.phase == "Failed";
    let not_ready_reason = if terminal {
        Some("PodCompleted")
    } else {
        Some("ContainersNotReady")
    };
    let scheduled = v
        .previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
                .cloned()
        })
        .unwrap_or_else(|| condition(v.previous, "PodScheduled", true, None));
    let conditions = vec![
        condition(v.previous, "PodReadyToStartContainers", true, None),
        condition(
            v.previous,
            "Initialized",
            v.init_done,
            (!v.init_done).then_some("ContainersNotInitialized"),
        ),
        condition(
            v.previous,
            "Ready",
            all_ready,
            (!all_ready).then_some(not_ready_reason).flatten(),
        ),
        condition(
            v.previous,
            "ContainersReady",
            all_ready,
            (!all_ready).then_some(not_ready_reason).flatten(),
        ),
        scheduled,
    ];
    let mut s = json!({
        "phase": v.phase,
        "conditions": conditions,
        "hostIP": v.host_ip,
        "hostIPs": [{"ip": v.host_ip}],
        "podIP": v.pod_ip,
        "podIPs": [{"ip": v.pod_ip}],
        "startTime": v.start_time,
        "containerStatuses": v.containers.iter().map(container_status).collect::<Vec<_>>(),
        "qosClass": v.previous.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
    });
    if !v.init.is_empty() {
        s["initContainerStatuses"] = json!(v.init.iter().map(container_status).collect::<Vec<_>>());
    }
    if let Some(r) = v.reason {
        s["reason"] = json!(r);
    }
    if let Some(m) = v.message {
        s["message"] = json!(m);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(state: &'a CState, done: bool) -> ContainerView<'a> {
        ContainerView {
            name: "c",
            image: "i",
            image_id: "",
            container_id: String::new(),
            state,
            last: None,
            restarts: 0,
            ready: false,
            started: false,
            done,
        }
    }

    #[test]
    fn phases() {
        let waiting = CState::waiting("ContainerCreating", "");
        let running = CState::Running { started_at: now() };
        let ok = CState::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            message: String::new(),
            started_at: now(),
            finished_at: now(),
        };
        let bad = CState::Terminated {
            exit_code: 3,
            reason: "Error".into(),
            message: String::new(),
            started_at: now(),
            finished_at: now(),
        };
        assert_eq!(phase(true, &[view(&waiting, false)], false), "Pending");
        assert_eq!(phase(true, &[view(&running, false)], false), "Running");
        assert_eq!(phase(true, &[view(&ok, true)], false), "Succeeded");
        assert_eq!(
            phase(true, &[view(&ok, true), view(&bad, true)], false),
            "Failed"
        );
        assert_eq!(phase(true, &[view(&bad, false)], false), "Running");
        assert_eq!(phase(false, &[view(&waiting, false)], false), "Pending");
    }
}
