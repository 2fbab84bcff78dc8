//! Ingress, end to end: one Ingress of the default `skiff` class routes `/a` to a Wasm
//! Service (scaled to zero, so through the activator) and `/b` to a container Service by host
//! and path, over HTTP and HTTPS (the certificate from the Ingress's TLS Secret, chosen by
//! SNI); other hosts and paths get a 404 that says so; the Ingress's status carries the node's
//! address. The cluster runs in a network namespace of its own and traffic stays inside it.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::{guest, wait_for, wait_for_within, Skiff};

const HOST: &str = "shop.example";

const APPS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  annotations:
    autoscaling.skiff.dev/min-scale: "0"
    autoscaling.skiff.dev/scale-down-delay: "3s"
spec:
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: app, image: hello-wasm:v1, imagePullPolicy: IfNotPresent}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec: {selector: {app: hello}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: box}
spec:
  selector: {matchLabels: {app: box}}
  template:
    metadata: {labels: {app: box}}
    spec:
      containers:
      - name: httpd
        image: busybox:1.35
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www/b && echo served-by-httpd > /www/b/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: box}
spec: {selector: {app: box}, ports: [{port: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  tls: [{hosts: [shop.example], secretName: shop-tls}]
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: hello, port: {name: http}}}}
      - {path: /b, pathType: Prefix, backend: {service: {name: box, port: {number: 8080}}}}
"#;

/// `curl` from the node to `scheme://shop.example<path>` resolved to `ip`; (status, body).
fn request(s: &Skiff, ip: &str, scheme: &str, path: &str, ca: &str) -> Result<(String, String)> {
    let port = if scheme == "https" { 443 } else { 80 };
    let resolve = format!("{HOST}:{port}:{ip}");
    let url = format!("{scheme}://{HOST}{path}");
    let out = s
        .command("curl")
        .args([
            "-s",
            "--max-time",
            "60",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
        ])
        .args(["-w", "\n%{http_code}", &url])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok((code.to_string(), body.to_string()))
}

#[test]
fn an_ingress_routes_hosts_and_paths_to_wasm_and_container_services_over_http_and_https(
) -> Result<()> {
    if !common::containerd_available() {
        return Ok(());
    }
    let s = Skiff::start_with_containerd()?;
    let tar = common::busybox::layout_tarball(s.data_dir())?;
    s.import(&tar, "busybox:1.35")?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;

    // The Ingress's certificate, for shop.example.
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])?.self_signed(&key)?;
    let crt = s.write("shop.crt", &cert.pem())?;
    let key_file = s.write("shop.key", &key.serialize_pem())?;
    s.ok(&[
        "create",
        "secret",
        "tls",
        "shop-tls",
        "--cert",
        crt.to_str().context("path")?,
        "--key",
        key_file.to_str().context("path")?,
    ])?;
    s.apply("apps.yaml", APPS)?;

    // The default class is skiff; the status carries the node's address.
    let ing = s.json(&["get", "ingress", "shop", "-o", "json"])?;
    assert_eq!(ing["spec"]["ingressClassName"], "skiff", "{ing}");
    let ip = wait_for("the Ingress address", || {
        let ing = s.json(&["get", "ingress", "shop", "-o", "json"])?;
        Ok(ing["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string))
    })?;
    let nodes = s.json(&["get", "nodes", "-o", "json"])?;
    let node_ip = nodes["items"][0]["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .context("node InternalIP")?
        .to_string();
    assert_eq!(ip, node_ip);
    let ca = crt.to_str().context("path")?;

    // The Wasm Service goes to zero; the Ingress reaches it through the activator.
    wait_for_within("hello at zero", Duration::from_secs(60), || {
        let d = s.json(&["get", "deployment", "hello", "-o", "json"])?;
        Ok((d["spec"]["replicas"] == 0).then_some(()))
    })?;
    for scheme in ["http", "https"] {
        let (code, body) = request(&s, &ip, scheme, "/a/x", ca)?;
        assert_eq!(code, "200", "{scheme} /a/x: {body}\n{}", s.log());
        assert!(
            body.contains("Hello from Skiff!") && body.contains("path=/a/x"),
            "{body}"
        );
        let (code, body) = wait_for("the container backend", || {
            let r = request(&s, &ip, scheme, "/b/", ca)?;
            Ok((r.0 == "200").then_some(r))
        })?;
        assert_eq!(code, "200");
        assert_eq!(body.trim(), "served-by-httpd");
        // No rule: a 404 that says why.
        let (code, body) = request(&s, &ip, scheme, "/c", ca)?;
        assert_eq!(code, "404", "{body}");
        assert!(body.contains("no Ingress rule matches"), "{body}");
    }
    // Another host: no rule for it.
    let out = s.in_netns(
        "curl",
        &["-s", "-H", "Host: other.example", &format!("http://{ip}/a")],
    )?;
    assert!(
        out.contains("no Ingress rule matches host \"other.example\""),
        "{out}"
    );
    Ok(())
}
