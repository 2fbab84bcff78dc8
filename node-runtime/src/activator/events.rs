//! The cold-start Event: on the Service, when the first connection held while it had no
//! ready endpoint goes on, saying how long it waited (`kubectl describe service` and
//! `kubectl get events` show it).

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{ServiceRef, Shared};

/// Records it in the background (best effort: a failure is logged).
pub(super) fn cold_start(shared: &Shared, service: &ServiceRef, held: Duration) {
    let client = shared.client.clone();
    let node = shared.cfg.node_name.clone();
    let service = service.clone();
    let at = jiff::Timestamp::now().to_string();
    tokio::spawn(async move {
        let api: Api<Event> = Api::namespaced(client, &service.namespace);
        let message = format!(
            "cold start: the first request waited {} ms for a ready endpoint (held by the activator on node {node})",
            held.as_millis()
        );
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{:x}", service.name, jiff::Timestamp::now().as_nanosecond()),
                         "namespace": service.namespace},
            "involvedObject": {"kind": "Service", "apiVersion": "v1",
                               "namespace": service.namespace, "name": service.name},
            "reason": "ColdStart", "message": message, "type": "Normal",
            "source": {"component": "skiff-activator", "host": node},
            "firstTimestamp": at, "lastTimestamp": at, "count": 1,
            "reportingComponent": "skiff-activator", "reportingInstance": node,
        });
        let Ok(ev) = serde_json::from_value::<Event>(ev) else {
            return;
        };
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(service = %service, error = %e, "cannot record the cold-start event");
        }
    });
}
