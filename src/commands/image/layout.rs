//! Importing OCI image layout tarballs (`oci-layout`, `index.json`, `blobs/sha256/*`; plain
//! or gzipped), as `docker save` (Docker 25+), `buildx --output type=oci` or
//! `skopeo copy oci-archive:` write them, and the classic `docker save` format (a
//! `manifest.json` naming `<id>.json` configs and `<id>/layer.tar` layers), which
//! `docker_archive.rs` turns into the same layout. The tarball is unpacked to a temp dir (each blob checked against its name),
//! then every manifest is pushed after its blobs, the tagged one last.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::Digest as _;

use super::{default_repo, hex, split_name, Store, OCI_INDEX, OCI_MANIFEST};

/// `oci-layout` and `index.json` are read into memory; real ones are a few KiB.
const DEFAULT_MAX_LAYOUT_JSON_BYTES: u64 = 4 * 1024 * 1024;

/// Blobs are pushed in pieces of this size, matching oci-client's largest upload chunk, so
/// each piece is one PATCH and memory stays bounded whatever the layer size.
const DEFAULT_PUSH_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Buffer for copying blobs out of the tarball: large enough that syscalls don't dominate.
const DEFAULT_COPY_BUFFER_BYTES: usize = 256 * 1024;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// A layout unpacked to a temp dir.
struct Layout {
    dir: tempfile::TempDir,
    index: Value,
    blobs: HashSet<String>,
}

impl Layout {
    fn blob(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        self.blobs.contains(hex).then(|| self.dir.path().join(hex))
    }
}

/// Unpacks the parts of the layout that matter, verifying each blob against its file name.
fn unpack(file: &Path, gzip: bool) -> Result<Layout> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)))
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    let mut archive = tar::Archive::new(reader);
    let dir = tempfile::tempdir().context("cannot create a temp dir to unpack the layout in")?;
    let (mut oci_layout, mut index, mut blobs) = (None, None, HashSet::new());
    // The classic `docker save` format: its manifest.json and its files by path.
    let (mut docker_manifest, mut docker_files) = (None, std::collections::HashMap::new());
    let bad = |e: std::io::Error| {
        anyhow::anyhow!("{} is not a readable tar archive: {e}", file.display())
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        match path.as_str() {
            "oci-layout" | "index.json" | "manifest.json" => {
                let mut buf = Vec::new();
                (&mut entry)
                    .take(DEFAULT_MAX_LAYOUT_JSON_BYTES + 1)
                    .read_to_end(&mut buf)
                    .map_err(bad)?;
                if buf.len() as u64 > DEFAULT_MAX_LAYOUT_JSON_BYTES {
                    bail!(
                        "{}: {path} is larger than {DEFAULT_MAX_LAYOUT_JSON_BYTES} bytes",
                        file.display()
                    );
                }
                let v: Value = serde_json::from_slice(&buf)
                    .with_context(|| format!("{}: {path} is not JSON", file.display()))?;
                match path.as_str() {
                    "index.json" => index = Some(v),
                    "manifest.json" => docker_manifest = Some(v),
                    _ => oci_layout = Some(v),
                }
            }
            p if !p.starts_with("blobs/") && (p.ends_with(".tar") || p.ends_with(".json")) => {
                let tmp = dir.path().join(format!("docker-{}", docker_files.len()));
                let hex_name = copy_hashed(&mut entry, &tmp).map_err(bad)?;
                std::fs::rename(&tmp, dir.path().join(&hex_name))
                    .with_context(|| format!("cannot store {p} in {}", dir.path().display()))?;
                blobs.insert(hex_name.clone());
                docker_files.insert(p.to_string(), hex_name);
            }
            p => {
                let Some(hex_name) = p.strip_prefix("blobs/sha256/") else {
                    continue;
                };
                if hex_name.len() != 64 || !hex_name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                let dest = dir.path().join(hex_name);
                let actual = copy_hashed(&mut entry, &dest).map_err(bad)?;
                if actual != hex_name {
                    bail!("{}: {p} does not match its digest (its content hashes to sha256:{actual}); the tarball is corrupt", file.display());
                }
                blobs.insert(hex_name.to_string());
            }
        }
    }
    let how = "(export one with `docker save`, `docker buildx build --output type=oci,dest=FILE` or `skopeo copy … oci-archive:FILE`)";
    if let (None, Some(manifest)) = (&oci_layout, &docker_manifest) {
        let index = super::docker_archive::to_layout(dir.path(), manifest, &docker_files)
            .with_context(|| format!("{} (docker save format)", file.display()))?;
        blobs.extend(index.1);
        return Ok(Layout {
            dir,
            index: index.0,
            blobs,
        });
    }
    let Some(layout) = oci_layout else {
        bail!(
            "{} is a tar archive but not an OCI image layout: it has no oci-layout file {how}",
            file.display()
        );
    };
    if layout
        .get("imageLayoutVersion")
        .and_then(Value::as_str)
        .is_none()
    {
        bail!("{}: oci-layout has no imageLayoutVersion", file.display());
    }
    let Some(index) = index else {
        bail!(
            "{} is not a complete OCI image layout: it has no index.json {how}",
            file.display()
        );
    };
    Ok(Layout { dir, index, blobs })
}

