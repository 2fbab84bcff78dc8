//! Container pods through the node's managed containerd (CRI): a real `skiff server` in a
//! network namespace of the test's own, a busybox OCI image built by the test and imported
//! with `skiff image import`, driven by real kubectl. With `SKIFF_REQUIRE_CONTAINERD=1` (CI)
//! a machine without containerd fails these tests instead of skipping them.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use common::{busybox, wait_for, Skiff};

fn cluster() -> Result<Option<Skiff>> {
    if !common::containerd_available() {
        return Ok(None);
    }
    let s = Skiff::start_with_containerd()?;
    let tar = busybox::layout_tarball(s.data_dir())?;
    s.import(&tar, "busybox:1.35")?;
    Ok(Some(s))
}

/// Runs `f` with a CRI client on the server's managed containerd (what the tests check
/// through, as one would with crictl).
fn with_cri<T, Fut>(
    s: &Skiff,
    f: impl FnOnce(skiff_node_runtime::cri::CriClient) -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let socket = s.data_dir().join("agent/containerd/containerd.sock");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move { f(skiff_node_runtime::cri::CriClient::new(&socket)?).await })
}

/// How many sandboxes containerd has, and its containers' ids as pod statuses show them.
fn cri_contents(s: &Skiff) -> Result<(usize, Vec<String>)> {
    with_cri(s, |cri| async move {
        let sandboxes = cri.list_pod_sandbox(Default::default()).await?.items.len();
        let mut ids: Vec<String> = cri
            .list_containers(Default::default())
            .await?
            .containers
            .iter()
            .map(|c| format!("containerd://{}", c.id))
            .collect();
        ids.sort();
        Ok((sandboxes, ids))
    })
}

fn pod_json(s: &Skiff, name: &str) -> Result<serde_json::Value> {
    s.json(&["get", "pod", name])
}

