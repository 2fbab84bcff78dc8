//! Container lifecycle hooks and the pod-level security settings a container inherits:
//! `postStart` and `preStop` handlers (exec through CRI, httpGet against the pod IP, sleep),
//! the effective securityContext (pod-level runAsUser/runAsGroup/runAsNonRoot merged under the
//! container's own), and the kubelet's `runAsNonRoot` check against the image's user.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, PodSecurityContext, Probe, SecurityContext};

use super::{ContainerHandle, OciImage};

/// How long a hook may run when nothing else bounds it (the kubelet's preStop default is
/// the grace period; postStart has none, so this keeps a stuck hook from stalling the pod).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one lifecycle handler for the container (`container`: its CRI handle, for exec
/// handlers); Err is the failure as the kubelet words it.
pub async fn run(
    handler: &LifecycleHandler,
    container: Option<&ContainerHandle>,
    pod_ip: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let Some(container) = container else {
            return Err("exec hooks run commands in a Linux container; a Wasm component has none (use httpGet or sleep)".into());
        };
        let cmd = exec.command.clone().unwrap_or_default();
        return container.exec_probe(cmd, timeout).await;
    }
    if let Some(http) = &handler.http_get {
        let port = match &http.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => {
                u16::try_from(*p).map_err(|_| format!("httpGet port {p} is out of range"))?
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                return Err(format!(
                    "httpGet hook port {name:?}: use the port number (named ports are resolved for probes only)"
                ))
            }
        };
        let ip = pod_ip.ok_or("the pod has no IP to send the httpGet hook to")?;
        let probe = Probe {
            http_get: Some(http.clone()),
            timeout_seconds: Some(timeout.as_secs().max(1) as i32),
            ..Default::default()
        };
        return crate::agent::probes::run(&probe, std::net::SocketAddr::new(ip, port)).await;
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    Err("the lifecycle handler has no exec, httpGet or sleep action".into())
}

/// The container's securityContext with the pod's runAsUser, runAsGroup and runAsNonRoot
/// filled in where the container does not set them (as the kubelet merges them).
pub fn effective_security(
    container: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
) -> SecurityContext {
    let mut sc = container.cloned().unwrap_or_default();
    if let Some(p) = pod {
        sc.run_as_user = sc.run_as_user.or(p.run_as_user);
        sc.run_as_group = sc.run_as_group.or(p.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(p.run_as_non_root);
    }
    sc
}

/// The kubelet's `runAsNonRoot` check: Err (for CreateContainerConfigError) when the container
/// would run as root, or its image's user cannot be verified as non-root.
pub fn check_non_root(
    sc: &SecurityContext,
    image: &OciImage,
    container: &str,
) -> Result<(), String> {
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let uid = match sc.run_as_user {
        Some(u) => Some(u),
        None => match (image.uid, image.username.as_str()) {
            (Some(u), _) => Some(u),
            (None, "") | (None, "root") => Some(0),
            (None, name) => {
                return Err(format!(
                    "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root (container: {container})"
                ))
            }
        },
    };
    if uid == Some(0) {
        return Err(format!(
            "container has runAsNonRoot and image will run as root (container: {container})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(uid: Option<i64>, username: &str) -> OciImage {
        OciImage {
            cri_ref: "x".into(),
            id: "sha256:x".into(),
            uid,
            username: username.into(),
        }
    }

    #[test]
    fn non_root_check_follows_the_kubelet() {
        let sc = SecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        };
        assert!(check_non_root(&sc, &image(None, ""), "c")
            .unwrap_err()
            .contains("will run as root"));
        assert!(check_non_root(&sc, &image(Some(1000), ""), "c").is_ok());
        assert!(check_non_root(&sc, &image(None, "app"), "c")
            .unwrap_err()
            .contains("non-numeric"));
        let with_user = SecurityContext {
            run_as_user: Some(1000),
            ..sc.clone()
        };
        assert!(check_non_root(&with_user, &image(None, ""), "c").is_ok());
        assert!(check_non_root(&SecurityContext::default(), &image(None, ""), "c").is_ok());
    }

    #[test]
    fn pod_settings_fill_in() {
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            run_as_non_root: Some(true),
            ..Default::default()
        };
        let c = SecurityContext {
            run_as_user: Some(2000),
            ..Default::default()
        };
        let e = effective_security(Some(&c), Some(&pod));
        assert_eq!(e.run_as_user, Some(2000));
        assert_eq!(e.run_as_non_root, Some(true));
    }
}
