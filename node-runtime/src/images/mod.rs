//! Pulling images by reference, into a node-local content-addressed store.
//!
//! References without a registry host (`hello-wasm:v1`, `team/api:2`, `hello@sha256:…`) come
//! from the cluster image store (the API server's `/v2/`, with the cluster CA and the node's
//! bearer token); references with one (`ghcr.io/x/y:1`, `localhost:5000/x`) from that registry
//! over HTTPS, anonymously. Pulls go through `oci-client`; every blob is checked against its
//! descriptor's sha256 and size before it is visible under `blobs/sha256/`, and `refs/`
//! remembers what each reference resolved to so `IfNotPresent` and `Never` work offline and
//! across agent restarts.
//!
//! - [`reference`]: parsing and resolving image references.
//! - [`manifest`]: reading manifests and indexes, platform choice, Wasm vs OCI images.
//! - [`store`]: the node-local store.
//! - [`puller`]: [`ImagePuller`], the policy logic and the downloads.

mod errors;
pub mod manifest;
pub mod puller;
pub mod pullsecrets;
mod push;
pub mod reference;
pub mod store;

use std::path::PathBuf;

pub use puller::ImagePuller;
pub use reference::ImageRef;

/// The cluster's own registry, where short references resolve.
#[derive(Clone)]
pub struct RegistryTarget {
    /// The API server, like `https://127.0.0.1:6443`.
    pub base_url: String,
    /// The cluster CA, PEM: the only root trusted for the cluster registry.
    pub ca_pem: String,
    /// Bearer token for the cluster registry.
    pub token: String,
}

impl std::fmt::Debug for RegistryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryTarget")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Kubernetes' `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference at the registry on every pull (cheap when it did not change).
    Always,
    /// Use what this node already has for the reference; pull otherwise.
    IfNotPresent,
    /// Use only what this node already has.
    Never,
}

/// A pulled image, all of its content on local disk.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The reference as the pod spec wrote it.
    pub reference: String,
    /// `sha256:…` of the manifest (or index) the reference resolved to.
    pub digest: String,
    pub kind: ImageKind,
    /// True when nothing had to be downloaded.
    pub from_cache: bool,
}

#[derive(Clone, Debug)]
pub enum ImageKind {
    /// A Wasm OCI artifact: its `application/wasm` layer is the component.
    Wasm { component_path: PathBuf },
    /// An OCI (or Docker v2) container image.
    Oci {
        manifest_path: PathBuf,
        config_path: PathBuf,
        layer_paths: Vec<PathBuf>,
    },
}

/// Why a pull failed. Every message names the image reference and says what happened.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image {reference:?} not found in the cluster image store; import it with `skiff image import FILE --name {name}`")]
    NotInCluster { reference: String, name: String },
    #[error("image {reference:?} not found in registry {registry} ({detail})")]
    NotFound {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("image {reference:?} is not present on this node and its imagePullPolicy is Never")]
    NotPresent { reference: String },
    #[error("cannot reach {registry} to pull image {reference:?}: {detail}")]
    Unreachable {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("{registry} refused to let this node pull image {reference:?}: {detail}")]
    Unauthorized {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("pulling image {reference:?} from {registry} failed: {detail}")]
    Registry {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("image {reference:?}: {what} failed verification: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("image {reference:?} has unsupported media type {media_type:?}: {detail}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
        detail: String,
    },
    #[error("image {reference:?} has no variant for this node ({detail})")]
    NoMatchingPlatform { reference: String, detail: String },
    #[error("image {reference:?} has an invalid manifest: {detail}")]
    InvalidManifest { reference: String, detail: String },
    #[error("image {reference:?}: node image store: {source}")]
    Store {
        reference: String,
        source: store::StoreError,
    },
    #[error("image puller setup: {0}")]
    Config(String),
}