fn phase(p: &serde_json::Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn wait_phase(s: &Skiff, name: &str, want: &str) -> Result<serde_json::Value> {
    wait_for(&format!("pod {name} {want}"), || {
        let p = pod_json(s, name)?;
        Ok((phase(&p) == want).then_some(p))
    })
    .map_err(|e| anyhow::anyhow!("{e}; server log:\n{}", s.log()))
}

/// The veth and bridge interfaces in the server's namespace.
fn links(s: &Skiff) -> Result<String> {
    common::run_ok(s.command("ip").args(["-o", "link"]))
}

#[test]
fn container_pod_runs_logs_and_stops_gracefully() -> Result<()> {
    let Some(s) = cluster()? else { return Ok(()) };
    let node = s.json(&["get", "nodes"])?;
    let labels = &node["items"][0]["metadata"]["labels"];
    assert_eq!(labels["skiff.dev/runtime-oci"], "true", "{node}");
    assert!(
        node["items"][0]["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap_or("")
            .starts_with("containerd://")
    );
    assert_eq!(
        s.ok(&["get", "runtimeclass", "oci", "-o", "jsonpath={.handler}"])?,
        "runc"
    );

    let shared = tempfile::tempdir()?;
    let shared_path = shared.path().to_string_lossy().to_string();
    s.apply(
        "pod.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: box}}
spec:
  terminationGracePeriodSeconds: 20
  volumes: [{{name: out, hostPath: {{path: "{shared_path}"}}}}]
  containers:
  - name: main
    image: busybox:1.35
    env: [{{name: GREETING, value: hello-from-busybox}}]
    command: ["sh", "-c"]
    args:
    - |
      echo "$GREETING"
      trap 'echo got-TERM > /out/signal; exit 0' TERM
      while true; do sleep 0.2; done
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo post-start > /out/poststart"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "echo pre-stop > /out/prestop"]}}}}
"#
        ),
    )?;
    let p = wait_phase(&s, "box", "Running")?;
    let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
    assert!(ip.starts_with("10.42.0."), "pod IP from the pod CIDR: {p}");
    assert!(p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("")
        .starts_with("containerd://"));
    wait_for("the container's output in kubectl logs", || {
        Ok(s.ok(&["logs", "box"])?
            .contains("hello-from-busybox")
            .then_some(()))
    })?;
    // --since: nothing written in the last second after a quiet spell, everything in the last hour.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!s
        .ok(&["logs", "box", "--since=1s"])?
        .contains("hello-from-busybox"));
    assert!(s
        .ok(&["logs", "box", "--since=1h", "--timestamps"])?
        .contains("Z hello-from-busybox"));
    // The pod's network namespace is reachable from the node through the bridge.
    common::run_ok(
        s.command("busybox")
            .args(["ping", "-c", "1", "-W", "5", &ip]),
    )?;
    assert!(links(&s)?.contains("skiff0"), "the pod bridge exists");

    // kubectl exec, with exit codes; under a pseudo-terminal; kubectl cp both ways.
    assert_eq!(
        s.ok(&["exec", "box", "--", "cat", "/etc/hostname"])?.trim(),
        "box"
    );
    let out = s.kubectl(&["exec", "box", "--", "false"])?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubectl exec -- false exits 1: {out:?}"
    );
    let out = s.kubectl(&["exec", "box", "--", "sh", "-c", "exit 7"])?;
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let kubeconfig = s.kubeconfig().to_string_lossy().to_string();
    let tty = common::run_ok(s.command("script").args([
        "-qec",
        &format!(
            "kubectl --kubeconfig {kubeconfig} --cache-dir {kubeconfig}.cache exec -it box -- sh -c 'tty; echo interactive-ok'"
        ),
        "/dev/null",
    ]))?;
    assert!(
        tty.contains("/dev/pts/") && tty.contains("interactive-ok"),
        "{tty}"
    );
    let local = s.data_dir().join("to-pod.txt");
    std::fs::write(&local, "round trip through kubectl cp\n")?;
    s.ok(&["cp", &local.to_string_lossy(), "box:/tmp/in.txt"])?;
    let back = s.data_dir().join("from-pod.txt");
    s.ok(&["cp", "box:/tmp/in.txt", &back.to_string_lossy()])?;
    assert_eq!(
        std::fs::read_to_string(&back)?,
        "round trip through kubectl cp\n"
    );

    let started = Instant::now();
    s.ok(&["delete", "pod", "box", "--timeout=60s"])?;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "deleted within the grace period ({took:?})"
    );
    let signal = std::fs::read_to_string(shared.path().join("signal")).unwrap_or_default();
    assert_eq!(signal.trim(), "got-TERM", "the container saw SIGTERM first");
    for (hook, text) in [("poststart", "post-start"), ("prestop", "pre-stop")] {
        let got = std::fs::read_to_string(shared.path().join(hook)).unwrap_or_default();
        assert_eq!(got.trim(), text, "the {hook} hook ran");
    }

    // Nothing is left: no veth, no IP allocation, no sandbox.
    wait_for("the pod's veth to go", || {
        Ok((!links(&s)?.contains("veth")).then_some(()))
    })?;
    let ipam = s.data_dir().join("agent/cni/ipam/skiff");
    let leftover: Vec<String> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10."))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftover.is_empty(), "IP allocations left: {leftover:?}");
    let (sandboxes, containers) = cri_contents(&s)?;
    assert_eq!(
        (sandboxes, containers.len()),
        (0, 0),
        "no sandbox or container left in containerd"
    );
    Ok(())
}

