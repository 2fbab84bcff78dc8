//! The registry credentials a pod's `imagePullSecrets` give for one image, read through the
//! API like the kubelet's keyring. Missing secrets are reported (the kubelet's
//! `FailedToRetrieveImagePullSecret`) and the pull goes on without them.

use k8s_openapi::api::core::v1::Pod;

use super::volumes::{secret, secret_data};
use crate::images::pullsecrets::{self, Credentials};
use crate::images::reference::Source;
use crate::images::ImageRef;

/// What the pod's pull secrets hold for `image`'s registry, and the secrets that could not be
/// read. Images in the cluster store need none (the node's own token is used).
pub async fn credentials(
    client: &kube::Client,
    pod: &Pod,
    image: &str,
) -> (Option<Credentials>, Vec<String>) {
    let Ok(r) = ImageRef::parse(image) else {
        return (None, Vec::new());
    };
    let Source::Registry(host) = &r.source else {
        return (None, Vec::new());
    };
    let names: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut missing = Vec::new();
    let mut all = Vec::new();
    for name in names {
        match secret(client, &ns, &name).await {
            Ok(Some(s)) => all.push(pullsecrets::entries(&secret_data(&s))),
            Ok(None) | Err(_) => missing.push(name),
        }
    }
    let found = pullsecrets::for_host(all.iter().map(Vec::as_slice), host);
    (found, missing)
}