/// The store name a layout entry's annotations give it: a full reference (registry host
/// dropped) or, for a bare tag, the file's name as repository.
fn name_from_annotations(entry: &Value, file: &Path) -> Option<(String, String)> {
    let ann = |k: &str| {
        entry
            .get("annotations")?
            .get(k)?
            .as_str()
            .map(str::to_string)
    };
    let full = |n: &str| -> Option<(String, String)> {
        let without_host = match n.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                rest
            }
            _ => n,
        };
        split_name(without_host).ok()
    };
    match ann(REF_NAME) {
        Some(r) if r.contains('/') || r.contains(':') => full(&r),
        Some(tag) => ann(CONTAINERD_NAME)
            .and_then(|n| full(&n))
            .or_else(|| Some((default_repo(file), tag))),
        None => ann(CONTAINERD_NAME).and_then(|n| full(&n)),
    }
}

/// One push, in order: blobs before the manifests naming them, children before indexes.
enum Step {
    Blob { digest: String, size: u64 },
    Manifest { digest: String, media_type: String },
}

/// The pushes `digest` (a manifest or index of the layout) needs, depth first.
fn plan(
    layout: &Layout,
    digest: &str,
    media_type: Option<&str>,
    steps: &mut Vec<Step>,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        bail!("the layout's indexes nest deeper than 4 levels");
    }
    let path = layout.blob(digest).with_context(|| {
        format!("the layout lists manifest {digest}, which the tarball does not contain")
    })?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let m: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("manifest {digest} is not JSON"))?;
    let children = m.get("manifests").and_then(Value::as_array);
    let media_type = m
        .get("mediaType")
        .and_then(Value::as_str)
        .or(media_type)
        .unwrap_or(if children.is_some() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        })
        .to_string();
    if let Some(children) = children {
        for c in children {
            let d = c
                .get("digest")
                .and_then(Value::as_str)
                .context("an index entry has no digest")?;
            plan(
                layout,
                d,
                c.get("mediaType").and_then(Value::as_str),
                steps,
                depth + 1,
            )?;
        }
    } else {
        let config = m
            .get("config")
            .with_context(|| format!("manifest {digest} has no config"))?;
        let layers = m
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for d in std::iter::once(config).chain(layers.iter()) {
            let blob = d
                .get("digest")
                .and_then(Value::as_str)
                .context("a descriptor has no digest")?;
            let size = d
                .get("size")
                .and_then(Value::as_u64)
                .context("a descriptor has no size")?;
            let path = layout.blob(blob).with_context(|| {
                format!("manifest {digest} needs blob {blob}, which the tarball does not contain")
            })?;
            let actual = std::fs::metadata(&path)?.len();
            if actual != size {
                bail!("blob {blob} is {actual} bytes but manifest {digest} says {size}");
            }
            steps.push(Step::Blob {
                digest: blob.to_string(),
                size,
            });
        }
    }
    steps.push(Step::Manifest {
        digest: digest.to_string(),
        media_type,
    });
    Ok(())
}

