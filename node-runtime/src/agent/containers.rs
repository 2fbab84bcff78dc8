//! The containers of a pod worker: starting one (pull, configure, bind ports, run), handling
//! its exit (restartPolicy and CrashLoopBackOff), and probing it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::oneshot;

use super::backoff::Backoff;
use super::config::{AgentConfig, DEFAULT_BACKOFF_RESET, DEFAULT_REQUEST_TIMEOUT};
use super::node::now;
use super::status::{CState, ContainerView};
use super::worker::Worker;
use super::{probes, pullsecrets, volumes, workdir};
use crate::images::{PullPolicy, PulledImage};
use crate::logs::{ContainerLog, DEFAULT_MAX_LOG_BYTES};
use crate::runtime::{termination, Running, StartSpec};
use crate::wasm::{ExitReason, RequestFailure};

/// Pod annotation overriding the per-request deadline of HTTP components (seconds).
pub const REQUEST_TIMEOUT_ANNOTATION: &str = "skiff.dev/request-timeout";

pub enum Msg {
    Exit {
        idx: usize,
        generation: u64,
        reason: ExitReason,
    },
    RequestFailed {
        idx: usize,
        failure: RequestFailure,
    },
    /// Something a container's watcher reports as an Event on the pod (a failed hook).
    Event {
        warning: bool,
        reason: &'static str,
        message: String,
    },
}

pub struct Slot {
    pub c: Container,
    pub init: bool,
    pub state: CState,
    pub last: Option<CState>,
    pub restarts: i32,
    pub ready: bool,
    pub started: bool,
    pub done: bool,
    pub image: Option<PulledImage>,
    pub generation: u64,
    pub stop: Option<oneshot::Sender<Duration>>,
    pub addrs: Vec<(u16, SocketAddr)>,
    pub backoff: Backoff,
    pub start_at: Option<Instant>,
    pub started_instant: Option<Instant>,
    pub next_probe: Option<Instant>,
    probe_ok_streak: i32,
    probe_fail_streak: i32,
    startup_passed: bool,
    /// Whether the container runs through containerd (decided at its first start).
    pub oci: Option<bool>,
    /// The running Linux container, for exec probes and its id.
    pub container: Option<crate::oci::ContainerHandle>,
    pub oci_image: Option<crate::oci::OciImage>,
}

/// Bytes of a Kubernetes memory quantity (`64Mi`, `1G`, `1048576`).
pub fn memory_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// A Kubernetes CPU quantity (`500m`, `1`, `1.5`) in millicores.
pub fn cpu_millis(q: &str) -> Option<u64> {
    let q = q.trim();
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => q
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 0.0)
            .map(|v| (v * 1000.0).round() as u64),
    }
}

impl Slot {
    pub fn for_pod(pod: &Pod, cfg: &AgentConfig) -> Vec<Slot> {
        let spec = pod.spec.clone().unwrap_or_default();
        let previous = pod.status.clone().unwrap_or_default();
        let make = |c: Container, init: bool| {
            let restarts = previous
                .container_statuses
                .iter()
                .chain(previous.init_container_statuses.iter())
                .flatten()
                .find(|s| s.name == c.name)
                .map(|s| s.restart_count)
                .unwrap_or(0);
            Slot {
                c,
                init,
                state: CState::waiting("ContainerCreating", ""),
                last: None,
                restarts,
                ready: false,
                started: false,
                done: false,
                image: None,
                generation: 0,
                stop: None,
                addrs: Vec::new(),
                backoff: Backoff::new(cfg.backoff_initial, cfg.backoff_max, DEFAULT_BACKOFF_RESET),
                start_at: None,
                started_instant: None,
                next_probe: None,
                probe_ok_streak: 0,
                probe_fail_streak: 0,
                startup_passed: false,
                oci: None,
                container: None,
                oci_image: None,
            }
        };
        let mut slots: Vec<Slot> = spec
            .init_containers
            .unwrap_or_default()
            .into_iter()
            .map(|c| make(c, true))
            .collect();
        slots.extend(spec.containers.into_iter().map(|c| make(c, false)));
        slots
    }

