//! Serving a kind at a second API version: objects are stored at one version and converted
//! on the way in (request bodies, patches applied to the converted view) and out (objects,
//! lists and watch events), as the API server's conversion does. Today one kind needs it:
//! HorizontalPodAutoscaler at `autoscaling/v1` (what `kubectl autoscale` up to 1.32 sends),
//! stored as `autoscaling/v2`. Fields v1 cannot express travel in the annotations Kubernetes
//! uses for them, so a round trip through v1 loses nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::status::{ApiError, ApiResult};

/// How a served version maps to the stored one.
#[derive(Debug)]
pub struct Conversion {
    /// The kind converted (lists and watch events carry it).
    pub kind: &'static str,
    pub served_api_version: &'static str,
    pub to_storage: fn(Value) -> Value,
    pub from_storage: fn(Value) -> Value,
}

pub static HPA_V1: Conversion = Conversion {
    kind: "HorizontalPodAutoscaler",
    served_api_version: "autoscaling/v1",
    to_storage: hpa_v1_to_v2,
    from_storage: hpa_v2_to_v1,
};

/// The largest response converted in one piece (lists of thousands of objects fit).
const MAX_CONVERTED_BYTES: usize = 256 << 20;

const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

fn is_cpu_utilization(m: &Value, value: &str) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer(&format!("/resource/{value}/averageUtilization"))
            .is_some()
        && (value == "current"
            || m.pointer("/resource/target/type").and_then(Value::as_str) == Some("Utilization"))
}