#[test]
fn container_jobs_failures_and_probes() -> Result<()> {
    let Some(s) = cluster()? else { return Ok(()) };
    s.apply(
        "workloads.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox:1.35, command: ["sh", "-c", "for i in 1 2 3; do echo step $i; done"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: sidecar}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      volumes: [{name: shared, emptyDir: {}}]
      initContainers:
      - name: server
        image: busybox:1.35
        restartPolicy: Always
        command: ["sh", "-c", "echo sidecar-answer > /shared/ready; exec httpd -f -p 9000 -h /shared"]
        volumeMounts: [{name: shared, mountPath: /shared}]
        startupProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
      containers:
      - {name: main, image: busybox:1.35, command: ["wget", "-q", "-O", "-", "http://localhost:9000/ready"]}
---
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox:1.35, command: ["/no/such/program"]}
---
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - {name: c, image: busybox:1.35, command: ["sh", "-c", "echo crashing; exit 3"]}
---
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  containers:
  - {name: c, image: "nosuchimage:1"}
---
apiVersion: v1
kind: Pod
metadata: {name: rootless}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: c, image: busybox:1.35, command: ["id", "-u"]}
---
apiVersion: v1
kind: Pod
metadata: {name: nobody}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65534}
  containers:
  - {name: c, image: busybox:1.35, command: ["id", "-u"]}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: httpd
    image: busybox:1.35
    command: ["sh", "-c", "mkdir -p /www && echo served-by-httpd > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: [{containerPort: 80, name: http}]
    readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
    livenessProbe: {exec: {command: ["test", "-f", "/www/index.html"]}, periodSeconds: 1, failureThreshold: 2}
"#,
    )?;
    wait_for("job count to complete", || {
        let j = s.json(&["get", "job", "count"])?;
        Ok((j["status"]["succeeded"] == 1).then_some(()))
    })?;
    let logs = s.ok(&["logs", "job/count"])?;
    assert!(logs.contains("step 3"), "{logs}");
    // A native sidecar starts first, serves the main container, and stops when it is done.
    wait_for("job sidecar to complete", || {
        let j = s.json(&["get", "job", "sidecar"])?;
        Ok((j["status"]["succeeded"] == 1).then_some(()))
    })?;
    let logs = s.ok(&["logs", "job/sidecar", "-c", "main"])?;
    assert!(logs.contains("sidecar-answer"), "{logs}");

    let p = wait_for("nocmd to fail to start", || {
        let p = pod_json(&s, "nocmd")?;
        let st = &p["status"]["containerStatuses"][0]["state"];
        let reason = st["waiting"]["reason"]
            .as_str()
            .or(st["terminated"]["reason"].as_str())
            .unwrap_or("");
        Ok(matches!(
            reason,
            "RunContainerError" | "CreateContainerError" | "StartError" | "ContainerCannotRun"
        )
        .then_some(p))
    })?;
    let st = &p["status"]["containerStatuses"][0]["state"];
    let msg = st["waiting"]["message"]
        .as_str()
        .or(st["terminated"]["message"].as_str())
        .unwrap_or("");
    assert!(
        msg.contains("/no/such/program"),
        "containerd's message: {p}"
    );

    let p = wait_for("rootless to be refused", || {
        let p = pod_json(&s, "rootless")?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        Ok((w["reason"] == "CreateContainerConfigError").then_some(p))
    })?;
    assert!(p.to_string().contains("will run as root"), "{p}");
    wait_phase(&s, "nobody", "Succeeded")?;
    assert_eq!(s.ok(&["logs", "nobody"])?.trim(), "65534");

    // CrashLoopBackOff with growing delays (the test server's first delay is 1 s, doubling).
    let mut delays = Vec::new();
    let mut restarts = 0;
    wait_for("crash to back off for 4s", || {
        let p = pod_json(&s, "crash")?;
        let c = &p["status"]["containerStatuses"][0];
        if c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && c["lastState"]["terminated"]["exitCode"] == 3
        {
            let msg = c["state"]["waiting"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if let Some(d) = msg.split_whitespace().nth(1) {
                if delays.last() != Some(&d.to_string()) {
                    delays.push(d.to_string());
                    restarts = c["restartCount"].as_u64().unwrap_or(0);
                }
            }
        }
        Ok(delays.iter().any(|d| d == "4s").then_some(()))
    })?;
    // A slow machine may poll past the 1 s and 2 s back-offs; the delays seen only grow, and
    // the 4 s one comes after two restarts at least (1 s, then 2 s, then 4 s).
    let order = ["1s", "2s", "4s"];
    let ranks: Vec<usize> = delays
        .iter()
        .filter_map(|d| order.iter().position(|o| o == d))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{delays:?}");
    assert!(
        restarts >= 2,
        "4s back-off after {restarts} restarts: {delays:?}"
    );

    let p = wait_for("missing to show ErrImagePull", || {
        let p = pod_json(&s, "missing")?;
        let r = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].clone();
        Ok((r == "ErrImagePull" || r == "ImagePullBackOff").then_some(p))
    })?;
    assert!(p.to_string().contains("nosuchimage"), "{p}");

    let p = wait_for("web to be Ready", || {
        let p = pod_json(&s, "web")?;
        Ok(common::is_ready(&p).then_some(p))
    })?;
    let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
    let body = common::run_ok(s.command("busybox").args([
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{ip}/"),
    ]))?;
    assert_eq!(body.trim(), "served-by-httpd");
    // kubectl port-forward reaches the container's port from the node's loopback.
    let mut forward = s
        .kubectl_cmd(&["port-forward", "pod/web", "18080:80"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let fetched = wait_for("a page through kubectl port-forward", || {
        let out = s
            .command("busybox")
            .args(["wget", "-q", "-O", "-", "http://127.0.0.1:18080/"])
            .output()?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string()))
    });
    let _ = forward.kill();
    let _ = forward.wait();
    assert_eq!(fetched?.trim(), "served-by-httpd");
    // A failing exec liveness probe restarts the container.
    let restarts = |p: &serde_json::Value| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
    };
    let before = restarts(&p);
    let cid = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("containerd://")
        .to_string();
    with_cri(&s, |cri| async move {
        let r = cri
            .exec_sync(
                &cid,
                vec!["rm".into(), "/www/index.html".into()],
                Duration::from_secs(10),
            )
            .await?;
        if r.exit_code != 0 {
            bail!("rm failed: {}", String::from_utf8_lossy(&r.stderr));
        }
        Ok(())
    })?;
    wait_for("web to be restarted by its liveness probe", || {
        let p = pod_json(&s, "web")?;
        Ok((restarts(&p) > before).then_some(()))
    })?;
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ])?;
    assert!(events.contains("Liveness probe failed"), "{events}");
    s.ok(&["delete", "pod", "--all", "--timeout=60s"])?;
    s.ok(&["delete", "job", "--all", "--timeout=60s"])?;
    Ok(())
}

