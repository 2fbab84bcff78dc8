//! Validation of pushed manifests: an OCI (or Docker v2) image manifest whose config and
//! layers are stored blobs of the declared sizes, or an index whose entries are manifests of
//! the same repository.

use serde::Deserialize;

use super::{
    Digest, Registry, RegistryError, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parsed {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

/// Checks `body` (pushed as `image` into repository `name` with `Content-Type`
/// `content_type`); returns its media type.
pub fn validate(
    reg: &Registry,
    name: &str,
    image: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<String, RegistryError> {
    let invalid = |reason: String| RegistryError::ManifestInvalid {
        image: image.to_string(),
        reason,
    };
    let parsed: Parsed = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("not a JSON image manifest or index: {e}")))?;
    if parsed.schema_version != Some(2) {
        return Err(invalid(format!(
            "schemaVersion must be 2 (got {})",
            parsed
                .schema_version
                .map_or("none".to_string(), |v| v.to_string())
        )));
    }
    // Content-Type parameters (`; charset=…`) don't change the type.
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    let media_type = match (parsed.media_type.as_deref(), header) {
        (Some(body_type), Some(h)) if body_type != h => {
            return Err(invalid(format!(
                "the Content-Type {h:?} differs from the manifest's mediaType {body_type:?}"
            )))
        }
        (Some(t), _) | (None, Some(t)) => t.to_string(),
        (None, None) if parsed.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = parsed
                .config
                .ok_or_else(|| invalid("an image manifest needs a config descriptor".into()))?;
            check_blob(reg, image, &config, "config")?;
            for layer in parsed.layers.unwrap_or_default() {
                check_blob(reg, image, &layer, "layer")?;
            }
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let entries = parsed
                .manifests
                .ok_or_else(|| invalid("an index needs a manifests list".into()))?;
            for entry in entries {
                let digest = Digest::parse(&entry.digest).map_err(|e| invalid(e.to_string()))?;
                if !reg.has_manifest(name, &digest) {
                    return Err(RegistryError::ManifestBlobUnknown {
                        image: image.to_string(),
                        digest: digest.to_string(),
                        reason: format!("not a manifest of repository {name:?}"),
                    });
                }
            }
        }
        other => {
            return Err(invalid(format!(
                "unsupported manifest media type {other:?}; the store takes {OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST} and {DOCKER_MANIFEST_LIST}"
            )))
        }
    }
    Ok(media_type)
}

fn check_blob(
    reg: &Registry,
    image: &str,
    d: &Descriptor,
    what: &str,
) -> Result<(), RegistryError> {
    let invalid = |reason: String| RegistryError::ManifestInvalid {
        image: image.to_string(),
        reason,
    };
    let digest = Digest::parse(&d.digest).map_err(|e| invalid(format!("{what}: {e}")))?;
    if d.media_type.is_empty() {
        return Err(invalid(format!("{what} {digest} has no mediaType")));
    }
    match reg.blob_len(&digest)? {
        None => Err(RegistryError::ManifestBlobUnknown {
            image: image.to_string(),
            digest: digest.to_string(),
            reason: format!("its {what} blob was not uploaded"),
        }),
        Some(len) if i64::try_from(len).ok() != Some(d.size) => Err(invalid(format!(
            "{what} {digest} is declared as {} bytes but the stored blob has {len}",
            d.size
        ))),
        Some(_) => Ok(()),
    }
}
