//! The classic `docker save` tarball: `manifest.json` is a list of
//! `{"Config": "<id>.json", "RepoTags": ["name:tag"], "Layers": ["<id>/layer.tar", …]}`.
//! Each image becomes an OCI image manifest (the Docker config is a valid OCI image config;
//! the layers are uncompressed tars) written into the unpacked layout, and an index whose
//! entries carry the first RepoTag as their `org.opencontainers.image.ref.name`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::Digest as _;

use super::{hex, OCI_MANIFEST};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Writes one manifest per image into `dir` (by sha256 hex, like the layout's blobs) and
/// returns the index and the manifests' hex names. `files` maps each file's path in the
/// tarball to the hex name it was stored under.
pub fn to_layout(
    dir: &Path,
    manifest: &Value,
    files: &HashMap<String, String>,
) -> Result<(Value, HashSet<String>)> {
    let images = manifest
        .as_array()
        .context("manifest.json is not a list of images")?;
    if images.is_empty() {
        bail!("manifest.json lists no images");
    }
    let blob = |path: &str| -> Result<Value> {
        let hex_name = files.get(path.trim_start_matches("./")).with_context(|| {
            format!("manifest.json names {path}, which the tarball does not contain")
        })?;
        let size = std::fs::metadata(dir.join(hex_name))?.len();
        Ok(json!({"digest": format!("sha256:{hex_name}"), "size": size}))
    };
    let mut entries = Vec::new();
    let mut written = HashSet::new();
    for image in images {
        let config_path = image
            .get("Config")
            .and_then(Value::as_str)
            .context("an image in manifest.json has no Config")?;
        let mut config = blob(config_path)?;
        config["mediaType"] = json!(OCI_CONFIG);
        let mut layers = Vec::new();
        for l in image
            .get("Layers")
            .and_then(Value::as_array)
            .context("an image in manifest.json has no Layers")?
        {
            let path = l.as_str().context("a Layers entry is not a path")?;
            let mut d = blob(path)?;
            d["mediaType"] = json!(OCI_LAYER_TAR);
            layers.push(d);
        }
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        }))?;
        let hex_name = hex(&sha2::Sha256::digest(&body));
        std::fs::write(dir.join(&hex_name), &body)
            .with_context(|| format!("cannot write into {}", dir.display()))?;
        let mut entry = json!({
            "mediaType": OCI_MANIFEST,
            "digest": format!("sha256:{hex_name}"),
            "size": body.len(),
        });
        if let Some(tag) = image
            .get("RepoTags")
            .and_then(Value::as_array)
            .and_then(|t| t.first())
            .and_then(Value::as_str)
        {
            entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        }
        written.insert(hex_name);
        entries.push(entry);
    }
    Ok((json!({"schemaVersion": 2, "manifests": entries}), written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_save_manifest_becomes_an_oci_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, body: &[u8]| {
            let h = hex(&sha2::Sha256::digest(body));
            std::fs::write(dir.path().join(&h), body).expect("write");
            (name.to_string(), h)
        };
        let files: HashMap<String, String> = [
            write("abc.json", br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#),
            write("l1/layer.tar", b"layer bytes"),
        ]
        .into();
        let manifest = json!([{"Config": "abc.json", "RepoTags": ["busybox:1.35"], "Layers": ["l1/layer.tar"]}]);
        let (index, written) = to_layout(dir.path(), &manifest, &files).expect("layout");
        let entry = &index["manifests"][0];
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.ref.name"],
            "busybox:1.35"
        );
        let hex_name = entry["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:");
        assert!(written.contains(hex_name));
        let m: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(hex_name)).expect("read"))
                .expect("json");
        assert_eq!(m["layers"][0]["size"], 11);
        assert_eq!(m["config"]["mediaType"], OCI_CONFIG);
        assert!(to_layout(
            dir.path(),
            &json!([{"Config": "missing.json", "Layers": []}]),
            &files
        )
        .is_err());
    }
}
