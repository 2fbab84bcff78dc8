//! What a Service's endpoints are, from its selector, its ports and the pods: the `Endpoints`
//! subsets and the `discovery.k8s.io/v1` EndpointSlices, as Kubernetes' endpoints and
//! endpointslice controllers compute them. Pure functions of their inputs.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label saying who manages an EndpointSlice (Kubernetes' value, so tools recognise it).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// One pod as an endpoint of the Service.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEndpoint {
    pub ip: String,
    pub node: Option<String>,
    pub hostname: Option<String>,
    pub target_ref: Value,
    /// Ready and not terminating.
    pub ready: bool,
    /// Passes readiness (whether or not it is terminating).
    pub serving: bool,
    pub terminating: bool,
    /// The Service's ports as this pod resolves them (named target ports per pod).
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub name: String,
    pub port: i64,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// Whether `pod`'s labels hold every `selector` pair.
pub fn selects(selector: &serde_json::Map<String, Value>, pod: &Value) -> bool {
    let labels = pod.pointer("/metadata/labels");
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A Service port's target on `pod`: a number, or a named containerPort of the pod.
fn target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    let protocol = str_at(svc_port, "/protocol").unwrap_or("TCP");
    match svc_port.get("targetPort") {
        None | Some(Value::Null) => svc_port.get("port").and_then(Value::as_i64),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)?
                .iter()
                .flat_map(|c| {
                    c.get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .find(|p| {
                    str_at(p, "/name") == Some(s.as_str())
                        && str_at(p, "/protocol").unwrap_or("TCP") == protocol
                })
                .and_then(|p| p.get("containerPort").and_then(Value::as_i64)),
        },
        _ => None,
    }
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The Service's endpoint on `pod`, if the pod is one: selected, has an IP, not finished.
pub fn pod_endpoint(svc: &Value, pod: &Value) -> Option<PodEndpoint> {
    let selector = svc.pointer("/spec/selector").and_then(Value::as_object)?;
    if selector.is_empty() || !selects(selector, pod) {
        return None;
    }
    let ip = str_at(pod, "/status/podIP").filter(|ip| !ip.is_empty())?;
    if matches!(str_at(pod, "/status/phase"), Some("Succeeded" | "Failed")) {
        return None;
    }
    let publish_all = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
    let terminating = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let serving = publish_all || pod_ready(pod);
    let svc_name = str_at(svc, "/metadata/name").unwrap_or("");
    // A pod whose hostname and subdomain name this Service gets a DNS name in it.
    let hostname = match (
        str_at(pod, "/spec/hostname"),
        str_at(pod, "/spec/subdomain"),
    ) {
        (Some(h), Some(sub)) if sub == svc_name && !h.is_empty() => Some(h.to_string()),
        _ => None,
    };
    let mut ports: Vec<Port> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: str_at(p, "/name").unwrap_or("").to_string(),
                port: target_port(p, pod)?,
                protocol: str_at(p, "/protocol").unwrap_or("TCP").to_string(),
                app_protocol: str_at(p, "/appProtocol").map(str::to_string),
            })
        })
        .collect();
    ports.sort();
    Some(PodEndpoint {
        ip: ip.to_string(),
        node: str_at(pod, "/spec/nodeName").map(str::to_string),
        hostname,
        target_ref: json!({
            "kind": "Pod",
            "namespace": str_at(pod, "/metadata/namespace").unwrap_or(""),
            "name": str_at(pod, "/metadata/name").unwrap_or(""),
            "uid": str_at(pod, "/metadata/uid").unwrap_or(""),
        }),
        ready: serving && (!terminating || publish_all),
        serving,
        terminating,
        ports,
    })
}

fn port_json(p: &Port) -> Value {
    let mut v = json!({"name": p.name, "port": p.port, "protocol": p.protocol});
    if let Some(a) = &p.app_protocol {
        v["appProtocol"] = json!(a);
    }
    v
}

