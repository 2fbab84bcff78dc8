//! Wasm pods end to end: a real server with its embedded node agent (and a second `skiff
//! agent`), components imported with `skiff image import`, driven by kubectl.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use common::{free_port, guest, http_get, wait_for, Skiff};
use serde_json::Value;

fn pod_yaml(
    name: &str,
    image: &str,
    restart: &str,
    extra_container: &str,
    extra_spec: &str,
) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  runtimeClassName: wasm\n  restartPolicy: {restart}\n{extra_spec}  containers:\n  - name: main\n    image: {image}\n{extra_container}"
    )
}

fn pod(s: &Skiff, name: &str) -> Result<Value> {
    s.json(&["get", "pod", name])
}

fn wait_phase(s: &Skiff, name: &str, phase: &str) -> Result<Value> {
    wait_for(&format!("pod {name} to be {phase}"), || {
        let p = pod(s, name)?;
        Ok((p["status"]["phase"] == phase).then_some(p))
    })
}

fn container_state(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

#[test]
fn node_registers_ready_and_its_lease_goes_stale_without_the_agent() -> Result<()> {
    let s = Skiff::control_plane()?;
    let mut agent = s.spawn_agent("node-b")?;
    let node = wait_for("node-b Ready", || {
        let out = s.kubectl(&["get", "node", "node-b", "-o", "json"])?;
        if !out.status.success() {
            return Ok(None);
        }
        let n: Value = serde_json::from_slice(&out.stdout)?;
        let ready = n["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        Ok(ready.then_some(n))
    })?;
    let labels = &node["metadata"]["labels"];
    for (k, v) in [
        ("kubernetes.io/hostname", "node-b"),
        ("kubernetes.io/os", "linux"),
        ("skiff.dev/runtime-wasm", "true"),
    ] {
        ensure!(labels[k] == v, "label {k}: {labels}");
    }
    ensure!(labels["kubernetes.io/arch"].is_string());
    ensure!(
        node["status"]["capacity"]["pods"].is_string()
            && node["status"]["nodeInfo"]["kubeletVersion"].is_string()
    );
    let out = s.ok(&["get", "nodes"])?;
    ensure!(
        out.lines()
            .any(|l| l.starts_with("node-b") && l.contains(" Ready")),
        "{out}"
    );
    let renew = |s: &Skiff| -> Result<String> {
        Ok(
            s.json(&["-n", "kube-node-lease", "get", "lease", "node-b"])?["spec"]["renewTime"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    let first = wait_for("lease", || {
        Ok(
            s.kubectl(&["-n", "kube-node-lease", "get", "lease", "node-b"])?
                .status
                .success()
                .then_some(()),
        )
    })
    .and_then(|_| renew(&s))?;
    wait_for("lease renewal", || Ok((renew(&s)? != first).then_some(())))?;
    agent.kill9();
    let stale = renew(&s)?;
    std::thread::sleep(Duration::from_secs(3));
    ensure!(
        renew(&s)? == stale,
        "lease still renewed after the agent stopped"
    );
    Ok(())
}

#[test]
fn hello_component_serves_logs_events_and_frees_its_port() -> Result<()> {
    let s = Skiff::start()?;
    let out = s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    ensure!(out.contains("hello-wasm:v1"), "{out}");
    let images = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["image", "ls", "--kubeconfig"])
        .arg(s.kubeconfig())
        .output()?;
    ensure!(
        String::from_utf8_lossy(&images.stdout).contains("hello-wasm"),
        "image ls: {images:?}"
    );
    let port = free_port()?;
    let yaml = pod_yaml(
        "hello",
        "hello-wasm:v1",
        "Always",
        &format!("    ports:\n    - containerPort: 8080\n      hostPort: {port}\n    readinessProbe:\n      httpGet: {{path: /healthz, port: 8080}}\n      periodSeconds: 1\n"),
        "",
    );
    let f = s.write("hello.yaml", &yaml)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    let p = wait_for("hello Running and Ready", || {
        let p = pod(&s, "hello")?;
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        Ok((p["status"]["phase"] == "Running" && ready).then_some(p))
    })?;
    ensure!(
        p["spec"]["nodeName"].is_string() && p["status"]["podIP"].is_string(),
        "{p}"
    );
    ensure!(
        container_state(&p)["imageID"]
            .as_str()
            .unwrap_or("")
            .contains("sha256:"),
        "{p}"
    );
    let (code, body) = http_get(port, "/greet")?;
    ensure!(
        code == 200 && body.contains("Hello from Skiff! version=v1 path=/greet"),
        "{code} {body}"
    );
    let logs = wait_for("logs", || {
        let l = s.ok(&["logs", "hello"])?;
        Ok(l.contains("GET /greet").then_some(l))
    })?;
    ensure!(logs.contains("GET /greet"), "{logs}");
    // A component has no processes: exec says so instead of failing obscurely.
    let err = s.fails(&["exec", "hello", "--", "sh"])?;
    ensure!(err.contains("WebAssembly component"), "{err}");
    let describe = s.ok(&["describe", "pod", "hello"])?;
    for ev in ["Scheduled", "Pulled", "Started"] {
        ensure!(describe.contains(ev), "no {ev} event in:\n{describe}");
    }
    s.ok(&["delete", "pod", "hello", "--timeout=30s"])?;
    ensure!(s.kubectl(&["get", "pod", "hello"])?.status.code() != Some(0));
    ensure!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "hostPort {port} still bound after delete"
    );
    Ok(())
}

#[test]
fn jobs_succeed_and_failures_fail_or_back_off() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("wasm-job")?, "wasm-job:v1")?;
    s.import(&guest("fail-exit")?, "fail-exit:v1")?;
    s.import(&guest("trap")?, "trap:v1")?;
    for (name, image, restart) in [
        ("job", "wasm-job:v1", "Never"),
        ("fails", "fail-exit:v1", "Never"),
        ("traps", "trap:v1", "Never"),
        ("loops", "fail-exit:v1", "Always"),
    ] {
        let f = s.write(
            &format!("{name}.yaml"),
            &pod_yaml(name, image, restart, "", ""),
        )?;
        s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    }
    wait_phase(&s, "job", "Succeeded")?;
    let logs = s.ok(&["logs", "job"])?;
    ensure!(logs.contains("sum:"), "{logs}");
    let p = wait_phase(&s, "fails", "Failed")?;
    let t = &container_state(&p)["state"]["terminated"];
    ensure!(t["exitCode"] == 3, "{p}");
    ensure!(s.ok(&["logs", "fails"])?.contains("about to fail"));
    let p = wait_phase(&s, "traps", "Failed")?;
    let msg = container_state(&p)["state"]["terminated"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    ensure!(msg.contains("trap"), "{p}");
    let p = wait_for("loops to restart twice", || {
        let p = pod(&s, "loops")?;
        Ok((container_state(&p)["restartCount"].as_i64().unwrap_or(0) >= 2).then_some(p))
    })?;
    ensure!(p["status"]["phase"] == "Running", "{p}");
    let describe = s.ok(&["describe", "pod", "loops"])?;
    ensure!(describe.contains("BackOff"), "{describe}");
    Ok(())
}

#[test]
fn deadlines_and_memory_limits_stop_components_without_disturbing_others() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("spin")?, "spin:v1")?;
    s.import(&guest("hog")?, "hog:v1")?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    let port = free_port()?;
    let hello = pod_yaml(
        "hello",
        "hello-wasm:v1",
        "Always",
        &format!("    ports:\n    - containerPort: 8080\n      hostPort: {port}\n"),
        "",
    );
    let spin = pod_yaml(
        "spin",
        "spin:v1",
        "Never",
        "",
        "  activeDeadlineSeconds: 2\n",
    );
    let hog = pod_yaml(
        "hog",
        "hog:v1",
        "Never",
        "    resources:\n      limits:\n        memory: 32Mi\n",
        "",
    );
    for (n, y) in [("hello", hello), ("spin", spin), ("hog", hog)] {
        let f = s.write(&format!("{n}.yaml"), &y)?;
        s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    }
    let p = wait_phase(&s, "spin", "Failed")?;
    ensure!(p["status"]["reason"] == "DeadlineExceeded", "{p}");
    let p = wait_phase(&s, "hog", "Failed")?;
    ensure!(
        container_state(&p)["state"]["terminated"]["reason"] == "OOMKilled",
        "{p}"
    );
    wait_phase(&s, "hello", "Running")?;
    let (code, body) = wait_for("hello answering", || {
        Ok(http_get(port, "/").ok().filter(|(c, _)| *c == 200))
    })?;
    ensure!(code == 200 && body.contains("Hello from Skiff"), "{body}");
    Ok(())
}

