//! One container in a sandbox: CreateContainer + StartContainer from the pod spec, watching
//! for its exit (ContainerStatus), StopContainer with the grace period (SIGTERM, then
//! SIGKILL), RemoveContainer, and ExecSync for exec probes.

use std::time::Duration;

use k8s_openapi::api::core::v1::SecurityContext;

use super::sandbox::{namespace_options, Sandbox};
use super::{OciError, OciRuntime, LABEL_CONTAINER_NAME};
use crate::agent::volumes::Mount;
use crate::cri::{api, CriClient, CriError};

/// How often a running container's state is read to notice its exit. CRI v1 on containerd
/// 1.6 has no event stream, so the kubelet polls too (its PLEG relists every second).
pub const DEFAULT_EXIT_POLL: Duration = Duration::from_millis(500);
/// The CFS period CPU limits are expressed in (the kubelet's default, 100 ms).
const CPU_PERIOD_US: i64 = 100_000;
/// Annotation holding the restart count a container was started with.
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// What the agent asks for one container.
pub struct ContainerSpec {
    pub name: String,
    pub restart_count: i32,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub cpu_request_millis: Option<u64>,
    pub security: Option<SecurityContext>,
    pub share_process_namespace: bool,
    /// Relative to the sandbox's log directory.
    pub log_path: String,
}

/// How a container ended, from ContainerStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    pub code: i32,
    /// containerd's reason: `Completed`, `Error`, `OOMKilled`, …
    pub reason: String,
    pub message: String,
}

/// cpu.shares for a CPU request, as the kubelet computes them (min 2).
fn cpu_shares(request_millis: Option<u64>) -> i64 {
    match request_millis {
        Some(m) => ((m as i64) * 1024 / 1000).max(2),
        None => 2,
    }
}

fn security(spec: &ContainerSpec) -> Result<api::LinuxContainerSecurityContext, OciError> {
    let sc = spec.security.clone().unwrap_or_default();
    if sc.privileged == Some(true) {
        return Err(OciError::Spec(format!(
            "container {:?}: securityContext.privileged is not allowed on this node; privileged containers get full access to the host",
            spec.name
        )));
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    Ok(api::LinuxContainerSecurityContext {
        capabilities: Some(api::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..Default::default()
        }),
        namespace_options: Some(namespace_options(spec.share_process_namespace)),
        run_as_user: sc.run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: sc.run_as_group.map(|value| api::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem == Some(true),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        ..Default::default()
    })
}

/// The CRI config for `spec`.
pub fn config(spec: &ContainerSpec, sandbox: &Sandbox) -> Result<api::ContainerConfig, OciError> {
    let mut labels = sandbox.config.labels.clone();
    labels.insert(LABEL_CONTAINER_NAME.into(), spec.name.clone());
    let resources = api::LinuxContainerResources {
        cpu_period: if spec.cpu_limit_millis.is_some() {
            CPU_PERIOD_US
        } else {
            0
        },
        cpu_quota: spec
            .cpu_limit_millis
            .map(|m| ((m as i64) * CPU_PERIOD_US / 1000).max(1000))
            .unwrap_or(0),
        cpu_shares: cpu_shares(spec.cpu_request_millis.or(spec.cpu_limit_millis)),
        memory_limit_in_bytes: spec.memory_limit_bytes.map(|b| b as i64).unwrap_or(0),
        ..Default::default()
    };
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: spec.name.clone(),
            attempt: spec.restart_count.max(0) as u32,
        }),
        image: Some(api::ImageSpec {
            image: spec.image.clone(),
            ..Default::default()
        }),
        command: spec.command.clone(),
        args: spec.args.clone(),
        working_dir: spec.working_dir.clone(),
        envs: spec
            .env
            .iter()
            .map(|(key, value)| api::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: spec
            .mounts
            .iter()
            .map(|m| api::Mount {
                container_path: m.guest_path.clone(),
                host_path: m.host_path.to_string_lossy().into_owned(),
                readonly: m.read_only,
                ..Default::default()
            })
            .collect(),
        labels,
        annotations: [(
            ANNOTATION_RESTART_COUNT.to_string(),
            spec.restart_count.to_string(),
        )]
        .into(),
        log_path: spec.log_path.clone(),
        stdin: spec.stdin,
        stdin_once: spec.stdin_once,
        tty: spec.tty,
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(security(spec)?),
        }),
        ..Default::default()
    })
}

/// Where a create or start failed: the kubelet's `CreateContainerError` or
/// `RunContainerError`, with containerd's message.
#[derive(Debug)]
pub enum StartFailure {
    Create(String),
    Run(String),
}

