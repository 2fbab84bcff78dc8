//! The sandbox ("pause") image: Skiff's own pause binary (`pause/pause.c`, built statically by
//! `build.rs`) wrapped in a one-layer OCI image that the agent pushes to the cluster image
//! store, where containerd pulls it as its `sandbox_image`. There is no outside registry to
//! pull `registry.k8s.io/pause` from, and nothing else is needed.
//!
//! The layer tar is byte-for-byte deterministic (fixed mtime, owner and mode), so every agent
//! built from the same source pushes the same digests and tag.

use sha2::{Digest, Sha256};

/// The static pause binary.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/skiff-pause"));
/// The repository the sandbox image is stored under in the cluster image store.
pub const PAUSE_REPOSITORY: &str = "skiff/pause";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image built in memory: its blobs (config and layers) and manifest.
pub struct BuiltImage {
    /// `repository:tag` in the cluster store.
    pub name: String,
    pub blobs: Vec<(String, Vec<u8>)>,
    pub manifest: Vec<u8>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn layer_tar() -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(PAUSE_BINARY.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "pause", PAUSE_BINARY)?;
    b.into_inner()
}

/// The Go architecture name of this machine, as OCI image configs spell it.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The pause image for this machine's architecture.
pub fn pause_image() -> std::io::Result<BuiltImage> {
    let layer = layer_tar()?;
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {"Entrypoint": ["/pause"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?;
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer.len()}],
    }))?;
    // The tag names the content, so a rebuilt pause binary never reuses an old tag.
    let tag = digest(&manifest)["sha256:".len()..][..12].to_string();
    Ok(BuiltImage {
        name: format!("{PAUSE_REPOSITORY}:{tag}"),
        blobs: vec![(config_digest, config), (layer_digest, layer)],
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_image_is_deterministic_and_complete() {
        let a = pause_image().expect("build");
        let b = pause_image().expect("build");
        assert_eq!(a.name, b.name);
        assert_eq!(a.manifest, b.manifest);
        assert!(a.name.starts_with("skiff/pause:"));
        let m: serde_json::Value = serde_json::from_slice(&a.manifest).expect("json");
        for (d, bytes) in &a.blobs {
            assert_eq!(&digest(bytes), d);
        }
        assert_eq!(m["layers"][0]["digest"], a.blobs[1].0);
        assert!(
            PAUSE_BINARY.len() > 1000,
            "the static pause binary is embedded"
        );
        // A static ELF executable: no interpreter needed inside the image.
        assert_eq!(&PAUSE_BINARY[..4], b"\x7fELF");
    }
}
