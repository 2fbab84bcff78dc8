//! The Ingress status controller: every Ingress Skiff serves gets the nodes' addresses as its
//! load-balancer ingress — `status.loadBalancer.ingress` = `[{ip: <InternalIP>}]` for each
//! Ready, schedulable node (the nodes ServiceLB would use, `servicelb::node_addresses`),
//! sorted and deduplicated, empty while no node qualifies.
//!
//! Skiff serves an Ingress whose class (`spec.ingressClassName`, else the older
//! `kubernetes.io/ingress.class` annotation) is an IngressClass whose `spec.controller` is
//! `skiff.dev/ingress` — the bootstrapped `skiff` class, or any other naming that controller;
//! `skiff` counts while no IngressClass of that name exists. An Ingress without a class is
//! served when the default IngressClass is Skiff's (DefaultIngressClass admission gives new
//! ones its name). Ingresses of other classes are left alone; one that moves to another class
//! loses the addresses this controller wrote, unless something else has changed them since.
//! Node changes re-run every served Ingress, IngressClass changes every Ingress.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::runner::{served, Action, ReconcileError, Reconciler, Trigger};
use super::servicelb::{node_addresses, node_change_matters};
use crate::api::admission::ingress::{default_class, INGRESS_CLASSES};
use crate::api::admission::validation::ingress::CLASS_ANNOTATION;
use crate::api::handlers::{Objects, Subresource};
use crate::api::object;
use crate::bootstrap::{INGRESS_CLASS, INGRESS_CONTROLLER};
use crate::store::{EventType, ObjectKey};

/// Reconciles run two at a time: each is an Ingress read, two lists and at most one write.
pub const DEFAULT_WORKERS: usize = 2;
const GROUP: &str = "networking.k8s.io";
const INGRESSES: &str = "networking.k8s.io/ingresses";

type Keys = Arc<Mutex<HashSet<ObjectKey>>>;

fn lock(keys: &Keys) -> std::sync::MutexGuard<'_, HashSet<ObjectKey>> {
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct IngressController {
    objects: Objects,
    /// Every Ingress the watch has seen: an IngressClass change can change which are ours.
    known: Keys,
    /// The Ingresses this controller serves (rebuilt by reconciles): node changes re-run them,
    /// and one that moves to another class is known to have been ours.
    managed: Keys,
}

impl IngressController {
    pub fn new(objects: Objects) -> Self {
        IngressController {
            objects,
            known: Keys::default(),
            managed: Keys::default(),
        }
    }

    /// Marks `key` as served or not; returns whether it was.
    fn set_managed(&self, key: &ObjectKey, managed: bool) -> bool {
        let mut set = lock(&self.managed);
        if managed {
            !set.insert(key.clone())
        } else {
            set.remove(key)
        }
    }

    async fn write_ingress(&self, ing: &Value, points: &[Value]) -> Result<(), ReconcileError> {
        let lb = if points.is_empty() {
            json!({})
        } else {
            json!({ "ingress": points })
        };
        self.objects
            .modify(
                served(GROUP, "ingresses")?,
                object::namespace(ing),
                object::name(ing),
                Subresource::Status,
                |i| {
                    if let Some(m) = i.as_object_mut() {
                        let status = m.entry("status").or_insert_with(|| json!({}));
                        if let Some(st) = status.as_object_mut() {
                            st.insert("loadBalancer".into(), lb.clone());
                        }
                    }
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }

    async fn wanted(&self) -> Result<Vec<Value>, ReconcileError> {
        let nodes = self.objects.list(served("", "nodes")?, "", None).await?;
        Ok(ingress_for(&nodes))
    }
}

/// The class an Ingress names: `spec.ingressClassName`, else the `kubernetes.io/ingress.class`
/// annotation.
pub fn class_of(ing: &Value) -> Option<&str> {
    ing.pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            ing.pointer("/metadata/annotations")
                .and_then(|a| a.get(CLASS_ANNOTATION))
                .and_then(Value::as_str)
        })
}

fn is_skiffs(class: &Value) -> bool {
    class.pointer("/spec/controller").and_then(Value::as_str) == Some(INGRESS_CONTROLLER)
}

/// Whether Skiff serves `ing`, given the cluster's IngressClasses.
pub fn is_ours(ing: &Value, classes: &[Value]) -> bool {
    match class_of(ing) {
        Some(name) => match classes.iter().find(|c| object::name(c) == name) {
            Some(class) => is_skiffs(class),
            None => name == INGRESS_CLASS,
        },
        None => default_class(classes).is_some_and(is_skiffs),
    }
}

fn current_ingress(ing: &Value) -> Vec<Value> {
    ing.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The load-balancer ingress for `nodes`: one `{ip}` per address, sorted, deduplicated.
pub fn ingress_for(nodes: &[Value]) -> Vec<Value> {
    let mut ips: Vec<std::net::Ipv4Addr> = nodes.iter().flat_map(node_addresses).collect();
    ips.sort();
    ips.dedup();
    ips.into_iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect()
}

impl Reconciler for IngressController {
    fn name(&self) -> &'static str {
        "ingress"
    }

    fn triggers(&self) -> Vec<Trigger> {
        let (known, all) = (self.known.clone(), self.known.clone());
        let managed = self.managed.clone();
        vec![
            Trigger::mapped(INGRESSES, move |e| {
                let mut set = lock(&known);
                if e.kind == EventType::Deleted {
                    set.remove(&e.key);
                } else {
                    set.insert(e.key.clone());
                }
                vec![e.key.clone()]
            }),
            Trigger::mapped("core/nodes", move |e| {
                if !node_change_matters(e) {
                    return Vec::new();
                }
                lock(&managed).iter().cloned().collect()
            }),
            Trigger::mapped(INGRESS_CLASSES, move |_| {
                lock(&all).iter().cloned().collect()
            }),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let Some(ing) = self
            .objects
            .get(served(GROUP, "ingresses")?, ns, name)
            .await?
        else {
            self.set_managed(key, false);
            return Ok(Action::Done);
        };
        let classes = self
            .objects
            .list(served(GROUP, "ingressclasses")?, "", None)
            .await?;
        let current = current_ingress(&ing);
        if !is_ours(&ing, &classes) {
            let was_ours = self.set_managed(key, false);
            tracing::debug!(ingress = %format!("{ns}/{name}"), class = ?class_of(&ing), "not a Skiff ingress");
            // Hands off another controller's status: clear only what this one wrote.
            if was_ours && !current.is_empty() && current == self.wanted().await? {
                tracing::debug!(ingress = %format!("{ns}/{name}"), "moved to another class; clearing its addresses");
                self.write_ingress(&ing, &[]).await?;
            }
            return Ok(Action::Done);
        }
        self.set_managed(key, true);
        let wanted = self.wanted().await?;
        tracing::debug!(ingress = %format!("{ns}/{name}"), addresses = wanted.len(), "reconciling ingress status");
        if wanted != current {
            self.write_ingress(&ing, &wanted).await?;
        }
        Ok(Action::Done)
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
