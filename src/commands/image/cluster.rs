//! The cluster image store as the kubeconfig's current context reaches it: server, CA, token.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

/// How long the API server may take to accept a connection before the command gives up:
/// it is a local or LAN server, so seconds mean it is down, not slow.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Deserialize)]
struct KubeConfig {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: ContextSpec,
}

#[derive(Deserialize)]
struct ContextSpec {
    cluster: String,
    user: Option<String>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterSpec,
}

#[derive(Deserialize)]
struct ClusterSpec {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: UserSpec,
}

#[derive(Deserialize)]
struct UserSpec {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
}

/// Where the kubeconfig is: `--kubeconfig`, `$KUBECONFIG` (first entry), `~/.kube/config`,
/// then the file `skiff server` writes by default.
pub fn kubeconfig_path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .as_ref()
        .and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    let home =
        PathBuf::from(std::env::var_os("HOME").context("HOME is not set: pass --kubeconfig")?);
    let candidates = [
        home.join(".kube/config"),
        home.join(".local/share/skiff/kubeconfig.yaml"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no kubeconfig found: $KUBECONFIG is not set and neither {} nor {} exists. \
                 Start a cluster with `skiff server` (it writes {}), or point at one with \
                 --kubeconfig PATH or KUBECONFIG=PATH",
                candidates[0].display(),
                candidates[1].display(),
                candidates[1].display()
            )
        })
}

/// The cluster image store, as the current kubeconfig context reaches it.
pub struct Store {
    pub(super) server: String,
    pub(super) host: String,
    pub(super) client: Client,
    pub(super) auth: RegistryAuth,
}

impl Store {
    pub fn connect(flag: Option<&Path>) -> Result<Store> {
        let path = kubeconfig_path(flag)?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
        let kc: KubeConfig = serde_yaml::from_str(&text)
            .with_context(|| format!("kubeconfig {} is not valid", path.display()))?;
        let ctx_name = match (&kc.current_context, kc.contexts.as_slice()) {
            (Some(c), _) if !c.is_empty() => c.clone(),
            (_, [only]) => only.name.clone(),
            _ => bail!("kubeconfig {} has no current-context", path.display()),
        };
        let ctx = kc
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .with_context(|| {
                format!(
                    "kubeconfig {}: context {ctx_name:?} is not defined",
                    path.display()
                )
            })?;
        let cluster = kc
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .with_context(|| {
                format!(
                    "kubeconfig {}: cluster {:?} is not defined",
                    path.display(),
                    ctx.context.cluster
                )
            })?;
        let user = ctx
            .context
            .user
            .as_ref()
            .and_then(|u| kc.users.iter().find(|x| &x.name == u));
        let token = match user.map(|u| &u.user) {
            Some(UserSpec { token: Some(t), .. }) => t.clone(),
            Some(UserSpec { token_file: Some(f), .. }) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read token file {}", f.display()))?
                .trim()
                .to_string(),
            _ => bail!(
                "kubeconfig {}: context {ctx_name:?} has no user token (the image store takes bearer tokens)",
                path.display()
            ),
        };
        let ca_pem = match (&cluster.cluster.ca_data, &cluster.cluster.ca_file) {
            (Some(b64), _) => {
                use base64::Engine as _;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .context("certificate-authority-data is not valid base64")?;
                String::from_utf8(raw).context("certificate-authority-data is not PEM text")?
            }
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read certificate-authority {}", f.display()))?,
            (None, None) => String::new(),
        };
        Store::new(&cluster.cluster.server, &ca_pem, &token)
    }

    pub fn new(server: &str, ca_pem: &str, token: &str) -> Result<Store> {
        // reqwest is built without a crypto provider of its own: use ring, like the rest of Skiff.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = server.trim_end_matches('/').to_string();
        let host = server
            .strip_prefix("https://")
            .with_context(|| format!("the API server {server:?} is not an https:// URL"))?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let certs: Vec<Certificate> = pem_certificates(ca_pem)
            .into_iter()
            .map(|data| Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
            .collect();
        let client = Client::try_from(ClientConfig {
            tls_certs_only: certs,
            platform_resolver: None,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            user_agent: concat!("skiff/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        })
        .context("cannot set up the registry client")?;
        Ok(Store {
            server,
            host,
            client,
            auth: RegistryAuth::Bearer(token.to_string()),
        })
    }

    pub(super) fn tagged(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repo.to_string(), tag.to_string())
    }

    pub(super) fn pinned(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.host.clone(), repo.to_string(), digest.to_string())
    }

    pub(super) async fn authenticate(&self) {
        self.client
            .store_auth_if_needed(&self.host, &self.auth)
            .await;
    }

    /// Uploads a blob unless the store has it already.
    pub(super) async fn push_bytes(&self, repo: &str, bytes: Vec<u8>, digest: &str) -> Result<()> {
        let r = self.tagged(repo, "latest");
        if self
            .client
            .blob_exists(&r, digest)
            .await
            .with_context(|| self.failed("check blob", digest))?
        {
            return Ok(());
        }
        self.client
            .push_blob(&r, bytes, digest)
            .await
            .with_context(|| self.failed("upload blob", digest))?;
        Ok(())
    }

    pub(super) async fn push_manifest(
        &self,
        r: &Reference,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let ct = media_type
            .parse()
            .with_context(|| format!("manifest media type {media_type:?} is not a valid header"))?;
        self.client
            .push_manifest_raw(r, body, ct)
            .await
            .with_context(|| self.failed("store manifest", &r.to_string()))?;
        Ok(())
    }

    pub(super) fn failed(&self, what: &str, item: &str) -> String {
        format!(
            "cannot {what} {item} in the cluster image store at {}",
            self.server
        )
    }
}

/// Each `-----BEGIN CERTIFICATE-----` block of a PEM bundle.
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let stop = start + end + END.len();
        out.push(format!("{}\n", &rest[start..stop]).into_bytes());
        rest = &rest[stop..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles_split_into_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificates(&format!("{one}{one}")).len(), 2);
        assert!(pem_certificates("junk").is_empty());
    }
}