#[test]
fn container_workloads_share_volumes_and_localhost_and_roll_out() -> Result<()> {
    let Some(s) = cluster()? else { return Ok(()) };
    // The same image under a second tag, for `kubectl set image`, from a `docker save` tarball.
    let tar = busybox::docker_save_tarball(s.data_dir(), "busybox:1.36")?;
    let out = common::run_ok(
        s.command(env!("CARGO_BIN_EXE_skiff"))
            .args(["image", "import"])
            .arg(&tar)
            .arg("--kubeconfig")
            .arg(s.kubeconfig()),
    )?;
    assert!(out.contains("imported busybox:1.36"), "{out}");
    s.apply(
        "pods.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  volumes: [{name: www, emptyDir: {}}]
  initContainers:
  - {name: fill, image: busybox:1.35, command: ["sh", "-c", "echo written-by-init > /www/index.html"], volumeMounts: [{name: www, mountPath: /www}]}
  containers:
  - {name: app, image: busybox:1.35, command: ["httpd", "-f", "-p", "8080", "-h", "/www"], volumeMounts: [{name: www, mountPath: /www}]}
  - name: sidecar
    image: busybox:1.35
    command: ["sh", "-c", "while true; do wget -q -O - http://localhost:8080/ && sleep 30; sleep 0.2; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.35
    command: ["sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done"]
    resources: {limits: {memory: 32Mi}}
"#,
    )?;
    s.apply(
        "volumes.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Pod
metadata: {name: vols, labels: {tier: backend}}
spec:
  volumes:
  - {name: info, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}, {path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
  - {name: proj, projected: {sources: [{configMap: {name: settings, items: [{key: mode, path: conf/mode}]}}, {downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}}]}}
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  containers:
  - name: c
    image: busybox:1.35
    command: ["sh", "-c", "cat /info/name; echo; cat /info/labels; cat /proj/conf/mode; echo; cat /proj/ns; echo; grep ' /cache ' /proc/mounts; sleep 3600"]
    volumeMounts: [{name: info, mountPath: /info}, {name: proj, mountPath: /proj}, {name: cache, mountPath: /cache}]
"#,
    )?;
    let logs = wait_for("the volumes pod's output", || {
        let out = s.kubectl(&["logs", "vols"])?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        Ok(text.contains("tmpfs").then_some(text))
    })?;
    for want in [
        "vols",
        "tier=\"backend\"",
        "fast",
        "default",
        "/cache tmpfs",
    ] {
        assert!(logs.contains(want), "{want} in {logs}");
    }
    wait_for("the sidecar to fetch the app's page over localhost", || {
        let out = s.kubectl(&["logs", "shared", "-c", "sidecar"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .contains("written-by-init")
            .then_some(()))
    })?;
    let p = wait_phase(&s, "hog", "Failed")?;
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "OOMKilled",
        "{p}"
    );

    s.apply(
        "deploy.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: oci
      containers:
      - name: httpd
        image: busybox:1.35
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
"#,
    )?;
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])?;
    let images = |s: &Skiff| -> Result<Vec<String>> {
        let pods = s.json(&["get", "pods", "-l", "app=web"])?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect())
    };
    s.ok(&["set", "image", "deploy/web", "httpd=busybox:1.36"])?;
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])?;
    wait_for("the rollout to busybox:1.36", || {
        let i = images(&s)?;
        Ok((i.len() == 2 && i.iter().all(|i| i == "busybox:1.36")).then_some(()))
    })?;
    s.ok(&["rollout", "undo", "deploy/web"])?;
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])?;
    wait_for("the rollback to busybox:1.35", || {
        let i = images(&s)?;
        Ok((i.len() == 2 && i.iter().all(|i| i == "busybox:1.35")).then_some(()))
    })?;
    s.ok(&["delete", "deploy", "web", "--timeout=60s"])?;
    s.ok(&["delete", "pod", "--all", "--timeout=60s"])?;
    if bail_if_left(&s).is_err() {
        bail!("left behind: {}", links(&s)?);
    }
    Ok(())
}

