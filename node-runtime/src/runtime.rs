//! Runtimes a node can run containers with, chosen per image: each says whether it
//! `can_handle` an image, and the first that can runs it: wasmtime for Wasm components.
//! Container images run through containerd (`crate::oci`), in the pod's sandbox, started by
//! the agent's pod worker (`agent/oci_containers.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::images::{ImageKind, PulledImage};
use crate::logs::ContainerLog;
use crate::wasm::{
    CommandHandle, ExitReason, HttpServer, InstanceConfig, Preopen, WasmError, WasmRuntime,
};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no runtime on this node can run image {image}: {why}")]
    Unsupported { image: String, why: String },
    #[error("{0}")]
    Wasm(#[from] WasmError),
    #[error("{0}")]
    Port(String),
}

/// Everything needed to start one container.
pub struct StartSpec {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub mounts: Vec<crate::agent::volumes::Mount>,
    /// The container's `workingDir`.
    pub working_dir: Option<String>,
    pub memory_limit_bytes: Option<u64>,
    /// `resources.limits.cpu` in millicores; the guest is throttled to that share of a core.
    pub cpu_limit_millis: Option<u64>,
    /// Commands: how long the whole run may take (what is left of `activeDeadlineSeconds`).
    pub run_deadline: Option<Duration>,
    /// HTTP components: how long each request may take.
    pub request_timeout: Duration,
    pub log: ContainerLog,
    /// Bound listeners by containerPort (HTTP components serve on all of them).
    pub listeners: Vec<(u16, std::net::TcpListener)>,
}

pub enum Runtime {
    Wasm(WasmRuntime),
}

/// A started container.
pub enum Running {
    WasmCommand(CommandHandle),
    WasmHttp(HttpServer, Vec<(u16, SocketAddr)>),
    /// A Linux container in the pod's sandbox; its ports are reached on the pod IP.
    Oci(Box<crate::oci::ContainerHandle>, Vec<(u16, SocketAddr)>),
}

impl Runtime {
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Wasm(_) => "wasmtime",
        }
    }

    pub fn can_handle(&self, image: &PulledImage) -> bool {
        match self {
            Runtime::Wasm(_) => matches!(image.kind, ImageKind::Wasm { .. }),
        }
    }

    pub async fn start(
        &self,
        image: &PulledImage,
        spec: StartSpec,
    ) -> Result<Running, RuntimeError> {
        match self {
            Runtime::Wasm(rt) => {
                let ImageKind::Wasm { component_path } = &image.kind else {
                    return Err(RuntimeError::Unsupported {
                        image: image.reference.clone(),
                        why: "not a Wasm component".into(),
                    });
                };
                let comp = rt.load(&image.digest, component_path).await?;
                let deadline = match comp.world {
                    crate::wasm::ComponentWorld::Command => spec.run_deadline,
                    crate::wasm::ComponentWorld::HttpProxy => Some(spec.request_timeout),
                };
                let cfg = InstanceConfig {
                    env: spec.env,
                    args: spec.args,
                    preopens: spec
                        .mounts
                        .into_iter()
                        .map(|m| Preopen {
                            host_path: m.host_path,
                            guest_path: m.guest_path,
                            read_only: m.read_only,
                        })
                        .collect(),
                    working_dir: spec.working_dir,
                    memory_limit_bytes: spec.memory_limit_bytes,
                    cpu_limit_millis: spec.cpu_limit_millis,
                    deadline,
                    log: spec.log,
                };
                match comp.world {
                    crate::wasm::ComponentWorld::Command => {
                        Ok(Running::WasmCommand(rt.start_command(&comp, cfg).await?))
                    }
                    crate::wasm::ComponentWorld::HttpProxy => {
                        let ports: Vec<u16> = spec.listeners.iter().map(|(p, _)| *p).collect();
                        let listeners: Vec<std::net::TcpListener> =
                            spec.listeners.into_iter().map(|(_, l)| l).collect();
                        if listeners.is_empty() {
                            return Err(RuntimeError::Port(
                                "an HTTP component needs at least one containerPort to serve on"
                                    .into(),
                            ));
                        }
                        let server = rt.serve_http(&comp, cfg, listeners).await?;
                        let addrs = ports.into_iter().zip(server.local_addrs()).collect();
                        Ok(Running::WasmHttp(server, addrs))
                    }
                }
            }
        }
    }
}

/// The runtimes of a node, tried in order.
pub struct Runtimes(pub Vec<Runtime>);

impl Runtimes {
    pub fn for_image(&self, image: &PulledImage) -> Result<&Runtime, RuntimeError> {
        self.0.iter().find(|r| r.can_handle(image)).ok_or_else(|| RuntimeError::Unsupported {
            image: image.reference.clone(),
            why: match image.kind {
                ImageKind::Oci { .. } => "it is an OCI container image, and this node has no container runtime (containerd) set up".into(),
                ImageKind::Wasm { .. } => "this node has no Wasm runtime".into(),
            },
        })
    }
}

/// How a container ended, in Kubernetes' terms: (exit code, reason, message).
pub fn termination(reason: &ExitReason) -> (i32, &'static str, String) {
    match reason {
        ExitReason::Exited(0) => (0, "Completed", String::new()),
        ExitReason::Exited(code) => (*code, "Error", format!("exited with code {code}")),
        ExitReason::Trapped(msg) => (134, "Error", msg.clone()),
        ExitReason::OutOfMemory => (
            137,
            "OOMKilled",
            "the component exceeded its memory limit (resources.limits.memory)".into(),
        ),
        ExitReason::DeadlineExceeded => (
            137,
            "DeadlineExceeded",
            "the component ran past its deadline and was stopped".into(),
        ),
        ExitReason::Killed => (137, "Error", "stopped".into()),
        ExitReason::Container {
            oom: true, message, ..
        } => (137, "OOMKilled", message.clone()),
        ExitReason::Container {
            code: 0, message, ..
        } => (0, "Completed", message.clone()),
        ExitReason::Container { code, message, .. } => (*code, "Error", message.clone()),
    }
}
