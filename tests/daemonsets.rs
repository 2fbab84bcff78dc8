//! DaemonSets end to end on Wasm pods with real kubectl and two nodes (the embedded agent and
//! `node-b`): one pod per node, `rollout status`, `set image` rolled out as a new
//! ControllerRevision, `rollout history` listing both with their change-cause, `rollout undo`
//! (and `--to-revision`) returning to the first template, and a nodeSelector limiting the
//! DaemonSet to one node whose served HTTP body follows set image / undo; `kubectl drain
//! --ignore-daemonsets` leaves daemon pods in place.

mod common;

use anyhow::{ensure, Context, Result};
use common::{env_version, free_port, guest, http_get, is_ready, wait_for, Skiff};
use serde_json::Value;

const ROLLOUT_TIMEOUT: &str = "--timeout=120s";

fn daemonset_yaml(name: &str, node_selector: &str, ports: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
  annotations:
    kubernetes.io/change-cause: initial v1
spec:
  selector:
    matchLabels: {{app: {name}}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {{maxUnavailable: 1}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      runtimeClassName: wasm
      terminationGracePeriodSeconds: 2
{node_selector}      containers:
      - name: main
        image: hello-wasm:v1
        env:
        - {{name: VERSION, value: v1}}
        ports:
        - {{containerPort: 8080{ports}}}
"
    )
}

/// Waits until `app` has exactly one Ready pod on each of `nodes` and nothing terminating,
/// all with `image`; returns the pods.
fn wait_daemon_pods(s: &Skiff, app: &str, nodes: &[&str], image: &str) -> Result<Vec<Value>> {
    wait_for(
        &format!("one ready {image} pod of {app} on each of {nodes:?}"),
        || {
            let list = s.json(&["get", "pods", "-l", &format!("app={app}")])?;
            let pods = list["items"].as_array().cloned().unwrap_or_default();
            let mut on: Vec<&str> = pods
                .iter()
                .filter_map(|p| p["spec"]["nodeName"].as_str())
                .collect();
            on.sort_unstable();
            let mut want = nodes.to_vec();
            want.sort_unstable();
            let ok = on == want
                && pods.iter().all(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && is_ready(p)
                        && p["spec"]["containers"][0]["image"] == image
                });
            Ok(ok.then_some(pods))
        },
    )
}

fn rollout_ok(s: &Skiff, what: &str) -> Result<()> {
    let out = s.ok(&["rollout", "status", what, ROLLOUT_TIMEOUT])?;
    ensure!(out.contains("successfully rolled out"), "{out}");
    Ok(())
}

/// Both nodes Ready; returns the embedded node's name.
fn two_nodes(s: &Skiff) -> Result<String> {
    wait_for("two Ready nodes", || {
        let nodes = s.json(&["get", "nodes"])?;
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = items
            .iter()
            .filter(|n| is_ready(n))
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        Ok((names.len() == 2 && names.iter().any(|n| n == "node-b"))
            .then(|| names.into_iter().find(|n| n != "node-b"))
            .flatten())
    })
}

