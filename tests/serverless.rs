//! Scale to zero, end to end: Deployments with `autoscaling.skiff.dev/min-scale: "0"` behind
//! NodePort Services go to zero when idle, answer the first request from zero through the
//! node's activator, take a burst at zero without losing a request, grow to `max-scale` under
//! load, and answer a clear 503 when their pods cannot start. Each test runs its cluster in a
//! network namespace of its own and sends traffic only inside it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::{guest, wait_for, wait_for_within, Skiff};

/// How long a scaled-up workload may take to go back to zero: the 5 s delay plus ticks,
/// pod termination and a loaded CI machine.
const BACK_TO_ZERO: Duration = Duration::from_secs(60);

/// A Deployment `name` with the scale-to-zero annotations and a NodePort Service in front of
/// it; `container` is the pod's container (YAML, indented for `containers:`).
fn scale_to_zero_app(name: &str, target: &str, max: u32, container: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    autoscaling.skiff.dev/min-scale: "0"
    autoscaling.skiff.dev/max-scale: "{max}"
    autoscaling.skiff.dev/scale-down-delay: "5s"
    {target}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
{container}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: NodePort
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

fn replicas(s: &Skiff, deployment: &str) -> Result<u64> {
    let d = s.json(&["get", "deployment", deployment, "-o", "json"])?;
    d["spec"]["replicas"].as_u64().context("spec.replicas")
}

fn pods(s: &Skiff, app: &str) -> Result<usize> {
    let list = s.json(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"])?;
    Ok(list["items"].as_array().map_or(0, Vec::len))
}

/// Waits until the Deployment is at zero with no pod left.
fn wait_zero(s: &Skiff, app: &str) -> Result<()> {
    wait_for_within(&format!("{app} at zero replicas"), BACK_TO_ZERO, || {
        Ok((replicas(s, app)? == 0 && pods(s, app)? == 0).then_some(()))
    })
    .map_err(|e| anyhow::anyhow!("{e}; log tail:\n{}", tail(&s.log())))
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `http://<node InternalIP>:<nodePort>/` of Service `svc`.
fn node_port_url(s: &Skiff, svc: &str) -> Result<String> {
    let v = s.json(&["get", "svc", svc, "-o", "json"])?;
    let port = v["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .context("nodePort")?;
    let nodes = s.json(&["get", "nodes", "-o", "json"])?;
    let ip = nodes["items"][0]["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .context("the node's InternalIP")?
        .to_string();
    Ok(format!("http://{ip}:{port}/"))
}

/// `n` requests at once to `url` from the node; their status codes.
fn burst(s: &Skiff, url: &str, n: usize) -> Result<Vec<String>> {
    let mut args = vec![
        "-s",
        "-w",
        "%{http_code}\\n",
        "--max-time",
        "60",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "200",
    ];
    for _ in 0..n {
        // Each URL its own output: -o applies to one URL.
        args.extend(["-o", "/dev/null", url]);
    }
    // Some requests may fail (curl exits non-zero): collect the codes either way.
    let out = s.command("curl").args(&args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// A status and body from the node.
fn get(s: &Skiff, url: &str) -> Result<(String, String)> {
    let out = s
        .command("curl")
        .args(["-s", "--max-time", "90", "-w", "\n%{http_code}", url])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok((code.to_string(), body.to_string()))
}

/// Load from the node until dropped: `clients` loops of sequential requests.
struct Load(Vec<Child>);

impl Load {
    fn start(s: &Skiff, url: &str, clients: usize) -> Result<Load> {
        let script = format!("while true; do curl -s -o /dev/null --max-time 10 '{url}'; done");
        let mut children = Vec::new();
        for _ in 0..clients {
            let mut cmd: Command = s.command("sh");
            cmd.args(["-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            children.push(cmd.spawn()?);
        }
        Ok(Load(children))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The node's `/metrics` (through the API server's node proxy) has observed each of `stages`.
fn assert_node_stages(s: &Skiff, stages: &[&str]) -> Result<()> {
    let node = s.json(&["get", "nodes", "-o", "json"])?["items"][0]["metadata"]["name"]
        .as_str()
        .context("node name")?
        .to_string();
    let metrics = s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/metrics"),
    ])?;
    for stage in stages {
        let line = format!("skiff_cold_start_stage_seconds_count{{stage=\"{stage}\"}}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    Ok(())
}

/// What both runtimes go through: to zero, the first request, back to zero, a burst at zero,
/// growth under load.
fn scale_to_zero_cycle(
    s: &Skiff,
    app: &str,
    body: &str,
    load_url_path: &str,
    max: u64,
    mode: &str,
) -> Result<()> {
    // Idle from the start: to zero after the delay.
    wait_zero(s, app)?;
    let svc = s.json(&["get", "svc", app, "-o", "json"])?;
    assert_eq!(
        svc["metadata"]["annotations"]["skiff.dev/scale-target"], app,
        "{svc}"
    );
    // At zero the node's Service rules send the NodePort to the activator.
    let table = s.in_netns("nft", &["list", "table", "ip", "skiff"])?;
    assert!(table.contains("chain activator"), "{table}");
    assert!(table.contains("dnat to 10.42.0.1:8012"), "{table}");

    // The first request from zero is answered by a pod.
    let url = node_port_url(s, app)?;
    let started = Instant::now();
    let (code, text) = get(s, &url)?;
    eprintln!("{app}: first response from zero in {:?}", started.elapsed());
    assert_eq!(code, "200", "{text}; log:\n{}", tail(&s.log()));
    assert!(text.contains(body), "{text}");
    let from_zero = s.event_messages("ScaledFromZero")?;
    assert!(
        from_zero.iter().any(|m| m.contains("Scaled from 0 to 1")),
        "{from_zero:?}"
    );
    wait_for("the cold-start event on the Service", || {
        let cold = s.event_messages("ColdStart")?;
        Ok(cold
            .iter()
            .any(|m| m.contains("the first request waited"))
            .then_some(()))
    })?;

    // The stages of the cold start: on the node (through the API server's node proxy) and
    // the scheduling stage on the control plane.
    assert_node_stages(s, &["pull", "first_byte"])?;
    let plane_metrics = s.ok(&["get", "--raw", "/metrics"])?;
    assert!(
        plane_metrics.contains("skiff_cold_start_stage_seconds_count{stage=\"schedule\"}"),
        "{plane_metrics}"
    );

    // Idle again: back to zero after the delay.
    wait_zero(s, app)?;
    assert!(!s.event_messages("ScaledToZero")?.is_empty());

    // 200 requests at once while at zero: all answered, none lost, none 5xx.
    let codes = burst(s, &url, 200)?;
    assert_eq!(codes.len(), 200, "{codes:?}");
    let bad: Vec<&String> = codes.iter().filter(|c| *c != "200").collect();
    assert!(bad.is_empty(), "{} not 200: {bad:?}", bad.len());

    // Sustained load: up to max-scale.
    let svc = s.json(&["get", "svc", app, "-o", "json"])?;
    let load = Load::start(
        s,
        &format!("{}{load_url_path}", url.trim_end_matches('/')),
        12,
    )?;
    wait_for_within(
        &format!("{app} at max-scale {max} under load"),
        Duration::from_secs(90),
        || Ok((replicas(s, app)? == max).then_some(())),
    )
    .map_err(|e| anyhow::anyhow!("{e}; log tail:\n{}", tail(&s.log())))?;
    drop(load);
    let svc_after = s.json(&["get", "svc", app, "-o", "json"])?;
    assert_eq!(
        svc_after["metadata"]["annotations"]["skiff.dev/activator"], mode,
        "{svc} → {svc_after}"
    );
    Ok(())
}

/// A Wasm-only networked cluster with the scale-to-zero `hello` app (max-scale 3) applied.
fn hello_cluster(target_concurrency: &str) -> Result<Skiff> {
    let s = Skiff::start_networked()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    let yaml = scale_to_zero_app(
        "hello",
        &format!("autoscaling.skiff.dev/target-concurrency: \"{target_concurrency}\""),
        3,
        "      - {name: app, image: hello-wasm:v1, imagePullPolicy: IfNotPresent}",
    );
    s.apply("hello.yaml", &yaml)?;
    Ok(s)
}

#[test]
fn a_wasm_service_scales_to_zero_and_answers_from_zero() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = hello_cluster("2")?;
    scale_to_zero_cycle(
        &s,
        "hello",
        "Hello from Skiff!",
        "/sleep?ms=300",
        3,
        "serve",
    )?;
    assert_node_stages(&s, &["instantiate", "warm"])?;
    // The node reports the component it holds warm, for the scheduler to prefer it.
    wait_for("the node to report hello-wasm:v1 among its images", || {
        let nodes = s.json(&["get", "nodes", "-o", "json"])?;
        let names = nodes["items"][0]["status"]["images"].to_string();
        Ok(names.contains("\"hello-wasm:v1\"").then_some(()))
    })
}

#[test]
fn a_container_service_scales_to_zero_and_answers_from_zero() -> Result<()> {
    if !common::containerd_available() {
        return Ok(());
    }
    let s = Skiff::start_with_containerd()?;
    let tar = common::busybox::layout_tarball(s.data_dir())?;
    s.import(&tar, "busybox:1.35")?;
    let container = r#"      - name: httpd
        image: busybox:1.35
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www && echo served-by-httpd > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}"#;
    let yaml = scale_to_zero_app(
        "web",
        "autoscaling.skiff.dev/target-rps: \"5\"",
        2,
        container,
    );
    s.apply("web.yaml", &yaml)?;
    scale_to_zero_cycle(&s, "web", "served-by-httpd", "/", 2, "proxy")
}

#[test]
fn held_requests_get_a_503_saying_why_when_the_pods_cannot_start() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    let yaml = scale_to_zero_app(
        "broken",
        "autoscaling.skiff.dev/target-concurrency: \"10\"",
        1,
        "      - {name: app, image: not-imported:v1, imagePullPolicy: IfNotPresent}",
    );
    s.apply("broken.yaml", &yaml)?;
    let url = node_port_url(&s, "broken")?;
    // Once the autoscaler has put the activator in front of the Service and the node's rules
    // follow (until then the Service is like any without endpoints: refused).
    let (code, text, took) = wait_for("an answer from the activator", || {
        let started = Instant::now();
        let (code, text) = get(&s, &url)?;
        Ok((code != "000").then_some((code, text, started.elapsed())))
    })?;
    assert_eq!(code, "503", "{text}");
    assert!(
        text.contains("Service default/broken is unavailable")
            && text.contains("cannot start")
            && text.contains("not-imported"),
        "{text}"
    );
    // Well within the hold (60 s): the activator saw why.
    assert!(took < Duration::from_secs(45), "{took:?}: {text}");
    Ok(())
}

#[test]
fn removing_the_annotations_hands_the_deployment_back() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = hello_cluster("10")?;
    wait_for("the Service marked for the autoscaler", || {
        let svc = s.json(&["get", "svc", "hello", "-o", "json"])?;
        Ok((svc["metadata"]["annotations"]["skiff.dev/scale-target"] == "hello").then_some(()))
    })?;
    s.ok(&[
        "annotate",
        "deployment",
        "hello",
        "autoscaling.skiff.dev/min-scale-",
        "autoscaling.skiff.dev/max-scale-",
        "autoscaling.skiff.dev/scale-down-delay-",
        "autoscaling.skiff.dev/target-concurrency-",
    ])?;
    s.ok(&["scale", "deployment", "hello", "--replicas=2"])?;
    wait_for("the Service's marks to go", || {
        let svc = s.json(&["get", "svc", "hello", "-o", "json"])?;
        let a = &svc["metadata"]["annotations"];
        Ok(
            (a["skiff.dev/activator"].is_null() && a["skiff.dev/scale-target"].is_null())
                .then_some(()),
        )
    })?;
    // Longer than the old scale-down delay with no traffic: the user's count stands.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(replicas(&s, "hello")?, 2);
    assert!(s.event_messages("ScaledToZero")?.is_empty());
    Ok(())
}
