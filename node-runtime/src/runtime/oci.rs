//! The container arm of the runtime seam: images pulled through CRI, containers created and
//! started in the pod's CRI sandbox with the container's command, env, mounts, cgroup limits
//! and effective security context (pod-level settings merged in, `runAsNonRoot` checked against
//! the image's user), their log where the agent's log reader looks for it.

use super::{Image, PullFailure, Running, StartError, StartSpec};
use crate::images::pullsecrets::Credentials;
use crate::images::PullPolicy;
use crate::oci::container::StartFailure;
use crate::oci::{hooks, ContainerSpec, OciError, OciImage, OciRuntime};

pub(super) async fn pull(
    oci: &OciRuntime,
    reference: &str,
    policy: PullPolicy,
    credentials: Option<Credentials>,
) -> Result<Image, PullFailure> {
    match oci.ensure_image(reference, policy, credentials).await {
        Ok(img) => Ok(Image::Oci(img)),
        Err(OciError::NeverPull { reference }) => Err(PullFailure {
            never: true,
            message: format!(
                "Container image \"{reference}\" is not present with pull policy of Never"
            ),
        }),
        Err(e) => Err(PullFailure {
            never: false,
            message: e.to_string(),
        }),
    }
}

pub(super) async fn start(
    oci: &OciRuntime,
    image: &OciImage,
    spec: StartSpec<'_>,
) -> Result<Running, StartError> {
    let sandbox = spec.sandbox.ok_or_else(|| {
        StartError::create("a Linux container needs its pod's sandbox, and there is none")
    })?;
    let c = spec.container;
    let pod_spec = spec.pod.spec.as_ref();
    let security = hooks::effective_security(
        c.security_context.as_ref(),
        pod_spec.and_then(|s| s.security_context.as_ref()),
    );
    hooks::check_non_root(&security, image, &c.name).map_err(StartError::config)?;
    let log_rel = spec.log_relative();
    if let Some(parent) = spec.pod_dir.join("logs").join(&log_rel).parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StartError::create(format!("cannot create {}: {e}", parent.display())))?;
    }
    let cspec = ContainerSpec {
        name: c.name.clone(),
        restart_count: spec.restart_count,
        image: image.cri_ref.clone(),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        env: spec.env.clone(),
        mounts: spec.mounts.clone(),
        stdin: c.stdin == Some(true),
        stdin_once: c.stdin_once == Some(true),
        tty: c.tty == Some(true),
        memory_limit_bytes: spec.memory_limit_bytes(),
        cpu_limit_millis: spec.cpu_limit_millis(),
        cpu_request_millis: spec.cpu_request_millis(),
        security: Some(security),
        share_process_namespace: pod_spec.and_then(|s| s.share_process_namespace) == Some(true),
        log_path: log_rel,
    };
    let handle = oci
        .start_container(sandbox, &cspec)
        .await
        .map_err(|f| match f {
            StartFailure::Create(m) => StartError::create(m),
            StartFailure::Run(m) => StartError {
                reason: "RunContainerError",
                message: m,
            },
        })?;
    let addrs = crate::oci::sandbox::port_addrs(sandbox.ip.as_deref(), c);
    Ok(Running::Oci(Box::new(handle), addrs))
}
