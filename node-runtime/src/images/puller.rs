//! [`ImagePuller`]: pull policy, downloads through `oci-client`, verification, and sharing of
//! concurrent pulls of one reference.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use super::errors::{self, chain, platforms};
use super::manifest::{self, Classified, Descriptor, ImageManifest, Manifest};
use super::pullsecrets::Credentials;
use super::reference::{host_of_url, ImageRef};
use super::store::{hex_digest, sha256_digest, LocalStore};
use super::{ImageKind, PullError, PullPolicy, PulledImage, RegistryTarget};

/// How long a registry may take to accept a connection. Pulls that fail are retried with
/// back-off by the agent, so failing fast beats hanging a pod in ContainerCreating.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a registry may stay silent mid-response. Per read, not per blob: a slow link
/// still completes a large layer, a stalled one fails.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

const USER_AGENT: &str = concat!("skiff-node/", env!("CARGO_PKG_VERSION"));

/// Pulls images into a node-local store. `Send + Sync`; share it by reference.
pub struct ImagePuller {
    store: LocalStore,
    cluster_url: String,
    cluster_host: String,
    cluster: Client,
    cluster_auth: RegistryAuth,
    public: Client,
    /// One lock per reference being pulled: concurrent pulls of a reference wait for the first
    /// and then find its content in the store instead of downloading it again.
    inflight: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for ImagePuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePuller")
            .field("store", &self.store.root())
            .field("cluster_url", &self.cluster_url)
            .finish_non_exhaustive()
    }
}

/// The registry client and auth of one pull.
struct Session<'a> {
    client: Cow<'a, Client>,
    auth: RegistryAuth,
}

/// The client settings every registry connection shares.
fn base() -> ClientConfig {
    ClientConfig {
        connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
        read_timeout: Some(DEFAULT_READ_TIMEOUT),
        // Indexes are resolved here (Wasm entries first), not by oci-client.
        platform_resolver: None,
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    }
}

fn client(config: ClientConfig) -> Result<Client, PullError> {
    Client::try_from(config)
        .map_err(|e| PullError::Config(format!("cannot build the registry client: {e}")))
}

