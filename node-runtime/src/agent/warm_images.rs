//! The images whose components this node holds compiled and pre-instantiated (the Wasm
//! runtime keeps each loaded component's `InstancePre` for the agent's lifetime, and its
//! compiled code on disk), reported in the Node's `status.images` like kubelet reports its
//! images, so the scheduler prefers this node for their pods (`ImageLocality`): a pod scaled
//! from zero lands where starting it costs one instantiation, not a compile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Images reported at most (kubelet's `nodeStatusMaxImages` default), most recently used first.
pub const DEFAULT_MAX_REPORTED_IMAGES: usize = 50;
/// Changes are batched this long before the Node is patched (a burst of starts is one write).
pub const DEFAULT_IMAGES_REPORT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Entry {
    size: u64,
    last_used: Instant,
}

/// The node's warm images by reference (as pods name them).
#[derive(Debug, Clone)]
pub struct WarmImages {
    images: Arc<Mutex<HashMap<String, Entry>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for WarmImages {
    fn default() -> Self {
        WarmImages {
            images: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl WarmImages {
    /// A container of `reference` started from its loaded component (`size` bytes).
    pub fn used(&self, reference: &str, size: u64) {
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let new = images
            .insert(
                reference.to_string(),
                Entry {
                    size,
                    last_used: Instant::now(),
                },
            )
            .is_none();
        drop(images);
        if new {
            self.changed.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// `status.images` as kubelet writes it, most recently used first.
    pub fn status(&self) -> Vec<Value> {
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<(&String, &Entry)> = images.iter().collect();
        list.sort_by(|a, b| b.1.last_used.cmp(&a.1.last_used).then(a.0.cmp(b.0)));
        list.into_iter()
            .take(DEFAULT_MAX_REPORTED_IMAGES)
            .map(|(name, e)| json!({"names": [name], "sizeBytes": e.size}))
            .collect()
    }
}

/// Patches the Node's `status.images` after each batch of changes, until `shutdown`.
pub async fn report(
    client: kube::Client,
    node_name: String,
    warm: WarmImages,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Node> = Api::all(client);
    let mut changes = warm.changed.subscribe();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(DEFAULT_IMAGES_REPORT_DELAY) => {}
            _ = shutdown.changed() => return,
        }
        changes.borrow_and_update();
        let patch = json!({"status": {"images": warm.status()}});
        if let Err(e) = api
            .patch_status(&node_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(error = %e, "cannot report the node's warm images; next change retries");
            // Make the next change (or this one, once more) go out.
            warm.changed.send_modify(|g| *g = g.wrapping_add(1));
            tokio::select! {
                _ = tokio::time::sleep(DEFAULT_IMAGES_REPORT_DELAY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_and_bounded() {
        let w = WarmImages::default();
        for i in 0..(DEFAULT_MAX_REPORTED_IMAGES + 5) {
            w.used(&format!("img-{i}:v1"), 10);
        }
        w.used("img-0:v1", 10);
        let s = w.status();
        assert_eq!(s.len(), DEFAULT_MAX_REPORTED_IMAGES);
        assert_eq!(s[0]["names"][0], "img-0:v1");
        assert_eq!(s[0]["sizeBytes"], 10);
    }
}
