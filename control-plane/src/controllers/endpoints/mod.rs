//! The endpoints controller: for every Service with a selector, keeps its `Endpoints` (ready
//! and not-ready addresses) and its `discovery.k8s.io/v1` EndpointSlices (one per port set,
//! with ready/serving/terminating conditions, owned by the Service) in step with the pods it
//! selects — their IPs, readiness, deletion and named ports. Services without a selector are
//! left to the Endpoints and EndpointSlices their users write. `compute.rs` is the pure part.

pub mod compute;

use std::collections::HashSet;

use serde_json::{json, Value};

use super::runner::{
    selector_fanout, served, Action, ReconcileError, Reconciler, SelectorKind, Trigger,
};
use crate::api::handlers::{DeleteOptions, Objects, Subresource};
use crate::api::object;
use crate::api::resources::{self, ResourceDef};
use crate::store::ObjectKey;
use compute::{MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};

/// Reconciles run two at a time: each is a few reads and at most a few writes.
pub const DEFAULT_WORKERS: usize = 2;

pub struct EndpointsController {
    objects: Objects,
}

impl EndpointsController {
    pub fn new(objects: Objects) -> Self {
        EndpointsController { objects }
    }
}

fn slices_def() -> Result<&'static ResourceDef, ReconcileError> {
    resources::find("discovery.k8s.io", "v1", "endpointslices")
        .ok_or_else(|| ReconcileError::Invalid("endpointslices are not served".into()))
}

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    fn triggers(&self) -> Vec<Trigger> {
        selector_fanout(
            "core/services",
            "core/pods",
            "/spec/selector",
            SelectorKind::Map,
        )
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let svc_def = served("", "services")?;
        let eps_def = served("", "endpoints")?;
        let Some(svc) = self.objects.get(svc_def, ns, name).await? else {
            // The Service is gone: so are its Endpoints (its slices go with their owner).
            let opts = DeleteOptions::default();
            self.objects.delete(eps_def, ns, name, opts).await?;
            return Ok(Action::Done);
        };
        let has_selector = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty());
        if !has_selector {
            return Ok(Action::Done);
        }
        // Only the selected pods are read (the API's label selector over the Service's).
        let selector = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let pods = self
            .objects
            .list(served("", "pods")?, ns, selector.as_deref())
            .await?;
        let eps: Vec<compute::PodEndpoint> = pods
            .iter()
            .filter_map(|p| compute::pod_endpoint(&svc, p))
            .collect();
        self.sync_endpoints(eps_def, &svc, &eps).await?;
        self.sync_slices(&svc, &eps).await?;
        Ok(Action::Done)
    }
}

impl EndpointsController {
    async fn sync_endpoints(
        &self,
        def: &'static ResourceDef,
        svc: &Value,
        eps: &[compute::PodEndpoint],
    ) -> Result<(), ReconcileError> {
        let (ns, name) = (object::namespace(svc), object::name(svc));
        let subsets = compute::endpoints_subsets(eps);
        let labels = svc
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        match self.objects.get(def, ns, name).await? {
            None => {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "subsets": subsets,
                });
                self.objects.create(def, ns, obj).await?;
            }
            Some(cur) => {
                let have = cur.get("subsets").cloned().unwrap_or(json!([]));
                if have != subsets {
                    self.objects
                        .modify(def, ns, name, Subresource::Main, |e| {
                            e["subsets"] = subsets.clone();
                            Ok(())
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn sync_slices(
        &self,
        svc: &Value,
        eps: &[compute::PodEndpoint],
    ) -> Result<(), ReconcileError> {
        let def = slices_def()?;
        let (ns, name) = (object::namespace(svc), object::name(svc));
        let uid = svc
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let selector = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}");
        let existing = self.objects.list(def, ns, Some(&selector)).await?;
        let mut wanted = HashSet::new();
        for (endpoints, ports) in compute::slice_contents(eps) {
            // Named by their port set, so a slice keeps its name while its endpoints change.
            let hash = super::revisions::hash_data(&ports, None);
            let slice_name = format!("{}-{hash}", &name[..name.len().min(52)]);
            wanted.insert(slice_name.clone());
            match existing
                .iter()
                .find(|s| s.pointer("/metadata/name").and_then(Value::as_str) == Some(&slice_name))
            {
                Some(cur)
                    if cur.get("endpoints") == Some(&endpoints)
                        && cur.get("ports") == Some(&ports) => {}
                Some(_) => {
                    self.objects
                        .modify(def, ns, &slice_name, Subresource::Main, |s| {
                            s["endpoints"] = endpoints.clone();
                            s["ports"] = ports.clone();
                            Ok(())
                        })
                        .await?;
                }
                None => {
                    let obj = json!({
                        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {
                            "name": slice_name, "namespace": ns,
                            "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                "uid": uid, "controller": true, "blockOwnerDeletion": true}],
                        },
                        "addressType": "IPv4",
                        "endpoints": endpoints,
                        "ports": ports,
                    });
                    self.objects.create(def, ns, obj).await?;
                }
            }
        }
        for s in existing {
            let sname = s
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !wanted.contains(sname) {
                self.objects
                    .delete(def, ns, sname, DeleteOptions::default())
                    .await?;
            }
        }
        Ok(())
    }
}
