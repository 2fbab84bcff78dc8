//! API discovery: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and aggregated
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`), both generated from the resource table.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::{json, Value};

use super::metrics_api;
use super::resources::{self, ResourceDef};
use super::status::{ApiError, ApiResult};
use super::ApiState;

const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.contains("as=APIGroupDiscoveryList") && t.contains("v=v2;"))
        })
}

fn json_with_type(body: Value, content_type: &'static str) -> Response {
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

fn verbs_for(_r: &ResourceDef) -> &'static [&'static str] {
    resources::ALL_VERBS
}

pub async fn api_versions(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return json_with_type(aggregated(true), AGGREGATED_V2);
    }
    axum::Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": st.config.advertise.clone()}],
    }))
    .into_response()
}

pub async fn api_groups(headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return json_with_type(aggregated(false), AGGREGATED_V2);
    }
    let mut groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_json(g, &v))
        .collect();
    groups.push(group_json(metrics_api::GROUP, &[metrics_api::VERSION]));
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

/// A group with its versions, the first preferred.
fn group_json(group: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

pub async fn api_group(Path(group): Path<String>) -> ApiResult<Response> {
    let (name, versions) = resources::groups()
        .into_iter()
        .chain([(metrics_api::GROUP, vec![metrics_api::VERSION])])
        .find(|(g, _)| *g == group)
        .ok_or_else(|| {
            ApiError::new(
                http::StatusCode::NOT_FOUND,
                "NotFound",
                format!("the server could not find the requested resource (API group {group:?})"),
            )
        })?;
    let mut body = group_json(name, &versions);
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    Ok(axum::Json(body).into_response())
}

pub async fn core_resources() -> Response {
    axum::Json(resource_list("", "v1")).into_response()
}

pub async fn group_resources(
    Path((group, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    if group == metrics_api::GROUP && version == metrics_api::VERSION {
        return Ok(axum::Json(metrics_api::resource_list()).into_response());
    }
    if resources::resources_in(&group, &version).next().is_none() {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource (API group version {group}/{version})"),
        ));
    }
    Ok(axum::Json(resource_list(&group, &version)).into_response())
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for r in resources::resources_in(group, version) {
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs_for(r),
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for s in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            });
            if !s.version.is_empty() {
                entry["group"] = json!(s.group);
                entry["version"] = json!(s.version);
            }
            list.push(entry);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, v, k) = if s.kind.is_empty() {
                (r.group, r.version, r.kind)
            } else {
                (s.group, s.version, s.kind)
            };
            json!({"subresource": s.name, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": s.verbs})
        })
        .collect();
    json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs_for(r),
        "shortNames": r.short_names,
        "categories": r.categories,
        "subresources": subs,
    })
}

fn aggregated(core: bool) -> Value {
    let mut items = Vec::new();
    for (group, versions) in resources::groups() {
        if group.is_empty() != core {
            continue;
        }
        let versions: Vec<Value> = versions
            .iter()
            .map(|version| {
                let res: Vec<Value> = resources::resources_in(group, version)
                    .map(aggregated_resource)
                    .collect();
                json!({"version": version, "resources": res, "freshness": "Current"})
            })
            .collect();
        items.push(json!({
            "metadata": {"name": group, "creationTimestamp": null},
            "versions": versions,
        }));
    }
    if !core {
        items.push(metrics_api::aggregated_item());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_the_subresources_kubectl_needs() {
        let list = resource_list("", "v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/eviction",
            "pods/log",
            "pods/exec",
            "namespaces",
        ] {
            assert!(names.contains(&n), "{n} missing");
        }
        let eviction = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["kind"], "Eviction");
        let apps = resource_list("apps", "v1");
        assert!(apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale"));
    }

    #[test]
    fn a_group_lists_every_served_version_stored_first() {
        let groups = aggregated(false);
        let autoscaling = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
        assert_eq!(autoscaling["versions"][1]["version"], "v1");
        let legacy = group_json("autoscaling", &["v2", "v1"]);
        assert_eq!(legacy["preferredVersion"]["version"], "v2");
        assert_eq!(
            resource_list("autoscaling", "v1")["resources"][0]["name"],
            "horizontalpodautoscalers"
        );
    }

    #[test]
    fn aggregated_splits_core_from_groups() {
        let core = aggregated(true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let groups = aggregated(false);
        assert!(groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["metadata"]["name"] == "apps"));
    }
}
