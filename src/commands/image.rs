//! `skiff image`: import Wasm components and OCI image layouts into the cluster image store,
//! and list what it holds. Talks to the API server's `/v2/` (the OCI Distribution API) with
//! `oci-client`, using the kubeconfig's server, CA and token.

mod cluster;
mod docker_archive;
mod layout;
mod ls;

pub use cluster::{kubeconfig_path, Store};

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use oci_client::Reference;
use serde_json::json;
use sha2::Digest as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// The CNCF Wasm OCI artifact layout.
const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
const WASM_LAYER: &str = "application/wasm";

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Args, Debug)]
struct ClusterArgs {
    /// Kubeconfig to take the API server, CA and token from. Default: $KUBECONFIG, then
    /// ~/.kube/config, then ~/.local/share/skiff/kubeconfig.yaml.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Upload a Wasm component (.wasm), or an OCI image layout or `docker save` tarball
    /// (.tar, .tar.gz, .tgz).
    Import {
        file: PathBuf,
        /// REPOSITORY[:TAG] to store it as. Default for .wasm: the file name without
        /// extension, tag latest; for a layout: its org.opencontainers.image.ref.name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// List the images in the cluster image store.
    Ls {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

pub async fn run(args: ImageArgs) -> Result<()> {
    match args.command {
        ImageCommand::Import {
            file,
            name,
            cluster,
        } => {
            let store = Store::connect(cluster.kubeconfig.as_deref())?;
            for (name, digest) in import(&store, &file, name.as_deref()).await? {
                println!("imported {name} {digest}");
            }
            Ok(())
        }
        ImageCommand::Ls { cluster } => {
            let store = Store::connect(cluster.kubeconfig.as_deref())?;
            print!("{}", ls::list(&store).await?);
            Ok(())
        }
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- names ----

/// Splits `REPOSITORY[:TAG]` (tag defaulting to latest), checking it names a repository of
/// the cluster store: lowercase, no registry host, no digest.
pub fn split_name(name: &str) -> Result<(String, String)> {
    let name = name.trim();
    if name.contains('@') {
        bail!("--name {name:?}: give REPOSITORY:TAG, not a digest");
    }
    Reference::try_from(name)
        .with_context(|| format!("--name {name:?} is not a valid REPOSITORY[:TAG]"))?;
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "latest"),
    };
    if let Some((first, _)) = repo.split_once('/') {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            bail!("--name {name:?} names registry {first}; the cluster image store takes names without a registry host (like {})", &repo[first.len() + 1..]);
        }
    }
    Ok((repo.to_string(), tag.to_string()))
}

// ---- import ----

/// What a file to import is, by its first bytes.
enum FileKind {
    Wasm,
    Tar { gzip: bool },
}

fn sniff(file: &Path) -> Result<FileKind> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let mut f =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut n = 0;
    while n < head.len() {
        let m = f
            .read(&mut head[n..])
            .with_context(|| format!("cannot read {}", file.display()))?;
        if m == 0 {
            break;
        }
        n += m;
    }
    let head = &head[..n];
    if head.starts_with(b"\0asm") {
        return Ok(FileKind::Wasm);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(FileKind::Tar { gzip: true });
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok(FileKind::Tar { gzip: false });
    }
    bail!(
        "{} is neither a WebAssembly component (.wasm, starting with \\0asm) nor an OCI image layout tarball (.tar, .tar.gz or .tgz with oci-layout, index.json and blobs/)",
        file.display()
    )
}

/// The file name without `.wasm`/`.tar`/`.tar.gz`/`.tgz`, made a valid repository name.
pub fn default_repo(file: &Path) -> String {
    let base = file.file_name().and_then(|n| n.to_str()).unwrap_or("image");
    let stem = [".tar.gz", ".tgz", ".tar", ".wasm"]
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(base);
    let mut repo = String::new();
    for c in stem.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_alphanumeric() {
            repo.push(c);
        } else if !repo.is_empty() && !repo.ends_with('-') {
            repo.push('-');
        }
    }
    let repo = repo.trim_end_matches('-').to_string();
    if repo.is_empty() {
        "image".into()
    } else {
        repo
    }
}

/// Imports `file`; returns the `name:tag` and manifest digest of each image stored.
pub async fn import(
    store: &Store,
    file: &Path,
    name: Option<&str>,
) -> Result<Vec<(String, String)>> {
    store.authenticate().await;
    match sniff(file)? {
        FileKind::Wasm => {
            let (repo, tag) = match name {
                Some(n) => split_name(n)?,
                None => (default_repo(file), "latest".to_string()),
            };
            let digest = import_wasm(store, file, &repo, &tag).await?;
            Ok(vec![(format!("{repo}:{tag}"), digest)])
        }
        FileKind::Tar { gzip } => layout::import(store, file, gzip, name).await,
    }
}

/// Pushes a component as a CNCF Wasm OCI artifact: a small config, one `application/wasm`
/// layer. The config's `created` is the file's modification time, so importing an unchanged
/// file again yields the same digest.
async fn import_wasm(store: &Store, file: &Path, repo: &str, tag: &str) -> Result<String> {
    let bytes = tokio::fs::read(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        tracing::warn!(file = %file.display(), "this is a core Wasm module, not a component; Skiff runs components");
    }
    let created = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .unwrap_or_else(jiff::Timestamp::now)
        .to_string();
    let layer_digest = sha256_digest(&bytes);
    let config = serde_json::to_vec(&json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    }))?;
    let config_digest = sha256_digest(&config);
    let title = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("component.wasm");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": WASM_CONFIG,
        "config": {"mediaType": WASM_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": WASM_LAYER,
            "digest": layer_digest,
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.title": title},
        }],
    }))?;
    let size = bytes.len();
    store.push_bytes(repo, config, &config_digest).await?;
    store.push_bytes(repo, bytes, &layer_digest).await?;
    let digest = sha256_digest(&manifest);
    store
        .push_manifest(&store.tagged(repo, tag), manifest, OCI_MANIFEST)
        .await?;
    tracing::debug!(image = %format!("{repo}:{tag}"), %digest, bytes = size, "imported Wasm component");
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_and_validate() {
        assert_eq!(
            split_name("hello:v1").unwrap(),
            ("hello".into(), "v1".into())
        );
        assert_eq!(
            split_name("team/api").unwrap(),
            ("team/api".into(), "latest".into())
        );
        assert!(split_name("ghcr.io/x/y:1")
            .unwrap_err()
            .to_string()
            .contains("without a registry host"));
        assert!(split_name("Hello").is_err());
        assert_eq!(default_repo(Path::new("/x/Hello_Wasm.wasm")), "hello-wasm");
        assert_eq!(default_repo(Path::new("img.tar.gz")), "img");
    }
}
