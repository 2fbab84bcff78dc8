//! Answers in `application/vnd.kubernetes.protobuf` for clients that prefer it (client-go's
//! typed clients, kubectl create/describe): objects, lists and errors in the `k8s\0` +
//! `runtime.Unknown` envelope, watches as length-prefixed `metav1.WatchEvent` frames, all
//! decodable with the generated Kubernetes types (k8s-pb) and equal to the JSON answers;
//! kinds without a protobuf form (custom resources, metrics.k8s.io) answer 406.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::{wait_for, Skiff};
use http::header::{ACCEPT, CONTENT_TYPE};
use http_body_util::BodyExt;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::Value;
use skiff_control_plane::api::protobuf::decode_k8s_protobuf;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What client-go's typed clients (and kubectl create) send.
const PROTOBUF_THEN_JSON: &str = "application/vnd.kubernetes.protobuf,application/json";

const OBJECTS: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: pb}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: pb, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: hello:1.0
        ports: [{name: http, containerPort: 8080}]
        resources:
          limits: {cpu: 500m, memory: 128Mi}
          requests: {cpu: 250m, memory: 64Mi}
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 5
        livenessProbe:
          tcpSocket: {port: 8080}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: pb}
data: {greeting: hello}
binaryData: {blob: AJ+SlpD/}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: pb}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: alt, port: 81, targetPort: 8081}
"#;

struct Answer {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn get(client: &kube::Client, path: &str, accept: &str) -> Result<Answer> {
    let req = http::Request::get(path)
        .header(ACCEPT, accept)
        .body(Vec::new())?;
    let resp = client.send(req.map(Into::into)).await?;
    let code = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok(Answer {
        code,
        content_type,
        body,
    })
}

/// The envelope of a protobuf answer, checked as Kubernetes writes it.
fn envelope(body: &[u8], api_version: &str, kind: &str) -> Result<Vec<u8>> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .context("no k8s\\0 magic in the protobuf answer")?;
    let unknown = Unknown::decode(rest)?;
    let type_meta = unknown.type_meta.context("no typeMeta")?;
    ensure!(
        type_meta.api_version.as_deref() == Some(api_version)
            && type_meta.kind.as_deref() == Some(kind),
        "typeMeta {type_meta:?}, expected {api_version} {kind}"
    );
    ensure!(
        unknown.content_encoding.as_deref() == Some("")
            && unknown.content_type.as_deref() == Some(""),
        "contentEncoding {:?} contentType {:?}",
        unknown.content_encoding,
        unknown.content_type
    );
    unknown.raw.context("no raw object")
}

/// An answer without what protobuf does not carry: list items' apiVersion/kind, and zero
/// values (a proto2 reader sees an absent field as its zero value).
fn comparable(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.remove("apiVersion");
            item.remove("kind");
        }
    }
    without_zeros(&value).unwrap_or(Value::Null)
}

