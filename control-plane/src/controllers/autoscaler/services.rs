//! The Services in front of a request-autoscaled Deployment, and the annotations that put the
//! nodes' activators in their data path (`node-runtime/src/activator/`, which reads
//! `skiff.dev/activator`): `serve` while the pods count their own requests (Wasm HTTP
//! components), `proxy` when they run Linux containers, whose requests only the activator
//! sees. `skiff.dev/scale-target` names the Deployment, so a node's demand for the Service
//! reaches it (and `kubectl describe service` says who scales it).

use serde_json::Value;

use crate::api::object;

/// How the nodes' activators stand in the Service's data path (read by the node's proxy).
pub const ACTIVATOR_ANNOTATION: &str = "skiff.dev/activator";
/// The Deployment the autoscaler scales for this Service.
pub const SCALE_TARGET_ANNOTATION: &str = "skiff.dev/scale-target";

/// The activator modes.
pub const SERVE: &str = "serve";
pub const PROXY: &str = "proxy";

/// Whether `service` selects the pods of `template_labels` (a non-empty selector, all of
/// whose pairs the labels have).
pub fn selects(service: &Value, template_labels: &Value) -> bool {
    let Some(selector) = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    selector
        .iter()
        .all(|(k, v)| template_labels.get(k).is_some_and(|l| l == v))
}

/// `service` reduced to what the autoscaler reads: its name, selector and marks.
pub fn trimmed(service: &Value) -> Value {
    let mut annotations = serde_json::Map::new();
    for key in [ACTIVATOR_ANNOTATION, SCALE_TARGET_ANNOTATION] {
        if let Some(v) = annotation(service, key) {
            annotations.insert(key.to_string(), Value::String(v.to_string()));
        }
    }
    serde_json::json!({
        "metadata": {"name": object::name(service), "annotations": annotations},
        "spec": {"selector": service.pointer("/spec/selector").cloned().unwrap_or(Value::Null)},
    })
}

/// The names of the Services (of one namespace) that front `deployment`.
pub fn fronting(services: &[Value], deployment: &Value) -> Vec<String> {
    let labels = deployment
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    services
        .iter()
        .filter(|s| selects(s, &labels))
        .map(|s| object::name(s).to_string())
        .collect()
}

/// The names of the Services marked for `deployment`.
pub fn marked_for(services: &[Value], deployment: &str) -> Vec<String> {
    services
        .iter()
        .filter(|s| annotation(s, SCALE_TARGET_ANNOTATION) == Some(deployment))
        .map(|s| object::name(s).to_string())
        .collect()
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// The activator mode for these pods: `serve` (straight to the pods) only while at least one
/// is Ready and all of them run Wasm (they count their own requests); `proxy` (through the
/// activator) otherwise: pods with a Linux container, whose requests only the activator sees;
/// no ready pod yet; or `scaling_to_zero`, so that no connection reaches a pod that is going
/// away (the activator holds it instead, as Knative does before a scale to zero).
pub fn mode(pods: &[Value], deployment: &Value, scaling_to_zero: bool) -> &'static str {
    let ids: Vec<&str> = pods
        .iter()
        .flat_map(|p| {
            p.pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c.get("containerID").and_then(Value::as_str))
        .collect();
    let containers = ids.iter().any(|id| id.starts_with("containerd://"))
        || deployment
            .pointer("/spec/template/spec/runtimeClassName")
            .and_then(Value::as_str)
            == Some("oci");
    let ready = pods.iter().any(|p| {
        p.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    if ready && !containers && !scaling_to_zero {
        SERVE
    } else {
        PROXY
    }
}

/// Sets or removes the two annotations on `service`; whether anything changed.
pub fn set_marks(service: &mut Value, marks: Option<(&str, &str)>) -> bool {
    let before = (
        annotation(service, ACTIVATOR_ANNOTATION).map(str::to_string),
        annotation(service, SCALE_TARGET_ANNOTATION).map(str::to_string),
    );
    let wanted = marks.map(|(m, t)| (m.to_string(), t.to_string()));
    if before == (wanted.clone().map(|w| w.0), wanted.clone().map(|w| w.1)) {
        return false;
    }
    if !service["metadata"]["annotations"].is_object() {
        service["metadata"]["annotations"] = serde_json::json!({});
    }
    let Some(annotations) = service["metadata"]["annotations"].as_object_mut() else {
        return false;
    };
    match wanted {
        Some((mode, target)) => {
            annotations.insert(ACTIVATOR_ANNOTATION.into(), mode.into());
            annotations.insert(SCALE_TARGET_ANNOTATION.into(), target.into());
        }
        None => {
            annotations.remove(ACTIVATOR_ANNOTATION);
            annotations.remove(SCALE_TARGET_ANNOTATION);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fronting_services_and_modes() {
        let dep = json!({"metadata": {"name": "web"}, "spec": {"template": {
            "metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {}}}});
        let services = vec![
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}),
            json!({"metadata": {"name": "all"}, "spec": {}}),
            json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}}}),
        ];
        assert_eq!(fronting(&services, &dep), vec!["web".to_string()]);
        let pod = |id: &str, ready: &str| {
            json!({"status": {"containerStatuses": [{"containerID": id}],
                              "conditions": [{"type": "Ready", "status": ready}]}})
        };
        assert_eq!(mode(&[pod("wasm://u/app/1", "True")], &dep, false), SERVE);
        assert_eq!(mode(&[pod("wasm://u/app/1", "True")], &dep, true), PROXY);
        assert_eq!(mode(&[pod("wasm://u/app/1", "False")], &dep, false), PROXY);
        let mixed = [
            pod("wasm://u/app/1", "True"),
            pod("containerd://abc", "True"),
        ];
        assert_eq!(mode(&mixed, &dep, false), PROXY);
        assert_eq!(mode(&[], &dep, false), PROXY);

        let mut svc = services[0].clone();
        assert!(set_marks(&mut svc, Some((SERVE, "web"))));
        assert!(!set_marks(&mut svc, Some((SERVE, "web"))));
        assert_eq!(marked_for(&[svc.clone()], "web"), vec!["web".to_string()]);
        assert!(set_marks(&mut svc, None));
        assert_eq!(annotation(&svc, ACTIVATOR_ANNOTATION), None);
        assert!(!set_marks(&mut svc, None));
    }
}
