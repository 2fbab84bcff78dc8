//! The pod worker's pod-level side of the runtime seam: which runtime each container runs on,
//! the pod's CRI sandbox (created before its first Linux container, adopted from an earlier
//! agent run, torn down with the pod), and the containers' postStart hooks.

use std::net::IpAddr;
use std::time::Duration;

use super::pullsecrets;
use super::status::CState;
use super::worker::Worker;
use super::RuntimeKind;
use crate::oci::hooks;
use crate::runtime::{Image, Running};

/// `runtimeClassName` values Skiff serves (see the bootstrap RuntimeClasses).
pub const RUNTIME_CLASS_WASM: &str = "wasm";
pub const RUNTIME_CLASS_OCI: &str = "oci";

impl Worker {
    /// Which runtime runs container `i`: `runtimeClassName: oci` or `wasm` decides; without one, the image does (a Wasm artifact runs on wasmtime, a container
    /// image on containerd). Err is a message for ErrImagePull.
    pub(super) async fn runtime_kind(&mut self, i: usize) -> Result<RuntimeKind, String> {
        let class = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone());
        match class.as_deref() {
            Some(RUNTIME_CLASS_OCI) => return Ok(RuntimeKind::Oci),
            Some(RUNTIME_CLASS_WASM) => return Ok(RuntimeKind::Wasm),
            _ => {}
        }
        let image_ref = self.slots[i].c.image.clone().unwrap_or_default();
        let kind = |wasm: bool| {
            if wasm {
                RuntimeKind::Wasm
            } else {
                RuntimeKind::Oci
            }
        };
        if let Some(img) = self.ctx.puller.present(&image_ref).await {
            return Ok(kind(matches!(
                img.kind,
                crate::images::ImageKind::Wasm { .. }
            )));
        }
        let (credentials, _) =
            pullsecrets::credentials(&self.ctx.client, &self.pod, &image_ref).await;
        self.ctx
            .puller
            .is_wasm(&image_ref, credentials)
            .await
            .map(kind)
            .map_err(|e| e.to_string())
    }

    /// The pod's IP: its sandbox's, or a pure-Wasm pod's address on the node bridge.
    pub(super) fn pod_ip_addr(&self) -> Option<IpAddr> {
        self.sandbox
            .as_ref()
            .and_then(|s| s.ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .or(self.wasm_ip.map(IpAddr::V4))
    }

    /// Whether the pod needs a CRI sandbox: it has (or will have) a Linux container. A Wasm
    /// container of such a pod runs in the sandbox's network namespace.
    async fn needs_sandbox(&mut self) -> bool {
        if self.sandbox.is_some() {
            return true;
        }
        for j in 0..self.slots.len() {
            if self.slots[j].kind.is_none() {
                // Unknown until its image is: its own start reports why.
                if let Ok(k) = self.runtime_kind(j).await {
                    self.slots[j].kind = Some(k);
                }
            }
            if self.slots[j].kind == Some(RuntimeKind::Oci) {
                return true;
            }
        }
        false
    }

    /// The pod's network before a container of `kind` starts: the CRI sandbox when the pod
    /// has Linux containers, else (pure Wasm) an address on the node bridge when the node has
    /// a pod network. Err is a message for the container's waiting state.
    pub(super) async fn ensure_pod_network(&mut self, kind: RuntimeKind) -> Result<(), String> {
        if kind.needs_sandbox() || self.needs_sandbox().await {
            return self.ensure_sandbox().await;
        }
        let Some(net) = self.ctx.network.clone() else {
            return Ok(());
        };
        if self.wasm_ip.is_some() {
            return Ok(());
        }
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        match net.attach_wasm_pod(&uid).await {
            Ok(ip) => {
                tracing::debug!(%ip, "pod address on the node bridge");
                self.wasm_ip = Some(ip);
                Ok(())
            }
            Err(e) => {
                let msg =
                    format!("Failed to create pod sandbox: cannot give the pod an address: {e}");
                let pod = self.pod.clone();
                self.ctx
                    .recorder
                    .record(&pod, true, "FailedCreatePodSandBox", &msg)
                    .await;
                Err(msg)
            }
        }
    }

    /// The pod will run nothing again: its sandbox goes and its address is given back.
    pub(super) async fn release_pod_network(&mut self) {
        self.teardown_sandbox().await;
        if self.wasm_ip.take().is_some() {
            if let Some(net) = self.ctx.network.clone() {
                let uid = self.pod.metadata.uid.clone().unwrap_or_default();
                if let Err(e) = net.release_wasm_pod(&uid).await {
                    tracing::warn!(error = %e, "cannot release the pod's address");
                }
            }
        }
    }

    /// Runs the pod's sandbox if it has none yet. Err is a message for the container's
    /// waiting state (after a FailedCreatePodSandBox event).
    pub(super) async fn ensure_sandbox(&mut self) -> Result<(), String> {
        if self.sandbox.is_some() {
            return Ok(());
        }
        let Some(oci) = self.ctx.runtimes.cri().cloned() else {
            return Err("this node has no container runtime: its agent runs without containerd (install containerd, or give the pod runtimeClassName: oci so it is scheduled to a node that has it)".into());
        };
        let log_dir = self.pod_dir.join("logs");
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            return Err(format!("cannot create {}: {e}", log_dir.display()));
        }
        let cluster_dns = match self.ctx.network {
            Some(_) => self.ctx.view.cluster_dns_ip().await,
            None => None,
        };
        match oci.run_sandbox(&self.pod, &log_dir, cluster_dns).await {
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
        if let (Some(sb), Some(oci)) = (self.sandbox.take(), self.ctx.runtimes.cri()) {
            crate::oci::sandbox::remove(&oci.cri, &sb.id).await;
            tracing::info!(sandbox = %sb.id, "pod sandbox removed");
        }
    }

    /// Adopts what an earlier run of the agent left running for this pod: its sandbox and the
    /// containers in it, watched again as they are (same ids, restart counts from their
    /// annotations). Init containers count as done once a main container exists. Returns
    /// whether anything was adopted.
    pub(super) async fn adopt_existing(&mut self) -> bool {
        let Some(oci) = self.ctx.runtimes.cri().cloned() else {
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
            let addrs = crate::oci::sandbox::port_addrs(
                self.sandbox.as_ref().and_then(|sb| sb.ip.as_deref()),
                &self.slots[i].c,
            );
            let slot = &mut self.slots[i];
            slot.restarts = restarts;
            slot.kind = Some(RuntimeKind::Oci);
            slot.image = c.image.map(|img| {
                Image::Oci(crate::oci::OciImage {
                    cri_ref: img.image,
                    id: c.image_ref,
                    uid: None,
                    username: String::new(),
                })
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

    /// Runs container `i`'s `postStart` hook, if it has one; on failure the container is
    /// killed (its restart policy applies), as the kubelet does.
    pub(super) async fn post_start(&mut self, i: usize) {
        let c = &self.slots[i].c;
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) else {
            return;
        };
        let name = c.name.clone();
        let container = self.slots[i].container.clone();
        let result = hooks::run(
            &hook,
            container.as_ref(),
            self.pod_ip_addr(),
            hooks::DEFAULT_HOOK_TIMEOUT,
        )
        .await;
        if let Err(e) = result {
            let msg = format!("PostStartHook failed for container {name}: {e}");
            let pod = self.pod.clone();
            self.ctx
                .recorder
                .record(&pod, true, "FailedPostStartHook", &msg)
                .await;
            if let Some(stop) = self.slots[i].stop.take() {
                let _ = stop.send(Duration::ZERO);
            }
        }
    }
}