/// Fails while a pod's veth is still on the node.
fn bail_if_left(s: &Skiff) -> Result<()> {
    wait_for("every pod's veth to go", || {
        Ok((!links(s)?.contains("veth")).then_some(()))
    })
}

#[test]
fn agent_kill9_adopts_running_containers() -> Result<()> {
    let Some(mut s) = cluster()? else {
        return Ok(());
    };
    s.apply(
        "deploy.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: five}
spec:
  replicas: 5
  selector: {matchLabels: {app: five}}
  template:
    metadata: {labels: {app: five}}
    spec:
      runtimeClassName: oci
      terminationGracePeriodSeconds: 2
      containers:
      - {name: c, image: busybox:1.35, command: ["sh", "-c", "echo up; exec sleep 3600"]}
"#,
    )?;
    s.ok(&["rollout", "status", "deploy/five", "--timeout=60s"])?;
    let running = |s: &Skiff| -> Result<Vec<(String, String, i64)>> {
        let pods = s.json(&["get", "pods", "-l", "app=five"])?;
        let mut v: Vec<(String, String, i64)> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| common::is_ready(p))
            .map(|p| {
                let c = &p["status"]["containerStatuses"][0];
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    c["containerID"].as_str().unwrap_or("").to_string(),
                    c["restartCount"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        v.sort();
        Ok(v)
    };
    let before = wait_for("5 ready container pods", || {
        let r = running(&s)?;
        Ok((r.len() == 5).then_some(r))
    })?;
    s.crash_and_restart()?;
    // The restarted agent's workers adopt the containers instead of starting them anew.
    wait_for("the restarted agent to adopt the 5 pods", || {
        Ok((s
            .log()
            .matches("adopted the pod's running containers")
            .count()
            == 5)
            .then_some(()))
    })?;
    let ids = cri_contents(&s)?;
    let mut want: Vec<String> = before.iter().map(|(_, id, _)| id.clone()).collect();
    want.sort();
    assert_eq!(
        ids,
        (5, want),
        "the same containers, no duplicate or orphan"
    );
    let after = wait_for("the 5 pods Ready with the same containers", || {
        let r = running(&s)?;
        Ok((r == before).then_some(r))
    })?;
    assert!(
        after.iter().all(|(_, _, restarts)| *restarts == 0),
        "{after:?}"
    );

    // containerd stops answering: the node's Ready condition and an Event say so; when it
    // answers again the node is Ready and the pods are still there, unchanged.
    let config = s.data_dir().join("agent/containerd/config.toml");
    let pid = common::run_ok(
        std::process::Command::new("pgrep").args(["-f", &config.to_string_lossy()]),
    )?;
    let pid = pid.lines().next().unwrap_or("").trim().to_string();
    let ready = |s: &Skiff| -> Result<String> {
        s.ok(&[
            "get",
            "node",
            "-o",
            "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}",
        ])
    };
    common::run_ok(std::process::Command::new("kill").args(["-STOP", &pid]))?;
    let frozen = wait_for("the node to be NotReady", || {
        Ok((ready(&s)? == "False").then_some(()))
    });
    common::run_ok(std::process::Command::new("kill").args(["-CONT", &pid]))?;
    frozen?;
    // The agent posts the Event after the condition: wait for it too.
    wait_for("a Node event saying the container runtime is down", || {
        let events = s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Node",
        ])?;
        Ok(events.contains("container runtime is down").then_some(()))
    })?;
    wait_for("the node to be Ready again", || {
        Ok((ready(&s)? == "True").then_some(()))
    })?;
    assert_eq!(running(&s)?, before, "the pods survived the runtime outage");

    // A managed containerd that dies is started again, and the pods are still there.
    common::run_ok(std::process::Command::new("kill").args(["-9", &pid]))?;
    wait_for("containerd to be restarted", || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &config.to_string_lossy()])
            .output()?;
        let now = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((!now.is_empty() && now != pid).then_some(()))
    })?;
    assert!(
        s.log().contains("containerd exited; restarting it"),
        "the agent says so"
    );
    // The restarted containerd needs a moment before it answers.
    let ids_again = wait_for("the restarted containerd to answer", || {
        Ok(cri_contents(&s).ok())
    })?
    .1;
    assert_eq!(
        ids_again, ids.1,
        "the same containers after containerd's restart"
    );
    assert_eq!(running(&s)?, before);

    // Deleting the pods leaves no sandbox network namespace behind.
    let netns = with_cri(&s, |cri| async move {
        let mut paths = Vec::new();
        for sb in cri.list_pod_sandbox(Default::default()).await?.items {
            let st = cri
                .pod_sandbox_status(skiff_node_runtime::cri::api::PodSandboxStatusRequest {
                    pod_sandbox_id: sb.id,
                    verbose: true,
                })
                .await?;
            let info = st.info.get("info").cloned().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&info)?;
            if let Some(p) = v["runtimeSpec"]["linux"]["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["type"] == "network")
                .and_then(|n| n["path"].as_str())
            {
                paths.push(p.to_string());
            }
        }
        Ok::<_, anyhow::Error>(paths)
    })?;
    assert_eq!(netns.len(), 5, "each sandbox has its network namespace");
    assert!(netns.iter().all(|p| std::path::Path::new(p).exists()));
    s.ok(&["delete", "deploy", "five", "--timeout=60s"])?;
    bail_if_left(&s)?;
    wait_for("the sandboxes' network namespaces to go", || {
        Ok(netns
            .iter()
            .all(|p| !std::path::Path::new(p).exists())
            .then_some(()))
    })
}

