//! The kubectl acceptance flow of the control plane: real kubectl against a real server.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Result};
use common::{wait_for, Skiff};

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
  labels: {tier: web}
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
  namespace: shop
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: hello:1.0
        ports:
        - containerPort: 8080
        env:
        - name: A
          value: "1"
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

#[test]
fn get_namespaces_lists_the_bootstrap_ones() -> Result<()> {
    let s = Skiff::control_plane()?;
    let out = s.ok(&["get", "ns"])?;
    for ns in ["default", "kube-system", "kube-public"] {
        ensure!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} missing:\n{out}"
        );
    }
    ensure!(out.starts_with("NAME"), "expected a table header:\n{out}");
    Ok(())
}

#[test]
fn apply_update_server_side_and_read_back() -> Result<()> {
    let s = Skiff::control_plane()?;
    let app = s.write("app.yaml", APP)?;
    let app = app.to_str().unwrap_or_default();
    let out = s.ok(&["apply", "-f", app])?;
    for o in [
        "namespace/shop created",
        "configmap/web-config created",
        "secret/web-secret created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        ensure!(out.contains(o), "missing {o:?} in:\n{out}");
    }
    // A changed copy goes through the strategic-merge PATCH path.
    let changed = APP
        .replace("hello:1.0", "hello:2.0")
        .replace("greeting: hello", "greeting: hi");
    let app2 = s.write("app2.yaml", &changed)?;
    let app2 = app2.to_str().unwrap_or_default();
    let out = s.ok(&["apply", "-f", app2])?;
    ensure!(out.contains("deployment.apps/web configured"), "{out}");
    ensure!(out.contains("configmap/web-config configured"), "{out}");
    ensure!(out.contains("service/web unchanged"), "{out}");
    let d = s.json(&["-n", "shop", "get", "deploy", "web"])?;
    ensure!(d["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:2.0");
    // The env var and the port survive the merge.
    ensure!(d["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] == "A");
    ensure!(d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080);
    ensure!(
        d["metadata"]["generation"] == 2,
        "generation: {}",
        d["metadata"]["generation"]
    );
    // Server-side defaulting.
    ensure!(
        d["spec"]["strategy"]["type"] == "RollingUpdate",
        "{}",
        d["spec"]["strategy"]
    );
    ensure!(d["spec"]["revisionHistoryLimit"] == 10);
    let cm = s.json(&["-n", "shop", "get", "cm", "web-config"])?;
    ensure!(cm["data"]["greeting"] == "hi");
    let secret = s.json(&["-n", "shop", "get", "secret", "web-secret"])?;
    ensure!(
        secret["data"]["password"] == "czNjcmV0",
        "stringData becomes base64 data: {secret}"
    );
    ensure!(secret.get("stringData").is_none());
    let out = s.ok(&["apply", "--server-side", "-f", app2])?;
    ensure!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let out = s.ok(&["-n", "shop", "get", "deploy,svc", "-o", "wide"])?;
    ensure!(
        out.contains("deployment.apps/web") && out.contains("hello:2.0") && out.contains("app=web"),
        "{out}"
    );
    ensure!(
        out.contains("service/web") && out.contains("ClusterIP") && out.contains("80/TCP"),
        "{out}"
    );
    let yaml = s.ok(&["-n", "shop", "get", "deploy", "web", "-o", "yaml"])?;
    for f in [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "resourceVersion:",
        "uid:",
        "creationTimestamp:",
    ] {
        ensure!(yaml.contains(f), "{f} missing in:\n{yaml}");
    }
    let out = s.ok(&["-n", "shop", "get", "pods", "--show-labels"])?;
    ensure!(
        out.contains("No resources found") || out.is_empty() || out.contains("LABELS"),
        "{out}"
    );
    let out = s.ok(&["-n", "shop", "get", "cm", "-l", "tier=web"])?;
    ensure!(out.contains("web-config"), "{out}");
    let out = s.ok(&["-n", "shop", "get", "cm", "-l", "tier!=web"])?;
    ensure!(!out.contains("web-config"), "{out}");
    let out = s.ok(&["delete", "-f", app2])?;
    for o in [
        "namespace \"shop\" deleted",
        "configmap \"web-config\" deleted",
        "deployment.apps \"web\" deleted",
        "service \"web\" deleted",
    ] {
        ensure!(out.contains(o), "missing {o:?} in:\n{out}");
    }
    wait_for("namespace shop to be gone", || {
        Ok((!s.kubectl(&["get", "ns", "shop"])?.status.success()).then_some(()))
    })?;
    Ok(())
}

#[test]
fn label_edit_describe_scale() -> Result<()> {
    let s = Skiff::control_plane()?;
    let app = s.write("app.yaml", APP)?;
    s.ok(&["apply", "-f", app.to_str().unwrap_or_default()])?;
    s.ok(&[
        "-n",
        "shop",
        "label",
        "cm",
        "web-config",
        "a=b",
        "--overwrite",
    ])?;
    let cm = s.json(&["-n", "shop", "get", "cm", "web-config"])?;
    ensure!(cm["metadata"]["labels"]["a"] == "b");
    s.ok(&["-n", "shop", "label", "cm", "web-config", "a-"])?;
    let cm = s.json(&["-n", "shop", "get", "cm", "web-config"])?;
    ensure!(
        cm["metadata"]["labels"].get("a").is_none(),
        "{}",
        cm["metadata"]
    );
    let editor = s.write(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/greeting: hello/greeting: edited/' \"$1\"\n",
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()?;
    let out = s
        .kubectl_cmd(&["-n", "shop", "edit", "cm", "web-config"])
        .env("EDITOR", &editor)
        .output()?;
    ensure!(
        out.status.success(),
        "edit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = s.json(&["-n", "shop", "get", "cm", "web-config"])?;
    ensure!(cm["data"]["greeting"] == "edited", "{}", cm["data"]);
    let out = s.ok(&["-n", "shop", "describe", "deploy", "web"])?;
    ensure!(
        out.contains("Name:")
            && out.contains("web")
            && out.contains("Selector:")
            && out.contains("app=web"),
        "{out}"
    );
    ensure!(
        out.contains("StrategyType:           RollingUpdate") || out.contains("RollingUpdate"),
        "{out}"
    );
    s.ok(&["-n", "shop", "scale", "deploy", "web", "--replicas=3"])?;
    let d = s.json(&["-n", "shop", "get", "deploy", "web"])?;
    ensure!(d["spec"]["replicas"] == 3, "{}", d["spec"]["replicas"]);
    Ok(())
}

#[test]
fn protobuf_creates_and_expose() -> Result<()> {
    let s = Skiff::control_plane()?;
    s.ok(&["create", "namespace", "team"])?;
    s.ok(&[
        "create",
        "deployment",
        "hello",
        "--image=hello:1",
        "--replicas=2",
    ])?;
    s.ok(&["create", "configmap", "lit", "--from-literal=x=y"])?;
    s.ok(&["create", "secret", "generic", "pw", "--from-literal=p=q"])?;
    s.ok(&["create", "service", "clusterip", "plain", "--tcp=80:8080"])?;
    let d = s.json(&["get", "deploy", "hello"])?;
    ensure!(
        d["spec"]["replicas"] == 2
            && d["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:1",
        "{d}"
    );
    ensure!(s.json(&["get", "cm", "lit"])?["data"]["x"] == "y");
    ensure!(s.json(&["get", "secret", "pw"])?["data"]["p"] == "cQ==");
    ensure!(s.json(&["get", "ns", "team"])?["status"]["phase"] == "Active");
    let out = s.ok(&["expose", "deploy", "hello", "--port=80", "--type=NodePort"])?;
    ensure!(out.contains("service/hello exposed"), "{out}");
    let svc = s.json(&["get", "svc", "hello"])?;
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or("");
    ensure!(ip.starts_with("10.43."), "clusterIP {ip}");
    let np = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or(0);
    ensure!((30000..=32767).contains(&np), "nodePort {np}");
    let plain = s.json(&["get", "svc", "plain"])?;
    ensure!(plain["spec"]["clusterIP"] != svc["spec"]["clusterIP"]);
    Ok(())
}

#[test]
fn watch_sees_changes_made_by_another_kubectl() -> Result<()> {
    let s = Skiff::control_plane()?;
    let mut watcher = s
        .kubectl_cmd(&["get", "cm", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    // Let the watch establish before changing things.
    std::thread::sleep(Duration::from_millis(1500));
    s.ok(&["create", "cm", "w1", "--from-literal=a=1"])?;
    s.ok(&["label", "cm", "w1", "x=y"])?;
    s.ok(&["delete", "cm", "w1"])?;
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watcher.kill();
    let mut out = String::new();
    if let Some(mut so) = watcher.stdout.take() {
        so.read_to_string(&mut out)?;
    }
    let _ = watcher.wait();
    let events: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" w1 "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ensure!(
        events == ["ADDED", "MODIFIED", "DELETED"],
        "events {events:?} in:\n{out}"
    );
    Ok(())
}

#[test]
fn missing_objects_are_not_found() -> Result<()> {
    let s = Skiff::control_plane()?;
    let err = s.fails(&["get", "cm", "nope"])?;
    ensure!(
        err.contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{err}"
    );
    let err = s.fails(&["get", "deploy", "nope"])?;
    ensure!(
        err.contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{err}"
    );
    Ok(())
}

#[test]
fn dry_run_and_metrics() -> Result<()> {
    let s = Skiff::control_plane()?;
    let out = s.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
        "-o",
        "json",
    ])?;
    ensure!(out.contains("\"dry\""), "{out}");
    s.fails(&["get", "cm", "dry"])?;
    s.ok(&["create", "configmap", "real", "--from-literal=a=b"])?;
    s.ok(&["label", "cm", "real", "x=y", "--dry-run=server"])?;
    ensure!(s.json(&["get", "cm", "real"])?["metadata"]["labels"]
        .get("x")
        .is_none());
    let metrics = s.ok(&["get", "--raw", "/metrics"])?;
    ensure!(
        metrics.contains("skiff_apiserver_requests_total{"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn deleting_a_namespace_deletes_its_objects() -> Result<()> {
    let s = Skiff::control_plane()?;
    s.ok(&["create", "namespace", "tmp"])?;
    s.ok(&[
        "-n",
        "tmp",
        "create",
        "configmap",
        "a",
        "--from-literal=k=v",
    ])?;
    s.ok(&["-n", "tmp", "create", "deployment", "d", "--image=hello:1"])?;
    s.ok(&["delete", "namespace", "tmp", "--wait=false"])?;
    let ns = s.json(&["get", "ns", "tmp"])?;
    ensure!(ns["status"]["phase"] == "Terminating", "{ns}");
    let err = s.fails(&["-n", "tmp", "create", "configmap", "b"])?;
    ensure!(err.contains("being terminated"), "{err}");
    wait_for("namespace tmp to be gone", || {
        Ok((!s.kubectl(&["get", "ns", "tmp"])?.status.success()).then_some(()))
    })?;
    let out = s.ok(&["get", "cm,deploy", "-A"])?;
    ensure!(!out.contains("tmp "), "objects left behind:\n{out}");
    Ok(())
}

#[test]
fn pods_show_labels_and_filter_by_field() -> Result<()> {
    let s = Skiff::control_plane()?;
    s.ok(&["run", "p1", "--image=hello:1", "--labels=app=x"])?;
    s.ok(&["run", "p2", "--image=hello:1", "--labels=app=y"])?;
    let out = s.ok(&["get", "pods", "--show-labels"])?;
    ensure!(
        out.contains("LABELS")
            && out
                .lines()
                .any(|l| l.starts_with("p1") && l.contains("Pending") && l.contains("app=x")),
        "{out}"
    );
    let out = s.ok(&[
        "get",
        "pods",
        "--field-selector",
        "status.phase=Pending,metadata.name=p2",
        "-o",
        "name",
    ])?;
    ensure!(out.trim() == "pod/p2", "{out}");
    let out = s.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=",
        "-o",
        "name",
    ])?;
    ensure!(out.lines().count() == 2, "{out}");
    let err = s.fails(&["get", "pods", "--field-selector", "spec.bogus=1"])?;
    ensure!(
        err.contains("field label not supported: spec.bogus"),
        "{err}"
    );
    let p = s.json(&["get", "pod", "p1"])?;
    ensure!(
        p["spec"]["restartPolicy"] == "Always"
            && p["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent",
        "{p}"
    );
    // An unscheduled pod has nothing to stop: it goes at once.
    s.ok(&["delete", "pod", "p1"])?;
    s.fails(&["get", "pod", "p1"])?;
    Ok(())
}
