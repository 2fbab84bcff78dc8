//! Turning `oci-client` errors into [`PullError`]s that name the image and say what happened.

use oci_client::errors::{OciDistributionError, OciErrorCode};

use super::manifest::{self, Descriptor};
use super::reference::ImageRef;
use super::PullError;

/// Turns an `oci-client` error into one that says what happened to which image.
pub(crate) fn from_oci(r: &ImageRef, cluster_url: &str, e: OciDistributionError) -> PullError {
    let reference = r.original.clone();
    let registry = r.registry_display(cluster_url);
    let not_found = |detail: String| {
        if r.is_cluster() {
            PullError::NotInCluster {
                reference: reference.clone(),
                name: r.short_name(),
            }
        } else {
            PullError::NotFound {
                reference: reference.clone(),
                registry: registry.clone(),
                detail,
            }
        }
    };
    let unauthorized = |detail: String| PullError::Unauthorized {
        reference: reference.clone(),
        registry: registry.clone(),
        detail: if r.is_cluster() {
            format!("{detail} (check the node's token)")
        } else {
            format!(
                "{detail} (outside registries are pulled anonymously: the image must be public)"
            )
        },
    };
    let other = |detail: String| PullError::Registry {
        reference: reference.clone(),
        registry: registry.clone(),
        detail,
    };
    match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            let detail = envelope
                .errors
                .iter()
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let has =
                |codes: &[OciErrorCode]| envelope.errors.iter().any(|x| codes.contains(&x.code));
            if has(&[
                OciErrorCode::ManifestUnknown,
                OciErrorCode::NameUnknown,
                OciErrorCode::NotFound,
            ]) {
                not_found(detail)
            } else if has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied]) {
                unauthorized(detail)
            } else {
                other(detail)
            }
        }
        OciDistributionError::ServerError {
            code: 404, message, ..
        } => not_found(message),
        OciDistributionError::ServerError {
            code: code @ (401 | 403),
            message,
            ..
        } => unauthorized(format!("HTTP {code}: {}", message.trim())),
        OciDistributionError::UnauthorizedError { .. } => {
            unauthorized("HTTP 401: the token was not accepted".into())
        }
        OciDistributionError::AuthenticationFailure(m) => unauthorized(m),
        OciDistributionError::ServerError { code, message, .. } => {
            other(format!("HTTP {code}: {}", message.trim()))
        }
        OciDistributionError::ImageManifestNotFoundError(m) => not_found(m),
        OciDistributionError::RequestError(e) => PullError::Unreachable {
            reference,
            registry,
            detail: chain(&e),
        },
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => PullError::DigestMismatch {
            reference,
            what: "the manifest".into(),
            expected,
            actual,
        },
        OciDistributionError::UnsupportedMediaTypeError(media_type) => {
            PullError::UnsupportedMediaType {
                reference,
                media_type,
                detail: "not an image manifest or index".into(),
            }
        }
        e @ (OciDistributionError::ManifestParsingError(_)
        | OciDistributionError::VersionedParsingError(_)
        | OciDistributionError::UnsupportedSchemaVersionError(_)) => PullError::InvalidManifest {
            reference,
            detail: e.to_string(),
        },
        e => other(e.to_string()),
    }
}

/// An error and its sources, `: `-joined, skipping repeats (reqwest nests the same text).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

pub(crate) fn platforms(entries: &[Descriptor]) -> String {
    let list: Vec<String> = entries
        .iter()
        .map(|e| match &e.platform {
            Some(p) => format!("{}/{}", p.os, p.architecture),
            None => "unspecified".into(),
        })
        .collect();
    format!(
        "this node runs Wasm or linux/{}; the index offers {}",
        manifest::host_arch(),
        if list.is_empty() {
            "nothing".into()
        } else {
            list.join(", ")
        }
    )
}
