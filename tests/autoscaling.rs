//! Resource usage and HorizontalPodAutoscalers, end to end: the control plane reads each
//! node's usage (Wasm containers counted by the runtime, Linux containers through CRI),
//! `kubectl top` shows it for both runtimes, and an `autoscaling/v2` HPA on cpu scales a
//! CPU-burning Deployment up and, once it idles, back down.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{guest, wait_for_within, Skiff};

/// Millicores in a `kubectl top` CPU cell (`250m`, `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => cell.parse::<u64>().map(|c| c * 1000).unwrap_or(0),
    }
}

/// `kubectl top pods` rows: (name, millicores, memory cell).
fn top_pods(s: &Skiff) -> Result<Vec<(String, u64, String)>> {
    let out = s.ok(&["top", "pods", "--no-headers"])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                millicores(f.get(1)?),
                f.get(2)?.to_string(),
            ))
        })
        .collect())
}

fn replicas(s: &Skiff, deployment: &str) -> Result<u64> {
    let d = s.json(&["get", "deployment", deployment, "-o", "json"])?;
    Ok(d["spec"]["replicas"].as_u64().unwrap_or(0))
}

#[test]
fn kubectl_top_shows_both_runtimes_and_an_hpa_scales_a_cpu_burner_up_and_down() -> Result<()> {
    if !common::containerd_available() {
        return Ok(());
    }
    let s = Skiff::start_with_containerd_and(&["--metrics-resolution", "1s"])?;
    let tar = common::busybox::layout_tarball(s.data_dir())?;
    s.import(&tar, "busybox:1.35")?;
    s.import(&guest("spin")?, "spin:v1")?;
    // A Wasm pod that keeps one core busy, and containers that burn CPU for their first
    // 25 seconds and then idle.
    s.apply(
        "load.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: wasm-spin}
spec:
  containers:
  - name: spin
    image: spin:v1
    imagePullPolicy: IfNotPresent
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: burn
        image: busybox:1.35
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "end=$(( $(date +%s) + 25 )); while [ $(date +%s) -lt $end ]; do :; done; exec sleep 3600"]
        resources: {requests: {cpu: 100m, memory: 16Mi}}
"#,
    )?;
    // Both runtimes show up in `kubectl top pods` with CPU in use.
    let rows = wait_for_within("usage of both pods", Duration::from_secs(60), || {
        let Ok(rows) = top_pods(&s) else {
            return Ok(None);
        };
        let busy = |prefix: &str| {
            rows.iter()
                .any(|(n, cpu, _)| n.starts_with(prefix) && *cpu > 0)
        };
        Ok((busy("wasm-spin") && busy("burn-")).then_some(rows))
    })?;
    let burn = rows
        .iter()
        .find(|(n, ..)| n.starts_with("burn-"))
        .map(|r| r.2.clone());
    assert!(burn.is_some_and(|m| m.ends_with("Mi")), "{rows:?}");
    let containers = s.ok(&["top", "pods", "--containers", "--no-headers"])?;
    assert!(
        containers.contains("wasm-spin") && containers.contains(" spin "),
        "{containers}"
    );
    let nodes = s.ok(&["top", "nodes", "--no-headers"])?;
    assert!(nodes.contains('%'), "{nodes}");

    // An HPA on cpu: the burner is far above 50 % of its request, so it goes to the maximum.
    s.ok(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ])?;
    s.ok(&[
        "patch",
        "hpa",
        "burn",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}}}}"#,
    ])?;
    wait_for_within("scale up to 3", Duration::from_secs(60), || {
        Ok((replicas(&s, "burn")? == 3).then_some(()))
    })?;
    let hpa = s.ok(&["get", "hpa", "burn"])?;
    assert!(
        hpa.contains("Deployment/burn") && hpa.contains("/50%"),
        "{hpa}"
    );
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
    ])?;
    assert!(events.contains("New size: 3"), "{events}");
    // Once every pod idles, back to the minimum.
    wait_for_within("scale down to 1", Duration::from_secs(120), || {
        Ok((replicas(&s, "burn")? == 1).then_some(()))
    })?;
    let status = s.json(&["get", "hpa", "burn", "-o", "json"])?;
    let conditions = status["status"]["conditions"].to_string();
    assert!(conditions.contains("ValidMetricFound"), "{conditions}");
    Ok(())
}

#[test]
fn autoscaling_annotations_are_validated_naming_the_annotation() -> Result<()> {
    let s = Skiff::start()?;
    let bad = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    autoscaling.skiff.dev/min-scale: "3"
    autoscaling.skiff.dev/max-scale: "2"
    autoscaling.skiff.dev/scale-down-delay: "soon"
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: hello-wasm:v1}]}
"#;
    let path = s.data_dir().join("bad.yaml");
    std::fs::write(&path, bad)?;
    let out = s.kubectl(&["apply", "-f", path.to_str().unwrap_or_default()])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("metadata.annotations[autoscaling.skiff.dev/min-scale]")
            && err.contains("must not be greater than autoscaling.skiff.dev/max-scale (2)"),
        "{err}"
    );
    assert!(
        err.contains("autoscaling.skiff.dev/scale-down-delay"),
        "{err}"
    );
    // Valid ones are accepted; the Deployment starts at its initial scale.
    let good = bad
        .replace("\"3\"", "\"0\"")
        .replace("\"soon\"", "\"5s\"")
        .replace(
            "    autoscaling.skiff.dev/max-scale: \"2\"\n",
            "    autoscaling.skiff.dev/max-scale: \"2\"\n    autoscaling.skiff.dev/initial-scale: \"2\"\n",
        );
    std::fs::write(&path, good)?;
    let out = s.kubectl(&["apply", "-f", path.to_str().unwrap_or_default()])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let out = s.kubectl(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ])?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
    Ok(())
}
