//! `metrics.k8s.io/v1beta1`, as metrics-server serves it: `NodeMetrics` and `PodMetrics`
//! (read-only: get and list, label selectors), from [`crate::usage::UsageStore`], so `kubectl
//! top nodes` and `kubectl top pods [--containers]` work and HorizontalPodAutoscalers have
//! Resource metrics. CPU is in nanocores (`123456n`), memory in KiB (`2048Ki`).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::selectors::LabelSelector;
use super::status::{ApiError, ApiResult};
use super::ApiState;
use crate::store::{ListScope, ObjectKey};
use crate::usage::{NodeUsage, PodUsage};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// The group's resources: (plural, singular, kind, namespaced).
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("nodes", "", "NodeMetrics", false),
    ("pods", "", "PodMetrics", true),
];
const VERBS: &[&str] = &["get", "list"];

/// The legacy `APIResourceList` of the group.
pub fn resource_list() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({"name": plural, "singularName": singular, "namespaced": namespaced,
                   "kind": kind, "verbs": VERBS})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
           "resources": resources})
}

/// The group's entry in the aggregated (`apidiscovery.k8s.io/v2`) discovery document.
pub fn aggregated_item() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({
                "resource": plural,
                "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": singular,
                "verbs": VERBS,
            })
        })
        .collect();
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}],
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsQuery {
    label_selector: Option<String>,
}

fn cpu(nanocores: u64) -> String {
    format!("{nanocores}n")
}

fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

fn window(d: std::time::Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn node_json(u: &NodeUsage, labels: Option<&Value>) -> Value {
    json!({
        "kind": "NodeMetrics", "apiVersion": API_VERSION,
        "metadata": {"name": u.name, "labels": labels.cloned().unwrap_or(json!({}))},
        "timestamp": u.timestamp,
        "window": window(u.window),
        "usage": {"cpu": cpu(u.cpu_nanocores), "memory": memory(u.memory_bytes)},
    })
}

fn pod_json(u: &PodUsage, labels: Option<&Value>) -> Value {
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|c| {
            json!({"name": c.name,
                   "usage": {"cpu": cpu(c.cpu_nanocores), "memory": memory(c.memory_bytes)}})
        })
        .collect();
    json!({
        "kind": "PodMetrics", "apiVersion": API_VERSION,
        "metadata": {"name": u.name, "namespace": u.namespace,
                     "labels": labels.cloned().unwrap_or(json!({}))},
        "timestamp": u.timestamp,
        "window": window(u.window),
        "containers": containers,
    })
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    axum::Json(json!({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}))
        .into_response()
}

fn selector(q: &MetricsQuery) -> ApiResult<Option<LabelSelector>> {
    q.label_selector
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()
}

/// The labels of the stored objects of `resource` in scope, by (namespace, name).
async fn labels_of(
    st: &ApiState,
    resource: &str,
    namespace: Option<&str>,
) -> ApiResult<std::collections::HashMap<(String, String), Value>> {
    let objs = st
        .store
        .list(&ListScope::new(resource, namespace))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(objs
        .items
        .into_iter()
        .filter_map(|o| {
            let ns = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = o.pointer("/metadata/name")?.as_str()?.to_string();
            let labels = o
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            Some(((ns, name), labels))
        })
        .collect())
}

fn matches(sel: &Option<LabelSelector>, labels: Option<&Value>) -> bool {
    sel.as_ref()
        .is_none_or(|s| s.matches(labels.and_then(Value::as_object)))
}

/// `/apis/metrics.k8s.io/v1beta1/...`
pub async fn serve(
    State(st): State<ApiState>,
    Path(rest): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Response> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let sel = selector(&q)?;
    match parts.as_slice() {
        ["nodes"] => {
            let labels = labels_of(&st, "core/nodes", None).await?;
            let items = st
                .usage
                .nodes()
                .iter()
                .filter_map(|u| {
                    let l = labels.get(&(String::new(), u.name.clone()));
                    (l.is_some() && matches(&sel, l)).then(|| node_json(u, l))
                })
                .collect();
            Ok(list("NodeMetricsList", items))
        }
        ["nodes", name] => {
            let node = st
                .store
                .get(&ObjectKey::new("core/nodes", "", name))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let usage = st.usage.nodes().into_iter().find(|u| u.name == *name);
            match (node, usage) {
                (Some(n), Some(u)) => {
                    Ok(axum::Json(node_json(&u, n.pointer("/metadata/labels"))).into_response())
                }
                _ => Err(ApiError::not_found("nodes", GROUP, name)),
            }
        }
        ["pods"] => pods(&st, None, &sel).await,
        ["namespaces", ns, "pods"] => pods(&st, Some(ns), &sel).await,
        ["namespaces", ns, "pods", name] => {
            let labels = labels_of(&st, "core/pods", Some(ns)).await?;
            let l = labels.get(&(ns.to_string(), name.to_string()));
            match (l, st.usage.pod(ns, name)) {
                (Some(l), Some(u)) => Ok(axum::Json(pod_json(&u, Some(l))).into_response()),
                _ => Err(ApiError::not_found("pods", GROUP, name)),
            }
        }
        _ => Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "the server could not find the requested resource (metrics.k8s.io/v1beta1 {rest})"
            ),
        )),
    }
}

async fn pods(st: &ApiState, ns: Option<&str>, sel: &Option<LabelSelector>) -> ApiResult<Response> {
    let labels = labels_of(st, "core/pods", ns).await?;
    let items = st
        .usage
        .pods(ns)
        .iter()
        .filter_map(|u| {
            // Pods that are gone (deleted since the last reading) are not listed.
            let l = labels.get(&(u.namespace.clone(), u.name.clone()));
            (l.is_some() && matches(sel, l)).then(|| pod_json(u, l))
        })
        .collect();
    Ok(list("PodMetricsList", items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_what_kubectl_reads() {
        assert_eq!(cpu(1_500_000), "1500000n");
        assert_eq!(memory(10 * 1024 * 1024 + 5), "10240Ki");
        assert_eq!(window(std::time::Duration::from_millis(10_250)), "10.250s");
        let list = resource_list();
        assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(
            aggregated_item()["versions"][0]["resources"][1]["scope"],
            "Namespaced"
        );
    }
}
