//! Where this node's Wasm HTTP components listen: `(namespace, pod) → (containerPort, bound
//! address)` for each running component, so `kubectl port-forward` can reach a Wasm pod's
//! port (it has no CRI sandbox to ask). A container registers when its server starts; the
//! [`Registration`] it gets back unregisters it when dropped (the server stopped).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Key = (String, String);

struct Entry {
    token: u64,
    ports: Vec<(u16, SocketAddr)>,
}

/// The node's registry; cheap to clone, shared by the pod workers and the endpoint.
#[derive(Clone, Default)]
pub struct WasmPorts {
    inner: Arc<Mutex<HashMap<Key, Vec<Entry>>>>,
    next: Arc<AtomicU64>,
}

/// One running component's ports in the registry, removed when this is dropped.
pub struct Registration {
    ports: WasmPorts,
    key: Key,
    token: u64,
}

impl WasmPorts {
    /// Records that a component of pod `ns/pod` serves `ports`.
    pub fn register(&self, ns: &str, pod: &str, ports: Vec<(u16, SocketAddr)>) -> Registration {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let key = (ns.to_string(), pod.to_string());
        self.lock()
            .entry(key.clone())
            .or_default()
            .push(Entry { token, ports });
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
        let a = reg.register("default", "web", vec![(8080, addr(40001))]);
        let b = reg.register("default", "web", vec![(80, addr(40002))]);
        let other = reg.register("prod", "web", vec![(8080, addr(40003))]);
        assert_eq!(
            reg.lookup("default", "web"),
            Some(vec![(80, addr(40002)), (8080, addr(40001))])
        );
        drop(a);
        assert_eq!(reg.lookup("default", "web"), Some(vec![(80, addr(40002))]));
        // A restarted component registers again before the old registration is dropped.
        let b2 = reg.register("default", "web", vec![(80, addr(40004))]);
        drop(b);
        assert_eq!(reg.lookup("default", "web"), Some(vec![(80, addr(40004))]));
        drop(b2);
        assert!(reg.lookup("default", "web").is_none());
        assert_eq!(reg.lookup("prod", "web"), Some(vec![(8080, addr(40003))]));
        drop(other);
        assert!(reg.lookup("prod", "web").is_none());
    }
}
