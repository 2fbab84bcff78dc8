//! The cluster network across runtimes: a pod mixing a Wasm component and a Linux container,
//! and Wasm and container Services calling each other by name. Each test runs its cluster
//! (with containerd) in a network namespace of its own and sends traffic only inside it.

mod common;

use anyhow::{Context, Result};
use common::net::{cluster_ip, fetch, pod_ip};
use common::{guest, wait_for, Skiff};

/// A cluster whose node runs container pods too, with busybox and hello-wasm imported.
fn mixed_cluster() -> Result<Option<Skiff>> {
    if !common::containerd_available() {
        return Ok(None);
    }
    let s = Skiff::start_with_containerd()?;
    let tar = common::busybox::layout_tarball(s.data_dir())?;
    s.import(&tar, "busybox:1.35")?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    Ok(Some(s))
}

#[test]
fn a_mixed_pod_shares_its_address_localhost_and_volumes_between_wasm_and_a_container() -> Result<()>
{
    let Some(s) = mixed_cluster()? else {
        return Ok(());
    };
    s.apply(
        "mixed.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: mixed}
spec:
  volumes: [{name: shared, emptyDir: {}}]
  containers:
  - name: app
    image: hello-wasm:v1
    imagePullPolicy: IfNotPresent
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: sidecar
    image: busybox:1.35
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-the-sidecar > /shared/greeting; sleep 3600"]
    volumeMounts: [{name: shared, mountPath: /shared}]
"#,
    )?;
    let ip = pod_ip(&s, "mixed").map_err(|e| anyhow::anyhow!("{e}; log:\n{}", s.log()))?;
    // The Linux sidecar reaches the Wasm app on localhost.
    let out = s.ok(&[
        "exec",
        "mixed",
        "-c",
        "sidecar",
        "--",
        "wget",
        "-q",
        "-O",
        "-",
        "http://localhost:8080/env/HOSTNAME",
    ])?;
    assert_eq!(out, "mixed");
    // From the node, the pod's (sandbox) address serves the Wasm app.
    assert!(fetch(&s, &format!("http://{ip}:8080/"))?.contains("Hello from Skiff!"));
    // The Wasm app reads what the sidecar wrote into the shared emptyDir.
    let greeting = wait_for("the sidecar's file", || {
        Ok(fetch(&s, &format!("http://{ip}:8080/file?path=/shared/greeting")).ok())
    })?;
    assert_eq!(greeting.trim(), "from-the-sidecar");
    // The Wasm app reaches the sidecar's side of localhost too: a server the sidecar starts.
    s.ok(&[
        "exec",
        "mixed",
        "-c",
        "sidecar",
        "--",
        "sh",
        "-c",
        "mkdir -p /www && echo sidecar-page > /www/index.html && httpd -p 9090 -h /www",
    ])?;
    let page = fetch(
        &s,
        &format!("http://{ip}:8080/fetch?url=http://localhost:9090/index.html"),
    )?;
    assert_eq!(page.trim(), "sidecar-page");
    // So does a plain wasi:sockets connection: the socket is created in the pod's namespace.
    let raw = fetch(
        &s,
        &format!("http://{ip}:8080/tcp?addr=localhost:9090&path=/index.html"),
    )?;
    assert_eq!(raw, "local=127.0.0.1\nsidecar-page\n");
    // kubectl port-forward reaches the Wasm app inside the pod's sandbox.
    let mut pf = s
        .kubectl_cmd(&["port-forward", "pod/mixed", "18082:8080"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let forwarded = wait_for("the forwarded port", || {
        Ok(fetch(&s, "http://127.0.0.1:18082/env/HOSTNAME").ok())
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(forwarded?, "mixed");
    Ok(())
}

#[test]
fn wasm_and_container_services_reach_each_other_by_name() -> Result<()> {
    let Some(s) = mixed_cluster()? else {
        return Ok(());
    };
    s.apply(
        "apps.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: wasm}
spec:
  replicas: 3
  selector: {matchLabels: {app: wasm}}
  template:
    metadata: {labels: {app: wasm}}
    spec:
      containers:
      - name: app
        image: hello-wasm:v1
        imagePullPolicy: IfNotPresent
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: wasm-svc}
spec:
  selector: {app: wasm}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpd}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpd}}
  template:
    metadata: {labels: {app: httpd}}
    spec:
      containers:
      - name: httpd
        image: busybox:1.35
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www && echo container-page > /www/index.html && exec httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: httpd-svc}
spec:
  selector: {app: httpd}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - name: c
    image: busybox:1.35
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
"#,
    )?;
    let log = || s.log();
    wait_for("3 ready Wasm replicas and the httpd", || {
        let d = s.json(&["get", "deploy", "wasm", "-o", "json"])?;
        let h = s.json(&["get", "deploy", "httpd", "-o", "json"])?;
        Ok((d["status"]["readyReplicas"] == 3 && h["status"]["readyReplicas"] == 1).then_some(()))
    })
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", log()))?;
    pod_ip(&s, "client")?;
    // From a container pod: the Wasm Service by its full name, spread over all replicas.
    let out = s.ok(&[
        "exec", "client", "--", "sh", "-c",
        "for i in $(seq 40); do wget -q -O - http://wasm-svc.default.svc.cluster.local/env/HOSTNAME; echo; done",
    ])?;
    let mut seen: Vec<&str> = out.lines().filter(|l| l.starts_with("wasm-")).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        3,
        "all three replicas answer through the ClusterIP: {out}"
    );
    // From a Wasm pod: the container Service by its short name.
    let wasm_ip = s.json(&["get", "pods", "-l", "app=wasm", "-o", "json"])?["items"][0]["status"]
        ["podIP"]
        .as_str()
        .unwrap_or("")
        .to_string();
    // The httpd has no readiness probe: Ready when started, which can be a moment before it
    // listens and before the node's rules have its endpoint (a 502 from the fetch meanwhile).
    let page = wait_for("the container Service through the Wasm pod", || {
        Ok(fetch(
            &s,
            &format!("http://{wasm_ip}:8080/fetch?url=http://httpd-svc/"),
        )
        .ok())
    })?;
    assert_eq!(page.trim(), "container-page");
    // From the node: both ClusterIPs.
    let wasm_vip = cluster_ip(&s, "wasm-svc")?;
    assert!(fetch(&s, &format!("http://{wasm_vip}/"))?.contains("Hello from Skiff!"));
    let httpd_vip = cluster_ip(&s, "httpd-svc")?;
    assert_eq!(
        fetch(&s, &format!("http://{httpd_vip}/"))?.trim(),
        "container-page"
    );
    // kubectl port-forward to the container Service (kubectl picks one of its pods).
    let mut pf = s
        .kubectl_cmd(&["port-forward", "svc/httpd-svc", "18081:80"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let forwarded = wait_for("the forwarded port", || {
        Ok(fetch(&s, "http://127.0.0.1:18081/").ok())
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(forwarded?.trim(), "container-page");
    // Service environment variables, for pods started once the node knows the Services
    // (it does: their traffic flows), in both runtimes.
    s.ok(&[
        "run",
        "envcheck",
        "--image=hello-wasm:v1",
        "--image-pull-policy=IfNotPresent",
    ])?;
    let env_ip = pod_ip(&s, "envcheck")?;
    let host = fetch(
        &s,
        &format!("http://{env_ip}:8080/env/WASM_SVC_SERVICE_HOST"),
    )?;
    assert_eq!(host, wasm_vip);
    let port = fetch(
        &s,
        &format!("http://{env_ip}:8080/env/HTTPD_SVC_SERVICE_PORT"),
    )?;
    assert_eq!(port, "80");
    s.ok(&[
        "run",
        "envbox",
        "--image=busybox:1.35",
        "--image-pull-policy=IfNotPresent",
        "--",
        "sleep",
        "3600",
    ])?;
    pod_ip(&s, "envbox")?;
    let env = s.ok(&[
        "exec",
        "envbox",
        "--",
        "sh",
        "-c",
        "echo $WASM_SVC_SERVICE_HOST:$WASM_SVC_SERVICE_PORT",
    ])?;
    assert_eq!(env.trim(), format!("{wasm_vip}:80"));
    Ok(())
}

/// A client on the node holding one TCP connection to `addr`: it sends each line it reads on
/// stdin and prints what comes back (python3, inside the cluster's network namespace).
const LINE_CLIENT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rwb", buffering=0)
for line in sys.stdin:
    f.write(line.encode())
    print(f.readline().decode().strip(), flush=True)
"#;

#[test]
fn an_agent_crash_and_restart_keeps_established_service_connections() -> Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let Some(mut s) = mixed_cluster()? else {
        return Ok(());
    };
    s.apply(
        "echo.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: busybox:1.35
    imagePullPolicy: IfNotPresent
    command: ["nc", "-ll", "-p", "9000", "-e", "cat"]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 9000}]
"#,
    )?;
    pod_ip(&s, "echo")?;
    let vip = cluster_ip(&s, "echo")?;
    wait_for("the Service to be programmed", || {
        let rules = s.in_netns("nft", &["list", "table", "ip", "skiff"])?;
        Ok(rules.contains(&vip).then_some(()))
    })?;
    let mut client = s
        .command("python3")
        .args(["-c", LINE_CLIENT, &vip, "9000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut input = client.stdin.take().context("client stdin")?;
    let mut output = BufReader::new(client.stdout.take().context("client stdout")?);
    let mut ask = |line: &str| -> Result<String> {
        writeln!(input, "{line}")?;
        let mut answer = String::new();
        output.read_line(&mut answer)?;
        Ok(answer.trim().to_string())
    };
    assert_eq!(ask("before")?, "before");
    // The agent (and the whole server) dies and comes back: the kernel kept the rules, the
    // new agent takes the table over, and the open connection carries on.
    s.crash_and_restart()?;
    // The new agent has taken the table over (its first sync rewrote it) and adopted the pod's
    // sandbox (so its clean stop at the end removes it).
    wait_for("the restarted agent's first sync and adoption", || {
        let log = s.log();
        let Some((_, after)) = log
            .split_once("skiff agent running")
            .and_then(|(_, rest)| rest.split_once("skiff agent running"))
        else {
            return Ok(None);
        };
        Ok((after.contains("proxied service ports changed")
            && after.contains("adopting the pod's sandbox"))
        .then_some(()))
    })?;
    let after = ask("after");
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(after?, "after");
    // New connections work through the taken-over table too.
    let mut fresh = s
        .command("python3")
        .args(["-c", LINE_CLIENT, &vip, "9000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut fin = fresh.stdin.take().context("stdin")?;
    writeln!(fin, "again")?;
    drop(fin);
    let out = fresh.wait_with_output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "again");
    Ok(())
}
