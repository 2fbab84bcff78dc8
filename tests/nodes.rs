//! Node lifecycle end to end with real kubectl and two agents: cordon/uncordon, a killed agent's
//! node going NotReady (Ready=Unknown, unreachable taints) within the grace period and its pods
//! evicted after the (shortened) default toleration and replaced on the other node; `kubectl
//! drain --ignore-daemonsets` blocked by a PodDisruptionBudget (429) until the budget is relaxed.

mod common;

use anyhow::{ensure, Context, Result};
use common::{guest, is_ready, wait_for, Skiff};
use serde_json::Value;

fn deployment_yaml(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      runtimeClassName: wasm
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: hello-wasm:v1
        ports:
        - {{containerPort: 8080}}
"
    )
}

fn pdb_yaml(min_available: u32) -> String {
    format!(
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: {min_available}
  selector:
    matchLabels: {{app: web}}
"
    )
}

/// Live (not terminating) Ready pods of app=web, by node.
fn ready_web_pods_on(s: &Skiff, node: &str) -> Result<usize> {
    let pods = s.json(&["get", "pods", "-l", "app=web"])?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .filter(|p| is_ready(p))
        .count())
}

#[test]
fn dead_node_is_tainted_pods_evicted_and_drain_honours_pdb() -> Result<()> {
    let s = Skiff::start_with(&[
        "--crash-backoff-seconds",
        "1",
        "--lease-renew-seconds",
        "1",
        "--node-monitor-grace-seconds",
        "5",
        "--default-unreachable-toleration-seconds",
        "5",
    ])?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    let mut b = s.spawn_agent("node-b")?;
    let main = wait_for("two Ready nodes", || {
        let nodes = s.json(&["get", "nodes"])?;
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        let ready: Vec<&Value> = items.iter().filter(|n| is_ready(n)).collect();
        Ok((ready.len() == 2).then(|| {
            ready
                .iter()
                .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
                .find(|n| *n != "node-b")
                .map(str::to_string)
        }))
    })?
    .context("embedded node")?;
    // Each node has a pod range of its own from the cluster CIDR, the first node the first.
    let ranges = wait_for("both nodes' pod ranges", || {
        let r = s.ok(&[
            "get",
            "node",
            &main,
            "node-b",
            "-o",
            "jsonpath={.items[*].spec.podCIDR}",
        ])?;
        Ok((r.split_whitespace().count() == 2).then_some(r))
    })?;
    ensure!(ranges == "10.42.0.0/24 10.42.1.0/24", "{ranges}");

    // Cordon the embedded node so both pods land on node-b, then uncordon it.
    s.ok(&["cordon", &main])?;
    ensure!(s.json(&["get", "node", &main])?["spec"]["unschedulable"] == true);
    s.apply("web.yaml", &deployment_yaml("web", 2))?;
    wait_for("2 Ready pods on node-b", || {
        Ok((ready_web_pods_on(&s, "node-b")? == 2).then_some(()))
    })?;
    s.ok(&["uncordon", &main])?;
    ensure!(s
        .json(&["get", "node", &main])?
        .pointer("/spec/unschedulable")
        .is_none_or(|v| v == false));
    let pod = s.json(&["get", "pods", "-l", "app=web"])?;
    ensure!(
        pod["items"][0]["spec"]["tolerations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["tolerationSeconds"] == 5),
        "pod: {}",
        pod["items"][0]["spec"]
    );

    // kill -9 node-b's agent: Unknown + unreachable taints within the grace period, pods
    // evicted after the toleration and replaced on the embedded node.
    b.kill9();
    wait_for("node-b Ready=Unknown with the unreachable taints", || {
        let n = s.json(&["get", "node", "node-b"])?;
        let unknown = n["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "Unknown"
                    && c["reason"] == "NodeStatusUnknown"
            });
        let taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        let tainted = ["NoExecute", "NoSchedule"].iter().all(|e| {
            taints
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == *e)
        });
        Ok((unknown && tainted).then_some(()))
    })?;
    ensure!(s.ok(&["get", "nodes"])?.contains("NotReady"));
    wait_for("2 replacement pods Ready on the embedded node", || {
        Ok((ready_web_pods_on(&s, &main)? == 2).then_some(()))
    })?;
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
    ])?;
    ensure!(
        events.contains("Marking for deletion Pod default/web-"),
        "events: {events}"
    );

    // A second live node for the drain; a PDB allowing no disruption blocks it.
    let _c = s.spawn_agent("node-c")?;
    wait_for("node-c Ready", || {
        Ok(is_ready(&s.json(&["get", "node", "node-c"]).unwrap_or_default()).then_some(()))
    })?;
    s.apply("pdb.yaml", &pdb_yaml(2))?;
    wait_for("PDB status", || {
        let p = s.json(&["get", "pdb", "web"])?;
        Ok(
            (p["status"]["currentHealthy"] == 2 && p["status"]["disruptionsAllowed"] == 0)
                .then_some(()),
        )
    })?;
    let err = s.fails(&["drain", &main, "--ignore-daemonsets", "--timeout=10s"])?;
    ensure!(err.contains("disruption budget"), "drain error: {err}");
    ensure!(
        ready_web_pods_on(&s, &main)? == 2,
        "no pod may have been evicted"
    );
    ensure!(
        s.json(&["get", "node", &main])?["spec"]["unschedulable"] == true,
        "drain cordons first"
    );

    // Relaxed budget: drain evicts one at a time and the pods move to node-c.
    s.apply("pdb.yaml", &pdb_yaml(1))?;
    s.ok(&["drain", &main, "--ignore-daemonsets", "--timeout=90s"])?;
    wait_for("2 Ready pods on node-c", || {
        Ok((ready_web_pods_on(&s, "node-c")? == 2).then_some(()))
    })?;
    s.ok(&["uncordon", &main])?;
    Ok(())
}
