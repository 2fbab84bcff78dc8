//! The cluster image store: an OCI Distribution registry kept under `<data_dir>/registry/`.
//!
//! `skiff image import` pushes Wasm components (as CNCF Wasm OCI artifacts: one layer of media
//! type `application/wasm`) and OCI image layouts here with the write side of the distribution
//! API; node agents pull from it with the read side. Everything is served under `/v2/` by the
//! API server, behind its bearer-token authentication.
//!
//! - [`store`]: the on-disk, content-addressed store (blobs, manifests, tags, uploads).
//! - [`routes`]: the `/v2/` HTTP endpoints.
//!
//! Blobs are global to the store (content-addressed, so any repository can fetch any blob it
//! knows the digest of); manifests and tags belong to a repository.

mod manifest;
pub mod routes;
pub mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use http::StatusCode;

pub use store::Registry;

/// The largest blob one upload may carry. OCI layers run to hundreds of MiB; anything past
/// this is far more likely a mistake (or abuse) than an image a single-binary cluster runs.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The largest manifest accepted. The distribution spec asks registries to take at least
/// 4 MiB; real manifests are a few KiB, and they are read into memory to be validated.
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Upload sessions untouched for this long are removed when the registry opens: a client
/// that has not finished a push in a day is not coming back for it.
pub const DEFAULT_STALE_UPLOAD_SECS: u64 = 24 * 60 * 60;

/// Manifest media types the store accepts.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Why a registry request failed; each maps to an OCI distribution error code and status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid repository name {name:?}: {reason}")]
    NameInvalid { name: String, reason: &'static str },
    #[error("repository {name:?} is not in the cluster image store")]
    NameUnknown { name: String },
    /// `image` is `name:tag` or `name@digest`.
    #[error("manifest {image:?} is not in the cluster image store")]
    ManifestUnknown { image: String },
    #[error("invalid manifest for {image:?}: {reason}")]
    ManifestInvalid { image: String, reason: String },
    #[error("the manifest for {image:?} references {digest}, which is not in the image store ({reason}); push it first")]
    ManifestBlobUnknown {
        image: String,
        digest: String,
        reason: String,
    },
    #[error("blob {digest} is not in the cluster image store (asked for by repository {name:?})")]
    BlobUnknown { name: String, digest: String },
    #[error("invalid digest {digest:?}: {reason}")]
    DigestInvalid { digest: String, reason: String },
    #[error(
        "upload {id:?} of repository {name:?} is unknown (finished, cancelled, or never started)"
    )]
    UploadUnknown { name: String, id: String },
    #[error("upload {id:?} of repository {name:?}: {reason}")]
    UploadInvalid {
        name: String,
        id: String,
        reason: String,
    },
    #[error("upload {id:?} of repository {name:?}: {reason}")]
    RangeInvalid {
        name: String,
        id: String,
        reason: String,
    },
    #[error("{what} is larger than the {limit}-byte limit of the cluster image store")]
    TooLarge { what: String, limit: u64 },
    #[error("{0}")]
    Unsupported(String),
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("invalid query parameter: {0}")]
    BadQuery(String),
    #[error("no registry endpoint {method} /v2/{path}")]
    NoRoute { method: String, path: String },
    #[error("internal error in the image store: {0}")]
    Internal(String),
    #[error("image store I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RegistryError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }

    /// The OCI distribution spec's error code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::NameInvalid { .. } => "NAME_INVALID",
            RegistryError::NameUnknown { .. } => "NAME_UNKNOWN",
            RegistryError::ManifestUnknown { .. } => "MANIFEST_UNKNOWN",
            RegistryError::ManifestInvalid { .. } => "MANIFEST_INVALID",
            RegistryError::ManifestBlobUnknown { .. } => "MANIFEST_BLOB_UNKNOWN",
            RegistryError::BlobUnknown { .. } => "BLOB_UNKNOWN",
            RegistryError::DigestInvalid { .. } => "DIGEST_INVALID",
            RegistryError::UploadUnknown { .. } => "BLOB_UPLOAD_UNKNOWN",
            RegistryError::UploadInvalid { .. }
            | RegistryError::RangeInvalid { .. }
            | RegistryError::Body(_) => "BLOB_UPLOAD_INVALID",
            RegistryError::NoRoute { .. } => "NOT_FOUND",
            RegistryError::TooLarge { .. } => "SIZE_INVALID",
            RegistryError::Unsupported(_) | RegistryError::BadQuery(_) => "UNSUPPORTED",
            RegistryError::Io { .. } | RegistryError::Internal(_) => "UNKNOWN",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RegistryError::NameUnknown { .. }
            | RegistryError::ManifestUnknown { .. }
            | RegistryError::BlobUnknown { .. }
            | RegistryError::UploadUnknown { .. }
            | RegistryError::NoRoute { .. } => StatusCode::NOT_FOUND,
            RegistryError::RangeInvalid { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            RegistryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RegistryError::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            RegistryError::Io { .. } | RegistryError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A `sha256:<64 lowercase hex>` digest, the only algorithm the store uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, RegistryError> {
        let invalid = |reason: &str| RegistryError::DigestInvalid {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected ALGORITHM:HEX, like sha256:…"))?;
        if alg != "sha256" {
            return Err(invalid("only sha256 digests are supported"));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("a sha256 digest is 64 lowercase hex characters"));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest::from_hasher(sha2::Sha256::new_with_prefix(bytes))
    }

    pub fn from_hasher(h: sha2::Sha256) -> Digest {
        use sha2::Digest as _;
        let out = h.finalize();
        let mut hex = String::with_capacity(64);
        for b in out {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest { hex }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// The longest repository name the distribution spec lets clients rely on.
const MAX_NAME_LEN: usize = 255;

/// Checks a repository name against the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let invalid = |reason| RegistryError::NameInvalid {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 255 characters"));
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(invalid(
                "each /-separated component must be lowercase letters and digits, joined by '.', '_', '__' or dashes",
            ));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Checks a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` (so never `.` or `..`).
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

/// A manifest reference in a URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(name: &str, s: &str) -> Result<Reference, RegistryError> {
        if s.contains(':') {
            return Ok(Reference::Digest(Digest::parse(s)?));
        }
        if valid_tag(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(RegistryError::ManifestInvalid {
                image: format!("{name}:{s}"),
                reason: "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'".into(),
            })
        }
    }
}

impl Reference {
    /// `name:tag` or `name@digest`, as people write image references.
    pub fn image(&self, name: &str) -> String {
        match self {
            Reference::Tag(t) => format!("{name}:{t}"),
            Reference::Digest(d) => format!("{name}@{d}"),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}
