//! containerd for container pods: a child process the agent starts and supervises (as k3s
//! does), or an existing one reached through `--containerd-socket`.
//!
//! A managed containerd gets everything under `<agent data dir>/containerd` (config, root,
//! state, socket, log) and the CNI config under `<agent data dir>/cni`, so several agents on
//! one machine never share state. It dies with the agent (parent-death signal) and is
//! restarted with backoff if it exits on its own.

pub mod config;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cri::CriClient;
pub use config::Layout;

/// How long a starting containerd may take to answer on its socket.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// First delay before restarting a containerd that exited; doubles up to the max.
pub const DEFAULT_RESTART_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long containerd gets to exit on SIGTERM before it is killed.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start containerd ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "containerd did not come up on {socket} within {timeout:?}: {detail}; its log is {log}"
    )]
    NotReady {
        socket: PathBuf,
        timeout: Duration,
        detail: String,
        log: PathBuf,
    },
    #[error("no CNI plugins found (looked in {dirs}); install containernetworking-plugins")]
    NoCniPlugins { dirs: String },
    #[error("{0}")]
    Cri(#[from] crate::cri::CriError),
}

/// How this node gets its containerd.
#[derive(Debug, Clone)]
pub enum ContainerdMode {
    /// Start `binary` with a generated config under the agent's data dir.
    Managed { binary: PathBuf },
    /// Use the containerd already listening on `socket`.
    External { socket: PathBuf },
}

impl ContainerdMode {
    /// `containerd` from PATH, when there is one.
    pub fn managed_from_path() -> Option<ContainerdMode> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("containerd"))
            .find(|p| p.is_file())
            .map(|binary| ContainerdMode::Managed { binary })
    }
}

/// What a managed containerd is configured with.
pub struct ManagedSettings<'a> {
    pub data_dir: &'a Path,
    pub sandbox_image: &'a str,
    /// The cluster image store's `host:port`, the CA that signs it and the node's token.
    pub registry_host: &'a str,
    pub ca_pem: &'a str,
    pub token: &'a str,
}

/// A containerd this agent can use.
pub struct Containerd {
    pub cri: CriClient,
    /// The runtime's version as it reported it (`containerd 1.6.20`).
    pub version: String,
    pub managed: bool,
    supervisor: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContainerdError + '_ {
    move |source| ContainerdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), ContainerdError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    std::io::Write::write_all(&mut f, contents).map_err(io_err(path))
}

/// Writes the config files of a managed containerd.
pub fn write_config(layout: &Layout, s: &ManagedSettings<'_>) -> Result<(), ContainerdError> {
    let cni_bin = config::find_cni_bin_dir().ok_or_else(|| ContainerdError::NoCniPlugins {
        dirs: config::CNI_BIN_DIRS.join(", "),
    })?;
    for d in [
        &layout.dir,
        &layout.root,
        &layout.state,
        &layout.cni_ipam_dir,
    ] {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let toml = config::containerd_toml(&config::ConfigInput {
        layout,
        sandbox_image: s.sandbox_image,
        cni_bin_dir: &cni_bin,
        systemd_cgroup: config::host_uses_systemd(),
    });
    write_private(&layout.config, toml.as_bytes())?;
    let ca_file = layout.dir.join("cluster-ca.crt");
    write_private(&ca_file, s.ca_pem.as_bytes())?;
    // Only the cluster store's host: other registries keep containerd's defaults.
    let _ = std::fs::remove_dir_all(&layout.certs_d);
    let hosts = config::registry_hosts_toml(s.registry_host, &ca_file, s.token);
    write_private(
        &layout.certs_d.join(s.registry_host).join("hosts.toml"),
        hosts.as_bytes(),
    )?;
    // The node's pod range is known once the Node is registered: until `write_cni_config`
    // runs, containerd has no network to give sandboxes (and says so).
    let _ = std::fs::remove_dir_all(&layout.cni_conf_dir);
    std::fs::create_dir_all(&layout.cni_conf_dir).map_err(io_err(&layout.cni_conf_dir))
}

/// Writes the CNI network for container pods with addresses from `pod_cidr` (the node's
/// `spec.podCIDR`); containerd picks it up as soon as it appears.
pub fn write_cni_config(
    layout: &Layout,
    pod_cidr: &str,
    gateway: &str,
) -> Result<(), ContainerdError> {
    let conflist = config::cni_conflist(pod_cidr, gateway, &layout.cni_ipam_dir);
    write_private(
        &layout
            .cni_conf_dir
            .join(format!("10-{}.conflist", config::NETWORK_NAME)),
        conflist.to_string().as_bytes(),
    )
}

fn spawn(binary: &Path, layout: &Layout) -> Result<Child, ContainerdError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&layout.log)
        .map_err(io_err(&layout.log))?;
    let mut cmd = Command::new(binary);
    cmd.arg("--config")
        .arg(&layout.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(false);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL this child when
    // the thread that spawned it (a runtime worker, alive as long as the agent) goes away, so
    // a killed agent never leaves its containerd behind.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| ContainerdError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })
}