    pub fn view<'a>(&'a self, pod: &Pod) -> ContainerView<'a> {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        ContainerView {
            name: &self.c.name,
            image: self.c.image.as_deref().unwrap_or(""),
            image_id: match (&self.oci_image, &self.image) {
                (Some(o), _) => o.id.as_str(),
                (None, Some(i)) => i.digest.as_str(),
                (None, None) => "",
            },
            container_id: if let Some(c) = &self.container {
                format!("containerd://{}", c.id)
            } else if self.generation > 0 {
                format!("wasm://{uid}/{}/{}", self.c.name, self.generation)
            } else {
                String::new()
            },
            state: &self.state,
            last: self.last.as_ref(),
            restarts: self.restarts,
            ready: self.ready,
            started: self.started,
            done: self.done,
        }
    }
}

pub(super) fn pull_policy(c: &Container) -> PullPolicy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        _ => PullPolicy::IfNotPresent,
    }
}

impl Worker {
    /// Schedules a retry of a failed start, showing `reason` meanwhile.
    pub(super) fn retry_later(&mut self, i: usize, reason: &str, message: String) {
        let delay = self.slots[i].backoff.delay_after_run(None);
        self.slots[i].state = CState::waiting(reason, message);
        self.slots[i].start_at = Some(Instant::now() + delay);
    }

