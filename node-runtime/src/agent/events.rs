//! Records core/v1 Events about the agent's pods through the API (so `kubectl describe pod`
//! shows Pulled/Started/BackOff), aggregating repeats into `count`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::node::now;

/// (pod uid, reason, message) of an event already recorded.
type EventIdentity = (String, String, String);

/// Writes Events in the background, so a pod's start never waits on them (each is a durable
/// write on the server); their timestamps are taken when they happen.
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    node: String,
    /// Recorded events → (event name, count), so repeats bump the count.
    seen: Mutex<HashMap<EventIdentity, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Self {
        Recorder {
            inner: Arc::new(Inner {
                client,
                node: node.to_string(),
                seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Best effort, in the background: a failure to record is logged, never fails the caller.
    pub async fn record(&self, pod: &Pod, warning: bool, reason: &str, message: &str) {
        let inner = self.inner.clone();
        let (pod, reason, message, at) =
            (pod.clone(), reason.to_string(), message.to_string(), now());
        tokio::spawn(async move { inner.record(&pod, warning, &reason, &message, at).await });
    }

    /// Forgets a pod's events (after it is gone).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.inner.seen.lock() {
            m.retain(|(u, _, _), _| u != uid);
        }
    }
}

impl Inner {
    async fn record(&self, pod: &Pod, warning: bool, reason: &str, message: &str, at: String) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let existing = self.seen.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some((ev_name, count)) = existing {
            let patch = json!({"count": count + 1, "lastTimestamp": at});
            if api
                .patch(&ev_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                if let Ok(mut m) = self.seen.lock() {
                    m.insert(key, (ev_name, count + 1));
                }
                return;
            }
        }
        let ev_name = format!("{name}.{:x}", jiff::Timestamp::now().as_nanosecond());
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": ev_name, "namespace": ns},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name, "uid": uid,
                               "resourceVersion": pod.metadata.resource_version.clone().unwrap_or_default()},
            "reason": reason, "message": message,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": at, "lastTimestamp": at, "count": 1,
            "type": if warning { "Warning" } else { "Normal" },
            "reportingComponent": "kubelet", "reportingInstance": self.node,
        });
        let Ok(ev) = serde_json::from_value::<Event>(ev) else {
            return;
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => {
                if let Ok(mut m) = self.seen.lock() {
                    if m.len() > 10_000 {
                        m.clear();
                    }
                    m.insert(key, (ev_name, 1));
                }
            }
            Err(e) => tracing::warn!(pod = %name, %reason, error = %e, "cannot record event"),
        }
    }
}
