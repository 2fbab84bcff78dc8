//! The Wasm arm of the runtime seam: images from the node's image store (Wasm OCI artifacts),
//! components started on wasmtime — `wasi:cli` commands run to completion, `wasi:http`
//! components served on each containerPort (the hostPort on the node address, else an
//! ephemeral loopback port) — with the container's env, preopened volumes, workingDir,
//! memory and CPU limits, deadlines and log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::{Image, PullFailure, Running, StartError, StartSpec};
use crate::agent::config::DEFAULT_REQUEST_TIMEOUT;
use crate::agent::workdir;
use crate::images::pullsecrets::Credentials;
use crate::images::{ImageKind, ImagePuller, PullError, PullPolicy, PulledImage};
use crate::logs::{ContainerLog, DEFAULT_MAX_LOG_BYTES};
use crate::wasm::{ComponentWorld, InstanceConfig, Preopen, WasmRuntime};

/// Pod annotation overriding the per-request deadline of HTTP components (seconds).
pub const REQUEST_TIMEOUT_ANNOTATION: &str = "skiff.dev/request-timeout";

/// wasmtime on this node, with the image store its components come from.
pub struct WasmNode {
    pub engine: WasmRuntime,
    pub puller: Arc<ImagePuller>,
    /// hostPorts bind on this address.
    pub node_ip: IpAddr,
}

impl WasmNode {
    pub(super) async fn pull(
        &self,
        reference: &str,
        policy: PullPolicy,
        credentials: Option<Credentials>,
    ) -> Result<Image, PullFailure> {
        self.puller
            .pull_with(reference, policy, credentials)
            .await
            .map(Image::Wasm)
            .map_err(|e| PullFailure {
                never: matches!(e, PullError::NotPresent { .. }),
                message: e.to_string(),
            })
    }

    /// Binds each containerPort: on the node address at its hostPort, else on an ephemeral
    /// loopback port.
    fn listeners(
        &self,
        spec: &StartSpec<'_>,
    ) -> Result<Vec<(u16, std::net::TcpListener)>, StartError> {
        let mut listeners = Vec::new();
        for p in spec.container.ports.iter().flatten() {
            let Ok(cport) = u16::try_from(p.container_port) else {
                continue;
            };
            let addr = match p
                .host_port
                .filter(|h| *h > 0)
                .and_then(|h| u16::try_from(h).ok())
            {
                Some(h) => SocketAddr::new(self.node_ip, h),
                None => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let l = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .map_err(|e| {
                    StartError::create(format!(
                        "cannot bind port {addr} for containerPort {cport}: {e}"
                    ))
                })?;
            listeners.push((cport, l));
        }
        Ok(listeners)
    }

    pub(super) async fn start(
        &self,
        image: &PulledImage,
        spec: StartSpec<'_>,
    ) -> Result<Running, StartError> {
        let ImageKind::Wasm { component_path } = &image.kind else {
            return Err(StartError::create(format!(
                "image {:?} is an OCI container image, which runs through containerd, not wasmtime",
                image.reference
            )));
        };
        let c = spec.container;
        let mut mounts = spec.mounts.clone();
        let extra = workdir::mounts(c, &mounts, spec.pod_dir)
            .map_err(|e| StartError::config(e.to_string()))?;
        mounts.extend(extra);
        let comp = self
            .engine
            .load(&image.digest, component_path)
            .await
            .map_err(|e| StartError::create(e.to_string()))?;
        let listeners = match comp.world {
            ComponentWorld::HttpProxy => self.listeners(&spec)?,
            ComponentWorld::Command => Vec::new(),
        };
        let log_path = spec.pod_dir.join("logs").join(spec.log_relative());
        let log = ContainerLog::open(log_path, DEFAULT_MAX_LOG_BYTES)
            .map_err(|e| StartError::create(format!("cannot open the container log: {e}")))?;
        let request_timeout = spec
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUEST_TIMEOUT_ANNOTATION))
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let mut args: Vec<String> = vec![c.name.clone()];
        args.extend(c.command.iter().flatten().skip(1).cloned());
        args.extend(c.args.iter().flatten().cloned());
        let cfg = InstanceConfig {
            env: spec.env.clone(),
            args,
            preopens: mounts
                .into_iter()
                .map(|m| Preopen {
                    host_path: m.host_path,
                    guest_path: m.guest_path,
                    read_only: m.read_only,
                })
                .collect(),
            working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
            memory_limit_bytes: spec.memory_limit_bytes(),
            cpu_limit_millis: spec.cpu_limit_millis(),
            deadline: match comp.world {
                ComponentWorld::Command => spec.run_deadline,
                ComponentWorld::HttpProxy => Some(request_timeout),
            },
            log,
        };
        let started = match comp.world {
            ComponentWorld::Command => self
                .engine
                .start_command(&comp, cfg)
                .await
                .map(Running::WasmCommand),
            ComponentWorld::HttpProxy => {
                if listeners.is_empty() {
                    return Err(StartError::create(
                        "an HTTP component needs at least one containerPort to serve on",
                    ));
                }
                let ports: Vec<u16> = listeners.iter().map(|(p, _)| *p).collect();
                let sockets = listeners.into_iter().map(|(_, l)| l).collect();
                self.engine
                    .serve_http(&comp, cfg, sockets)
                    .await
                    .map(|server| {
                        let addrs = ports.into_iter().zip(server.local_addrs()).collect();
                        Running::WasmHttp(server, addrs)
                    })
            }
        };
        started.map_err(|e| StartError::create(e.to_string()))
    }
}
