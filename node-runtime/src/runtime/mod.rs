//! The pod-level runtime seam: one small interface, dispatched by enum, over the two ways a
//! node runs a container — a WebAssembly component on wasmtime ([`wasm`]) or a Linux container
//! through containerd's CRI ([`oci`]). A pod's worker decides each container's
//! [`RuntimeKind`], gets the pod's sandbox when the kind needs one (a CRI sandbox: network
//! namespace, pause process), then asks the runtime for the image ([`Runtime::present`],
//! [`Runtime::pull`]) and to start the container in the sandbox ([`Runtime::start`]). What
//! comes back, [`Running`], is watched the same way for both.

mod oci;
mod wasm;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::agent::volumes::Mount;
use crate::images::pullsecrets::Credentials;
use crate::images::{PullPolicy, PulledImage};
use crate::oci::{OciImage, OciRuntime, Sandbox};
use crate::wasm::{CommandHandle, ExitReason, HttpServer};

pub use wasm::{WasmNode, DEFAULT_HTTP_PORT, REQUEST_TIMEOUT_ANNOTATION};

/// Which runtime runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// A Wasm component on wasmtime: no sandbox of its own, the node's network.
    Wasm,
    /// A Linux container through containerd, in the pod's CRI sandbox.
    Oci,
}

impl RuntimeKind {
    /// Whether containers of this kind run in a CRI pod sandbox.
    pub fn needs_sandbox(self) -> bool {
        self == RuntimeKind::Oci
    }
}

/// A container image ready for its runtime.
#[derive(Debug, Clone)]
pub enum Image {
    Wasm(PulledImage),
    Oci(OciImage),
}

impl Image {
    /// What `status.containerStatuses[].imageID` shows.
    pub fn id(&self) -> &str {
        match self {
            Image::Wasm(i) => &i.digest,
            Image::Oci(i) => &i.id,
        }
    }
}

/// A pull that failed: `never` when the image is absent and its policy forbids pulling
/// (`ErrImageNeverPull`), else a message for `ErrImagePull`.
#[derive(Debug)]
pub struct PullFailure {
    pub never: bool,
    pub message: String,
}

/// Why a container did not start, in the kubelet's terms: `reason` is the waiting reason
/// (`CreateContainerConfigError`, `CreateContainerError`, `RunContainerError`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub reason: &'static str,
    pub message: String,
}

impl StartError {
    pub fn create(message: impl Into<String>) -> Self {
        StartError {
            reason: "CreateContainerError",
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        StartError {
            reason: "CreateContainerConfigError",
            message: message.into(),
        }
    }
}

/// Everything a runtime needs to start one container of a pod; each runtime takes from the
/// container spec what applies to it (command and args, ports, limits, security context).
pub struct StartSpec<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// Which run this is (0 first): names the log file and the CRI attempt.
    pub restart_count: i32,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    /// The pod's directory on the node (logs, volumes).
    pub pod_dir: &'a Path,
    /// The pod's CRI sandbox: for Linux containers, and for the Wasm containers of a pod that
    /// has Linux ones too (they listen in its network namespace).
    pub sandbox: Option<&'a Sandbox>,
    /// The pod's own address, when the node has a pod network.
    pub pod_ip: Option<std::net::IpAddr>,
    /// What is left of the pod's `activeDeadlineSeconds`.
    pub run_deadline: Option<Duration>,
}

impl StartSpec<'_> {
    /// The container's log file for this run: `logs/<container>/<restart>.log`.
    pub fn log_relative(&self) -> String {
        format!("{}/{}.log", self.container.name, self.restart_count)
    }

    fn limit(&self, which: &str, name: &str) -> Option<String> {
        let r = self.container.resources.as_ref()?;
        let m = if which == "limits" {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        };
        m.and_then(|m| m.get(name)).map(|q| q.0.clone())
    }

    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.limit("limits", "memory")
            .and_then(|q| memory_bytes(&q))
    }

    pub fn cpu_limit_millis(&self) -> Option<u64> {
        self.limit("limits", "cpu").and_then(|q| cpu_millis(&q))
    }

    pub fn cpu_request_millis(&self) -> Option<u64> {
        self.limit("requests", "cpu").and_then(|q| cpu_millis(&q))
    }
}

/// The node's runtimes.
pub enum Runtime {
    Wasm(WasmNode),
    Oci(OciRuntime),
}

/// A started container.
pub enum Running {
    WasmCommand(CommandHandle),
    WasmHttp(HttpServer, Vec<(u16, SocketAddr)>),
    /// A Linux container in the pod's sandbox; its ports are reached on the pod IP.
    Oci(Box<crate::oci::ContainerHandle>, Vec<(u16, SocketAddr)>),
}

impl Runtime {
    pub fn kind(&self) -> RuntimeKind {
        match self {
            Runtime::Wasm(_) => RuntimeKind::Wasm,
            Runtime::Oci(_) => RuntimeKind::Oci,
        }
    }

    /// The image for `reference` if the node already has it (no network): the fast path for
    /// `IfNotPresent`/`Never`.
    pub async fn present(&self, reference: &str) -> Option<Image> {
        match self {
            Runtime::Wasm(w) => w.puller.present(reference).await.map(Image::Wasm),
            Runtime::Oci(o) => o.present(reference).await.map(Image::Oci),
        }
    }

    /// Makes `reference` available as `policy` says, with the pod's pull credentials.
    pub async fn pull(
        &self,
        reference: &str,
        policy: PullPolicy,
        credentials: Option<Credentials>,
    ) -> Result<Image, PullFailure> {
        match self {
            Runtime::Wasm(w) => w.pull(reference, policy, credentials).await,
            Runtime::Oci(o) => oci::pull(o, reference, policy, credentials).await,
        }
    }

    /// Starts the container `spec` describes from `image`.
    pub async fn start(&self, image: &Image, spec: StartSpec<'_>) -> Result<Running, StartError> {
        match (self, image) {
            (Runtime::Wasm(w), Image::Wasm(img)) => w.start(img, spec).await,
            (Runtime::Oci(o), Image::Oci(img)) => oci::start(o, img, spec).await,
            _ => Err(StartError::create(format!(
                "image {:?} is not for the {:?} runtime",
                spec.container.image.as_deref().unwrap_or(""),
                self.kind()
            ))),
        }
    }
}

/// The runtimes of a node: wasmtime always, containerd when the node has it.
pub struct Runtimes {
    pub wasm: Runtime,
    pub oci: Option<Runtime>,
}

impl Runtimes {
    /// The runtime for `kind`, or why this node has none.
    pub fn get(&self, kind: RuntimeKind) -> Result<&Runtime, StartError> {
        match kind {
            RuntimeKind::Wasm => Ok(&self.wasm),
            RuntimeKind::Oci => self.oci.as_ref().ok_or_else(|| StartError::create(
                "this node has no container runtime: its agent runs without containerd (install containerd, or give the pod runtimeClassName: oci so it is scheduled to a node that has it)",
            )),
        }
    }

    /// containerd through CRI, when the node has it.
    pub fn cri(&self) -> Option<&OciRuntime> {
        match &self.oci {
            Some(Runtime::Oci(o)) => Some(o),
            _ => None,
        }
    }
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