fn without_zeros(value: &Value) -> Option<Value> {
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|i| without_zeros(i).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| without_zeros(v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// GETs `path` as JSON and as protobuf until both show the same resourceVersion (a
/// controller may write in between); checks the protobuf answer decodes to the JSON one.
async fn both(client: &kube::Client, path: &str) -> Result<(Value, Vec<u8>, Vec<u8>)> {
    for _ in 0..50 {
        let json = get(client, path, "application/json").await?;
        ensure!(json.code == 200, "{path}: JSON {}", json.code);
        let json: Value = serde_json::from_slice(&json.body)?;
        let proto = get(client, path, PROTOBUF).await?;
        ensure!(
            proto.code == 200 && proto.content_type == PROTOBUF,
            "{path}: {} {} {}",
            proto.code,
            proto.content_type,
            String::from_utf8_lossy(&proto.body)
        );
        let decoded = decode_k8s_protobuf(&proto.body)?;
        if decoded["metadata"]["resourceVersion"] != json["metadata"]["resourceVersion"] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        ensure!(
            comparable(&decoded) == comparable(&json),
            "{path}: protobuf answer differs from JSON:\n{decoded:#}\nvs\n{json:#}"
        );
        let api_version = json["apiVersion"].as_str().unwrap_or("");
        let kind = json["kind"].as_str().unwrap_or("");
        let raw = envelope(&proto.body, api_version, kind)?;
        return Ok((json, proto.body, raw));
    }
    bail!("{path}: the object kept changing")
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_lists_and_errors_as_protobuf() -> Result<()> {
    let srv = Skiff::control_plane()?;
    let client = srv.client().await?;
    srv.apply("objects.yaml", OBJECTS)?;
    wait_for("the deployment's pods", || {
        let pods = srv.json(&["-n", "pb", "get", "pods"])?;
        Ok((pods["items"].as_array().map_or(0, Vec::len) == 2).then_some(()))
    })?;

    // Deployment: IntOrString both ways, Quantities, probes with inline handlers.
    let (json, _, raw) = both(&client, "/apis/apps/v1/namespaces/pb/deployments/web").await?;
    let d = apps::Deployment::decode(raw.as_slice())?;
    let meta = d.metadata.context("metadata")?;
    ensure!(
        meta.name.as_deref() == Some("web") && meta.uid.as_deref() == s(&json["metadata"]["uid"])
    );
    ensure!(meta.resource_version.as_deref() == s(&json["metadata"]["resourceVersion"]));
    let spec = d.spec.context("spec")?;
    ensure!(spec.replicas == Some(2));
    let rolling = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .context("rollingUpdate")?;
    let surge = rolling.max_surge.context("maxSurge")?;
    ensure!(
        surge.r#type == Some(1) && surge.str_val.as_deref() == Some("25%"),
        "{surge:?}"
    );
    let unavailable = rolling.max_unavailable.context("maxUnavailable")?;
    ensure!(
        unavailable.r#type == Some(0) && unavailable.int_val == Some(1),
        "{unavailable:?}"
    );
    let container = spec
        .template
        .and_then(|t| t.spec)
        .and_then(|s| s.containers.into_iter().next())
        .context("container")?;
    let resources = container.resources.context("resources")?;
    ensure!(
        resources
            .limits
            .get("cpu")
            .and_then(|q| q.string.as_deref())
            == Some("500m")
    );
    ensure!(
        resources
            .requests
            .get("memory")
            .and_then(|q| q.string.as_deref())
            == Some("64Mi")
    );
    let ready = container
        .readiness_probe
        .and_then(|p| p.handler)
        .and_then(|h| h.http_get)
        .context("readinessProbe.httpGet")?;
    ensure!(ready.port.and_then(|p| p.str_val).as_deref() == Some("http"));
    let live = container
        .liveness_probe
        .and_then(|p| p.handler)
        .and_then(|h| h.tcp_socket)
        .context("livenessProbe.tcpSocket")?;
    ensure!(live.port.and_then(|p| p.int_val) == Some(8080));
    let created = json["metadata"]["creationTimestamp"].as_str().unwrap_or("");
    let seconds = meta.creation_timestamp.and_then(|t| t.seconds).unwrap_or(0);
    ensure!(
        created.parse::<jiff::Timestamp>()?.as_second() == seconds,
        "{created} vs {seconds}"
    );

    // ConfigMap with binary data.
    let (_, _, raw) = both(&client, "/api/v1/namespaces/pb/configmaps/cfg").await?;
    let cm = core::ConfigMap::decode(raw.as_slice())?;
    ensure!(cm.data.get("greeting").map(String::as_str) == Some("hello"));
    ensure!(cm.binary_data.get("blob") == Some(&vec![0x00, 0x9f, 0x92, 0x96, 0x90, 0xff]));

    // Service: named and numbered target ports, allocated clusterIP.
    let (json, _, raw) = both(&client, "/api/v1/namespaces/pb/services/web").await?;
    let svc = core::Service::decode(raw.as_slice())?;
    let spec = svc.spec.context("spec")?;
    ensure!(spec.cluster_ip.as_deref() == s(&json["spec"]["clusterIP"]));
    ensure!(
        spec.ports[0]
            .target_port
            .clone()
            .and_then(|p| p.str_val)
            .as_deref()
            == Some("http")
    );
    ensure!(spec.ports[1].target_port.clone().and_then(|p| p.int_val) == Some(8081));

    // A pod and the pod list.
    let (json, _, raw) = both(&client, "/api/v1/namespaces/pb/pods").await?;
    let pods = core::PodList::decode(raw.as_slice())?;
    ensure!(pods.items.len() == 2);
    ensure!(
        pods.metadata.and_then(|m| m.resource_version).as_deref()
            == s(&json["metadata"]["resourceVersion"])
    );
    let name = pods.items[0]
        .metadata
        .as_ref()
        .and_then(|m| m.name.clone())
        .context("pod name")?;
    ensure!(Some(name.as_str()) == s(&json["items"][0]["metadata"]["name"]));
    let owner = &pods.items[0]
        .metadata
        .as_ref()
        .context("metadata")?
        .owner_references[0];
    ensure!(owner.kind.as_deref() == Some("ReplicaSet") && owner.controller == Some(true));
    let (json, _, raw) = both(&client, &format!("/api/v1/namespaces/pb/pods/{name}")).await?;
    let pod = core::Pod::decode(raw.as_slice())?;
    let spec = pod.spec.context("pod spec")?;
    ensure!(spec.containers[0].image.as_deref() == Some("hello:1.0"));
    ensure!(
        spec.termination_grace_period_seconds
            == json["spec"]["terminationGracePeriodSeconds"].as_i64()
    );
    let (_, _, raw) = both(&client, "/apis/apps/v1/deployments").await?;
    ensure!(apps::DeploymentList::decode(raw.as_slice())?.items.len() == 1);

    // Errors are protobuf Status.
    let missing = get(
        &client,
        "/api/v1/namespaces/pb/pods/nope",
        PROTOBUF_THEN_JSON,
    )
    .await?;
    ensure!(
        missing.code == 404 && missing.content_type == PROTOBUF,
        "{}",
        missing.code
    );
    let status = meta::Status::decode(envelope(&missing.body, "v1", "Status")?.as_slice())?;
    ensure!(
        status.code == Some(404) && status.reason.as_deref() == Some("NotFound"),
        "{status:?}"
    );

    // JSON for whoever prefers it, and Tables stay JSON.
    let answer = get(
        &client,
        "/api/v1/namespaces/pb/configmaps/cfg",
        "application/json, application/vnd.kubernetes.protobuf",
    )
    .await?;
    ensure!(answer.code == 200 && answer.content_type.starts_with("application/json"));
    let table = get(
        &client,
        "/api/v1/namespaces/pb/configmaps",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await?;
    ensure!(
        table.content_type.contains("as=Table"),
        "{}",
        table.content_type
    );

    // kubectl keeps working: typed clients (create, describe) now get protobuf answers.
    let out = srv.ok(&[
        "-n",
        "pb",
        "create",
        "configmap",
        "made",
        "--from-literal=a=b",
    ])?;
    ensure!(out.contains("configmap/made created"), "{out}");
    let err = srv.fails(&[
        "-n",
        "pb",
        "create",
        "configmap",
        "made",
        "--from-literal=a=b",
    ])?;
    ensure!(err.contains("already exists"), "{err}");
    let out = srv.ok(&["-n", "pb", "describe", "deployment", "web"])?;
    ensure!(
        out.contains("25% max surge") && out.contains("1 max unavailable"),
        "{out}"
    );
    Ok(())
}

/// Reads frames (4-byte big-endian length + WatchEvent) until `want` events came.
async fn watch_events(
    body: &mut kube::client::Body,
    want: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    while events.len() < want {
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let event = meta::WatchEvent::decode(&buf[4..4 + len])?;
            buf.drain(..4 + len);
            let raw = event.object.and_then(|o| o.raw).context("event object")?;
            events.push((event.r#type.unwrap_or_default(), raw));
        }
        if events.len() >= want {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .context("no watch event within 20s")?
            .context("the watch ended")??;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(events)
}

async fn open_watch(client: &kube::Client, path: &str, accept: &str) -> Result<kube::client::Body> {
    let req = http::Request::get(path)
        .header(ACCEPT, accept)
        .body(Vec::new())?;
    let resp = client.send(req.map(Into::into)).await?;
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ensure!(
        resp.status() == 200 && ct == "application/vnd.kubernetes.protobuf;stream=watch",
        "{path}: {} {ct}",
        resp.status()
    );
    Ok(resp.into_body())
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_as_protobuf_frames() -> Result<()> {
    let srv = Skiff::control_plane()?;
    let client = srv.client().await?;
    srv.ok(&["create", "configmap", "first", "--from-literal=a=1"])?;
    // As client-go asks: the initial state as ADDED events, one frame each, then changes as
    // they happen (the stream is converted event by event, not buffered).
    let path = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=60";
    for accept in [
        PROTOBUF_THEN_JSON,
        "application/vnd.kubernetes.protobuf;stream=watch",
    ] {
        let mut body = open_watch(&client, path, accept).await?;
        let events = watch_events(&mut body, 1).await?;
        let (kind, raw) = &events[0];
        ensure!(kind == "ADDED", "{kind}");
        let cm = core::ConfigMap::decode(envelope(raw, "v1", "ConfigMap")?.as_slice())?;
        ensure!(cm.metadata.and_then(|m| m.name).as_deref() == Some("first"));
        ensure!(cm.data.get("a").map(String::as_str) == Some("1"));
    }
    let mut body = open_watch(&client, path, PROTOBUF).await?;
    watch_events(&mut body, 1).await?;
    srv.ok(&["create", "configmap", "second", "--from-literal=b=2"])?;
    srv.ok(&["label", "configmap", "second", "x=y"])?;
    let events = watch_events(&mut body, 2).await?;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    ensure!(kinds == ["ADDED", "MODIFIED"], "{kinds:?}");
    let cm = core::ConfigMap::decode(envelope(&events[1].1, "v1", "ConfigMap")?.as_slice())?;
    let meta = cm.metadata.context("metadata")?;
    ensure!(
        meta.name.as_deref() == Some("second")
            && meta.labels.get("x").map(String::as_str) == Some("y")
    );
    // The same object decodes to what JSON shows.
    let json = get(
        &client,
        "/api/v1/namespaces/default/configmaps/second",
        "application/json",
    )
    .await?;
    let json: Value = serde_json::from_slice(&json.body)?;
    let decoded = decode_k8s_protobuf(&events[1].1)?;
    ensure!(
        comparable(&decoded) == comparable(&json),
        "{decoded:#} vs {json:#}"
    );
    // A watch the server refuses (a bad resourceVersion) is a protobuf Status.
    let old = get(
        &client,
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc",
        PROTOBUF,
    )
    .await?;
    ensure!(
        old.code == 400 && old.content_type == PROTOBUF,
        "{} {}",
        old.code,
        old.content_type
    );
    let status = meta::Status::decode(envelope(&old.body, "v1", "Status")?.as_slice())?;
    ensure!(status.code == Some(400), "{status:?}");
    Ok(())
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kinds_without_protobuf_are_not_acceptable() -> Result<()> {
    let srv = Skiff::control_plane()?;
    let client = srv.client().await?;
    srv.apply("crd.yaml", CRD)?;
    wait_for("the Widget kind", || {
        let out = srv.kubectl(&["get", "widgets"])?;
        Ok(out.status.success().then_some(()))
    })?;
    srv.apply(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n",
    )?;
    for path in [
        "/apis/example.com/v1/namespaces/default/widgets/w1",
        "/apis/example.com/v1/namespaces/default/widgets",
        "/apis/example.com/v1/namespaces/default/widgets?watch=true&timeoutSeconds=1",
        "/apis/metrics.k8s.io/v1beta1/nodes",
    ] {
        let only = get(&client, path, PROTOBUF).await?;
        let body: Value = serde_json::from_slice(&only.body)
            .with_context(|| format!("{path}: {}", String::from_utf8_lossy(&only.body)))?;
        ensure!(
            only.code == 406
                && body["reason"] == "NotAcceptable"
                && body["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("only the following media types are accepted: application/json, application/yaml"),
            "{path}: {} {body}",
            only.code
        );
        // With JSON as the fallback, JSON.
        let fallback = get(&client, path, PROTOBUF_THEN_JSON).await?;
        ensure!(
            fallback.code == 200 && fallback.content_type.starts_with("application/json"),
            "{path}: {} {}",
            fallback.code,
            fallback.content_type
        );
    }
    let widget = get(
        &client,
        "/apis/example.com/v1/namespaces/default/widgets/w1",
        PROTOBUF_THEN_JSON,
    )
    .await?;
    let widget: Value = serde_json::from_slice(&widget.body)?;
    ensure!(widget["spec"]["size"] == 3, "{widget}");
    Ok(())
}