#[test]
fn daemonset_per_node_rollout_history_and_undo() -> Result<()> {
    let s = Skiff::start()?;
    let hello = guest("hello_wasm")?;
    s.import(&hello, "hello-wasm:v1")?;
    s.import(&hello, "hello-wasm:v2")?;
    let _b = s.spawn_agent("node-b")?;
    let main = two_nodes(&s)?;
    let nodes = [main.as_str(), "node-b"];

    s.apply("agent.yaml", &daemonset_yaml("agent", "", ""))?;
    rollout_ok(&s, "ds/agent")?;
    let first = wait_daemon_pods(&s, "agent", &nodes, "hello-wasm:v1")?;
    ensure!(first.iter().all(|p| {
        p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
            && p["metadata"]["labels"]["controller-revision-hash"].is_string()
            && p["metadata"]["labels"]["pod-template-generation"] == "1"
    }));
    let ds = s.json(&["get", "ds", "agent"])?;
    ensure!(
        ds["status"]["desiredNumberScheduled"] == 2
            && ds["status"]["numberReady"] == 2
            && ds["status"]["updatedNumberScheduled"] == 2,
        "{:#}",
        ds["status"]
    );
    let table = s.ok(&["get", "ds", "agent"])?;
    ensure!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().take(6).collect::<Vec<_>>()
                == ["agent", "2", "2", "2", "2", "2"]),
        "{table}"
    );

    // set image (change-cause annotated first, so the new revision carries it) → revision 2.
    s.ok(&[
        "annotate",
        "ds/agent",
        "kubernetes.io/change-cause=image v2",
        "--overwrite",
    ])?;
    s.ok(&["set", "image", "ds/agent", "main=hello-wasm:v2"])?;
    rollout_ok(&s, "ds/agent")?;
    wait_daemon_pods(&s, "agent", &nodes, "hello-wasm:v2")?;

    let history = s.ok(&["rollout", "history", "ds/agent"])?;
    let rows: Vec<&str> = history
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .collect();
    ensure!(
        rows.len() == 2
            && rows[0].starts_with('1')
            && rows[0].contains("initial v1")
            && rows[1].starts_with('2')
            && rows[1].contains("image v2"),
        "{history}"
    );
    let detail = s.ok(&["rollout", "history", "ds/agent", "--revision=1"])?;
    ensure!(detail.contains("hello-wasm:v1"), "{detail}");

    // undo to revision 1 → the v1 template again, as revision 3.
    s.ok(&["rollout", "undo", "ds/agent", "--to-revision=1"])?;
    rollout_ok(&s, "ds/agent")?;
    let back = wait_daemon_pods(&s, "agent", &nodes, "hello-wasm:v1")?;
    ensure!(back.iter().all(|p| env_version(p) == "v1"));
    let ds = s.json(&["get", "ds", "agent"])?;
    ensure!(ds["spec"]["template"]["spec"]["containers"][0]["image"] == "hello-wasm:v1");
    let history = s.ok(&["rollout", "history", "ds/agent"])?;
    ensure!(
        history.lines().any(|l| l.starts_with("3 "))
            && !history.lines().any(|l| l.starts_with("1 ")),
        "{history}"
    );
    // Plain undo goes back to the previous revision (v2), as revision 4.
    s.ok(&["rollout", "undo", "ds/agent"])?;
    rollout_ok(&s, "ds/agent")?;
    wait_daemon_pods(&s, "agent", &nodes, "hello-wasm:v2")?;
    let history = s.ok(&["rollout", "history", "ds/agent"])?;
    ensure!(
        history
            .lines()
            .any(|l| l.starts_with("4 ") && l.contains("image v2")),
        "{history}"
    );
    let describe = s.ok(&["describe", "ds", "agent"])?;
    ensure!(
        describe.contains("SuccessfulCreate") && describe.contains("SuccessfulDelete"),
        "{describe}"
    );

    // `kubectl drain --ignore-daemonsets` cordons the node and leaves its daemon pod alone
    // (kubectl finds the pod's DaemonSet through the API and skips it).
    let out = s.ok(&["drain", "node-b", "--ignore-daemonsets", "--timeout=60s"])?;
    ensure!(out.contains("drained"), "{out}");
    let node = s.json(&["get", "node", "node-b"])?;
    ensure!(node["spec"]["unschedulable"] == true, "{node:#}");
    wait_daemon_pods(&s, "agent", &nodes, "hello-wasm:v2")?;
    s.ok(&["uncordon", "node-b"])?;
    Ok(())
}

#[test]
fn node_selector_limits_pods_and_body_follows_undo() -> Result<()> {
    let s = Skiff::start()?;
    let hello = guest("hello_wasm")?;
    s.import(&hello, "hello-wasm:v1")?;
    s.import(&hello, "hello-wasm:v2")?;
    let _b = s.spawn_agent("node-b")?;
    two_nodes(&s)?;
    let port = free_port()?;
    let selector = "      nodeSelector: {kubernetes.io/hostname: node-b}\n";
    s.apply(
        "one.yaml",
        &daemonset_yaml("one", selector, &format!(", hostPort: {port}")),
    )?;
    rollout_ok(&s, "ds/one")?;
    wait_daemon_pods(&s, "one", &["node-b"], "hello-wasm:v1")?;
    let ds = s.json(&["get", "ds", "one"])?;
    ensure!(ds["status"]["desiredNumberScheduled"] == 1, "{ds:#}");
    let body = |want: &str| -> Result<String> {
        wait_for(&format!("body with version={want}"), || {
            Ok(http_get(port, "/which")
                .ok()
                .filter(|(code, b)| *code == 200 && b.contains(&format!("version={want} ")))
                .map(|(_, b)| b))
        })
    };
    body("v1")?;
    // Image and env in one template change (one revision) through a patch.
    s.ok(&[
        "patch",
        "ds/one",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"hello-wasm:v2","env":[{"name":"VERSION","value":"v2"}]}]}}}}"#,
    ])?;
    rollout_ok(&s, "ds/one")?;
    body("v2")?;
    s.ok(&["rollout", "undo", "ds/one"])?;
    rollout_ok(&s, "ds/one")?;
    let b = body("v1")?;
    ensure!(b.contains("Hello from Skiff!"), "{b}");
    let pods = wait_daemon_pods(&s, "one", &["node-b"], "hello-wasm:v1")?;
    ensure!(pods.len() == 1);
    let revs = s.json(&["get", "controllerrevisions", "-l", "app=one"])?;
    let numbers: Vec<i64> = revs["items"]
        .as_array()
        .context("revisions")?
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .collect();
    ensure!(numbers.len() == 2 && numbers.contains(&3), "{numbers:?}");
    Ok(())
}
