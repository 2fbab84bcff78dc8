//! The HTTP surface clients other than kubectl rely on: trailing-slash discovery paths,
//! YAML answers, a clear 406 for media types the server cannot send, and workload status
//! counters present from creation (typed clients refuse a status without them).

mod common;

use anyhow::{ensure, Result};
use common::Skiff;
use http::header::{ACCEPT, CONTENT_TYPE};

async fn get(
    client: &kube::Client,
    path: &str,
    accept: Option<&str>,
) -> Result<(u16, String, String)> {
    let mut req = http::Request::get(path);
    if let Some(a) = accept {
        req = req.header(ACCEPT, a);
    }
    let resp = client.send(req.body(Vec::new())?.map(Into::into)).await?;
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    Ok((code, ct, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_slashes_yaml_and_not_acceptable() -> Result<()> {
    let s = Skiff::control_plane()?;
    let client = s.client().await?;
    for path in [
        "/version/",
        "/api/",
        "/apis/",
        "/api/v1/",
        "/apis/apps/",
        "/apis/apps/v1/",
    ] {
        let (code, _, body) = get(&client, path, None).await?;
        ensure!(code == 200, "{path}: {code} {body}");
        let _: serde_json::Value = serde_json::from_str(&body)?;
    }
    s.ok(&["create", "configmap", "yaml-cm", "--from-literal=k=v"])?;
    let (code, ct, body) = get(
        &client,
        "/api/v1/namespaces/default/configmaps/yaml-cm",
        Some("application/yaml"),
    )
    .await?;
    ensure!(
        code == 200 && ct == "application/yaml",
        "{code} {ct} {body}"
    );
    ensure!(
        body.contains("kind: ConfigMap") && body.contains("k: v"),
        "{body}"
    );
    let (code, ct, body) = get(
        &client,
        "/api/v1/namespaces/default/configmaps",
        Some("application/yaml"),
    )
    .await?;
    ensure!(
        code == 200 && ct == "application/yaml" && body.contains("kind: ConfigMapList"),
        "{code} {ct} {body}"
    );
    // Errors come as YAML Status too.
    let (code, _, body) = get(
        &client,
        "/api/v1/namespaces/default/configmaps/nope",
        Some("application/yaml"),
    )
    .await?;
    ensure!(
        code == 404 && body.contains("reason: NotFound"),
        "{code} {body}"
    );
    // The first acceptable type wins: JSON before protobuf is JSON (protobuf answers are
    // tests/protobuf_answers.rs).
    let (code, ct, _) = get(
        &client,
        "/api/v1/namespaces/default/configmaps/yaml-cm",
        Some("application/json, application/vnd.kubernetes.protobuf"),
    )
    .await?;
    ensure!(
        code == 200 && ct.starts_with("application/json"),
        "{code} {ct}"
    );
    Ok(())
}

const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 0
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sts}
spec:
  replicas: 0
  serviceName: sts
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: hpa}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: ReplicaSet, name: rs}
  minReplicas: 1
  maxReplicas: 3
"#;

#[test]
fn workload_status_counters_are_there_from_creation() -> Result<()> {
    let s = Skiff::control_plane()?;
    let out = s.ok(&[
        "create",
        "-o",
        "json",
        "-f",
        s.write("w.yaml", WORKLOADS)?.to_str().unwrap_or_default(),
    ])?;
    // The create answers themselves carry the counters (kubectl prints one JSON per object).
    let items: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()?;
    ensure!(items.len() == 4, "{out}");
    let want = [
        ("ReplicaSet", &["replicas"][..]),
        ("StatefulSet", &["replicas"][..]),
        (
            "DaemonSet",
            &[
                "currentNumberScheduled",
                "desiredNumberScheduled",
                "numberMisscheduled",
                "numberReady",
            ][..],
        ),
        ("HorizontalPodAutoscaler", &["desiredReplicas"][..]),
    ];
    for (kind, fields) in want {
        let obj = items
            .iter()
            .find(|o| o["kind"] == kind)
            .ok_or_else(|| anyhow::anyhow!("{kind} missing from {out}"))?;
        for f in fields {
            ensure!(
                obj["status"][f].is_number(),
                "{kind} status.{f}: {}",
                obj["status"]
            );
        }
    }
    // autoscaling/v1 always has both counts.
    let v1 = s.json(&["get", "horizontalpodautoscalers.v1.autoscaling", "hpa"])?;
    for f in ["currentReplicas", "desiredReplicas"] {
        ensure!(
            v1["status"][f].is_number(),
            "v1 status.{f}: {}",
            v1["status"]
        );
    }
    Ok(())
}