/// The endpoints grouped by the ports they resolve (pods whose named ports differ land in
/// different subsets or slices), in a stable order.
pub fn by_ports(eps: &[PodEndpoint]) -> BTreeMap<Vec<Port>, Vec<&PodEndpoint>> {
    let mut groups: BTreeMap<Vec<Port>, Vec<&PodEndpoint>> = BTreeMap::new();
    for e in eps {
        groups.entry(e.ports.clone()).or_default().push(e);
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    groups
}

/// The `subsets` of the Service's `Endpoints`: ready addresses and not-ready ones per port
/// set; terminating pods are left out (unless the Service publishes not-ready addresses).
pub fn endpoints_subsets(eps: &[PodEndpoint]) -> Value {
    let mut subsets = Vec::new();
    for (ports, list) in by_ports(eps) {
        let address = |e: &PodEndpoint| {
            let mut a = json!({"ip": e.ip, "targetRef": e.target_ref});
            if let Some(n) = &e.node {
                a["nodeName"] = json!(n);
            }
            if let Some(h) = &e.hostname {
                a["hostname"] = json!(h);
            }
            a
        };
        let ready: Vec<Value> = list
            .iter()
            .filter(|e| e.ready)
            .map(|e| address(e))
            .collect();
        let not_ready: Vec<Value> = list
            .iter()
            .filter(|e| !e.ready && !e.terminating)
            .map(|e| address(e))
            .collect();
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        let mut subset = json!({"ports": ports.iter().map(port_json).collect::<Vec<_>>()});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        subsets.push(subset);
    }
    json!(subsets)
}

/// The `endpoints` and `ports` of one EndpointSlice per port set.
pub fn slice_contents(eps: &[PodEndpoint]) -> Vec<(Value, Value)> {
    by_ports(eps)
        .into_iter()
        .map(|(ports, list)| {
            let endpoints: Vec<Value> = list
                .iter()
                .map(|e| {
                    let mut v = json!({
                        "addresses": [e.ip],
                        "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
                        "targetRef": e.target_ref,
                    });
                    if let Some(n) = &e.node {
                        v["nodeName"] = json!(n);
                    }
                    if let Some(h) = &e.hostname {
                        v["hostname"] = json!(h);
                    }
                    v
                })
                .collect();
            (
                json!(endpoints),
                json!(ports.iter().map(port_json).collect::<Vec<_>>()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(extra: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}
        ]}});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                s["spec"][k] = v.clone();
            }
        }
        s
    }

    fn pod(name: &str, ip: &str, ready: bool, http_port: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": http_port}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn named_ports_resolve_per_pod_and_readiness_splits_addresses() {
        let s = svc(json!({}));
        let eps: Vec<PodEndpoint> = [
            pod("a", "10.42.0.2", true, 8080),
            pod("b", "10.42.0.3", false, 8080),
            pod("c", "10.42.0.4", true, 8081),
        ]
        .iter()
        .filter_map(|p| pod_endpoint(&s, p))
        .collect();
        let subsets = endpoints_subsets(&eps);
        assert_eq!(subsets.as_array().map(Vec::len), Some(2), "{subsets}");
        let first = &subsets[0];
        assert_eq!(first["ports"][0]["port"], 8080);
        assert_eq!(first["addresses"][0]["ip"], "10.42.0.2");
        assert_eq!(first["notReadyAddresses"][0]["ip"], "10.42.0.3");
        assert_eq!(subsets[1]["ports"][0]["port"], 8081);
        let slices = slice_contents(&eps);
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[0].0[1]["conditions"]["ready"], false);
    }

    #[test]
    fn terminating_pods_leave_endpoints_but_stay_in_slices() {
        let s = svc(json!({}));
        let mut p = pod("a", "10.42.0.2", true, 8080);
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let eps = vec![pod_endpoint(&s, &p).expect("endpoint")];
        assert_eq!(endpoints_subsets(&eps), json!([]));
        let slices = slice_contents(&eps);
        assert_eq!(
            slices[0].0[0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
    }

    #[test]
    fn unselected_ipless_and_finished_pods_are_not_endpoints() {
        let s = svc(json!({}));
        let mut other = pod("x", "10.42.0.9", true, 80);
        other["metadata"]["labels"] = json!({"app": "db"});
        assert!(pod_endpoint(&s, &other).is_none());
        let mut no_ip = pod("y", "", true, 80);
        no_ip["status"]["podIP"] = json!(null);
        assert!(pod_endpoint(&s, &no_ip).is_none());
        let mut done = pod("z", "10.42.0.8", false, 80);
        done["status"]["phase"] = json!("Succeeded");
        assert!(pod_endpoint(&s, &done).is_none());
        let no_selector = json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}});
        assert!(pod_endpoint(&no_selector, &pod("a", "10.42.0.2", true, 80)).is_none());
    }

    #[test]
    fn publish_not_ready_and_headless_hostnames() {
        let s = svc(json!({"publishNotReadyAddresses": true}));
        let mut p = pod("web-0", "10.42.0.5", false, 8080);
        p["spec"]["hostname"] = json!("web-0");
        p["spec"]["subdomain"] = json!("web");
        let e = pod_endpoint(&s, &p).expect("endpoint");
        assert!(e.ready);
        assert_eq!(e.hostname.as_deref(), Some("web-0"));
        let subsets = endpoints_subsets(&[e]);
        assert_eq!(subsets[0]["addresses"][0]["hostname"], "web-0");
    }
}
