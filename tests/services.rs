//! Services through real kubectl: `type: LoadBalancer` gets the node's address as its
//! EXTERNAL-IP from ServiceLB (the embedded agent's node registers InternalIP 127.0.0.1) and
//! loses it with the type; a taken clusterIP or nodePort is a 422 naming the field and value.

mod common;

use anyhow::Result;
use common::{wait_for, Skiff};
use serde_json::Value;

/// `kubectl get svc NAME --no-headers` as columns: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE.
fn svc_columns(s: &Skiff, name: &str) -> Result<Vec<String>> {
    let out = s.ok(&["get", "svc", name, "--no-headers"])?;
    Ok(out.split_whitespace().map(str::to_string).collect())
}

fn event_reasons(s: &Skiff, name: &str) -> Result<Vec<String>> {
    let events = s.json(&["get", "events"])?;
    Ok(events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name && e["involvedObject"]["kind"] == "Service")
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn load_balancer_services_get_the_node_address() -> Result<()> {
    let s = Skiff::start()?;
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.35",
        "--replicas=0",
    ])?;
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
        "--type=LoadBalancer",
    ])?;
    let cols = wait_for("web's EXTERNAL-IP to be the node's address", || {
        let cols = svc_columns(&s, "web")?;
        Ok(Some(cols).filter(|c| c.get(3).map(String::as_str) == Some("127.0.0.1")))
    })?;
    assert_eq!(cols[1], "LoadBalancer");
    assert!(cols[4].starts_with("80:3"), "a node port: {cols:?}");
    let svc = s.json(&["get", "svc", "web"])?;
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"],
        serde_json::json!([{"ip": "127.0.0.1", "ipMode": "VIP"}])
    );
    let reasons = wait_for("EnsuredLoadBalancer", || {
        let r = event_reasons(&s, "web")?;
        Ok(Some(r).filter(|r| r.iter().any(|x| x == "EnsuredLoadBalancer")))
    })?;
    assert!(
        reasons.iter().any(|r| r == "EnsuringLoadBalancer"),
        "{reasons:?}"
    );

    // Back to ClusterIP: the ingress and the node port go.
    s.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])?;
    let cols = wait_for("web to be a ClusterIP Service", || {
        let cols = svc_columns(&s, "web")?;
        Ok(Some(cols).filter(|c| c.get(1).map(String::as_str) == Some("ClusterIP")))
    })?;
    assert_eq!(cols[3], "<none>", "{cols:?}");
    assert_eq!(cols[4], "80/TCP", "{cols:?}");
    let svc = s.json(&["get", "svc", "web"])?;
    assert_eq!(svc["status"]["loadBalancer"], serde_json::json!({}));

    // allocateLoadBalancerNodePorts: false — no node port, still the address.
    s.apply(
        "lb.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: direct}
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {app: direct}
  ports: [{port: 8443}]
"#,
    )?;
    wait_for("direct's EXTERNAL-IP", || {
        let cols = svc_columns(&s, "direct")?;
        Ok(Some(()).filter(|_| cols.get(3).map(String::as_str) == Some("127.0.0.1")))
    })?;
    let svc = s.json(&["get", "svc", "direct"])?;
    assert_eq!(svc["spec"]["ports"][0].get("nodePort"), None, "{svc}");
    Ok(())
}

#[test]
fn taken_cluster_ips_and_node_ports_are_refused_by_name() -> Result<()> {
    let s = Skiff::control_plane()?;
    s.apply(
        "first.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: first}
spec:
  type: NodePort
  clusterIP: 10.43.0.50
  ports: [{port: 80, nodePort: 30080}]
"#,
    )?;
    let ip = s.write(
        "same-ip.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: same-ip}
spec:
  clusterIP: 10.43.0.50
  ports: [{port: 80}]
"#,
    )?;
    let err = s.fails(&["create", "-f", ip.to_str().unwrap_or_default()])?;
    assert!(
        err.contains(
            r#"spec.clusterIP: Invalid value: "10.43.0.50": provided IP is already allocated"#
        ),
        "{err}"
    );
    let port = s.write(
        "same-port.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: same-port}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30080}]
"#,
    )?;
    let err = s.fails(&["create", "-f", port.to_str().unwrap_or_default()])?;
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        ),
        "{err}"
    );
    let v6 = s.write(
        "v6.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: v6}
spec:
  ipFamilies: [IPv6]
  selector: {app: v6}
  ports: [{port: 80}]
"#,
    )?;
    let err = s.fails(&["create", "-f", v6.to_str().unwrap_or_default()])?;
    assert!(
        err.contains(r#"spec.ipFamilies[0]: Invalid value: "IPv6""#) && err.contains("IPv4-only"),
        "{err}"
    );
    let affinity = s.write(
        "affinity.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 90000}}
  ports: [{port: 80}]
"#,
    )?;
    let err = s.fails(&["create", "-f", affinity.to_str().unwrap_or_default()])?;
    assert!(
        err.contains("spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000: must be greater than 0 and less than 86400"),
        "{err}"
    );
    // Neither refused Service exists; the first keeps its address and port.
    let first: Value = s.json(&["get", "svc", "first"])?;
    assert_eq!(first["spec"]["clusterIP"], "10.43.0.50");
    assert!(s.fails(&["get", "svc", "same-ip"])?.contains("NotFound"));
    Ok(())
}