fn annotations(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    meta.entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn put_json(obj: &mut Value, key: &str, v: &Value) {
    if let Some(a) = annotations(obj) {
        a.insert(key.into(), Value::String(v.to_string()));
    }
}

fn take_json(obj: &mut Value, key: &str) -> Option<Value> {
    let a = annotations(obj)?;
    let v = a.remove(key)?;
    v.as_str().and_then(|s| serde_json::from_str(s).ok())
}

fn drop_empty_annotations(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
}

/// The status fields both versions have, as they are.
fn same_status_fields(status: &Value) -> Value {
    let mut out = json!({});
    for k in [
        "observedGeneration",
        "lastScaleTime",
        "currentReplicas",
        "desiredReplicas",
    ] {
        if let Some(v) = status.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    out
}

/// The spec fields both versions have: the target and the replica bounds.
fn same_spec_fields(spec: &Value) -> Value {
    let mut out = json!({"scaleTargetRef": spec.get("scaleTargetRef").cloned().unwrap_or(json!({})),
                         "maxReplicas": spec.get("maxReplicas").cloned().unwrap_or(json!(0))});
    if let Some(min) = spec.get("minReplicas") {
        out["minReplicas"] = min.clone();
    }
    out
}

/// `autoscaling/v2` → `autoscaling/v1`.
pub fn hpa_v2_to_v1(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v1");
    if let Some(spec) = obj.get("spec").cloned() {
        let metrics = spec
            .get("metrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let cpu = metrics.iter().find(|m| is_cpu_utilization(m, "target"));
        let others: Vec<Value> = metrics
            .iter()
            .filter(|m| !is_cpu_utilization(m, "target"))
            .cloned()
            .collect();
        let mut v1 = same_spec_fields(&spec);
        if let Some(c) = cpu.and_then(|m| m.pointer("/resource/target/averageUtilization")) {
            v1["targetCPUUtilizationPercentage"] = c.clone();
        }
        if !others.is_empty() {
            put_json(&mut obj, METRICS_ANNOTATION, &Value::Array(others));
        }
        if let Some(b) = spec.get("behavior") {
            put_json(&mut obj, BEHAVIOR_ANNOTATION, b);
        }
        obj["spec"] = v1;
    }
    if let Some(status) = obj.get("status").cloned().filter(Value::is_object) {
        let mut v1 = same_status_fields(&status);
        // v1 always sends both counts (not `omitempty` there, unlike v2's currentReplicas).
        for k in ["currentReplicas", "desiredReplicas"] {
            if v1.get(k).is_none() {
                v1[k] = json!(0);
            }
        }
        let current = status
            .get("currentMetrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(u) = current
            .iter()
            .find(|m| is_cpu_utilization(m, "current"))
            .and_then(|m| m.pointer("/resource/current/averageUtilization"))
        {
            v1["currentCPUUtilizationPercentage"] = u.clone();
        }
        let others: Vec<Value> = current
            .into_iter()
            .filter(|m| !is_cpu_utilization(m, "current"))
            .collect();
        if !others.is_empty() {
            put_json(&mut obj, CURRENT_METRICS_ANNOTATION, &Value::Array(others));
        }
        if let Some(c) = status
            .get("conditions")
            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            put_json(&mut obj, CONDITIONS_ANNOTATION, c);
        }
        obj["status"] = v1;
    }
    drop_empty_annotations(&mut obj);
    obj
}

/// `autoscaling/v1` → `autoscaling/v2`.
pub fn hpa_v1_to_v2(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v2");
    let extra_metrics = take_json(&mut obj, METRICS_ANNOTATION);
    let behavior = take_json(&mut obj, BEHAVIOR_ANNOTATION);
    let conditions = take_json(&mut obj, CONDITIONS_ANNOTATION);
    let current_metrics = take_json(&mut obj, CURRENT_METRICS_ANNOTATION);
    drop_empty_annotations(&mut obj);
    if let Some(spec) = obj.get("spec").cloned().filter(Value::is_object) {
        let mut v2 = same_spec_fields(&spec);
        let mut metrics = Vec::new();
        if let Some(t) = spec
            .get("targetCPUUtilizationPercentage")
            .filter(|t| !t.is_null())
        {
            metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": t}}}));
        }
        if let Some(Value::Array(more)) = extra_metrics {
            metrics.extend(more);
        }
        if !metrics.is_empty() {
            v2["metrics"] = Value::Array(metrics);
        }
        if let Some(b) = behavior {
            v2["behavior"] = b;
        }
        obj["spec"] = v2;
    }
    if let Some(status) = obj.get("status").cloned().filter(Value::is_object) {
        let mut v2 = same_status_fields(&status);
        let mut current = Vec::new();
        if let Some(u) = status
            .get("currentCPUUtilizationPercentage")
            .filter(|u| !u.is_null())
        {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": u}}}));
        }
        if let Some(Value::Array(more)) = current_metrics {
            current.extend(more);
        }
        if !current.is_empty() {
            v2["currentMetrics"] = Value::Array(current);
        }
        if let Some(c) = conditions {
            v2["conditions"] = c;
        }
        obj["status"] = v2;
    }
    obj
}

/// Converts what an answer carries (an object of the kind, a list of them, a watch event)
/// from storage to the served version; anything else (a Status, a Table) passes unchanged.
fn convert_value(c: &Conversion, mut v: Value) -> Value {
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind == c.kind {
        return (c.from_storage)(v);
    }
    if kind == format!("{}List", c.kind) {
        v["apiVersion"] = json!(c.served_api_version);
        if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                *item = (c.from_storage)(std::mem::take(item));
            }
        }
        return v;
    }
    if v.get("type").is_some() && v.get("object").is_some() {
        let object = std::mem::take(&mut v["object"]);
        v["object"] = convert_value(c, object);
    }
    v
}

/// The answer to a request at the served version: JSON bodies converted (watch streams event
/// by event, as they come).
pub async fn response(c: &'static Conversion, resp: Response, watch: bool) -> ApiResult<Response> {
    response_with(resp, watch, Arc::new(move |v| convert_value(c, v))).await
}

/// Rewrites each JSON value an answer carries (the body, or each watch event).
pub type Rewrite = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// The answer with its JSON rewritten by `rewrite`: the whole body, or a watch stream event
/// by event as they come (custom resources use it too: `crd::respond`).
pub async fn response_with(resp: Response, watch: bool, rewrite: Rewrite) -> ApiResult<Response> {
    let is_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !is_json {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    if watch {
        // Events are newline-delimited JSON; a chunk may end inside one.
        let stream = body.into_data_stream();
        let lines = futures::stream::unfold(
            (stream, Vec::<u8>::new(), false),
            move |(mut stream, mut buf, done)| {
                let rewrite = rewrite.clone();
                async move {
                    loop {
                        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buf.drain(..=pos).collect();
                            let out = match serde_json::from_slice::<Value>(&line) {
                                Ok(v) => {
                                    let mut s = serde_json::to_vec(&rewrite(v)).unwrap_or(line);
                                    if s.last() != Some(&b'\n') {
                                        s.push(b'\n');
                                    }
                                    s
                                }
                                Err(_) => line,
                            };
                            return Some((
                                Ok::<_, axum::Error>(bytes::Bytes::from(out)),
                                (stream, buf, done),
                            ));
                        }
                        if done {
                            return (!buf.is_empty()).then(|| {
                                let rest = std::mem::take(&mut buf);
                                (Ok(bytes::Bytes::from(rest)), (stream, buf, true))
                            });
                        }
                        match stream.next().await {
                            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                            Some(Err(e)) => return Some((Err(e), (stream, buf, true))),
                            None => return Some((Ok(bytes::Bytes::new()), (stream, buf, true))),
                        }
                    }
                }
            },
        );
        return Ok(Response::from_parts(parts, Body::from_stream(lines)));
    }
    let bytes = http_body_util::Limited::new(body, MAX_CONVERTED_BYTES)
        .collect()
        .await
        .map_err(|e| ApiError::internal(format!("reading the answer to convert: {e}")))?
        .to_bytes();
    let out = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => serde_json::to_vec(&rewrite(v)).map_err(|e| ApiError::internal(e.to_string()))?,
        Err(_) => bytes.to_vec(),
    };
    Ok(Response::from_parts(parts, Body::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trips_through_v1() {
        let v2 = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                        {"type": "Pods", "pods": {"metric": {"name": "concurrency"}, "target": {"type": "AverageValue", "averageValue": "10"}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 120}}}],
                       "conditions": [{"type": "AbleToScale", "status": "True"}]}
        });
        let v1 = hpa_v2_to_v1(v2.clone());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 120);
        assert!(v1["metadata"]["annotations"][METRICS_ANNOTATION]
            .as_str()
            .unwrap()
            .contains("concurrency"));
        assert_eq!(hpa_v1_to_v2(v1), v2);
        // What `kubectl autoscale` sends.
        let sent = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                     "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}, "status": {}});
        let stored = hpa_v1_to_v2(sent);
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert!(stored["metadata"].get("annotations").is_none());
    }

    #[test]
    fn lists_and_events_convert() {
        let item = json!({"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2", "metadata": {"name": "a"}, "spec": {"maxReplicas": 2}});
        let list = convert_value(
            &HPA_V1,
            json!({"kind": "HorizontalPodAutoscalerList", "apiVersion": "autoscaling/v2", "items": [item.clone()]}),
        );
        assert_eq!(list["apiVersion"], "autoscaling/v1");
        assert_eq!(list["items"][0]["apiVersion"], "autoscaling/v1");
        let event = convert_value(&HPA_V1, json!({"type": "ADDED", "object": item}));
        assert_eq!(event["object"]["apiVersion"], "autoscaling/v1");
        let status = json!({"kind": "Status", "code": 404});
        assert_eq!(convert_value(&HPA_V1, status.clone()), status);
    }
}
