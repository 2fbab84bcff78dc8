//! ServiceLB, as k3s's: every Service of `type: LoadBalancer` that no other implementation
//! claims (no `spec.loadBalancerClass`) gets the nodes' addresses as its load-balancer
//! ingress — `status.loadBalancer.ingress` = `[{ip: <InternalIP>, ipMode: VIP}]` for each
//! Ready, schedulable node not labelled `node.kubernetes.io/exclude-from-external-load-balancers`,
//! sorted and deduplicated, empty while no node qualifies. The node ports admission allocated
//! carry the traffic. Node changes re-run every LoadBalancer Service; a Service that stops
//! being a LoadBalancer has its ingress cleared. Events as the cloud controller's service
//! controller records them (`EnsuringLoadBalancer`, `EnsuredLoadBalancer`, …).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::runner::{served, Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{Objects, Subresource};
use crate::events::{EventRecorder, EventType};
use crate::store::{ObjectKey, StoreEvent};

/// Reconciles run two at a time: each is a Service read, a node list and at most one write.
pub const DEFAULT_WORKERS: usize = 2;
/// Nodes with this label are never a load balancer's backends (as in Kubernetes).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const SERVICES: &str = "core/services";

pub struct ServiceLbController {
    objects: Objects,
    recorder: EventRecorder,
    /// LoadBalancer Services this controller serves (rebuilt by reconciles): node changes
    /// re-run them, and one that stops being a LoadBalancer is known to have been one.
    managed: Arc<Mutex<HashSet<ObjectKey>>>,
}

impl ServiceLbController {
    pub fn new(objects: Objects) -> Self {
        let recorder = EventRecorder::new(objects.state().store.clone(), "service-controller");
        ServiceLbController {
            objects,
            recorder,
            managed: Arc::default(),
        }
    }

    fn set_managed(&self, key: &ObjectKey, managed: bool) -> bool {
        let mut set = self.managed.lock().unwrap_or_else(|e| e.into_inner());
        if managed {
            !set.insert(key.clone())
        } else {
            set.remove(key)
        }
    }

    async fn event(&self, obj: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(obj, kind, reason, message).await {
            tracing::debug!(error = %e, "cannot record event");
        }
    }

    async fn write_ingress(
        &self,
        svc: &Value,
        ingress: &[Value],
    ) -> Result<Option<Value>, ReconcileError> {
        let lb = if ingress.is_empty() {
            json!({})
        } else {
            json!({ "ingress": ingress })
        };
        let (ns, name) = (
            crate::api::object::namespace(svc),
            crate::api::object::name(svc),
        );
        let updated = self
            .objects
            .modify(
                served("", "services")?,
                ns,
                name,
                Subresource::Status,
                |s| {
                    if let Some(m) = s.as_object_mut() {
                        let status = m.entry("status").or_insert_with(|| json!({}));
                        if let Some(st) = status.as_object_mut() {
                            st.insert("loadBalancer".into(), lb.clone());
                        }
                    }
                    Ok(())
                },
            )
            .await?;
        Ok(updated)
    }
}

/// Whether a Service is a LoadBalancer this controller serves.
pub fn is_ours(svc: &Value) -> bool {
    svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
        && svc
            .pointer("/spec/loadBalancerClass")
            .is_none_or(Value::is_null)
}

fn current_ingress(svc: &Value) -> Vec<Value> {
    svc.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The IPv4 InternalIPs of a node that can serve a load balancer: Ready, schedulable, not
/// excluded.
pub fn node_addresses(node: &Value) -> Vec<Ipv4Addr> {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True")));
    let unschedulable = node.pointer("/spec/unschedulable") == Some(&json!(true));
    let excluded = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_some_and(|l| l.contains_key(EXCLUDE_LABEL));
    if !ready || unschedulable || excluded {
        return Vec::new();
    }
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("type") == Some(&json!("InternalIP")))
        .filter_map(|a| a.get("address")?.as_str()?.parse().ok())
        .collect()
}

/// The ingress for `nodes`: one `{ip, ipMode: VIP}` per address, sorted, deduplicated.
pub fn ingress_for(nodes: &[Value]) -> Vec<Value> {
    let mut ips: Vec<Ipv4Addr> = nodes.iter().flat_map(node_addresses).collect();
    ips.sort();
    ips.dedup();
    ips.into_iter()
        .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
        .collect()
}

/// Whether a node change can change some load balancer's ingress.
pub(crate) fn node_change_matters(e: &StoreEvent) -> bool {
    match &e.prev {
        Some(prev) => {
            e.kind == crate::store::EventType::Deleted
                || node_addresses(prev) != node_addresses(&e.object)
        }
        None => true,
    }
}

impl Reconciler for ServiceLbController {
    fn name(&self) -> &'static str {
        "servicelb"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let managed = self.managed.clone();
        vec![
            Trigger::own(SERVICES),
            Trigger::mapped("core/nodes", move |e| {
                if !node_change_matters(e) {
                    return Vec::new();
                }
                let set = managed.lock().unwrap_or_else(|e| e.into_inner());
                set.iter().cloned().collect()
            }),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let Some(svc) = self.objects.get(served("", "services")?, ns, name).await? else {
            self.set_managed(key, false);
            return Ok(Action::Done);
        };
        let current = current_ingress(&svc);
        if !is_ours(&svc) {
            let was_ours = self.set_managed(key, false);
            let is_lb = svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
            // Another implementation owns a classed LoadBalancer's status: hands off.
            if is_lb || (!was_ours && current.is_empty()) {
                tracing::debug!(service = %format!("{ns}/{name}"), "not a ServiceLB load balancer");
                return Ok(Action::Done);
            }
            tracing::debug!(service = %format!("{ns}/{name}"), "no longer a LoadBalancer; clearing its ingress");
            self.event(
                &svc,
                EventType::Normal,
                "DeletingLoadBalancer",
                "Deleting load balancer",
            )
            .await;
            let svc = if current.is_empty() {
                svc
            } else {
                self.write_ingress(&svc, &[]).await?.unwrap_or(svc)
            };
            self.event(
                &svc,
                EventType::Normal,
                "DeletedLoadBalancer",
                "Deleted load balancer",
            )
            .await;
            return Ok(Action::Done);
        }
        self.set_managed(key, true);
        let nodes = self.objects.list(served("", "nodes")?, "", None).await?;
        let wanted = ingress_for(&nodes);
        tracing::debug!(service = %format!("{ns}/{name}"), nodes = nodes.len(), ingress = wanted.len(), "reconciling load balancer");
        if wanted == current {
            return Ok(Action::Done);
        }
        if wanted.is_empty() {
            self.event(
                &svc,
                EventType::Warning,
                "UnAvailableLoadBalancer",
                "There are no available nodes for LoadBalancer",
            )
            .await;
            self.write_ingress(&svc, &[]).await?;
            return Ok(Action::Done);
        }
        self.event(
            &svc,
            EventType::Normal,
            "EnsuringLoadBalancer",
            "Ensuring load balancer",
        )
        .await;
        let Some(updated) = self.write_ingress(&svc, &wanted).await? else {
            return Ok(Action::Done);
        };
        self.event(
            &updated,
            EventType::Normal,
            "EnsuredLoadBalancer",
            "Ensured load balancer",
        )
        .await;
        Ok(Action::Done)
    }
}

#[cfg(test)]
#[path = "servicelb_tests.rs"]
mod tests;
