//! Bad input never crashes the server: each is a 4xx Status naming the problem.

mod common;

use anyhow::{bail, ensure, Result};
use common::Skiff;

async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> Result<(u16, String, String)> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body)?;
    match client.request_text(req).await {
        Ok(text) => Ok((200, String::new(), text)),
        Err(kube::Error::Api(s)) => Ok((s.code, s.reason.clone(), s.message.clone())),
        Err(e) => bail!("transport error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_wrong_kinds() -> Result<()> {
    let s = Skiff::control_plane()?;
    let c = s.client().await?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, reason, msg) = raw(
        &c,
        "POST",
        cms,
        "application/json",
        b"{\"metadata\": {".to_vec(),
    )
    .await?;
    ensure!(
        code == 400 && reason == "BadRequest" && msg.contains("not valid JSON"),
        "{code} {reason} {msg}"
    );
    let (code, _, msg) = raw(
        &c,
        "POST",
        cms,
        "application/yaml",
        b"metadata: [unclosed".to_vec(),
    )
    .await?;
    ensure!(
        code == 400 && msg.contains("not valid YAML"),
        "{code} {msg}"
    );
    let (code, _, msg) = raw(&c, "POST", cms, "application/json", b"[1,2]".to_vec()).await?;
    ensure!(code == 400 && msg.contains("JSON object"), "{code} {msg}");
    let (code, _, msg) = raw(&c, "POST", cms, "text/csv", b"a,b".to_vec()).await?;
    ensure!(code == 415 && msg.contains("text/csv"), "{code} {msg}");
    let (code, _, msg) = raw(
        &c,
        "POST",
        cms,
        "application/vnd.kubernetes.protobuf",
        b"k8s\0\x0a\xff".to_vec(),
    )
    .await?;
    ensure!(code == 400 && msg.contains("protobuf"), "{code} {msg}");
    // A ConfigMap sent to the deployments endpoint.
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec();
    let (code, _, msg) = raw(
        &c,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        body,
    )
    .await?;
    ensure!(
        code == 400 && msg.contains("v1") && msg.contains("apps/v1"),
        "{code} {msg}"
    );
    // Unknown fields with Strict name the field.
    let body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dataa":{"a":"b"}}"#
            .to_vec();
    let (code, _, msg) = raw(
        &c,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        body,
    )
    .await?;
    ensure!(
        code == 400 && msg.contains("unknown field \"dataa\""),
        "{code} {msg}"
    );
    // Wrong types name the field.
    let body = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":"three"}}"#.to_vec();
    let (code, _, msg) = raw(
        &c,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        body,
    )
    .await?;
    ensure!(code == 400 && msg.contains("replicas"), "{code} {msg}");
    // Bodies over 3 MiB are refused.
    let mut big =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":""#
            .to_vec();
    big.resize(3 * 1024 * 1024 + 1, b'x');
    let (code, reason, _) = raw(&c, "POST", cms, "application/json", big).await?;
    ensure!(
        code == 413 && reason == "RequestEntityTooLarge",
        "{code} {reason}"
    );
    // Unknown resources and subresources.
    let (code, _, _) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/widgets",
        "application/json",
        vec![],
    )
    .await?;
    ensure!(code == 404);
    let (code, _, _) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps/x/scale",
        "application/json",
        vec![],
    )
    .await?;
    ensure!(code == 404);
    // Still serving.
    ensure!(s.ok(&["get", "--raw", "/readyz"])?.contains("ok"));
    Ok(())
}

#[test]
fn kubectl_reports_validation_errors() -> Result<()> {
    let s = Skiff::control_plane()?;
    let err = s.fails(&["create", "configmap", "Bad_Name", "--from-literal=a=b"])?;
    ensure!(
        err.contains("Invalid value: \"Bad_Name\"") && err.contains("metadata.name"),
        "{err}"
    );
    let typo = s.write(
        "typo.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicasss: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: hello:1\n",
    )?;
    let err = s.fails(&["apply", "-f", typo.to_str().unwrap_or_default()])?;
    ensure!(err.contains("unknown field \"spec.replicasss\""), "{err}");
    let mismatch = s.write(
        "mismatch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers:\n      - name: web\n        image: hello:1\n",
    )?;
    let err = s.fails(&["apply", "-f", mismatch.to_str().unwrap_or_default()])?;
    ensure!(
        err.contains("is invalid") && err.contains("spec.template.metadata.labels"),
        "{err}"
    );
    let broken = s.write(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
    )?;
    let err = s.fails(&["apply", "-f", broken.to_str().unwrap_or_default()])?;
    ensure!(
        err.to_lowercase().contains("yaml") || err.contains("error"),
        "{err}"
    );
    let err = s.fails(&["delete", "ns", "default"])?;
    ensure!(err.contains("forbidden"), "{err}");
    ensure!(s.ok(&["get", "ns", "default"])?.contains("default"));
    Ok(())
}

#[test]
fn wasm_pods_refuse_exec_probes_and_unknown_runtime_classes() -> Result<()> {
    let s = Skiff::control_plane()?;
    let exec = s.write(
        "exec.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probed\nspec:\n  runtimeClassName: wasm\n  containers:\n  - name: main\n    image: hello-wasm:v1\n    livenessProbe:\n      exec:\n        command: [cat, /tmp/ok]\n",
    )?;
    let err = s.fails(&["apply", "-f", exec.to_str().unwrap_or_default()])?;
    ensure!(
        err.contains("spec.containers[0].livenessProbe.exec")
            && err.contains("no shell")
            && err.contains("httpGet"),
        "{err}"
    );
    let missing = s.write(
        "missing-class.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nowhere\nspec:\n  runtimeClassName: gvisor\n  containers:\n  - name: main\n    image: hello-wasm:v1\n",
    )?;
    let err = s.fails(&["apply", "-f", missing.to_str().unwrap_or_default()])?;
    ensure!(err.contains("RuntimeClass \"gvisor\" not found"), "{err}");
    ensure!(s.fails(&["get", "pod", "probed"])?.contains("NotFound"));
    Ok(())
}
