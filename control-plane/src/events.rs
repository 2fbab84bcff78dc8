//! Records core/v1 Events about objects, so `kubectl describe` and `kubectl get events` show
//! what happened. Repeats of the same event within a short window bump `count` instead of
//! creating new objects, as Kubernetes' event correlator does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::object;
use crate::store::{ObjectKey, Precondition, Store, StoreError};

/// Repeats within this window update the existing Event (Kubernetes aggregates over 10 min).
pub const DEFAULT_AGGREGATION_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// (involved object uid, reason, message) of an event already recorded.
type EventIdentity = (String, String, String);

pub struct EventRecorder {
    store: Store,
    component: String,
    /// Recently recorded events: their object name and when.
    recent: Mutex<HashMap<EventIdentity, (String, Instant)>>,
}

impl EventRecorder {
    pub fn new(store: Store, component: &str) -> Self {
        EventRecorder {
            store,
            component: component.to_string(),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `involved` (any stored object). Returns the Event as stored.
    pub async fn record(
        &self,
        involved: &Value,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<Value, StoreError> {
        let uid = object::meta_str(involved, "uid").unwrap_or("").to_string();
        let namespace = match object::namespace(involved) {
            "" => "default".to_string(),
            ns => ns.to_string(),
        };
        let now = object::now_rfc3339();
        let dedup = (uid.clone(), reason.to_string(), message.to_string());
        let existing = self.recent.lock().ok().and_then(|m| {
            m.get(&dedup)
                .filter(|(_, at)| at.elapsed() < DEFAULT_AGGREGATION_WINDOW)
                .map(|(name, _)| name.clone())
        });
        if let Some(name) = existing {
            let key = ObjectKey::new("core/events", &namespace, &name);
            if let Some(mut ev) = self.store.get(&key).await? {
                let count = ev.get("count").and_then(Value::as_i64).unwrap_or(1);
                ev["count"] = json!(count + 1);
                ev["lastTimestamp"] = json!(now);
                match self.store.update(key, ev, Precondition::default()).await {
                    Ok(stored) => return Ok(stored),
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!("{}.{:x}", object::name(involved), nanos);
        let ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now,
            },
            "involvedObject": {
                "kind": involved.get("kind").cloned().unwrap_or(Value::Null),
                "apiVersion": involved.get("apiVersion").cloned().unwrap_or(Value::Null),
                "namespace": object::namespace(involved),
                "name": object::name(involved),
                "uid": uid,
                "resourceVersion": object::meta_str(involved, "resourceVersion").unwrap_or(""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": kind.as_str(),
            "reportingComponent": self.component,
            "reportingInstance": "",
        });
        let stored = self
            .store
            .create(ObjectKey::new("core/events", &namespace, &name), ev)
            .await?;
        if let Ok(mut m) = self.recent.lock() {
            m.retain(|_, (_, at)| at.elapsed() < DEFAULT_AGGREGATION_WINDOW);
            m.insert(dedup, (name, Instant::now()));
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_and_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let rec = EventRecorder::new(store.clone(), "test");
        let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}});
        let a = rec
            .record(&pod, EventType::Normal, "Scheduled", "assigned")
            .await
            .unwrap();
        let b = rec
            .record(&pod, EventType::Normal, "Scheduled", "assigned")
            .await
            .unwrap();
        assert_eq!(a["metadata"]["name"], b["metadata"]["name"]);
        assert_eq!(b["count"], 2);
        let c = rec
            .record(&pod, EventType::Warning, "Failed", "boom")
            .await
            .unwrap();
        assert_ne!(c["metadata"]["name"], a["metadata"]["name"]);
        assert_eq!(c["involvedObject"]["uid"], "u1");
        assert_eq!(c["metadata"]["namespace"], "ns");
    }
}
