//! The Wasm arm of the runtime seam: images from the node's image store (Wasm OCI artifacts),
//! components started on wasmtime — `wasi:cli` commands run to completion, `wasi:http`
//! components served on each containerPort (8080 when none is declared) on the pod's address,
//! in the pod's sandbox namespace when it has Linux containers too, and on the node address
//! for a hostPort — with the container's env, preopened volumes, workingDir,
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
use crate::wasm::{ClusterResolver, ComponentWorld, Egress, InstanceConfig, Preopen, WasmRuntime};

/// The port an HTTP component that declares no containerPort serves on (and gets as `PORT`),
/// as Knative and Cloud Run do, so `kubectl run --image=<component>` just works.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Pod annotation overriding the per-request deadline of HTTP components (seconds).
pub const REQUEST_TIMEOUT_ANNOTATION: &str = "skiff.dev/request-timeout";

/// wasmtime on this node, with the image store its components come from.
pub struct WasmNode {
    pub engine: WasmRuntime,
    pub puller: Arc<ImagePuller>,
    /// hostPorts bind on this address.
    pub node_ip: IpAddr,
    /// Cluster names for the guests' outgoing requests (the node's DNS zone).
    pub resolver: Option<Arc<dyn ClusterResolver>>,
    /// The running containers' usage (the stats endpoint reads it).
    pub usage: crate::wasm::UsageRegistry,
    /// The images whose components are loaded here (reported for the scheduler).
    pub warm: crate::agent::warm_images::WarmImages,
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

