//! Manifests and indexes as a node reads them: what to download, which platform entry of an
//! index to use, and whether an image is a Wasm artifact or an OCI container image.

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest types a pull asks for (the `Accept` header).
pub const ACCEPTED: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// The CNCF Wasm OCI artifact layout: config and layer media types.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER: &str = "application/wasm";
/// The older wasm-to-oci layout some registries still hold.
pub const WASM_LAYER_LEGACY: &str = "application/vnd.wasm.content.layer.v1+wasm";

const OCI_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const LAYER_PREFIXES: &[&str] = &[
    "application/vnd.oci.image.layer.",
    "application/vnd.docker.image.rootfs.",
];

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

/// An image manifest: config and layers.
#[derive(Debug, Clone)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Vec<Descriptor>),
}

/// Parses a manifest or index; the error says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
    let raw: Raw =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON manifest: {e}"))?;
    if raw.schema_version != Some(2) {
        return Err(format!(
            "schemaVersion {} is not supported (only 2)",
            raw.schema_version.map_or("none".into(), |v| v.to_string())
        ));
    }
    let is_index = match raw.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => return Err(format!("unsupported manifest media type {other:?}")),
        None => raw.manifests.is_some(),
    };
    if is_index {
        let entries = raw.manifests.ok_or("an index without a manifests list")?;
        return Ok(Manifest::Index(entries));
    }
    let config = raw.config.ok_or("an image manifest without a config")?;
    Ok(Manifest::Image(ImageManifest {
        config,
        layers: raw.layers.unwrap_or_default(),
    }))
}

/// The Go-style name of this machine's architecture, as OCI platforms spell it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Picks the index entry this node runs: a Wasm entry first (architecture `wasm`, or OS
/// `wasi`/`wasip1`/`wasip2`: Skiff runs components natively), then `linux/<host arch>`, then
/// the only entry if there is one without a platform.
pub fn select_platform(entries: &[Descriptor]) -> Option<&Descriptor> {
    let is_wasm = |p: &Platform| p.architecture == "wasm" || p.os.starts_with("wasi");
    entries
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(is_wasm))
        .or_else(|| {
            entries.iter().find(|e| {
                e.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
            })
        })
        .or_else(|| match entries {
            [only] if only.platform.is_none() => Some(only),
            _ => None,
        })
}

/// What an image manifest holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// A Wasm artifact; the component is this layer (index into `layers`).
    Wasm {
        layer: usize,
    },
    Oci,
}

/// Tells a Wasm artifact from a container image; errors name the unsupported media type.
pub fn classify(m: &ImageManifest) -> Result<Classified, (String, String)> {
    let wasm_layer = m
        .layers
        .iter()
        .position(|l| l.media_type == WASM_LAYER || l.media_type == WASM_LAYER_LEGACY);
    if let Some(layer) = wasm_layer {
        return Ok(Classified::Wasm { layer });
    }
    if m.config.media_type == WASM_CONFIG {
        return Err((
            WASM_CONFIG.to_string(),
            format!("a Wasm artifact needs a layer of media type {WASM_LAYER}"),
        ));
    }
    if !OCI_CONFIGS.contains(&m.config.media_type.as_str()) {
        return Err((
            m.config.media_type.clone(),
            format!(
                "not a Wasm artifact ({WASM_LAYER} layer) nor a container image (config {})",
                OCI_CONFIGS.join(" or ")
            ),
        ));
    }
    if let Some(l) = m
        .layers
        .iter()
        .find(|l| !LAYER_PREFIXES.iter().any(|p| l.media_type.starts_with(p)))
    {
        return Err((
            l.media_type.clone(),
            "container image layers must be OCI or Docker filesystem layers".into(),
        ));
    }
    Ok(Classified::Oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(mt: &str) -> Descriptor {
        Descriptor {
            media_type: mt.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: None,
        }
    }

    fn with_platform(os: &str, arch: &str) -> Descriptor {
        Descriptor {
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
            }),
            ..d(OCI_MANIFEST)
        }
    }

    #[test]
    fn wasm_and_oci_are_told_apart() {
        let wasm = ImageManifest {
            config: d(WASM_CONFIG),
            layers: vec![d(WASM_LAYER)],
        };
        assert_eq!(classify(&wasm), Ok(Classified::Wasm { layer: 0 }));
        let oci = ImageManifest {
            config: d("application/vnd.oci.image.config.v1+json"),
            layers: vec![d("application/vnd.oci.image.layer.v1.tar+gzip")],
        };
        assert_eq!(classify(&oci), Ok(Classified::Oci));
        let helm = ImageManifest {
            config: d("application/vnd.cncf.helm.config.v1+json"),
            layers: vec![d("application/vnd.cncf.helm.chart.content.v1.tar+gzip")],
        };
        let (mt, _) = classify(&helm).unwrap_err();
        assert_eq!(mt, "application/vnd.cncf.helm.config.v1+json");
        let empty_wasm = ImageManifest {
            config: d(WASM_CONFIG),
            layers: vec![],
        };
        assert!(classify(&empty_wasm).unwrap_err().1.contains(WASM_LAYER));
    }

    #[test]
    fn platforms_prefer_wasm_then_host_linux() {
        let entries = vec![
            with_platform("linux", "s390x"),
            with_platform("linux", host_arch()),
            with_platform("wasip2", "wasm"),
        ];
        assert_eq!(
            select_platform(&entries)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .os,
            "wasip2"
        );
        let entries = vec![
            with_platform("linux", "s390x"),
            with_platform("linux", host_arch()),
        ];
        assert_eq!(
            select_platform(&entries)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            host_arch()
        );
        assert!(select_platform(&[with_platform("windows", "amd64")]).is_none());
        assert!(select_platform(&[d(OCI_MANIFEST)]).is_some());
    }

    #[test]
    fn parse_rejects_what_it_cannot_use() {
        assert!(parse(b"nope").unwrap_err().contains("not a JSON"));
        assert!(parse(br#"{"schemaVersion":1}"#)
            .unwrap_err()
            .contains("schemaVersion 1"));
        assert!(parse(br#"{"schemaVersion":2,"mediaType":"x/y"}"#)
            .unwrap_err()
            .contains("x/y"));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(Manifest::Index(v)) if v.is_empty()
        ));
    }
}
