//! Image references: which registry, repository, tag and digest.
//!
//! The syntax is checked with `oci-client`'s reference grammar, but Docker Hub defaulting is
//! not applied: a reference whose first path component has no `.` or `:` and isn't
//! `localhost` names the cluster image store, whose repositories are what `skiff image import`
//! named them (`hello-wasm`, not `docker.io/library/hello-wasm`).

use oci_client::Reference;

use super::PullError;

/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";

/// Where a reference is pulled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The cluster image store.
    Cluster,
    /// A registry host (with optional port), like `ghcr.io` or `localhost:5000`.
    Registry(String),
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// As written.
    pub original: String,
    pub source: Source,
    pub repository: String,
    /// `latest` when neither tag nor digest was given; None when only a digest was.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, PullError> {
        let invalid = |reason: String| PullError::InvalidReference {
            reference: s.to_string(),
            reason,
        };
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        // The grammar check (lowercase repository, tag and digest syntax, lengths).
        Reference::try_from(trimmed).map_err(|e| invalid(e.to_string()))?;
        let (name_tag, digest) = match trimmed.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (trimmed, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(name_tag[last_slash + i + 1..].to_string()),
            ),
            None => (name_tag, None),
        };
        let (source, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                let repo = if is_docker_hub(first) && !rest.contains('/') {
                    format!("library/{rest}")
                } else {
                    rest.to_string()
                };
                (Source::Registry(first.to_string()), repo)
            }
            _ => (Source::Cluster, name.to_string()),
        };
        if let Some(d) = &digest {
            if !d.starts_with("sha256:") {
                return Err(invalid(
                    "only sha256 digests are supported by this node".into(),
                ));
            }
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t,
        };
        Ok(ImageRef {
            original: s.to_string(),
            source,
            repository,
            tag,
            digest,
        })
    }

    pub fn is_cluster(&self) -> bool {
        self.source == Source::Cluster
    }

    /// The canonical form, equal for all spellings of the same reference (`x` and
    /// `x:latest`); keys the local `refs/`. Cluster references start with `_cluster/`, which
    /// no registry host can.
    pub fn key(&self) -> String {
        let host = match &self.source {
            Source::Cluster => "_cluster",
            Source::Registry(h) => h,
        };
        let mut k = format!("{host}/{}", self.repository);
        if let Some(t) = &self.tag {
            k.push(':');
            k.push_str(t);
        }
        if let Some(d) = &self.digest {
            k.push('@');
            k.push_str(d);
        }
        k
    }

    /// `repository:tag` (or `@digest`): what `skiff image import --name` takes.
    pub fn short_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.repository),
            (None, Some(d)) => format!("{}@{d}", self.repository),
            (None, None) => self.repository.clone(),
        }
    }

    /// The `oci-client` reference, with the cluster store at `cluster_host`.
    pub fn to_oci(&self, cluster_host: &str) -> Reference {
        let registry = match &self.source {
            Source::Cluster => cluster_host.to_string(),
            Source::Registry(h) => h.clone(),
        };
        let repo = self.repository.clone();
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(registry, repo, t.clone(), d.clone())
            }
            (None, Some(d)) => Reference::with_digest(registry, repo, d.clone()),
            (Some(t), None) => Reference::with_tag(registry, repo, t.clone()),
            (None, None) => Reference::with_tag(registry, repo, DEFAULT_TAG.to_string()),
        }
    }

    /// Where the reference is pulled from, for messages.
    pub fn registry_display(&self, cluster_url: &str) -> String {
        match &self.source {
            Source::Cluster => format!("the cluster image store at {cluster_url}"),
            Source::Registry(h) => format!("registry {h}"),
        }
    }
}

fn is_docker_hub(host: &str) -> bool {
    host == "docker.io" || host == "index.docker.io"
}

/// `host[:port]` of a URL like `https://127.0.0.1:6443/`, and whether it is plain HTTP.
pub fn host_of_url(url: &str) -> Result<(String, bool), String> {
    let (rest, http) = if let Some(r) = url.strip_prefix("https://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, true)
    } else {
        return Err(format!("{url:?} is not an http(s) URL"));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host.to_string(), http))
}
