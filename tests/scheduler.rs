//! Scheduler acceptance with real kubectl against a control plane without agents: fake Node
//! objects (Ready, with allocatable) and pods that never run, asserting `spec.nodeName`,
//! the PodScheduled condition and FailedScheduling events as Kubernetes words them.

mod common;

use anyhow::Result;
use common::{wait_for, Skiff};
use serde_json::Value;

fn node_yaml(name: &str, labels: &[(&str, &str)], taint: Option<&str>) -> String {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    let taints = taint
        .map(|t| format!("spec:\n  taints:\n{t}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    kubernetes.io/hostname: {name}
{labels}{taints}
status:
  capacity: {{cpu: "4", memory: 8Gi, pods: "110"}}
  allocatable: {{cpu: "4", memory: 8Gi, pods: "110"}}
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, lastHeartbeatTime: "{now}", lastTransitionTime: "{now}"}}
"#
    )
}

fn pod_yaml(name: &str, extra_spec: &str, requests: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
{extra_spec}
  containers:
  - name: c
    image: hello-wasm:v1
    resources:
      requests: {requests}
"#
    )
}

fn node_of(s: &Skiff, pod: &str) -> Result<Option<String>> {
    let p = s.json(&["get", "pod", pod])?;
    Ok(p.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .map(str::to_string))
}

fn wait_node(s: &Skiff, pod: &str) -> Result<String> {
    wait_for(&format!("{pod} to be scheduled"), || node_of(s, pod))
}

/// Waits for the PodScheduled=False message and checks the FailedScheduling event says it too.
fn wait_unschedulable(s: &Skiff, pod: &str, want: &str) -> Result<()> {
    let msg = wait_for(&format!("{pod} to be unschedulable: {want}"), || {
        let p = s.json(&["get", "pod", pod])?;
        let msg = p
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
            .and_then(|c| c["message"].as_str())
            .map(str::to_string);
        Ok(msg.filter(|m| m == want))
    })?;
    assert_eq!(msg, want);
    wait_for(&format!("FailedScheduling event of {pod}"), || {
        let events = s.json(&["get", "events"])?;
        let found = events["items"].as_array().into_iter().flatten().any(|e| {
            e["reason"] == "FailedScheduling"
                && e["involvedObject"]["name"] == pod
                && e["message"] == want
                && e["source"]["component"] == "default-scheduler"
        });
        Ok(found.then_some(()))
    })?;
    let described = s.ok(&["describe", "pod", pod])?;
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(described.contains("nodes are available"), "{described}");
    Ok(())
}

#[test]
fn scheduler_places_explains_and_retries() -> Result<()> {
    // Fake nodes have no agent: a long grace keeps the node lifecycle controller off them.
    let s = Skiff::start_with(&["--no-agent", "--node-monitor-grace-seconds", "3600"])?;
    let gpu_taint = "  - {key: dedicated, value: gpu, effect: NoSchedule}\n";
    s.apply(
        "n1.yaml",
        &node_yaml("n1", &[("disk", "ssd"), ("zone", "a")], None),
    )?;
    s.apply(
        "n2.yaml",
        &node_yaml("n2", &[("disk", "hdd"), ("zone", "b")], None),
    )?;
    s.apply(
        "n3.yaml",
        &node_yaml("n3", &[("zone", "c")], Some(gpu_taint)),
    )?;
    let small = "{cpu: 100m, memory: 64Mi}";

    // nodeSelector.
    s.apply(
        "sel.yaml",
        &pod_yaml("sel", "  nodeSelector: {disk: ssd}", small),
    )?;
    assert_eq!(wait_node(&s, "sel")?, "n1");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=sel",
    ])?;
    assert!(
        events.contains("Successfully assigned default/sel to n1"),
        "{events}"
    );

    // Required node affinity (NotIn + Exists, DaemonSet-style matchFields).
    let affinity = r#"  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: zone, operator: NotIn, values: [a, c]}
          - {key: disk, operator: Exists}"#;
    s.apply("aff.yaml", &pod_yaml("aff", affinity, small))?;
    assert_eq!(wait_node(&s, "aff")?, "n2");

    // Tolerations: only a tolerating pod may use the tainted node.
    let tolerant = "  nodeSelector: {zone: c}\n  tolerations:\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}";
    s.apply("tol.yaml", &pod_yaml("tol", tolerant, small))?;
    assert_eq!(wait_node(&s, "tol")?, "n3");
    s.apply(
        "intol.yaml",
        &pod_yaml("intol", "  nodeSelector: {zone: c}", small),
    )?;
    wait_unschedulable(
        &s,
        "intol",
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector.",
    )?;

    // An impossible request. kube-scheduler 1.32 would add "preemption: 0/3 nodes are
    // available: 3 No preemption victims found for incoming pod."; Skiff does not preempt.
    s.apply(
        "huge.yaml",
        &pod_yaml("huge", "", "{cpu: 100m, memory: 64Gi}"),
    )?;
    wait_unschedulable(
        &s,
        "huge",
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory.",
    )?;
    let cond = s.ok(&[
        "get",
        "pod",
        "huge",
        "-o",
        "jsonpath={.status.conditions[0].reason}",
    ])?;
    assert_eq!(cond, "Unschedulable");

    // Required anti-affinity on the hostname: 3 replicas, 2 usable nodes → 1 pending.
    let deploy = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers:
      - {name: c, image: hello-wasm:v1, resources: {requests: {cpu: 100m}}}
"#;
    s.apply("spread.yaml", deploy)?;
    let anti_msg = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match pod anti-affinity rules.";
    let pending = wait_for("2 spread pods placed and 1 pending", || {
        let pods = s.json(&["get", "pods", "-l", "app=spread"])?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let placed: Vec<&str> = items
            .iter()
            .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str))
            .collect();
        let waiting: Vec<String> = items
            .iter()
            .filter(|p| p.pointer("/spec/nodeName").is_none())
            .filter(|p| {
                p.pointer("/status/conditions/0/message")
                    .and_then(Value::as_str)
                    == Some(anti_msg)
            })
            .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        let mut placed = placed.clone();
        placed.sort();
        Ok(
            (items.len() == 3 && placed == ["n1", "n2"] && waiting.len() == 1)
                .then(|| waiting[0].clone()),
        )
    })?;
    wait_unschedulable(&s, &pending, anti_msg)?;

    // Removing the taint wakes the pending pods: both land on n3.
    s.ok(&["taint", "nodes", "n3", "dedicated=gpu:NoSchedule-"])?;
    assert_eq!(wait_node(&s, "intol")?, "n3");
    assert_eq!(wait_node(&s, &pending)?, "n3");

    // A node added later takes the pod that fits only there.
    s.apply(
        "nvme.yaml",
        &pod_yaml("nvme", "  nodeSelector: {disk: nvme}", small),
    )?;
    wait_unschedulable(
        &s,
        "nvme",
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
    )?;
    s.apply("n4.yaml", &node_yaml("n4", &[("disk", "nvme")], None))?;
    assert_eq!(wait_node(&s, "nvme")?, "n4");
    let cond = s.ok(&[
        "get",
        "pod",
        "nvme",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].status}",
    ])?;
    assert_eq!(cond, "True");
    // The impossible pod still waits, now counting 4 nodes.
    wait_unschedulable(
        &s,
        "huge",
        "0/4 nodes are available: 4 Insufficient memory.",
    )?;
    Ok(())
}
