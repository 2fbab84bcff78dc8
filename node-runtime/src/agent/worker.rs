//! One task per pod on this node: pulls images, prepares env and volumes, starts containers
//! through the runtime, restarts them per `restartPolicy` with CrashLoopBackOff, runs probes,
//! reports status, and on deletion stops gracefully and removes the pod. Level-triggered on
//! the latest Pod object it is sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::containers::{Msg, Slot};
use super::node::now;
use super::status::{self, PodView};
use super::AgentCtx;

/// Extra time past the grace period to wait for containers to report they stopped.
const STOP_SLACK: Duration = Duration::from_secs(2);

pub struct WorkerHandle {
    pub updates: watch::Sender<Pod>,
    pub task: JoinHandle<()>,
}

pub fn spawn(ctx: Arc<AgentCtx>, pod: Pod, shutdown: watch::Receiver<bool>) -> WorkerHandle {
    let (tx, rx) = watch::channel(pod.clone());
    let task = tokio::spawn(async move {
        let name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        let span = tracing::info_span!("pod", pod = %name);
        let worker = Worker::new(ctx, pod);
        tracing::Instrument::instrument(worker.run(rx, shutdown), span).await;
    });
    WorkerHandle { updates: tx, task }
}

pub(super) struct Worker {
    pub ctx: Arc<AgentCtx>,
    pub pod: Pod,
    pub slots: Vec<Slot>,
    pub tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub pod_dir: std::path::PathBuf,
    start_time: String,
    pub failed_init: bool,
    pub pod_reason: Option<(String, String)>,
    last_status: Value,
    deadline: Option<Instant>,
    /// Events held until the status they describe is written, so they don't compete with it
    /// for the store's next commit (create → Ready latency).
    deferred_events: Vec<(bool, &'static str, String)>,
    /// The pod's CRI sandbox, once a Linux container needed one.
    pub sandbox: Option<crate::oci::Sandbox>,
    /// A pure-Wasm pod's address on the node bridge, once its first container started.
    pub wasm_ip: Option<std::net::Ipv4Addr>,
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

impl Worker {
    fn new(ctx: Arc<AgentCtx>, pod: Pod) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = ctx.cfg.data_dir.join("pods").join(&uid);
        let slots = Slot::for_pod(&pod, &ctx.cfg);
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(now);
        let deadline = pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s as u64));
        Worker {
            ctx,
            pod,
            slots,
            tx,
            rx,
            pod_dir,
            start_time,
            failed_init: false,
            pod_reason: None,
            last_status: Value::Null,
            deadline,
            deferred_events: Vec::new(),
            sandbox: None,
            wasm_ip: None,
        }
    }

    /// What is left of the pod's `activeDeadlineSeconds`.
    pub fn run_deadline(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub fn pod_name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    pub(super) fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    async fn run(mut self, mut updates: watch::Receiver<Pod>, mut shutdown: watch::Receiver<bool>) {
        if terminal(&self.pod) {
            // A finished pod is never run again; only its deletion is left to do.
            loop {
                if self.terminating() {
                    self.finish_deletion().await;
                    return;
                }
                tokio::select! {
                    r = updates.changed() => if r.is_err() {
                        self.cleanup();
                        return;
                    },
                    _ = shutdown.changed() => return,
                }
                self.pod = updates.borrow_and_update().clone();
            }
        }
        if let Err(e) = self.write_pod_record() {
            tracing::warn!(error = %e, "cannot write the pod's directory");
        }
        if self.adopt_existing().await {
            tracing::info!("adopted the pod's running containers");
        }
        self.advance();
        if !self.terminating() {
            // Start what can start before the first status write: a pod whose images are on
            // the node goes straight to Running in one status update.
            self.on_timer().await;
        }
        loop {
            if self.terminating() {
                self.stop_all(self.grace()).await;
                self.release_pod_network().await;
                self.finish_deletion().await;
                return;
            }
            self.push_status().await;
            self.flush_events().await;
            if (self.sandbox.is_some() || self.wasm_ip.is_some()) && self.finished() {
                // Nothing will run in it again: release the pod's IP (and pause process).
                self.release_pod_network().await;
            }
            let wake = self.next_wake();
            tokio::select! {
                r = updates.changed() => {
                    if r.is_err() {
                        // The pod is gone from the API (force-deleted): stop at once.
                        self.stop_all(Duration::ZERO).await;
                        self.release_pod_network().await;
                        self.cleanup();
                        return;
                    }
                    self.pod = updates.borrow_and_update().clone();
                }
                Some(msg) = self.rx.recv() => self.on_msg(msg).await,
                _ = tokio::time::sleep_until(wake.into()) => self.on_timer().await,
                _ = shutdown.changed() => {
                    // The agent is stopping: its containers stop with it; the pod stays
                    // bound, and the next agent start runs it again.
                    self.stop_all(Duration::ZERO).await;
                    self.teardown_sandbox().await;
                    return;
                }
            }
        }
    }

    /// Records an event after the next status write (see `deferred_events`).
    pub(super) fn defer_event(&mut self, warning: bool, reason: &'static str, message: String) {
        self.deferred_events.push((warning, reason, message));
    }

    async fn flush_events(&mut self) {
        for (warning, reason, message) in std::mem::take(&mut self.deferred_events) {
            self.ctx
                .recorder
                .record(&self.pod, warning, reason, &message)
                .await;
        }
    }

    fn write_pod_record(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.pod_dir.join("logs"))?;
        let record = json!({"namespace": self.namespace(), "name": self.pod_name(), "uid": self.pod.metadata.uid});
        std::fs::write(self.pod_dir.join("pod.json"), record.to_string())
    }

    /// True when no container of the pod will run again (sidecars stopped too).
    fn finished(&self) -> bool {
        self.failed_init
            || self.pod_reason.is_some()
            || (self.mains_finished() && self.slots.iter().all(|s| s.stop.is_none()))
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut wake = far;
        for s in &self.slots {
            for t in [s.start_at, s.next_probe].into_iter().flatten() {
                wake = wake.min(t);
            }
        }
        if let Some(d) = self.deadline {
            if self.pod_reason.is_none() {
                wake = wake.min(d);
            }
        }
        wake
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| d <= now) && self.pod_reason.is_none() {
            self.pod_reason = Some((
                "DeadlineExceeded".into(),
                "Pod was active on the node longer than the specified deadline".into(),
            ));
            let pod = self.pod.clone();
            self.ctx
                .recorder
                .record(
                    &pod,
                    true,
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline",
                )
                .await;
            for s in &mut self.slots {
                s.start_at = None;
            }
            self.stop_all(Duration::ZERO).await;
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].start_at.is_some_and(|t| t <= now) {
                self.start(i).await;
            }
            if self.slots[i].next_probe.is_some_and(|t| t <= now) {
                self.probe(i).await;
            }
        }
    }

    /// Sends every running container its stop with `grace`, and waits (bounded) for them.
    async fn stop_all(&mut self, grace: Duration) {
        let mut waiting = 0;
        for s in &mut self.slots {
            s.start_at = None;
            s.next_probe = None;
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(grace);
                waiting += 1;
            }
        }
        let deadline = tokio::time::Instant::now() + grace + STOP_SLACK;
        while waiting > 0 {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => {
                    if matches!(msg, Msg::Exit { .. }) {
                        waiting -= 1;
                    }
                    self.on_exit_final(msg);
                }
                _ => break,
            }
        }
        self.push_status().await;
    }

    pub(super) fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(secs as u64)
    }

    /// Deletes the pod object for good (grace 0, same uid) and the pod's files.
    async fn finish_deletion(&mut self) {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: self.pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&self.pod_name(), &dp).await {
            Ok(_) => tracing::info!("pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(error = %e, "final pod delete failed; the watch will retry"),
        }
        self.cleanup();
    }

    fn cleanup(&self) {
        super::volume_sources::unmount_volumes(&self.pod_dir);
        if let Err(e) = std::fs::remove_dir_all(&self.pod_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, dir = %self.pod_dir.display(), "cannot remove pod directory");
            }
        }
        if let Some(uid) = &self.pod.metadata.uid {
            self.ctx.recorder.forget(uid);
        }
    }

    pub async fn push_status(&mut self) {
        if self.terminating()
            && self.slots.iter().all(|s| s.stop.is_none())
            && !self.last_status.is_null()
        {
            return;
        }
        let previous = serde_json::to_value(&self.pod).unwrap_or(Value::Null);
        let init_done = self.init_done();
        let views = |init: bool| {
            self.slots
                .iter()
                .filter(|s| s.init == init)
                .map(|s| s.view(&self.pod))
                .collect::<Vec<_>>()
        };
        let containers = views(false);
        let init = views(true);
        let mut phase = status::phase(init_done, &containers, self.failed_init);
        if self.pod_reason.is_some() {
            phase = "Failed";
        }
        let ip = self.ctx.cfg.node_ip.to_string();
        let pod_ip = self
            .pod_ip_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| ip.clone());
        let s = status::pod_status(&PodView {
            previous: &previous,
            phase,
            reason: self.pod_reason.as_ref().map(|(r, _)| r.as_str()),
            message: self.pod_reason.as_ref().map(|(_, m)| m.as_str()),
            init_done,
            init,
            containers,
            host_ip: &ip,
            pod_ip: &pod_ip,
            start_time: &self.start_time,
        });
        if s == self.last_status {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        let patch = Patch::Merge(json!({"status": s}));
        match tokio::time::timeout(
            Duration::from_secs(10),
            api.patch_status(&self.pod_name(), &PatchParams::default(), &patch),
        )
        .await
        {
            Ok(Ok(p)) => {
                self.last_status = s;
                self.pod.metadata.resource_version = p.metadata.resource_version;
            }
            // The pod was deleted meanwhile (e.g. with a zero grace period): nothing to report.
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
                tracing::debug!("pod gone before its status update")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "status update failed"),
            Err(_) => tracing::warn!("status update timed out"),
        }
    }
}