/// Imports the layout tarball `file`; returns each image's `name:tag` and digest.
pub async fn import(
    store: &Store,
    file: &Path,
    gzip: bool,
    name: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let f = file.to_path_buf();
    let layout = tokio::task::spawn_blocking(move || unpack(&f, gzip))
        .await
        .context("unpacking the layout failed")??;
    let entries = layout
        .index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        bail!("{}: index.json lists no images", file.display());
    }
    let mut chosen = Vec::new();
    match name {
        Some(n) => {
            let (repo, tag) = split_name(n)?;
            let entry = if entries.len() == 1 {
                &entries[0]
            } else {
                entries
                    .iter()
                    .find(|e| name_from_annotations(e, file).is_some_and(|(_, t)| t == tag))
                    .with_context(|| {
                        format!(
                            "{} holds {} images and none is tagged {tag:?} (its {REF_NAME} annotations: {}); pass a --name whose tag picks one",
                            file.display(),
                            entries.len(),
                            ref_names(&entries)
                        )
                    })?
            };
            chosen.push((repo, tag, entry.clone()));
        }
        None => {
            for e in &entries {
                let (repo, tag) = name_from_annotations(e, file).with_context(|| {
                    format!("{}: an image in index.json has no {REF_NAME} annotation; pass --name REPOSITORY:TAG", file.display())
                })?;
                chosen.push((repo, tag, e.clone()));
            }
        }
    }
    let mut imported = Vec::new();
    for (repo, tag, entry) in chosen {
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .context("an index.json entry has no digest")?
            .to_string();
        let mut steps = Vec::new();
        plan(
            &layout,
            &digest,
            entry.get("mediaType").and_then(Value::as_str),
            &mut steps,
            0,
        )?;
        let last = steps.len() - 1;
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Blob { digest, size } => {
                    push_file(store, &layout, &repo, &digest, size).await?
                }
                Step::Manifest {
                    digest: d,
                    media_type,
                } => {
                    let path = layout
                        .blob(&d)
                        .context("manifest vanished from the unpacked layout")?;
                    let body = tokio::fs::read(&path)
                        .await
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    // The top manifest gets the tag; the others are stored by digest.
                    let r = if i == last {
                        store.tagged(&repo, &tag)
                    } else {
                        store.pinned(&repo, &d)
                    };
                    store.push_manifest(&r, body, &media_type).await?;
                }
            }
        }
        tracing::debug!(image = %format!("{repo}:{tag}"), %digest, "imported OCI image");
        imported.push((format!("{repo}:{tag}"), digest));
    }
    Ok(imported)
}

fn ref_names(entries: &[Value]) -> String {
    let names: Vec<String> = entries
        .iter()
        .map(|e| {
            e.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    names.join(", ")
}

/// Streams a blob file to the store in [`DEFAULT_PUSH_CHUNK_BYTES`] pieces, unless it is
/// there already.
async fn push_file(
    store: &Store,
    layout: &Layout,
    repo: &str,
    digest: &str,
    size: u64,
) -> Result<()> {
    let r = store.tagged(repo, "latest");
    if store
        .client
        .blob_exists(&r, digest)
        .await
        .with_context(|| store.failed("check blob", digest))?
    {
        return Ok(());
    }
    let path = layout
        .blob(digest)
        .context("blob vanished from the unpacked layout")?;
    let file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let stream = futures::stream::unfold(Some(file), |state| async move {
        use tokio::io::AsyncReadExt;
        let mut f = state?;
        let mut buf = vec![0u8; DEFAULT_PUSH_CHUNK_BYTES];
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]).await {
                Ok(0) => break,
                Ok(m) => n += m,
                Err(e) => {
                    return Some((
                        Err(oci_client::errors::OciDistributionError::IoError(e)),
                        None,
                    ))
                }
            }
        }
        if n == 0 {
            return None;
        }
        buf.truncate(n);
        Some((Ok(bytes::Bytes::from(buf)), Some(f)))
    });
    store
        .client
        .push_blob_stream(&r, stream, digest, Some(size))
        .await
        .with_context(|| store.failed("upload blob", digest))?;
    Ok(())
}

/// Copies a tar entry to `dest`, returning the sha256 hex of its content.
fn copy_hashed(entry: &mut impl Read, dest: &Path) -> std::io::Result<String> {
    let mut out = std::fs::File::create(dest)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; DEFAULT_COPY_BUFFER_BYTES];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut out, &buf[..n])?;
    }
    Ok(hex(&hasher.finalize()))
}
