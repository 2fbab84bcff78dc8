//! A busybox OCI image the container tests build themselves (there is no registry to pull
//! one from): Debian's static `/bin/busybox` with a symlink per applet, `/etc/passwd`,
//! `/etc/group` and `/tmp`, as an OCI image layout tarball `skiff image import` takes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::Digest;

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

fn digest(b: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(b))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn layer() -> Result<Vec<u8>> {
    let bin = std::fs::read(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} is missing: apt-get install busybox-static"))?;
    let out = Command::new(BUSYBOX).arg("--list").output()?;
    if !out.status.success() {
        bail!("{BUSYBOX} --list failed");
    }
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["bin/", "etc/", "tmp/", "var/", "var/www/", "root/"] {
        let mode = if dir == "tmp/" { 0o1777 } else { 0o755 };
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, dir, std::io::empty())?;
    }
    let mut h = header(tar::EntryType::Regular, 0o755, bin.len() as u64);
    b.append_data(&mut h, "bin/busybox", bin.as_slice())?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for (path, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        b.append_data(&mut h, path, text.as_bytes())?;
    }
    Ok(b.into_inner()?)
}

fn config(layer_digest: &str) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?)
}

/// Writes `busybox-docker.tar` in the classic `docker save` format (`manifest.json`,
/// `<id>.json`, `<id>/layer.tar`), tagged `repo_tag`, into `dir`.
pub fn docker_save_tarball(dir: &Path, repo_tag: &str) -> Result<PathBuf> {
    let layer = layer()?;
    let layer_digest = digest(&layer);
    let config = config(&layer_digest)?;
    let config_name = format!("{}.json", &digest(&config)["sha256:".len()..]);
    let layer_name = format!("{}/layer.tar", &layer_digest["sha256:".len()..][..12]);
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": [repo_tag], "Layers": [layer_name]}
    ]))?;
    let path = dir.join("busybox-docker.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path)?);
    for (name, bytes) in [
        ("manifest.json", &manifest),
        (config_name.as_str(), &config),
        (layer_name.as_str(), &layer),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        b.append_data(&mut h, name, bytes.as_slice())?;
    }
    b.finish()?;
    Ok(path)
}

/// Writes `busybox.tar` (an OCI image layout, ref name `busybox:1.35`) into `dir`.
pub fn layout_tarball(dir: &Path) -> Result<PathBuf> {
    let layer = layer()?;
    let layer_digest = digest(&layer);
    let config = config(&layer_digest)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))?;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "busybox:1.35"},
        }],
    }))?;
    let path = dir.join("busybox.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path)?);
    let mut add = |name: String, bytes: &[u8]| -> Result<()> {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        b.append_data(&mut h, name, bytes)?;
        Ok(())
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json".into(), &index)?;
    for blob in [&layer, &config, &manifest] {
        add(
            format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]),
            blob,
        )?;
    }
    b.finish()?;
    Ok(path)
}