/// Waits until the runtime answers `Version` on its socket.
async fn wait_ready(
    cri: &CriClient,
    log: &Path,
    timeout: Duration,
) -> Result<String, ContainerdError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    loop {
        if cri.socket.exists() {
            match cri.version(Default::default()).await {
                Ok(v) => return Ok(format!("{} {}", v.runtime_name, v.runtime_version)),
                Err(e) => last = e.to_string(),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ContainerdError::NotReady {
                socket: cri.socket.clone(),
                timeout,
                detail: last,
                log: log.to_path_buf(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(DEFAULT_STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Keeps a managed containerd running until shutdown: a containerd that exits is started
/// again after a growing delay.
async fn supervise(
    binary: PathBuf,
    layout: Layout,
    mut child: Child,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = DEFAULT_RESTART_BACKOFF;
    loop {
        tokio::select! {
            status = child.wait() => {
                tracing::error!(status = ?status.ok(), log = %layout.log.display(), "containerd exited; restarting it in {delay:?}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
                delay = (delay * 2).min(DEFAULT_RESTART_BACKOFF_MAX);
                match spawn(&binary, &layout) {
                    Ok(c) => {
                        child = c;
                        tracing::info!("containerd restarted");
                    }
                    Err(e) => tracing::error!(error = %e, "cannot restart containerd"),
                }
            }
            _ = shutdown.changed() => {
                stop_child(&mut child).await;
                return;
            }
        }
    }
}

impl Containerd {
    /// Starts a managed containerd with the config written by [`write_config`].
    pub async fn start_managed(
        binary: &Path,
        layout: &Layout,
    ) -> Result<Containerd, ContainerdError> {
        // A stale socket from a killed run would make the readiness check pass too early.
        let _ = std::fs::remove_file(&layout.socket);
        let mut child = spawn(binary, layout)?;
        let cri = CriClient::new(&layout.socket)?;
        let version = match wait_ready(&cri, &layout.log, DEFAULT_START_TIMEOUT).await {
            Ok(v) => v,
            Err(e) => {
                stop_child(&mut child).await;
                return Err(e);
            }
        };
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(supervise(binary.to_path_buf(), layout.clone(), child, rx));
        tracing::info!(%version, socket = %layout.socket.display(), "managed containerd running");
        Ok(Containerd {
            cri,
            version,
            managed: true,
            supervisor: Some((tx, task)),
        })
    }

    /// Connects to a containerd that is already running.
    pub async fn connect(socket: &Path) -> Result<Containerd, ContainerdError> {
        let cri = CriClient::new(socket)?;
        let version = wait_ready(&cri, socket, Duration::from_secs(5)).await?;
        tracing::info!(%version, socket = %socket.display(), "using containerd");
        Ok(Containerd {
            cri,
            version,
            managed: false,
            supervisor: None,
        })
    }

    /// Stops a managed containerd (an external one is left alone).
    pub async fn shutdown(&mut self) {
        if let Some((tx, task)) = self.supervisor.take() {
            let _ = tx.send(true);
            let _ = tokio::time::timeout(DEFAULT_STOP_TIMEOUT + Duration::from_secs(2), task).await;
        }
    }
}
