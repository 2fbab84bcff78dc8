//! The containers of a pod worker: starting one through the runtime seam (runtime, sandbox,
//! image, env and volumes, start), handling its exit (restartPolicy and CrashLoopBackOff), and
//! probing it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::oneshot;

use super::backoff::Backoff;
use super::config::{AgentConfig, DEFAULT_BACKOFF_RESET};
use super::node::now;
use super::status::{CState, ContainerView};
use super::worker::Worker;
use super::{probes, pullsecrets, volumes};
use crate::images::PullPolicy;
use crate::runtime::{termination, Image, PullFailure, Running, Runtime, RuntimeKind, StartSpec};
use crate::wasm::{ExitReason, RequestFailure};

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
    /// The container's image, once its runtime has it.
    pub image: Option<Image>,
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
    /// Which runtime runs the container (decided at its first start).
    pub kind: Option<RuntimeKind>,
    /// The running Linux container, for exec probes, hooks and its id.
    pub container: Option<crate::oci::ContainerHandle>,
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
                kind: None,
                container: None,
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
            image_id: self.image.as_ref().map(Image::id).unwrap_or(""),
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

    /// The container's image through `runtime`: already on the node (no ContainerCreating
    /// round trip: one "already present" event, as the kubelet), or pulled with
    /// Pulling/Pulled events. None after a failed pull (retried with backoff).
    async fn ensure_image(&mut self, i: usize, runtime: &Runtime) -> Option<Image> {
        let pod = self.pod.clone();
        let image_ref = self.slots[i].c.image.clone().unwrap_or_default();
        let policy = pull_policy(&self.slots[i].c);
        if self.slots[i].image.is_none() && policy != PullPolicy::Always {
            let looking = Instant::now();
            if let Some(img) = runtime.present(&image_ref).await {
                crate::metrics::observe(crate::metrics::Stage::Pull, looking.elapsed());
                self.defer_event(
                    false,
                    "Pulled",
                    format!("Container image \"{image_ref}\" already present on machine"),
                );
                self.slots[i].image = Some(img);
            }
        }
        let first_run = self.slots[i].generation == 0;
        if self.slots[i].image.is_some() && !(policy == PullPolicy::Always && first_run) {
            return self.slots[i].image.clone();
        }
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
        match runtime.pull(&image_ref, policy, credentials).await {
            Ok(img) => {
                crate::metrics::observe(crate::metrics::Stage::Pull, started.elapsed());
                let msg = format!(
                    "Successfully pulled image \"{image_ref}\" in {}ms",
                    started.elapsed().as_millis()
                );
                self.ctx.recorder.record(&pod, false, "Pulled", &msg).await;
                self.slots[i].image = Some(img);
                self.slots[i].image.clone()
            }
            Err(PullFailure {
                never: true,
                message,
            }) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "ErrImageNeverPull", &message)
                    .await;
                self.retry_later(i, "ErrImageNeverPull", message);
                None
            }
            Err(PullFailure { message, .. }) => {
                self.pull_failed(i, &image_ref, message).await;
                None
            }
        }
    }

    /// Starts container `i`: its runtime, the pod's sandbox if the runtime needs one, its
    /// image, its env and volumes, then the runtime's start.
    pub(super) async fn start(&mut self, i: usize) {
        self.slots[i].start_at = None;
        let kind = match self.slots[i].kind {
            Some(k) => k,
            None => match self.runtime_kind(i).await {
                Ok(k) => {
                    self.slots[i].kind = Some(k);
                    k
                }
                Err(msg) => {
                    let image_ref = self.slots[i].c.image.clone().unwrap_or_default();
                    self.pull_failed(i, &image_ref, msg).await;
                    return;
                }
            },
        };
        let pod = self.pod.clone();
        let ctx = self.ctx.clone();
        let runtime = match ctx.runtimes.get(kind) {
            Ok(r) => r,
            Err(e) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &e.message)
                    .await;
                self.retry_later(i, e.reason, e.message);
                return;
            }
        };
        if let Err(msg) = self.ensure_pod_network(kind).await {
            self.retry_later(i, "ContainerCreating", msg);
            return;
        }
        let Some(image) = self.ensure_image(i, runtime).await else {
            return;
        };
        let c = self.slots[i].c.clone();
        let ip = self
            .pod_ip_addr()
            .unwrap_or(self.ctx.cfg.node_ip)
            .to_string();
        // What the container sees besides its image; a failure is CreateContainerConfigError.
        let config = async {
            let env = volumes::environment(&self.ctx.client, &pod, &c, &ip).await?;
            let files_ok = kind == RuntimeKind::Oci;
            let mounts =
                volumes::mounts(&self.ctx.client, &pod, &c, &self.pod_dir, files_ok).await?;
            Ok::<_, volumes::ConfigError>((env, mounts))
        };
        let (env, mounts) = match config.await {
            Ok((env, mounts)) => {
                // Service links first; the container's own variables win.
                let mut all = self.ctx.view.service_env(&pod).await;
                all.retain(|(k, _)| !env.iter().any(|(ek, _)| ek == k));
                all.extend(env);
                (all, mounts)
            }
            Err(e) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &format!("Error: {e}"))
                    .await;
                self.retry_later(i, "CreateContainerConfigError", e.to_string());
                return;
            }
        };
        let spec = StartSpec {
            pod: &pod,
            container: &c,
            restart_count: self.slots[i].restarts,
            env,
            mounts,
            pod_dir: &self.pod_dir,
            sandbox: self.sandbox.as_ref(),
            pod_ip: self.pod_ip_addr(),
            run_deadline: self.run_deadline(),
        };
        match runtime.start(&image, spec).await {
            Ok(running) => {
                self.on_started(i, running).await;
                self.post_start(i).await;
            }
            Err(e) => {
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &format!("Error: {}", e.message))
                    .await;
                self.retry_later(i, e.reason, e.message);
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
                                if let Err(e) = crate::oci::hooks::run(&hook, Some(&*handle), pod_ip, grace).await {
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
                // Unregistered when the server task ends (dropped with it). A mixed pod's
                // components listen inside its sandbox: port-forward goes through CRI there.
                let ready_labels =
                    s.c.readiness_probe
                        .is_none()
                        .then(|| self.pod.metadata.labels.clone().unwrap_or_default());
                let ports = self.sandbox.is_none().then(|| {
                    self.ctx.wasm_ports.register(
                        self.pod.metadata.namespace.as_deref().unwrap_or(""),
                        self.pod.metadata.name.as_deref().unwrap_or(""),
                        addrs.clone(),
                        ready_labels,
                    )
                });
                s.addrs = addrs;
                tokio::spawn(async move {
                    let _ports = ports;
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