impl OciRuntime {
    /// Creates and starts a container in `sandbox`.
    pub async fn start_container(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<ContainerHandle, StartFailure> {
        let cfg = config(spec, sandbox).map_err(|e| StartFailure::Create(e.to_string()))?;
        let created = self
            .cri
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(cfg),
                sandbox_config: Some(sandbox.config.clone()),
            })
            .await
            .map_err(|e| StartFailure::Create(e.to_string()))?;
        let id = created.container_id;
        if let Err(e) = self
            .cri
            .start_container(api::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            remove_container(&self.cri, &id).await;
            return Err(StartFailure::Run(e.to_string()));
        }
        Ok(ContainerHandle {
            cri: self.cri.clone(),
            id,
        })
    }
}

/// Removes a container, logging failures other than "already gone".
pub async fn remove_container(cri: &CriClient, id: &str) {
    let r = cri
        .remove_container(api::RemoveContainerRequest {
            container_id: id.to_string(),
        })
        .await;
    if let Some(e) = r.as_ref().err().filter(|e| !e.is_not_found()) {
        tracing::warn!(container = id, error = %e, "RemoveContainer failed");
    }
}

/// A started container.
#[derive(Clone)]
pub struct ContainerHandle {
    pub cri: CriClient,
    pub id: String,
}

impl ContainerHandle {
    /// The container's exit, if it has exited.
    pub async fn exited(&self) -> Result<Option<ContainerExit>, CriError> {
        let st = self
            .cri
            .container_status(api::ContainerStatusRequest {
                container_id: self.id.clone(),
                verbose: false,
            })
            .await?;
        let Some(s) = st.status else {
            return Ok(None);
        };
        if s.state != api::ContainerState::ContainerExited as i32 {
            return Ok(None);
        }
        Ok(Some(ContainerExit {
            code: s.exit_code,
            reason: if s.reason.is_empty() {
                if s.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_string()
            } else {
                s.reason
            },
            message: s.message,
        }))
    }

    /// Waits for the container to exit (polling), then removes it. A container that vanished
    /// (removed behind the agent's back) counts as killed.
    pub async fn wait(&self) -> ContainerExit {
        loop {
            match self.exited().await {
                Ok(Some(exit)) => {
                    remove_container(&self.cri, &self.id).await;
                    return exit;
                }
                Ok(None) => {}
                Err(e) if e.is_not_found() => {
                    return ContainerExit {
                        code: 137,
                        reason: "Error".into(),
                        message: "the container was removed from containerd".into(),
                    }
                }
                Err(e) => {
                    tracing::debug!(container = %self.id, error = %e, "ContainerStatus failed; retrying")
                }
            }
            tokio::time::sleep(DEFAULT_EXIT_POLL).await;
        }
    }

    /// StopContainer: SIGTERM (or the image's stop signal), SIGKILL after `grace`.
    pub async fn stop(&self, grace: Duration) {
        if let Err(e) = self
            .cri
            .stop_container(&self.id, grace.as_secs() as i64)
            .await
        {
            if !e.is_not_found() {
                tracing::warn!(container = %self.id, error = %e, "StopContainer failed");
            }
        }
    }

    /// Runs an exec probe's command: Ok on exit code 0, else the failure as the kubelet
    /// words it.
    pub async fn exec_probe(&self, cmd: Vec<String>, timeout: Duration) -> Result<(), String> {
        match self.cri.exec_sync(&self.id, cmd.clone(), timeout).await {
            Ok(r) if r.exit_code == 0 => Ok(()),
            Ok(r) => {
                let out = String::from_utf8_lossy(&r.stdout).trim().to_string();
                Err(format!(
                    "command {cmd:?} exited with {}: {out}",
                    r.exit_code
                ))
            }
            Err(e) => Err(format!("command {cmd:?} failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "app".into(),
            restart_count: 2,
            image: "127.0.0.1:6443/busybox:1.35".into(),
            command: vec!["sh".into()],
            args: vec!["-c".into(), "echo hi".into()],
            working_dir: String::new(),
            env: vec![("A".into(), "1".into())],
            mounts: vec![],
            stdin: false,
            stdin_once: false,
            tty: false,
            memory_limit_bytes: Some(64 << 20),
            cpu_limit_millis: Some(500),
            cpu_request_millis: Some(250),
            security: None,
            share_process_namespace: false,
            log_path: "app/2.log".into(),
        }
    }

    fn sandbox() -> Sandbox {
        Sandbox {
            id: "sb".into(),
            ip: Some("10.42.0.5".into()),
            netns: None,
            config: api::PodSandboxConfig::default(),
        }
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let c = config(&spec(), &sandbox()).expect("config");
        let r = c.linux.and_then(|l| l.resources).expect("resources");
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(c.metadata.map(|m| m.attempt), Some(2));
        assert_eq!(c.log_path, "app/2.log");
        assert_eq!(c.labels[LABEL_CONTAINER_NAME], "app");
    }

    #[test]
    fn privileged_is_refused() {
        let mut s = spec();
        s.security = Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        });
        let e = config(&s, &sandbox()).expect_err("refused");
        assert!(e.to_string().contains("privileged"));
    }
}
