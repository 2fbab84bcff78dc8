//! The pod worker's container (OCI) side: which runtime a container runs on, the pod's
//! sandbox (created before its first Linux container, torn down with the pod), and starting
//! a container in it through [`crate::oci`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::containers::{cpu_millis, memory_bytes, pull_policy};
use super::status::CState;
use super::worker::Worker;
use super::{pullsecrets, volumes};
use crate::oci::container::StartFailure;
use crate::oci::hooks;
use crate::oci::{ContainerSpec, OciError};
use crate::runtime::Running;

/// `runtimeClassName` values Skiff serves (see the bootstrap RuntimeClasses).
pub const RUNTIME_CLASS_WASM: &str = "wasm";
pub const RUNTIME_CLASS_OCI: &str = "oci";

impl Worker {
    /// Whether container `i` runs through containerd: `runtimeClassName: oci` or `wasm`
    /// decides; without one, the image does (a Wasm artifact runs on wasmtime, a container
    /// image on containerd). Err is a message for ErrImagePull.
    pub(super) async fn runs_as_container(&mut self, i: usize) -> Result<bool, String> {
        let class = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone());
        match class.as_deref() {
            Some(RUNTIME_CLASS_OCI) => return Ok(true),
            Some(RUNTIME_CLASS_WASM) => return Ok(false),
            _ => {}
        }
        let image_ref = self.slots[i].c.image.clone().unwrap_or_default();
        if let Some(img) = self.ctx.puller.present(&image_ref).await {
            return Ok(!matches!(img.kind, crate::images::ImageKind::Wasm { .. }));
        }
        let (credentials, _) =
            pullsecrets::credentials(&self.ctx.client, &self.pod, &image_ref).await;
        self.ctx
            .puller
            .is_wasm(&image_ref, credentials)
            .await
            .map(|wasm| !wasm)
            .map_err(|e| e.to_string())
    }

    /// The pod's IP when it has a sandbox.
    pub(super) fn pod_ip_addr(&self) -> Option<IpAddr> {
        self.sandbox
            .as_ref()
            .and_then(|s| s.ip.as_deref())
            .and_then(|ip| ip.parse().ok())
    }

    /// Runs the pod's sandbox if it has none yet. Err is a message for the container's
    /// waiting state (after a FailedCreatePodSandBox event).
    async fn ensure_sandbox(&mut self) -> Result<(), String> {
        if self.sandbox.is_some() {
            return Ok(());
        }
        let Some(oci) = self.ctx.oci.clone() else {
            return Err("this node has no container runtime: its agent runs without containerd (install containerd, or give the pod runtimeClassName: oci so it is scheduled to a node that has it)".into());
        };
        let log_dir = self.pod_dir.join("logs");
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            return Err(format!("cannot create {}: {e}", log_dir.display()));
        }
        match oci.run_sandbox(&self.pod, &log_dir).await {
            Ok(sb) => {
                tracing::info!(sandbox = %sb.id, ip = ?sb.ip, "pod sandbox running");
                self.sandbox = Some(sb);
                Ok(())
            }
            Err(e) => {
                let msg = format!("Failed to create pod sandbox: {e}");
                let pod = self.pod.clone();
                self.ctx
                    .recorder
                    .record(&pod, true, "FailedCreatePodSandBox", &msg)
                    .await;
                Err(msg)
            }
        }
    }

    /// Removes the pod's sandbox (stops anything left in it, releases its IP).
    pub(super) async fn teardown_sandbox(&mut self) {
        if let (Some(sb), Some(oci)) = (self.sandbox.take(), self.ctx.oci.as_ref()) {
            crate::oci::sandbox::remove(&oci.cri, &sb.id).await;
            tracing::info!(sandbox = %sb.id, "pod sandbox removed");
        }
    }

    /// Adopts what an earlier run of the agent left running for this pod: its sandbox and the
    /// containers in it, watched again as they are (same ids, restart counts from their
    /// annotations). Init containers count as done once a main container exists. Returns
    /// whether anything was adopted.
    pub(super) async fn adopt_existing(&mut self) -> bool {
        let Some(oci) = self.ctx.oci.clone() else {
            return false;
        };
        let log_dir = self.pod_dir.join("logs");
        let (sandbox, containers) = match oci.find_pod(&self.pod, &log_dir).await {
            Ok(Some(found)) => found,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for the pod's containers in containerd");
                return false;
            }
        };
        tracing::info!(sandbox = %sandbox.id, ip = ?sandbox.ip, "adopting the pod's sandbox");
        self.sandbox = Some(sandbox);
        let pod_ip = self.pod_ip_addr();
        let mut main_found = false;
        for c in containers {
            let name = c
                .labels
                .get(crate::oci::LABEL_CONTAINER_NAME)
                .cloned()
                .unwrap_or_default();
            let Some(i) = self.slots.iter().position(|s| s.c.name == name) else {
                crate::oci::container::remove_container(&oci.cri, &c.id).await;
                continue;
            };
            if self.slots[i].stop.is_some() {
                // Two containers for one name: keep the first, drop the other.
                crate::oci::container::remove_container(&oci.cri, &c.id).await;
                continue;
            }
            main_found |= !self.slots[i].init;
            let restarts = c
                .annotations
                .get(crate::oci::container::ANNOTATION_RESTART_COUNT)
                .and_then(|r| r.parse().ok())
                .unwrap_or(self.slots[i].restarts);
            let started_at = jiff::Timestamp::from_second(c.created_at / 1_000_000_000)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| super::node::now());
            let handle = crate::oci::ContainerHandle {
                cri: oci.cri.clone(),
                id: c.id,
            };
            let addrs = pod_ip
                .map(|ip| {
                    self.slots[i]
                        .c
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| u16::try_from(p.container_port).ok())
                        .map(|port| (port, SocketAddr::new(ip, port)))
                        .collect()
                })
                .unwrap_or_default();
            let slot = &mut self.slots[i];
            slot.restarts = restarts;
            slot.oci = Some(true);
            slot.oci_image = c.image.map(|img| crate::oci::OciImage {
                cri_ref: img.image,
                id: c.image_ref,
                uid: None,
                username: String::new(),
            });
            // An adopted container that exited meanwhile is seen by its watcher at once,
            // and the restart policy applies as for any exit.
            self.track(i, Running::Oci(Box::new(handle), addrs), started_at);
        }
        if main_found {
            for s in self.slots.iter_mut().filter(|s| s.init && s.stop.is_none()) {
                s.done = true;
                s.state = CState::Terminated {
                    exit_code: 0,
                    reason: "Completed".into(),
                    message: String::new(),
                    started_at: super::node::now(),
                    finished_at: super::node::now(),
                };
            }
        }
        true
    }

    /// Starts container `i` as a Linux container in the pod's sandbox.
    pub(super) async fn start_oci(&mut self, i: usize) {
        let Some(oci) = self.ctx.oci.clone() else {
            let msg = "this node has no container runtime: its agent runs without containerd, so it cannot run container image \"{}\"".replace("{}", self.slots[i].c.image.as_deref().unwrap_or(""));
            let pod = self.pod.clone();
            self.ctx.recorder.record(&pod, true, "Failed", &msg).await;
            self.retry_later(i, "CreateContainerError", msg);
            return;
        };
        if let Err(msg) = self.ensure_sandbox().await {
            self.retry_later(i, "ContainerCreating", msg);
            return;
        }
        let pod = self.pod.clone();
        let c = self.slots[i].c.clone();
        let image_ref = c.image.clone().unwrap_or_default();
        let policy = pull_policy(&c);
        let have = match policy {
            crate::images::PullPolicy::Always => None,
            _ => oci.present(&image_ref).await,
        };
        let image = match have {
            Some(img) => {
                if self.slots[i].oci_image.is_none() {
                    self.defer_event(
                        false,
                        "Pulled",
                        format!("Container image \"{image_ref}\" already present on machine"),
                    );
                }
                img
            }
            None => {
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
                match oci.ensure_image(&image_ref, policy, credentials).await {
                    Ok(img) => {
                        let msg = format!(
                            "Successfully pulled image \"{image_ref}\" in {}ms",
                            started.elapsed().as_millis()
                        );
                        self.ctx.recorder.record(&pod, false, "Pulled", &msg).await;
                        img
                    }
                    Err(OciError::NeverPull { reference }) => {
                        let msg = format!("Container image \"{reference}\" is not present with pull policy of Never");
                        self.ctx
                            .recorder
                            .record(&pod, true, "ErrImageNeverPull", &msg)
                            .await;
                        self.retry_later(i, "ErrImageNeverPull", msg);
                        return;
                    }
                    Err(e) => {
                        self.pull_failed(i, &image_ref, e.to_string()).await;
                        return;
                    }
                }
            }
        };
        self.slots[i].oci_image = Some(image.clone());
        let security = hooks::effective_security(
            c.security_context.as_ref(),
            pod.spec.as_ref().and_then(|s| s.security_context.as_ref()),
        );
        if let Err(msg) = hooks::check_non_root(&security, &image, &c.name) {
            self.ctx
                .recorder
                .record(&pod, true, "Failed", &format!("Error: {msg}"))
                .await;
            self.retry_later(i, "CreateContainerConfigError", msg);
            return;
        }
        let pod_ip = self.pod_ip_addr();
        let ip = pod_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| self.ctx.cfg.node_ip.to_string());
        let config = async {
            let env = volumes::environment(&self.ctx.client, &pod, &c, &ip).await?;
            let mounts = volumes::mounts(&self.ctx.client, &pod, &c, &self.pod_dir, true).await?;
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
        let quantity = |which: &str, name: &str| {
            let r = c.resources.as_ref()?;
            let m = if which == "limits" {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            };
            m.and_then(|m| m.get(name)).map(|q| q.0.clone())
        };
        let restarts = self.slots[i].restarts;
        let log_rel = format!("{}/{restarts}.log", c.name);
        if let Some(parent) = self.pod_dir.join("logs").join(&log_rel).parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let spec = ContainerSpec {
            name: c.name.clone(),
            restart_count: restarts,
            image: image.cri_ref.clone(),
            command: c.command.clone().unwrap_or_default(),
            args: c.args.clone().unwrap_or_default(),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            env,
            mounts,
            stdin: c.stdin == Some(true),
            stdin_once: c.stdin_once == Some(true),
            tty: c.tty == Some(true),
            memory_limit_bytes: quantity("limits", "memory").and_then(|q| memory_bytes(&q)),
            cpu_limit_millis: quantity("limits", "cpu").and_then(|q| cpu_millis(&q)),
            cpu_request_millis: quantity("requests", "cpu").and_then(|q| cpu_millis(&q)),
            security: Some(security),
            share_process_namespace: pod.spec.as_ref().and_then(|s| s.share_process_namespace)
                == Some(true),
            log_path: log_rel,
        };
        let Some(sandbox) = self.sandbox.clone() else {
            return;
        };
        match oci.start_container(&sandbox, &spec).await {
            Ok(handle) => {
                let addrs = pod_ip
                    .map(|ip| {
                        c.ports
                            .iter()
                            .flatten()
                            .filter_map(|p| u16::try_from(p.container_port).ok())
                            .map(|port| (port, SocketAddr::new(ip, port)))
                            .collect()
                    })
                    .unwrap_or_default();
                let post_start = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref());
                let hook = match post_start {
                    Some(h) => hooks::run(h, &handle, pod_ip, hooks::DEFAULT_HOOK_TIMEOUT).await,
                    None => Ok(()),
                };
                self.on_started(i, Running::Oci(Box::new(handle), addrs))
                    .await;
                if let Err(e) = hook {
                    // As the kubelet: the container is killed, and its restart policy applies.
                    let msg = format!("PostStartHook failed for container {}: {e}", c.name);
                    self.ctx
                        .recorder
                        .record(&pod, true, "FailedPostStartHook", &msg)
                        .await;
                    if let Some(stop) = self.slots[i].stop.take() {
                        let _ = stop.send(Duration::ZERO);
                    }
                }
            }
            Err(failure) => {
                let (reason, msg) = match failure {
                    StartFailure::Create(m) => ("CreateContainerError", m),
                    StartFailure::Run(m) => ("RunContainerError", m),
                };
                self.ctx
                    .recorder
                    .record(&pod, true, "Failed", &format!("Error: {msg}"))
                    .await;
                self.retry_later(i, reason, msg);
            }
        }
    }
}
