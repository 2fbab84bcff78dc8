//! Pushing an image the agent builds itself (the sandbox image) into the cluster image store.

use oci_client::{Reference, RegistryOperation};

use super::puller::ImagePuller;
use super::PullError;

impl ImagePuller {
    /// Makes `name` (`repository:tag`) in the cluster store hold `manifest` with `blobs`,
    /// uploading only when the tag does not already resolve to that manifest.
    pub async fn ensure_in_cluster(
        &self,
        name: &str,
        blobs: &[(String, Vec<u8>)],
        manifest: &[u8],
        media_type: &'static str,
    ) -> Result<(), PullError> {
        let full = format!("{}/{name}", self.cluster_host());
        let oref = Reference::try_from(full.as_str()).map_err(|e| PullError::InvalidReference {
            reference: name.to_string(),
            reason: e.to_string(),
        })?;
        let err = |detail: String| PullError::Registry {
            reference: name.to_string(),
            registry: self.cluster_host().to_string(),
            detail,
        };
        let (client, auth) = self.cluster_session();
        let want = format!(
            "sha256:{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(manifest)
        );
        if let Ok(have) = client.fetch_manifest_digest(&oref, auth).await {
            if have == want {
                return Ok(());
            }
        }
        client
            .auth(&oref, auth, RegistryOperation::Push)
            .await
            .map_err(|e| err(format!("authenticating to push: {e}")))?;
        for (digest, bytes) in blobs {
            client
                .push_blob(&oref, bytes.clone(), digest)
                .await
                .map_err(|e| err(format!("pushing blob {digest}: {e}")))?;
        }
        client
            .push_manifest_raw(
                &oref,
                manifest.to_vec(),
                http::HeaderValue::from_static(media_type),
            )
            .await
            .map_err(|e| err(format!("pushing the manifest: {e}")))?;
        Ok(())
    }
}