impl ImagePuller {
    /// A puller storing under `store_dir`, resolving short references at `cluster`.
    pub fn new(store_dir: &Path, cluster: RegistryTarget) -> Result<Self, PullError> {
        // reqwest is built without a crypto provider of its own; use ring, like the rest of
        // Skiff (a no-op if one was installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = LocalStore::open(store_dir).map_err(|e| PullError::Config(e.to_string()))?;
        let (cluster_host, plain_http) = host_of_url(&cluster.base_url)
            .map_err(|e| PullError::Config(format!("cluster registry URL: {e}")))?;
        let certs = rustls_pemfile::certs(&mut cluster.ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PullError::Config(format!("the cluster CA is not valid PEM: {e}")))?;
        if certs.is_empty() && !plain_http {
            return Err(PullError::Config(
                "the cluster CA PEM holds no certificate".into(),
            ));
        }
        let cluster_client = client(ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            tls_certs_only: certs
                .iter()
                .map(|c| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: c.to_vec(),
                })
                .collect(),
            ..base()
        })?;
        Ok(ImagePuller {
            store,
            cluster_url: cluster.base_url.trim_end_matches('/').to_string(),
            cluster_host,
            cluster: cluster_client,
            cluster_auth: RegistryAuth::Bearer(cluster.token),
            public: client(base())?,
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// Makes `reference` available locally as `policy` says.
    pub async fn pull(
        &self,
        reference: &str,
        policy: PullPolicy,
    ) -> Result<PulledImage, PullError> {
        self.pull_with(reference, policy, None).await
    }

    /// [`pull`](Self::pull) with `credentials` for an outside registry (from the pod's
    /// `imagePullSecrets`). A credentialed pull uses a client of its own, so the token it
    /// earns is never reused by another pod's pull.
    pub async fn pull_with(
        &self,
        reference: &str,
        policy: PullPolicy,
        credentials: Option<Credentials>,
    ) -> Result<PulledImage, PullError> {
        let r = ImageRef::parse(reference)?;
        let session = self.session(&r, credentials)?;
        let lock = self.lock_for(&r.key());
        let _guard = lock.lock().await;
        let local = self.local(&r).await?;
        let result = match (policy, local) {
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some((digest, kind))) => {
                Ok(PulledImage {
                    reference: r.original.clone(),
                    digest,
                    kind,
                    from_cache: true,
                })
            }
            (PullPolicy::Never, None) => Err(PullError::NotPresent {
                reference: r.original.clone(),
            }),
            (PullPolicy::IfNotPresent, None) => self.fetch(&r, &session, None).await,
            (PullPolicy::Always, local) => self.fetch(&r, &session, local).await,
        };
        match &result {
            Ok(img) => {
                tracing::info!(reference, digest = %img.digest, cached = img.from_cache, ?policy, "image ready")
            }
            Err(e) => tracing::warn!(reference, ?policy, error = %e, "image pull failed"),
        }
        result
    }

    /// Whether `reference` is a Wasm component (true) or a container image (false), reading
    /// only manifests: what this node has for it, else the registry's. Container images are
    /// pulled by containerd, so nothing else is downloaded here.
    pub async fn is_wasm(
        &self,
        reference: &str,
        credentials: Option<Credentials>,
    ) -> Result<bool, PullError> {
        let r = ImageRef::parse(reference)?;
        if let Some((_, kind)) = self.local(&r).await? {
            return Ok(matches!(kind, ImageKind::Wasm { .. }));
        }
        let session = self.session(&r, credentials)?;
        let oref = r.to_oci(&self.cluster_host);
        let (bytes, digest) = self
            .fetch_manifest(&r, &session, &oref, r.digest.as_deref())
            .await?;
        let (_, _, image) = self
            .image_manifest(&r, &session, &oref, &bytes, &digest)
            .await?;
        match manifest::classify(&image) {
            Ok(Classified::Wasm { .. }) => Ok(true),
            Ok(Classified::Oci) => Ok(false),
            Err((media_type, detail)) => Err(PullError::UnsupportedMediaType {
                reference: r.original.clone(),
                media_type,
                detail,
            }),
        }
    }

    /// The cluster image store's `host:port`, where short references resolve.
    pub fn cluster_host(&self) -> &str {
        &self.cluster_host
    }

    /// The client and credentials for the cluster image store.
    pub(super) fn cluster_session(&self) -> (&Client, &RegistryAuth) {
        (&self.cluster, &self.cluster_auth)
    }

    /// The image for `reference` if this node already has all of it (no network, no lock):
    /// the fast path for `IfNotPresent`/`Never`, so a cached start skips the pull machinery.
    pub async fn present(&self, reference: &str) -> Option<PulledImage> {
        let r = ImageRef::parse(reference).ok()?;
        let (digest, kind) = self.local(&r).await.ok()??;
        Some(PulledImage {
            reference: r.original.clone(),
            digest,
            kind,
            from_cache: true,
        })
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = match self.inflight.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_string(), Arc::downgrade(&l));
        l
    }

    fn store_err(r: &ImageRef) -> impl FnOnce(super::store::StoreError) -> PullError + '_ {
        move |source| PullError::Store {
            reference: r.original.clone(),
            source,
        }
    }

    /// What this node already has for `r`: the manifest digest and the image, if complete.
    async fn local(&self, r: &ImageRef) -> Result<Option<(String, ImageKind)>, PullError> {
        let digest = match &r.digest {
            Some(d) => d.clone(),
            None => match self
                .store
                .read_ref(&r.key())
                .await
                .map_err(Self::store_err(r))?
            {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        let Some(top) = self.read_manifest(r, &digest).await? else {
            return Ok(None);
        };
        let (image_digest, image) = match top {
            Manifest::Image(m) => (digest.clone(), m),
            Manifest::Index(entries) => {
                let Some(entry) = manifest::select_platform(&entries) else {
                    return Ok(None);
                };
                match self.read_manifest(r, &entry.digest).await? {
                    Some(Manifest::Image(m)) => (entry.digest.clone(), m),
                    _ => return Ok(None),
                }
            }
        };
        for d in std::iter::once(&image.config).chain(&image.layers) {
            if !self.store.has_blob(&d.digest, Some(d.size)).await {
                return Ok(None);
            }
        }
        match self.kind(r, &image_digest, &image) {
            Ok(kind) => Ok(Some((digest, kind))),
            Err(_) => Ok(None),
        }
    }

    /// A stored manifest, if present and intact.
    async fn read_manifest(
        &self,
        r: &ImageRef,
        digest: &str,
    ) -> Result<Option<Manifest>, PullError> {
        let Some(bytes) = self
            .store
            .read_blob(digest)
            .await
            .map_err(Self::store_err(r))?
        else {
            return Ok(None);
        };
        if sha256_digest(&bytes) != digest {
            tracing::warn!(%digest, "stored manifest is corrupt; pulling it again");
            return Ok(None);
        }
        Ok(manifest::parse(&bytes).ok())
    }

    fn kind(
        &self,
        r: &ImageRef,
        manifest_digest: &str,
        m: &ImageManifest,
    ) -> Result<ImageKind, PullError> {
        let path = |d: &str| {
            self.store
                .blob_path(d)
                .ok_or_else(|| PullError::InvalidManifest {
                    reference: r.original.clone(),
                    detail: format!("{d:?} is not a sha256 digest"),
                })
        };
        let class = manifest::classify(m).map_err(|(media_type, detail)| {
            PullError::UnsupportedMediaType {
                reference: r.original.clone(),
                media_type,
                detail,
            }
        })?;
        Ok(match class {
            Classified::Wasm { layer } => ImageKind::Wasm {
                component_path: path(&m.layers[layer].digest)?,
            },
            Classified::Oci => ImageKind::Oci {
                manifest_path: path(manifest_digest)?,
                config_path: path(&m.config.digest)?,
                layer_paths: m
                    .layers
                    .iter()
                    .map(|l| path(&l.digest))
                    .collect::<Result<_, _>>()?,
            },
        })
    }

    /// The client and auth one pull of `r` uses.
    fn session(
        &self,
        r: &ImageRef,
        credentials: Option<Credentials>,
    ) -> Result<Session<'_>, PullError> {
        if r.is_cluster() {
            return Ok(Session {
                client: Cow::Borrowed(&self.cluster),
                auth: self.cluster_auth.clone(),
            });
        }
        Ok(match credentials {
            Some(c) => Session {
                client: Cow::Owned(client(base())?),
                auth: RegistryAuth::Basic(c.username, c.password),
            },
            None => Session {
                client: Cow::Borrowed(&self.public),
                auth: RegistryAuth::Anonymous,
            },
        })
    }

    /// Resolves `r` at its registry and downloads what is missing. With `local` (policy
    /// Always), an unchanged digest means nothing is downloaded.
    async fn fetch(
        &self,
        r: &ImageRef,
        session: &Session<'_>,
        local: Option<(String, ImageKind)>,
    ) -> Result<PulledImage, PullError> {
        let oref = r.to_oci(&self.cluster_host);
        let (client, auth) = (session.client.as_ref(), &session.auth);
        if let Some((digest, kind)) = local {
            let remote = client
                .fetch_manifest_digest(&oref, auth)
                .await
                .map_err(|e| self.map_err(r, e))?;
            if remote == digest {
                return Ok(PulledImage {
                    reference: r.original.clone(),
                    digest,
                    kind,
                    from_cache: true,
                });
            }
            tracing::info!(reference = %r.original, old = %digest, new = %remote, "image changed at the registry");
        }
        let (top_bytes, top_digest) = self
            .fetch_manifest(r, session, &oref, r.digest.as_deref())
            .await?;
        let (image_digest, child_bytes, image) = self
            .image_manifest(r, session, &oref, &top_bytes, &top_digest)
            .await?;
        // Refuse what this node cannot run before downloading it.
        self.kind(r, &image_digest, &image)?;
        let mut downloaded = 0;
        for d in std::iter::once(&image.config).chain(&image.layers) {
            if self.store.has_blob(&d.digest, Some(d.size)).await {
                continue;
            }
            self.download(r, client, &oref, d).await?;
            downloaded += 1;
        }
        // Manifests after their blobs, the ref last: a ref only ever leads to complete content.
        if let Some(bytes) = &child_bytes {
            self.store
                .put_bytes(bytes)
                .await
                .map_err(Self::store_err(r))?;
        }
        self.store
            .put_bytes(&top_bytes)
            .await
            .map_err(Self::store_err(r))?;
        if r.digest.is_none() {
            self.store
                .write_ref(&r.key(), &top_digest)
                .await
                .map_err(Self::store_err(r))?;
        }
        Ok(PulledImage {
            reference: r.original.clone(),
            digest: top_digest,
            kind: self.kind(r, &image_digest, &image)?,
            from_cache: downloaded == 0,
        })
    }

    /// The image manifest `top` (a manifest or an index, fetched from `oref`) stands for on
    /// this node: itself, or the index entry for this platform, fetched. Returns its digest,
    /// its bytes when it came from an index entry, and the parsed manifest.
    async fn image_manifest(
        &self,
        r: &ImageRef,
        session: &Session<'_>,
        oref: &Reference,
        top: &[u8],
        top_digest: &str,
    ) -> Result<(String, Option<Vec<u8>>, ImageManifest), PullError> {
        let invalid = |detail: String| PullError::InvalidManifest {
            reference: r.original.clone(),
            detail,
        };
        match manifest::parse(top).map_err(invalid)? {
            Manifest::Image(m) => Ok((top_digest.to_string(), None, m)),
            Manifest::Index(entries) => {
                let entry = manifest::select_platform(&entries).ok_or_else(|| {
                    PullError::NoMatchingPlatform {
                        reference: r.original.clone(),
                        detail: platforms(&entries),
                    }
                })?;
                let child = oref.clone_with_digest(entry.digest.clone());
                let (bytes, digest) = self
                    .fetch_manifest(r, session, &child, Some(&entry.digest))
                    .await?;
                match manifest::parse(&bytes).map_err(invalid)? {
                    Manifest::Image(m) => Ok((digest, Some(bytes), m)),
                    Manifest::Index(_) => Err(PullError::InvalidManifest {
                        reference: r.original.clone(),
                        detail: "an index entry is itself an index".into(),
                    }),
                }
            }
        }
    }

    /// Fetches a manifest and checks its digest (against `expected`, when pinned).
    async fn fetch_manifest(
        &self,
        r: &ImageRef,
        session: &Session<'_>,
        oref: &Reference,
        expected: Option<&str>,
    ) -> Result<(Vec<u8>, String), PullError> {
        let (bytes, _) = session
            .client
            .pull_manifest_raw(oref, &session.auth, manifest::ACCEPTED)
            .await
            .map_err(|e| self.map_err(r, e))?;
        let digest = sha256_digest(&bytes);
        if let Some(want) = expected {
            if want != digest {
                return Err(PullError::DigestMismatch {
                    reference: r.original.clone(),
                    what: "the manifest".into(),
                    expected: want.to_string(),
                    actual: digest,
                });
            }
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Downloads blob `d` to a temp file, verifying size and sha256 as it arrives, and stores it.
    async fn download(
        &self,
        r: &ImageRef,
        client: &Client,
        oref: &Reference,
        d: &Descriptor,
    ) -> Result<(), PullError> {
        let tmp = self.store.temp_path();
        let res = self.download_to(r, client, oref, d, &tmp).await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        res
    }

    async fn download_to(
        &self,
        r: &ImageRef,
        client: &Client,
        oref: &Reference,
        d: &Descriptor,
        tmp: &Path,
    ) -> Result<(), PullError> {
        let mismatch = |expected: String, actual: String| PullError::DigestMismatch {
            reference: r.original.clone(),
            what: format!("blob {}", d.digest),
            expected,
            actual,
        };
        let size = u64::try_from(d.size).map_err(|_| PullError::InvalidManifest {
            reference: r.original.clone(),
            detail: format!("blob {} has negative size {}", d.digest, d.size),
        })?;
        let started = std::time::Instant::now();
        let mut stream = client
            .pull_blob_stream(oref, d.digest.as_str())
            .await
            .map_err(|e| self.map_err(r, e))?;
        let mut file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| PullError::Store {
                reference: r.original.clone(),
                source: super::store::StoreError {
                    context: "cannot create",
                    path: tmp.to_path_buf(),
                    source: e,
                },
            })?;
        let mut hasher = sha2::Sha256::new();
        let mut received = 0u64;
        let mut late_error = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // oci-client's own check fails at the end of the stream; ours decides below.
                Err(e) if received == size => {
                    late_error = Some(e);
                    break;
                }
                Err(e) => {
                    return Err(PullError::Unreachable {
                        reference: r.original.clone(),
                        registry: r.registry_display(&self.cluster_url),
                        detail: format!(
                            "download of blob {} broke off after {received} of {size} bytes: {}",
                            d.digest,
                            chain(&e)
                        ),
                    })
                }
            };
            received += chunk.len() as u64;
            if received > size {
                return Err(mismatch(
                    format!("{size} bytes"),
                    format!("more than {size} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| PullError::Store {
                reference: r.original.clone(),
                source: super::store::StoreError {
                    context: "cannot write",
                    path: tmp.to_path_buf(),
                    source: e,
                },
            })?;
        }
        file.flush().await.map_err(|e| PullError::Store {
            reference: r.original.clone(),
            source: super::store::StoreError {
                context: "cannot write",
                path: tmp.to_path_buf(),
                source: e,
            },
        })?;
        drop(file);
        if received != size {
            return Err(mismatch(
                format!("{size} bytes"),
                format!("{received} bytes"),
            ));
        }
        let actual = hex_digest(hasher.finalize().as_slice());
        if actual != d.digest {
            return Err(mismatch(d.digest.clone(), actual));
        }
        if let Some(e) = late_error {
            return Err(PullError::Registry {
                reference: r.original.clone(),
                registry: r.registry_display(&self.cluster_url),
                detail: format!("blob {}: {}", d.digest, chain(&e)),
            });
        }
        self.store
            .commit(tmp, &d.digest)
            .await
            .map_err(Self::store_err(r))?;
        tracing::debug!(reference = %r.original, digest = %d.digest, bytes = size, elapsed_ms = started.elapsed().as_millis() as u64, "blob pulled");
        Ok(())
    }

    fn map_err(&self, r: &ImageRef, e: OciDistributionError) -> PullError {
        errors::from_oci(r, &self.cluster_url, e)
    }
}