#[test]
fn env_and_config_map_volume_reach_the_component() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("env-reader")?, "env-reader:v1")?;
    s.ok(&[
        "create",
        "configmap",
        "greeting",
        "--from-literal=greeting=hello-from-volume",
        "--from-literal=word=hi",
    ])?;
    let yaml = pod_yaml(
        "reader",
        "env-reader:v1",
        "Never",
        "    workingDir: /config\n    env:\n    - name: GREETING\n      valueFrom:\n        configMapKeyRef: {name: greeting, key: word}\n    volumeMounts:\n    - name: cfg\n      mountPath: /config\n",
        "  volumes:\n  - name: cfg\n    configMap:\n      name: greeting\n",
    );
    let f = s.write("reader.yaml", &yaml)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    wait_phase(&s, "reader", "Succeeded")?;
    let logs = s.ok(&["logs", "reader"])?;
    ensure!(
        logs.contains("GREETING=hi")
            && logs.contains("file=hello-from-volume")
            && logs.contains("relative=hello-from-volume"),
        "{logs}"
    );
    Ok(())
}

#[test]
fn a_missing_image_is_err_image_pull_with_the_reference() -> Result<()> {
    let s = Skiff::start()?;
    let f = s.write("nope.yaml", &pod_yaml("nope", "nope:v1", "Always", "", ""))?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    let p = wait_for("ErrImagePull", || {
        let p = pod(&s, "nope")?;
        let w = &container_state(&p)["state"]["waiting"];
        Ok((w["reason"] == "ErrImagePull" || w["reason"] == "ImagePullBackOff").then_some(p))
    })?;
    let msg = container_state(&p)["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    ensure!(msg.contains("nope:v1"), "{msg}");
    Ok(())
}

#[test]
fn pods_spread_across_two_agents() -> Result<()> {
    let s = Skiff::start()?;
    let _b = s.spawn_agent("node-b")?;
    wait_for("two nodes", || {
        let n = s.json(&["get", "nodes"])?;
        let ready = n["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        Ok((ready == 2).then_some(()))
    })?;
    s.import(&guest("sleeper")?, "sleeper:v1")?;
    for i in 0..4 {
        let y = pod_yaml(&format!("s{i}"), "sleeper:v1", "Never", "    env:\n    - {name: SECONDS, value: \"1\"}\n    resources:\n      requests:\n        memory: 64Mi\n", "");
        let f = s.write(&format!("s{i}.yaml"), &y)?;
        s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    }
    let mut nodes = std::collections::BTreeSet::new();
    for i in 0..4 {
        let p = wait_phase(&s, &format!("s{i}"), "Succeeded")?;
        nodes.insert(p["spec"]["nodeName"].as_str().unwrap_or("").to_string());
    }
    ensure!(nodes.len() == 2, "pods did not spread: {nodes:?}");
    Ok(())
}