#[test]
fn container_cronjob_and_statefulset_volume() -> Result<()> {
    let Some(s) = cluster()? else { return Ok(()) };
    s.apply(
        "cron.yaml",
        r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: c, image: busybox:1.35, command: ["echo", "tick-from-a-container"]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      runtimeClassName: oci
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.35
        command: ["sh", "-c", "date >> /data/boots; cat /data/boots; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
"#,
    )?;
    let first = wait_for("db-0 Running", || {
        let p = pod_json(&s, "db-0").ok();
        Ok(p.filter(|p| phase(p) == "Running")
            .map(|p| p["metadata"]["uid"].clone()))
    })?;
    s.ok(&["delete", "pod", "db-0", "--timeout=60s"])?;
    wait_for("db-0 to come back with its volume", || {
        let Ok(p) = pod_json(&s, "db-0") else {
            return Ok(None);
        };
        if p["metadata"]["uid"] == first || phase(&p) != "Running" {
            return Ok(None);
        }
        let out = s.kubectl(&["logs", "db-0"])?;
        Ok((String::from_utf8_lossy(&out.stdout).lines().count() == 2).then_some(()))
    })?;
    // A cron run happens at the next minute boundary: allow for a full minute and the run.
    let deadline = Instant::now() + Duration::from_secs(150);
    let job = loop {
        let jobs = s.json(&["get", "jobs"])?;
        let done = jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["status"]["succeeded"] == 1)
            .and_then(|j| j["metadata"]["name"].as_str().map(str::to_string));
        if let Some(name) = done {
            break name;
        }
        if Instant::now() > deadline {
            bail!("no CronJob run completed within 150 s: {jobs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(job.starts_with("tick-"), "{job}");
    let logs = s.ok(&["logs", &format!("job/{job}")])?;
    assert!(logs.contains("tick-from-a-container"), "{logs}");
    s.ok(&["delete", "cronjob", "tick", "--timeout=60s"])?;
    s.ok(&["delete", "statefulset", "db", "--timeout=60s"])?;
    Ok(())
}

#[test]
fn oci_pods_are_not_scheduled_to_nodes_without_containerd() -> Result<()> {
    // A node without containerd (`--no-containerd`) says so in its label, and the scheduler
    // keeps `runtimeClassName: oci` pods off it with a reason.
    let s = Skiff::start()?;
    let node = s.json(&["get", "nodes"])?;
    assert_eq!(
        node["items"][0]["metadata"]["labels"]["skiff.dev/runtime-oci"],
        "false"
    );
    s.apply(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: box}\nspec:\n  runtimeClassName: oci\n  containers: [{name: c, image: busybox:1.35}]\n",
    )?;
    let msg = wait_for("FailedScheduling", || {
        let ev = s.ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ])?;
        Ok((!ev.is_empty()).then_some(ev))
    })?;
    assert!(
        msg.contains("0/1 nodes are available") && msg.contains("node affinity/selector"),
        "{msg}"
    );
    assert_eq!(phase(&pod_json(&s, "box")?), "Pending");
    Ok(())
}
