//! Where this node's Wasm HTTP components listen: `(namespace, pod) → (containerPort, bound
//! address)` for each running component, so `kubectl port-forward` can reach a Wasm pod's
//! port (it has no CRI sandbox to ask). A container registers when its server starts; the
//! [`Registration`] it gets back unregisters it when dropped (the server stopped).
//!
//! The activator reads it too: a component without a readiness probe is ready as soon as it
//! serves, so a connection held for a Service whose selector matches the pod's labels can go
//! to it at once, before the pod's status and the EndpointSlice have made their round trip
//! through the API (the fast path of a Wasm cold start).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Key = (String, String);

struct Entry {
    token: u64,
    ports: Vec<(u16, SocketAddr)>,
    /// The pod's labels when the component is ready as soon as it serves (no readiness
    /// probe); `None` otherwise.
    ready_labels: Option<BTreeMap<String, String>>,
}

/// The node's registry; cheap to clone, shared by the pod workers and the endpoint.
#[derive(Clone)]
pub struct WasmPorts {
    inner: Arc<Mutex<HashMap<Key, Vec<Entry>>>>,
    next: Arc<AtomicU64>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for WasmPorts {
    fn default() -> Self {
        WasmPorts {
            inner: Arc::default(),
            next: Arc::default(),
            changed: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

/// One running component's ports in the registry, removed when this is dropped.
pub struct Registration {
    ports: WasmPorts,
    key: Key,
    token: u64,
}

impl WasmPorts {
    /// Records that a component of pod `ns/pod` serves `ports`; `ready_labels`: the pod's
    /// labels when the component is ready once it serves (no readiness probe).
    pub fn register(
        &self,
        ns: &str,
        pod: &str,
        ports: Vec<(u16, SocketAddr)>,
        ready_labels: Option<BTreeMap<String, String>>,
    ) -> Registration {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let key = (ns.to_string(), pod.to_string());
        self.lock().entry(key.clone()).or_default().push(Entry {
            token,
            ports,
            ready_labels,
        });
        self.bump();
        Registration {
            ports: self.clone(),
            key,
            token,
        }
    }

    /// The ports the pod's running Wasm components serve, or `None` when it runs none here.
    pub fn lookup(&self, ns: &str, pod: &str) -> Option<Vec<(u16, SocketAddr)>> {
        let map = self.lock();
        let entries = map.get(&(ns.to_string(), pod.to_string()))?;
        let mut ports: Vec<(u16, SocketAddr)> =
            entries.iter().flat_map(|e| e.ports.clone()).collect();
        ports.sort_unstable_by_key(|(p, _)| *p);
        Some(ports)
    }

    /// Where ready components of pods in `ns` whose labels `selector` matches serve
    /// `container_port`.
    pub fn ready_matching(
        &self,
        ns: &str,
        selector: &BTreeMap<String, String>,
        container_port: u16,
    ) -> Vec<SocketAddr> {
        if selector.is_empty() {
            return Vec::new();
        }
        let map = self.lock();
        map.iter()
            .filter(|((n, _), _)| n == ns)
            .flat_map(|(_, entries)| entries.iter())
            .filter(|e| {
                e.ready_labels
                    .as_ref()
                    .is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
            })
            .flat_map(|e| e.ports.iter())
            .filter(|(p, _)| *p == container_port)
            .map(|(_, addr)| *addr)
            .collect()
    }

    /// Changes with every registration and unregistration.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Entry>>> {
        // The map stays consistent through any panic holding the lock: each change is one call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.ports.lock();
        if let Some(entries) = map.get_mut(&self.key) {
            entries.retain(|e| e.token != self.token);
            if entries.is_empty() {
                map.remove(&self.key);
            }
        }
        drop(map);
        self.ports.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn registrations_come_and_go_per_component() {
        let reg = WasmPorts::default();
        assert!(reg.lookup("default", "web").is_none());
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let a = reg.register(
            "default",
            "web",
            vec![(8080, addr(40001))],
            Some(labels.clone()),
        );
        let b = reg.register("default", "web", vec![(80, addr(40002))], None);
        let other = reg.register("prod", "web", vec![(8080, addr(40003))], None);
        assert_eq!(
            reg.ready_matching("default", &labels, 8080),
            vec![addr(40001)]
        );
        assert!(
            reg.ready_matching("default", &labels, 80).is_empty(),
            "b has a probe"
        );
        assert!(reg.ready_matching("prod", &labels, 8080).is_empty());
        assert_eq!(
            reg.lookup("default", "web"),
            Some(vec![(80, addr(40002)), (8080, addr(40001))])
        );
        drop(a);
        assert_eq!(reg.lookup("default", "web"), Some(vec![(80, addr(40002))]));
        // A restarted component registers again before the old registration is dropped.
        let b2 = reg.register("default", "web", vec![(80, addr(40004))], None);
        drop(b);
        assert_eq!(reg.lookup("default", "web"), Some(vec![(80, addr(40004))]));
        drop(b2);
        assert!(reg.lookup("default", "web").is_none());
        assert_eq!(reg.lookup("prod", "web"), Some(vec![(8080, addr(40003))]));
        drop(other);
        assert!(reg.lookup("prod", "web").is_none());
    }
}