    /// The ports an HTTP component serves: its TCP containerPorts (with their hostPorts), or
    /// [`DEFAULT_HTTP_PORT`] when it declares none.
    fn http_ports(spec: &StartSpec<'_>) -> Vec<(u16, Option<u16>)> {
        let mut ports: Vec<(u16, Option<u16>)> = spec
            .container
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| {
                let cport = u16::try_from(p.container_port).ok()?;
                let host = p
                    .host_port
                    .filter(|h| *h > 0)
                    .and_then(|h| u16::try_from(h).ok());
                Some((cport, host))
            })
            .collect();
        if ports.is_empty() {
            ports.push((DEFAULT_HTTP_PORT, None));
        }
        ports
    }

    /// Binds each port the component serves: in the pod's sandbox namespace when the pod has
    /// Linux containers too (all its addresses, `localhost` included; hostPorts are the
    /// sandbox's port mappings), else on the pod's address on the node bridge, else (no pod
    /// network) on an ephemeral loopback port; a hostPort also on the node address.
    fn listeners(
        &self,
        spec: &StartSpec<'_>,
    ) -> Result<Vec<(u16, std::net::TcpListener)>, StartError> {
        let ports = Self::http_ports(spec);
        if let Some(netns) = spec.sandbox.and_then(|s| s.netns.as_deref()) {
            let addrs: Vec<SocketAddr> = ports
                .iter()
                .map(|(p, _)| SocketAddr::from(([0, 0, 0, 0], *p)))
                .collect();
            let bound = crate::network::netns::bind_tcp(netns, addrs).map_err(|e| {
                let list: Vec<String> = ports.iter().map(|(p, _)| p.to_string()).collect();
                StartError::create(format!(
                    "cannot bind ports {} in the pod's network namespace: {e}",
                    list.join(", ")
                ))
            })?;
            return Ok(ports.iter().map(|(p, _)| *p).zip(bound).collect());
        }
        let bind = |addr: SocketAddr, cport: u16| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .map_err(|e| {
                    StartError::create(format!(
                        "cannot bind port {addr} for containerPort {cport}: {e}"
                    ))
                })
        };
        let mut listeners = Vec::new();
        for (cport, host) in ports {
            match spec.pod_ip {
                Some(ip) => listeners.push((cport, bind(SocketAddr::new(ip, cport), cport)?)),
                None if host.is_none() => {
                    listeners.push((cport, bind(SocketAddr::from(([127, 0, 0, 1], 0)), cport)?))
                }
                None => {}
            }
            if let Some(h) = host {
                listeners.push((cport, bind(SocketAddr::new(self.node_ip, h), cport)?));
            }
        }
        Ok(listeners)
    }

    /// The pod's outgoing side: from its sandbox namespace, else from its own address, with
    /// cluster names resolved by the node's zone. `None` on a node without a pod network.
    fn egress(&self, spec: &StartSpec<'_>) -> Option<Arc<Egress>> {
        let netns = spec.sandbox.and_then(|s| s.netns.clone());
        if netns.is_none() && spec.pod_ip.is_none() {
            return None;
        }
        Some(Arc::new(Egress {
            source: if netns.is_some() { None } else { spec.pod_ip },
            netns,
            namespace: spec.pod.metadata.namespace.clone().unwrap_or_default(),
            resolver: self.resolver.clone(),
        }))
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
        let was_loaded = self.engine.is_loaded(&image.digest);
        let loading = std::time::Instant::now();
        let comp = self
            .engine
            .load(&image.digest, component_path)
            .await
            .map_err(|e| StartError::create(e.to_string()))?;
        let stage = match (was_loaded, comp.source) {
            (true, _) => crate::metrics::Stage::Warm,
            (false, crate::wasm::LoadSource::Compiled) => crate::metrics::Stage::Compile,
            (false, crate::wasm::LoadSource::DiskCache) => crate::metrics::Stage::DiskCache,
        };
        crate::metrics::observe(stage, loading.elapsed());
        let size = tokio::fs::metadata(component_path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        self.warm.used(&image.reference, size);
        let listeners = match comp.world {
            ComponentWorld::HttpProxy => self.listeners(&spec)?,
            ComponentWorld::Command => Vec::new(),
        };
        let mut env = spec.env.clone();
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            // What a Linux container's hostname is: the pod's.
            env.push((
                "HOSTNAME".to_string(),
                crate::oci::sandbox::hostname(spec.pod),
            ));
        }
        if comp.world == ComponentWorld::HttpProxy && !env.iter().any(|(k, _)| k == "PORT") {
            // As Knative and Cloud Run do: the port the component is reached on.
            let port = Self::http_ports(&spec)[0].0;
            env.push(("PORT".to_string(), port.to_string()));
        }
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
            env,
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
            egress: self.egress(&spec),
            usage: self.usage.register(crate::wasm::ContainerRef {
                namespace: spec.pod.metadata.namespace.clone().unwrap_or_default(),
                pod: spec.pod.metadata.name.clone().unwrap_or_default(),
                pod_uid: spec.pod.metadata.uid.clone().unwrap_or_default(),
                container: c.name.clone(),
            }),
        };
        let started = match comp.world {
            ComponentWorld::Command => self
                .engine
                .start_command(&comp, cfg)
                .await
                .map(Running::WasmCommand),
            ComponentWorld::HttpProxy => {
                let ports: Vec<u16> = listeners.iter().map(|(p, _)| *p).collect();
                let sockets = listeners.into_iter().map(|(_, l)| l).collect();
                // Listeners inside a mixed pod's sandbox are reached (probes, Services) on the
                // sandbox's address, not the wildcard they are bound to.
                let sandbox_ip = spec
                    .sandbox
                    .filter(|s| s.netns.is_some())
                    .and_then(|s| s.ip.as_deref())
                    .and_then(|ip| ip.parse::<IpAddr>().ok());
                self.engine
                    .serve_http(&comp, cfg, sockets)
                    .await
                    .map(|server| {
                        let addrs = ports
                            .into_iter()
                            .zip(server.local_addrs())
                            .map(|(p, a)| match sandbox_ip {
                                Some(ip) => (p, SocketAddr::new(ip, a.port())),
                                None => (p, a),
                            })
                            .collect();
                        Running::WasmHttp(server, addrs)
                    })
            }
        };
        started.map_err(|e| StartError::create(e.to_string()))
    }
}
