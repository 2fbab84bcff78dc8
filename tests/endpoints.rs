//! The endpoints controller through real kubectl: Endpoints and EndpointSlices follow the pods
//! a Service selects (IPs, readiness, named ports), selector-less Services keep what their
//! users write, and both go with their Service. Pod IPs and readiness are written as an agent
//! would, through `pods/status`, so no node is needed.

mod common;

use anyhow::Result;
use common::{wait_for, Skiff};
use serde_json::Value;

fn set_status(s: &Skiff, pod: &str, ip: &str, ready: bool) -> Result<()> {
    let status = serde_json::json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    }});
    s.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ])?;
    Ok(())
}

fn ips(v: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = v["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

#[test]
fn endpoints_and_slices_follow_selected_pods() -> Result<()> {
    let s = Skiff::control_plane()?;
    s.apply(
        "web.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: web, labels: {tier: front}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: web}}
spec: {containers: [{name: c, image: busybox:1.35, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: web}}
spec: {containers: [{name: c, image: busybox:1.35, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: db}}
spec: {containers: [{name: c, image: busybox:1.35}]}
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec: {ports: [{port: 5432}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: external}
subsets: [{addresses: [{ip: 192.0.2.10}], ports: [{port: 5432}]}]
"#,
    )?;
    set_status(&s, "a", "10.42.0.2", true)?;
    set_status(&s, "b", "10.42.0.3", false)?;
    set_status(&s, "other", "10.42.0.4", true)?;
    let ep = wait_for(
        "web's Endpoints with a ready and a not-ready address",
        || {
            let ep = s.json(&["get", "endpoints", "web"]).ok();
            Ok(ep.filter(|e| {
                ips(e, "addresses") == ["10.42.0.2"] && ips(e, "notReadyAddresses") == ["10.42.0.3"]
            }))
        },
    )?;
    assert_eq!(
        ep["subsets"][0]["ports"][0]["port"], 8080,
        "the named port resolved: {ep}"
    );
    assert_eq!(ep["metadata"]["labels"]["tier"], "front");

    let slices = s.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ])?;
    let slice = &slices["items"][0];
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["ports"][0]["port"], 8080);
    let mut conds: Vec<(String, bool)> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or("").to_string(),
                e["conditions"]["ready"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    conds.sort();
    assert_eq!(
        conds,
        [
            ("10.42.0.2".to_string(), true),
            ("10.42.0.3".to_string(), false)
        ]
    );

    // Readiness changes move the address; a deleted pod leaves.
    set_status(&s, "b", "10.42.0.3", true)?;
    wait_for("both addresses ready", || {
        let ep = s.json(&["get", "endpoints", "web"])?;
        Ok((ips(&ep, "addresses") == ["10.42.0.2", "10.42.0.3"]).then_some(()))
    })?;
    s.ok(&["delete", "pod", "a", "--grace-period=0", "--force"])?;
    wait_for("pod a to leave the endpoints", || {
        let ep = s.json(&["get", "endpoints", "web"])?;
        Ok((ips(&ep, "addresses") == ["10.42.0.3"]).then_some(()))
    })?;

    // What the user wrote for a selector-less Service stays.
    let ext = s.json(&["get", "endpoints", "external"])?;
    assert_eq!(ips(&ext, "addresses"), ["192.0.2.10"]);

    // The Service's Endpoints and slices go with it.
    s.ok(&["delete", "service", "web"])?;
    wait_for("web's Endpoints and slices to go", || {
        let eps = s.kubectl(&["get", "endpoints", "web"])?;
        let slices = s.ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ])?;
        Ok((!eps.status.success() && slices.trim().is_empty()).then_some(()))
    })
}