    /// Records a failed pull: `ErrImagePull` first, `ImagePullBackOff` on repeats.
    pub(super) async fn pull_failed(&mut self, i: usize, image_ref: &str, msg: String) {
        let pod = self.pod.clone();
        let again = matches!(&self.slots[i].state, CState::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff");
        self.ctx
            .recorder
            .record(
                &pod,
                true,
                "Failed",
                &format!("Failed to pull image \"{image_ref}\": {msg}"),
            )
            .await;
        if again {
            self.ctx
                .recorder
                .record(
                    &pod,
                    false,
                    "BackOff",
                    &format!("Back-off pulling image \"{image_ref}\""),
                )
                .await;
            self.retry_later(
                i,
                "ImagePullBackOff",
                format!("Back-off pulling image \"{image_ref}\": {msg}"),
            );
        } else {
            self.retry_later(i, "ErrImagePull", msg);
        }
    }

    pub(super) async fn start(&mut self, i: usize) {
        self.slots[i].start_at = None;
        if self.slots[i].oci.is_none() {
            match self.runs_as_container(i).await {
                Ok(oci) => self.slots[i].oci = Some(oci),
                Err(msg) => {
                    let image_ref = self.slots[i].c.image.clone().unwrap_or_default();
                    self.pull_failed(i, &image_ref, msg).await;
                    return;
                }
            }
        }
        if self.slots[i].oci == Some(true) {
            self.start_oci(i).await;
            return;
        }
        let pod = self.pod.clone();
        let name = self.slots[i].c.name.clone();
        let image_ref = self.slots[i].c.image.clone().unwrap_or_default();
        let policy = pull_policy(&self.slots[i].c);
        if self.slots[i].image.is_none() && policy != PullPolicy::Always {
            // Already on the node: no ContainerCreating round trip, start at once (as the
            // kubelet: one "already present" event instead of Pulling/Pulled).
            if let Some(img) = self.ctx.puller.present(&image_ref).await {
                self.defer_event(
                    false,
                    "Pulled",
                    format!("Container image \"{image_ref}\" already present on machine"),
                );
                self.slots[i].image = Some(img);
            }
        }
        if self.slots[i].image.is_none()
            || policy == PullPolicy::Always && self.slots[i].generation == 0
        {
            self.slots[i].state = CState::waiting("ContainerCreating", "");
            self.push_status().await;
            let started = Instant::now();
            self.ctx
                .recorder
                .record(
                    &pod,
                    false,
                    "Pulling",
                    &format!("Pulling image \"{image_ref}\""),
                )
                .await;
            let (credentials, missing) =
                pullsecrets::credentials(&self.ctx.client, &pod, &image_ref).await;
            if !missing.is_empty() {
                let msg = format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                );
                self.ctx
                    .recorder
                    .record(&pod, true, "FailedToRetrieveImagePullSecret", &msg)
                    .await;
            }
            match self
                .ctx
                .puller
                .pull_with(&image_ref, pull_policy(&self.slots[i].c), credentials)
                .await
            {
                Ok(img) => {
                    let msg = format!(
                        "Successfully pulled image \"{image_ref}\" in {}ms",
                        started.elapsed().as_millis()
                    );
                    self.ctx.recorder.record(&pod, false, "Pulled", &msg).await;
                    self.slots[i].image = Some(img);
                }
                Err(e) => {
                    self.pull_failed(i, &image_ref, e.to_string()).await;
                    return;
                }
            }
        }
        let Some(image) = self.slots[i].image.clone() else {
            return;
        };
        let runtime = match self.ctx.runtimes.for_image(&image) {
            Ok(r) => r,
            Err(e) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &e.to_string())
                    .await;
                self.retry_later(i, "CreateContainerError", e.to_string());
                return;
            }
        };
        let c = self.slots[i].c.clone();
        let ip = self.ctx.cfg.node_ip.to_string();
        // What the container sees besides its image; a failure is CreateContainerConfigError.
        let config = async {
            let env = volumes::environment(&self.ctx.client, &pod, &c, &ip).await?;
            let mut mounts =
                volumes::mounts(&self.ctx.client, &pod, &c, &self.pod_dir, false).await?;
            let extra = workdir::mounts(&c, &mounts, &self.pod_dir)?;
            mounts.extend(extra);
            Ok::<_, volumes::ConfigError>((env, mounts))
        };
        let (env, mounts) = match config.await {
            Ok(em) => em,
            Err(e) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &format!("Error: {e}"))
                    .await;
                self.retry_later(i, "CreateContainerConfigError", e.to_string());
                return;
            }
        };
        let mut listeners = Vec::new();
        for p in c.ports.iter().flatten() {
            let Ok(cport) = u16::try_from(p.container_port) else {
                continue;
            };
            let addr = match p
                .host_port
                .filter(|h| *h > 0)
                .and_then(|h| u16::try_from(h).ok())
            {
                Some(h) => SocketAddr::new(self.ctx.cfg.node_ip, h),
                None => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            match std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|_| l))
            {
                Ok(l) => listeners.push((cport, l)),
                Err(e) => {
                    let msg = format!("cannot bind port {addr} for containerPort {cport}: {e}");
                    self.ctx.recorder.record(&pod, true, "Failed", &msg).await;
                    self.retry_later(i, "CreateContainerError", msg);
                    return;
                }
            }
        }
        let log_path = self
            .pod_dir
            .join("logs")
            .join(&name)
            .join(format!("{}.log", self.slots[i].restarts));
        let log = match ContainerLog::open(log_path, DEFAULT_MAX_LOG_BYTES) {
            Ok(l) => l,
            Err(e) => {
                self.retry_later(
                    i,
                    "CreateContainerError",
                    format!("cannot open the container log: {e}"),
                );
                return;
            }
        };
        let limit = |name: &str| {
            c.resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get(name))
                .map(|q| q.0.clone())
        };
        let memory = limit("memory").and_then(|q| memory_bytes(&q));
        let cpu = limit("cpu").and_then(|q| cpu_millis(&q));
        let request_timeout = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUEST_TIMEOUT_ANNOTATION))
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let mut args: Vec<String> = vec![name.clone()];
        args.extend(c.command.iter().flatten().skip(1).cloned());
        args.extend(c.args.iter().flatten().cloned());
        let spec = StartSpec {
            env,
            args,
            mounts,
            working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
            memory_limit_bytes: memory,
            cpu_limit_millis: cpu,
            run_deadline: self.run_deadline(),
            request_timeout,
            log,
            listeners,
        };
        match runtime.start(&image, spec).await {
            Ok(running) => self.on_started(i, running).await,
            Err(e) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &format!("Error: {e}"))
                    .await;
                self.retry_later(i, "CreateContainerError", e.to_string());
            }
        }
    }

    pub(super) async fn on_started(&mut self, i: usize, running: Running) {
        let name = self.slots[i].c.name.clone();
        self.defer_event(false, "Created", format!("Created container {name}"));
        self.defer_event(false, "Started", format!("Started container {name}"));
        self.track(i, running, now());
    }

    /// Watches a running container (just started, or adopted from an earlier agent run that
    /// started it at `started_at`) for its exit, and schedules its probes.
    pub(super) fn track(&mut self, i: usize, running: Running, started_at: String) {
        let sidecar = self.is_sidecar(i);
        let s = &mut self.slots[i];
        s.generation += 1;
        s.start_at = None;
        s.state = CState::Running { started_at };
        s.started_instant = Some(Instant::now());
        s.probe_ok_streak = 0;
        s.probe_fail_streak = 0;
        s.startup_passed = s.c.startup_probe.is_none();
        s.started = s.startup_passed;
        s.ready = s.c.readiness_probe.is_none() && s.startup_passed;
        let first_delay = [
            &s.c.startup_probe,
            &s.c.readiness_probe,
            &s.c.liveness_probe,
        ]
        .into_iter()
        .flatten()
        .map(|p| p.initial_delay_seconds.unwrap_or(0).max(0) as u64)
        .min();
        s.next_probe = first_delay.map(|d| Instant::now() + Duration::from_secs(d));
        let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
        s.stop = Some(stop_tx);
        let (idx, generation, tx) = (i, s.generation, self.tx.clone());
        match running {
            Running::WasmCommand(mut handle) => {
                tokio::spawn(async move {
                    let reason = tokio::select! {
                        r = handle.wait() => r,
                        _ = stop_rx => {
                            handle.kill();
                            handle.wait().await
                        }
                    };
                    let _ = tx.send(Msg::Exit {
                        idx,
                        generation,
                        reason,
                    });
                });
            }
            Running::Oci(handle, addrs) => {
                s.addrs = addrs;
                s.container = Some((*handle).clone());
                let pre_stop = s.c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
                let name = s.c.name.clone();
                let pod_ip = self.pod_ip_addr();
                tokio::spawn(async move {
                    let exit = tokio::select! {
                        e = handle.wait() => e,
                        g = stop_rx => {
                            let grace = g.unwrap_or(Duration::ZERO);
                            let begun = Instant::now();
                            if let Some(hook) = pre_stop.filter(|_| !grace.is_zero()) {
                                // preStop runs inside the grace period; SIGTERM follows it.
                                if let Err(e) = crate::oci::hooks::run(&hook, &handle, pod_ip, grace).await {
                                    let _ = tx.send(Msg::Event {
                                        warning: true,
                                        reason: "FailedPreStopHook",
                                        message: format!("PreStopHook failed for container {name}: {e}"),
                                    });
                                }
                            }
                            handle.stop(grace.saturating_sub(begun.elapsed())).await;
                            handle.wait().await
                        }
                    };
                    let _ = tx.send(Msg::Exit {
                        idx,
                        generation,
                        reason: ExitReason::Container {
                            code: exit.code,
                            oom: exit.reason == "OOMKilled",
                            message: exit.message,
                        },
                    });
                });
            }
            Running::WasmHttp(mut server, addrs) => {
                s.addrs = addrs;
                tokio::spawn(async move {
                    let mut stop_rx = stop_rx;
                    let grace = loop {
                        tokio::select! {
                            f = server.failures().recv() => match f {
                                Some(failure) => { let _ = tx.send(Msg::RequestFailed { idx, failure }); }
                                None => break Duration::ZERO,
                            },
                            g = &mut stop_rx => break g.unwrap_or(Duration::ZERO),
                        }
                    };
                    server.shutdown(grace).await;
                    let _ = tx.send(Msg::Exit {
                        idx,
                        generation,
                        reason: ExitReason::Exited(0),
                    });
                });
            }
        }
        if sidecar {
            // The next init container (or the main ones) may follow a started sidecar.
            self.advance();
        }
    }

    /// Records an exit without restarting (the pod is stopping).
    pub(super) fn on_exit_final(&mut self, msg: Msg) {
        if let Msg::Exit {
            idx,
            generation,
            reason,
        } = msg
        {
            if let Some(s) = self
                .slots
                .get_mut(idx)
                .filter(|s| s.generation == generation)
            {
                let (exit_code, r, message) = termination(&reason);
                let started_at = match &s.state {
                    CState::Running { started_at } => started_at.clone(),
                    _ => now(),
                };
                s.state = CState::Terminated {
                    exit_code,
                    reason: r.into(),
                    message,
                    started_at,
                    finished_at: now(),
                };
                s.ready = false;
                s.done = true;
            }
        }
    }

    pub(super) async fn on_msg(&mut self, msg: Msg) {
        let pod = self.pod.clone();
        match msg {
            Msg::Event {
                warning,
                reason,
                message,
            } => {
                self.ctx
                    .recorder
                    .record(&pod, warning, reason, &message)
                    .await
            }
            Msg::RequestFailed { idx, failure } => {
                let (_, reason, message) = termination(&failure.reason);
                let name = self
                    .slots
                    .get(idx)
                    .map(|s| s.c.name.clone())
                    .unwrap_or_default();
                let text = format!(
                    "container {name}: request {} failed: {message}",
                    failure.path
                );
                self.ctx.recorder.record(&pod, true, reason, &text).await;
            }
            Msg::Exit {
                idx,
                generation,
                reason,
            } => {
                let Some(s) = self.slots.get_mut(idx) else {
                    return;
                };
                if s.generation != generation {
                    return;
                }
                s.stop = None;
                let (exit_code, r, message) = termination(&reason);
                let name = s.c.name.clone();
                let started_at = match &s.state {
                    CState::Running { started_at } => started_at.clone(),
                    _ => now(),
                };
                let ended = CState::Terminated {
                    exit_code,
                    reason: r.into(),
                    message: message.clone(),
                    started_at,
                    finished_at: now(),
                };
                s.state = ended.clone();
                s.ready = false;
                s.next_probe = None;
                if exit_code != 0 && !matches!(reason, ExitReason::Killed) {
                    self.ctx
                        .recorder
                        .record(&pod, true, r, &format!("container {name}: {message}"))
                        .await;
                }
                if matches!(reason, ExitReason::DeadlineExceeded) && self.run_deadline().is_some() {
                    // The pod's activeDeadlineSeconds ran out: the pod fails, nothing restarts.
                    self.pod_reason = Some((
                        "DeadlineExceeded".into(),
                        "Pod was active on the node longer than the specified deadline".into(),
                    ));
                }
                let policy = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.clone())
                    .unwrap_or_else(|| "Always".into());
                let sidecar = self.is_sidecar(idx);
                let mains_finished = self.mains_finished();
                let s = &mut self.slots[idx];
                let restart = self.pod_reason.is_none()
                    && match (s.init, policy.as_str()) {
                        // Native sidecars run as long as the main containers do.
                        (true, _) if sidecar => !mains_finished,
                        (true, "Never") => false,
                        (true, _) => exit_code != 0,
                        (false, "Always") => true,
                        (false, "OnFailure") => exit_code != 0,
                        _ => false,
                    };
                if restart {
                    let delay = s.backoff.delay_after_run(s.started_instant);
                    s.last = Some(ended);
                    s.restarts += 1;
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    s.state = CState::waiting(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {}s restarting failed container={name} pod={pod_name}",
                            delay.as_secs()
                        ),
                    );
                    s.start_at = Some(Instant::now() + delay);
                    self.ctx
                        .recorder
                        .record(
                            &pod,
                            true,
                            "BackOff",
                            &format!(
                                "Back-off restarting failed container {name} in pod {pod_name}"
                            ),
                        )
                        .await;
                } else {
                    s.done = true;
                    if s.init && !sidecar && exit_code != 0 {
                        self.failed_init = true;
                    }
                    // Next init container, or the main containers; sidecars stop once the
                    // main containers are all done.
                    self.advance();
                    let grace = self.grace();
                    self.stop_sidecars_if_done(grace);
                }
            }
        }
    }

    pub(super) async fn probe(&mut self, i: usize) {
        let pod = self.pod.clone();
        let s = &self.slots[i];
        if !matches!(s.state, CState::Running { .. }) {
            self.slots[i].next_probe = None;
            return;
        }
        let (kind, probe): (&str, Probe) = if !s.startup_passed {
            ("Startup", s.c.startup_probe.clone().unwrap_or_default())
        } else if let Some(p) = s.c.readiness_probe.clone().filter(|_| !s.ready) {
            ("Readiness", p)
        } else if let Some(p) = s.c.liveness_probe.clone() {
            ("Liveness", p)
        } else if let Some(p) = s.c.readiness_probe.clone() {
            ("Readiness", p)
        } else {
            self.slots[i].next_probe = None;
            return;
        };
        let result = if let Some(exec) = &probe.exec {
            match &s.container {
                Some(h) => {
                    let cmd = exec.command.clone().unwrap_or_default();
                    h.exec_probe(cmd, probes::timeout(&probe)).await
                }
                None => Err("exec probes run commands in a Linux container; a Wasm component has none (use httpGet or tcpSocket)".into()),
            }
        } else {
            // A container's ports are all on the pod IP, declared or not.
            let pod_ip = self.pod_ip_addr();
            let addr = probes::probe_port(&s.c, &probe).and_then(|port| {
                s.addrs
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map(|(_, a)| *a)
                    .or_else(|| {
                        s.container
                            .as_ref()
                            .and(pod_ip)
                            .map(|ip| SocketAddr::new(ip, port))
                    })
            });
            match addr {
                Some(a) => probes::run(&probe, a).await,
                None => Err("the probe's port is not one of the container's ports".into()),
            }
        };
        let s = &mut self.slots[i];
        s.next_probe = Some(Instant::now() + probes::period(&probe));
        match result {
            Ok(()) => {
                s.probe_fail_streak = 0;
                s.probe_ok_streak += 1;
                match kind {
                    "Startup" => {
                        s.startup_passed = true;
                        s.started = true;
                        s.ready = s.c.readiness_probe.is_none();
                        self.advance();
                    }
                    "Readiness" if s.probe_ok_streak >= probe.success_threshold.unwrap_or(1) => {
                        s.ready = true
                    }
                    _ => {}
                }
            }
            Err(msg) => {
                s.probe_ok_streak = 0;
                s.probe_fail_streak += 1;
                let name = s.c.name.clone();
                if kind == "Readiness" {
                    s.ready = false;
                }
                let over = s.probe_fail_streak >= probe.failure_threshold.unwrap_or(3);
                self.ctx
                    .recorder
                    .record(
                        &pod,
                        true,
                        "Unhealthy",
                        &format!("{kind} probe failed: {msg}"),
                    )
                    .await;
                if over && kind != "Readiness" {
                    let s = &mut self.slots[i];
                    s.probe_fail_streak = 0;
                    self.ctx
                        .recorder
                        .record(
                            &pod,
                            false,
                            "Killing",
                            &format!(
                                "Container {name} failed {} probe, will be restarted",
                                kind.to_lowercase()
                            ),
                        )
                        .await;
                    if let Some(stop) = self.slots[i].stop.take() {
                        let _ = stop.send(Duration::ZERO);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities() {
        assert_eq!(memory_bytes("64Mi"), Some(64 << 20));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("1048576"), Some(1 << 20));
        assert_eq!(memory_bytes("1.5Gi"), Some(1536 << 20));
        assert_eq!(memory_bytes("12Qi"), None);
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(cpu_millis("x"), None);
    }
}
