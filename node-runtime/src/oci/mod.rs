//! Container (OCI) pods through containerd's CRI, as the kubelet's runtime manager does it:
//! a pod sandbox first (its network namespace and IP through CNI, the pause process), then
//! the pod's containers in it. This module and [`crate::cri`] are the only code that speaks
//! CRI.
//!
//! - [`sandbox`]: RunPodSandbox / StopPodSandbox / RemovePodSandbox and the sandbox config.
//! - [`container`]: Create/Start/Stop/Remove container, exit watching, exec probes.
//! - [`pause`]: the sandbox image, built from this repo and served by the cluster store.

pub mod container;
pub mod dns;
pub mod hooks;
pub mod pause;
pub mod sandbox;

use crate::cri::{api, CriClient, CriError};
use crate::images::pullsecrets::Credentials;
use crate::images::{ImageRef, PullPolicy};

pub use container::{ContainerExit, ContainerHandle, ContainerSpec};
pub use sandbox::Sandbox;

/// Labels on every sandbox and container the agent creates: which agent owns it and which
/// pod it belongs to (what a restarted agent finds them by).
pub const LABEL_MANAGED_BY: &str = "skiff.dev/node";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{0}")]
    Cri(#[from] CriError),
    #[error("{0}")]
    Image(#[from] crate::images::PullError),
    #[error("container image {reference:?} is not present on this node and its imagePullPolicy is Never")]
    NeverPull { reference: String },
    #[error("{0}")]
    Spec(String),
}

/// containerd through CRI, for one node.
#[derive(Clone)]
pub struct OciRuntime {
    pub cri: CriClient,
    /// The cluster image store's `host:port`: short image names resolve there.
    cluster_host: String,
    node_name: String,
}

/// A pulled container image: the reference CRI knows it by and its id (`sha256:…`).
#[derive(Debug, Clone)]
pub struct OciImage {
    pub cri_ref: String,
    pub id: String,
    /// The image's user: its numeric uid when it has one, else its user name ("" = root).
    pub uid: Option<i64>,
    pub username: String,
}

impl OciRuntime {
    pub fn new(cri: CriClient, cluster_host: &str, node_name: &str) -> OciRuntime {
        OciRuntime {
            cri,
            cluster_host: cluster_host.to_string(),
            node_name: node_name.to_string(),
        }
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The reference containerd pulls: short names (`busybox:1.35`) live in the cluster
    /// image store, like Wasm images; references with a registry host are used as written.
    pub fn cri_reference(&self, reference: &str) -> Result<String, OciError> {
        let r = ImageRef::parse(reference)?;
        Ok(if r.is_cluster() {
            format!("{}/{}", self.cluster_host, r.short_name())
        } else {
            r.original.trim().to_string()
        })
    }

    /// What the node has for `reference`, if anything.
    async fn image_status(&self, cri_ref: &str) -> Result<Option<OciImage>, OciError> {
        let st = self
            .cri
            .image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: cri_ref.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await?;
        Ok(st.image.map(|i| OciImage {
            cri_ref: cri_ref.to_string(),
            id: i.repo_digests.first().cloned().unwrap_or(i.id),
            uid: i.uid.map(|u| u.value),
            username: i.username,
        }))
    }

    /// The image already on the node, without pulling (for `IfNotPresent`/`Never`).
    pub async fn present(&self, reference: &str) -> Option<OciImage> {
        let cri_ref = self.cri_reference(reference).ok()?;
        self.image_status(&cri_ref).await.ok().flatten()
    }

    /// Makes `reference` available to containerd as `policy` says, pulling through CRI (with
    /// `credentials` from the pod's imagePullSecrets for an outside registry).
    pub async fn ensure_image(
        &self,
        reference: &str,
        policy: PullPolicy,
        credentials: Option<Credentials>,
    ) -> Result<OciImage, OciError> {
        let cri_ref = self.cri_reference(reference)?;
        if policy != PullPolicy::Always {
            if let Some(img) = self.image_status(&cri_ref).await? {
                return Ok(img);
            }
            if policy == PullPolicy::Never {
                return Err(OciError::NeverPull {
                    reference: reference.to_string(),
                });
            }
        }
        let auth = credentials.map(|c| api::AuthConfig {
            username: c.username,
            password: c.password,
            ..Default::default()
        });
        let resp = self
            .cri
            .pull_image(api::PullImageRequest {
                image: Some(api::ImageSpec {
                    image: cri_ref.clone(),
                    ..Default::default()
                }),
                auth,
                sandbox_config: None,
            })
            .await?;
        Ok(self.image_status(&cri_ref).await?.unwrap_or(OciImage {
            cri_ref,
            id: resp.image_ref,
            uid: None,
            username: String::new(),
        }))
    }

    /// What an earlier run of this agent left running for `pod`: its ready sandbox (rebuilt
    /// config, IP) and the sandbox's containers, to adopt instead of starting again. Extra
    /// sandboxes of the pod (a crash between two RunPodSandbox calls) are removed.
    pub async fn find_pod(
        &self,
        pod: &k8s_openapi::api::core::v1::Pod,
        log_dir: &std::path::Path,
    ) -> Result<Option<(Sandbox, Vec<api::Container>)>, OciError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let labels: std::collections::HashMap<String, String> = [
            (LABEL_MANAGED_BY.to_string(), self.node_name.clone()),
            (LABEL_POD_UID.to_string(), uid),
        ]
        .into();
        let mut items = self
            .cri
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(api::PodSandboxFilter {
                    label_selector: labels.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .items;
        items.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let mut found = None;
        for sb in items {
            if found.is_none() && sb.state == api::PodSandboxState::SandboxReady as i32 {
                found = Some(sb);
            } else {
                sandbox::remove(&self.cri, &sb.id).await;
            }
        }
        let Some(sb) = found else {
            return Ok(None);
        };
        let (ip, netns) = sandbox::sandbox_network(&self.cri, &sb.id).await?;
        let containers = self
            .cri
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    pod_sandbox_id: sb.id.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .containers;
        let config = sandbox::config(pod, &self.node_name, log_dir)?;
        Ok(Some((
            Sandbox {
                id: sb.id,
                ip,
                netns,
                config,
            },
            containers,
        )))
    }

    /// Removes every sandbox (and so every container) this node's agent created before
    /// `created_before` (unix nanoseconds) whose pod is not in `keep` (pod uids): what a
    /// previous run left behind for pods that are gone.
    pub async fn remove_sandboxes_except(
        &self,
        keep: &std::collections::HashSet<String>,
        created_before: i64,
    ) {
        let filter = api::PodSandboxFilter {
            label_selector: [(LABEL_MANAGED_BY.to_string(), self.node_name.clone())].into(),
            ..Default::default()
        };
        let list = match self
            .cri
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
        {
            Ok(l) => l.items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list pod sandboxes");
                return;
            }
        };
        for sb in list {
            let uid = sb.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
            if keep.contains(&uid) || sb.created_at >= created_before {
                continue;
            }
            tracing::info!(sandbox = %sb.id, pod_uid = %uid, "removing a sandbox no pod owns");
            sandbox::remove(&self.cri, &sb.id).await;
        }
    }
}
