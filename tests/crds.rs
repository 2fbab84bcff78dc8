//! CustomResourceDefinitions end to end: a CRD is served at once (discovery, CRUD, watch,
//! status and scale subresources, schema validation, defaulting, pruning, printer columns,
//! short names and categories), through real kubectl and the `kube` crate; deleting it deletes
//! its objects; it survives restarts.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Result};
use common::{wait_for, Skiff};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{json, Value};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all, gadgets]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Image
      type: string
      jsonPath: .spec.image
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [image]
            properties:
              image: {type: string, minLength: 1}
              replicas: {type: integer, minimum: 0, maximum: 100, default: 1}
              mode: {type: string, enum: [fast, slow], default: fast}
              port: {x-kubernetes-int-or-string: true}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

const WIDGET: &str = r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
spec:
  image: nginx
  colour: red
"#;

/// A server with the Widget CRD established.
fn with_crd() -> Result<Skiff> {
    let s = Skiff::control_plane()?;
    s.apply("crd.yaml", CRD)?;
    wait_established(&s, "widgets.example.com")?;
    Ok(s)
}

fn wait_established(s: &Skiff, name: &str) -> Result<()> {
    wait_for(&format!("{name} to be established"), || {
        let crd = s.json(&["get", "crd", name])?;
        let established = crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        Ok(established.then_some(()))
    })
}

/// `Some(())` once `kubectl get ARGS` fails: the object is gone.
fn gone(s: &Skiff, args: &[&str]) -> Result<Option<()>> {
    let mut all = vec!["get"];
    all.extend(args);
    Ok((!s.kubectl(&all)?.status.success()).then_some(()))
}

fn path(s: &Skiff, name: &str, yaml: &str) -> Result<String> {
    Ok(s.write(name, yaml)?.to_string_lossy().into_owned())
}

#[test]
fn a_crd_is_served_at_once_with_its_schema_columns_and_names() -> Result<()> {
    let s = Skiff::control_plane()?;
    let crd_file = path(&s, "crd.yaml", CRD)?;
    let widget = path(&s, "w1.yaml", WIDGET)?;
    // One kubectl call right after the other: the resource is served when the CRD is.
    s.ok(&["apply", "-f", &crd_file])?;
    let out = s.ok(&["apply", "--validate=false", "-f", &widget])?;
    ensure!(out.contains("widget.example.com/w1 created"), "{out}");

    let crd = s.json(&["get", "crd", "widgets.example.com"])?;
    let conditions = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (ty, reason) in [
        ("NamesAccepted", "NoConflicts"),
        ("Established", "InitialNamesAccepted"),
    ] {
        ensure!(
            conditions
                .iter()
                .any(|c| c["type"] == ty && c["status"] == "True" && c["reason"] == reason),
            "{ty} in {conditions:?}"
        );
    }
    ensure!(crd["status"]["acceptedNames"]["kind"] == "Widget", "{crd}");
    ensure!(
        crd["status"]["acceptedNames"]["shortNames"] == json!(["wd"]),
        "{crd}"
    );
    ensure!(crd["status"]["storedVersions"] == json!(["v1"]), "{crd}");
    ensure!(crd["spec"]["names"]["listKind"] == "WidgetList", "{crd}");

    // Unknown fields pruned, defaults applied.
    let w = s.json(&["get", "widget", "w1"])?;
    ensure!(w["spec"].get("colour").is_none(), "pruned: {w}");
    ensure!(
        w["spec"]["replicas"] == 1 && w["spec"]["mode"] == "fast",
        "defaults: {w}"
    );
    ensure!(w["metadata"]["generation"] == 1, "{w}");
    // The schema is in the OpenAPI documents: kubectl explain reads it.
    let explained = s.ok(&["explain", "widget.spec.replicas"])?;
    ensure!(
        explained.contains("replicas") && explained.contains("<integer>"),
        "{explained}"
    );
    let explained = s.ok(&["explain", "widgets", "--api-version=example.com/v1"])?;
    ensure!(
        explained.contains("KIND:") && explained.contains("Widget"),
        "{explained}"
    );
    ensure!(
        w.get("status").is_none(),
        "status only through /status: {w}"
    );

    // Printer columns, short name, category, `all`.
    let out = s.ok(&["get", "wd"])?;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    ensure!(
        header == ["NAME", "REPLICAS", "IMAGE", "READY", "AGE"],
        "{out}"
    );
    ensure!(
        out.lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>() == ["w1", "1", "nginx"]),
        "{out}"
    );
    let out = s.ok(&["get", "gadgets"])?;
    ensure!(out.contains("w1"), "{out}");
    let out = s.ok(&["get", "all"])?;
    ensure!(out.contains("widget.example.com/w1"), "{out}");
    let out = s.ok(&["api-resources", "--api-group", "example.com"])?;
    ensure!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["widgets", "wd", "example.com/v1", "true", "Widget"]),
        "{out}"
    );

    // An invalid field: 422 naming it, in Kubernetes' words.
    let bad = path(
        &s,
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {image: nginx, replicas: three, mode: medium, port: true}\n",
    )?;
    let err = s.fails(&["apply", "-f", &bad])?;
    for want in [
        "The Widget \"w2\" is invalid",
        "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        "spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\"",
        "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
    ] {
        ensure!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let missing = path(
        &s,
        "missing.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {replicas: 2}\n",
    )?;
    let err = s.fails(&["apply", "-f", &missing])?;
    ensure!(err.contains("spec.image: Required value"), "{err}");
    // fieldValidation=Strict (kubectl's default) reports the unknown field as the built-ins do.
    let strict = path(&s, "strict.yaml", &WIDGET.replace("name: w1", "name: w4"))?;
    let err = s.fails(&["apply", "-f", &strict])?;
    ensure!(
        err.contains("Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.colour\""),
        "{err}"
    );

    // Merge and JSON patches; strategic merge is refused as Kubernetes refuses it (415).
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])?;
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/image","value":"httpd"}]"#,
    ])?;
    let err = s.fails(&["patch", "wd", "w1", "-p", r#"{"spec":{"replicas":4}}"#])?;
    ensure!(
        err.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{err}"
    );
    let w = s.json(&["get", "wd", "w1"])?;
    ensure!(
        w["spec"]["replicas"] == 3
            && w["spec"]["image"] == "httpd"
            && w["metadata"]["generation"] == 3,
        "{w}"
    );
    // `kubectl edit` (a merge patch for custom resources) and re-apply.
    let out = s
        .kubectl_cmd(&["edit", "wd", "w1"])
        .env("EDITOR", "sed -i s/httpd/caddy/")
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(s.json(&["get", "wd", "w1"])?["spec"]["image"] == "caddy");
    s.ok(&["delete", "wd", "w1"])?;
    ensure!(
        s.ok(&["get", "wd"])?.trim().is_empty() || s.ok(&["get", "wd"])?.contains("No resources")
    );
    Ok(())
}

#[test]
fn status_and_scale_subresources() -> Result<()> {
    let s = with_crd()?;
    let widget = path(&s, "w1.yaml", WIDGET)?;
    s.ok(&["apply", "--validate=false", "-f", &widget])?;
    // Status through /status: spec untouched, generation unchanged.
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":7},"status":{"replicas":2,"selector":"app=w1","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])?;
    let w = s.json(&["get", "wd", "w1"])?;
    ensure!(w["status"]["replicas"] == 2, "{w}");
    ensure!(
        w["spec"]["replicas"] == 1,
        "a status write leaves spec: {w}"
    );
    ensure!(w["metadata"]["generation"] == 1, "{w}");
    // The main resource does not write status.
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":2},"status":{"replicas":99}}"#,
    ])?;
    let w = s.json(&["get", "wd", "w1"])?;
    ensure!(w["status"]["replicas"] == 2, "status kept: {w}");
    ensure!(
        w["spec"]["replicas"] == 2 && w["metadata"]["generation"] == 2,
        "{w}"
    );
    // The Ready column reads the status condition.
    let out = s.ok(&["get", "wd", "w1", "--no-headers"])?;
    ensure!(out.split_whitespace().nth(3) == Some("True"), "{out}");
    // A status that breaks the schema is refused too.
    let err = s.fails(&[
        "patch",
        "wd",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"replicas":"two"}}"#,
    ])?;
    ensure!(
        err.contains("status.replicas: Invalid value: \"string\": status.replicas in body must be of type integer: \"string\""),
        "{err}"
    );

    // Scale: kubectl scale, the Scale object, and the schema's maximum.
    let out = s.ok(&["scale", "wd", "w1", "--replicas=5"])?;
    ensure!(out.contains("widget.example.com/w1 scaled"), "{out}");
    ensure!(s.json(&["get", "wd", "w1"])?["spec"]["replicas"] == 5);
    let scale: Value = serde_json::from_str(&s.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ])?)?;
    ensure!(
        scale["kind"] == "Scale" && scale["apiVersion"] == "autoscaling/v1",
        "{scale}"
    );
    ensure!(scale["spec"]["replicas"] == 5, "{scale}");
    ensure!(
        scale["status"]["replicas"] == 2 && scale["status"]["selector"] == "app=w1",
        "{scale}"
    );
    let err = s.fails(&["scale", "wd", "w1", "--replicas=200"])?;
    ensure!(
        err.contains("spec.replicas: Invalid value: 200: spec.replicas in body should be less than or equal to 100"),
        "{err}"
    );
    Ok(())
}

#[test]
fn get_watch_sees_changes() -> Result<()> {
    let s = with_crd()?;
    let mut watcher = s
        .kubectl_cmd(&["get", "wd", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(1500));
    let widget = path(&s, "w1.yaml", WIDGET)?;
    s.ok(&["apply", "--validate=false", "-f", &widget])?;
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"image":"caddy"}}"#,
    ])?;
    s.ok(&["delete", "wd", "w1"])?;
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
    ensure!(
        out.lines()
            .any(|l| l.contains("MODIFIED") && l.contains("caddy")),
        "the watch shows the printer columns:\n{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_objects_through_the_kube_crate() -> Result<()> {
    let s = Skiff::control_plane()?;
    let client = s.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition =
        serde_json::from_value(serde_yaml::from_str::<Value>(CRD)?)?;
    crds.create(&PostParams::default(), &crd).await?;

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk).await?;
    ensure!(ar.plural == "widgets", "{ar:?}");
    ensure!(caps.scope == kube::discovery::Scope::Namespaced, "{caps:?}");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "dyn", "labels": {"team": "a"}},
        "spec": {"image": "nginx", "replicas": 2}
    }))?;
    let created = api.create(&PostParams::default(), &obj).await?;
    ensure!(created.data["spec"]["mode"] == "fast", "{:?}", created.data);
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut events = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await?
        .boxed();

    let got = api.get("dyn").await?;
    ensure!(got.data["spec"]["replicas"] == 2);
    let listed = api.list(&ListParams::default().labels("team=a")).await?;
    ensure!(listed.items.len() == 1, "{listed:?}");
    ensure!(
        api.list(&ListParams::default().labels("team=b"))
            .await?
            .items
            .is_empty(),
        "selector"
    );
    let patched = api
        .patch(
            "dyn",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await?;
    ensure!(patched.data["spec"]["replicas"] == 4);
    let status = api
        .patch_status(
            "dyn",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 4}})),
        )
        .await?;
    ensure!(status.data["status"]["replicas"] == 4, "{:?}", status.data);
    let mut replaced = api.get("dyn").await?;
    replaced.data["spec"]["image"] = json!("caddy");
    let replaced = api
        .replace("dyn", &PostParams::default(), &replaced)
        .await?;
    ensure!(replaced.data["spec"]["image"] == "caddy");
    ensure!(
        replaced.data["status"]["replicas"] == 4,
        "status survives a replace"
    );
    // An invalid object through the same API: 422.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "bad"}, "spec": {"image": "", "replicas": -1}
    }))?;
    match api.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(e)) => {
            ensure!(e.code == 422 && e.reason == "Invalid", "{e:?}");
            ensure!(
                e.message
                    .contains("spec.replicas in body should be greater than or equal to 0"),
                "{}",
                e.message
            );
            ensure!(
                e.message
                    .contains("spec.image in body should be at least 1 chars long"),
                "{}",
                e.message
            );
        }
        other => anyhow::bail!("expected 422, got {other:?}"),
    }
    api.delete("dyn", &DeleteParams::default()).await?;
    let mut seen = Vec::new();
    while let Some(ev) = events.try_next().await? {
        let (kind, name) = match &ev {
            WatchEvent::Added(o) => ("ADDED", o.metadata.name.clone()),
            WatchEvent::Modified(o) => ("MODIFIED", o.metadata.name.clone()),
            WatchEvent::Deleted(o) => ("DELETED", o.metadata.name.clone()),
            _ => continue,
        };
        if name.as_deref() == Some("dyn") {
            seen.push(kind);
        }
        if kind == "DELETED" {
            break;
        }
    }
    ensure!(
        seen.first() == Some(&"MODIFIED") && seen.last() == Some(&"DELETED"),
        "{seen:?}"
    );
    ensure!(api.get_opt("dyn").await?.is_none());
    Ok(())
}

#[test]
fn deleting_the_crd_deletes_its_objects_then_its_api() -> Result<()> {
    let s = with_crd()?;
    s.ok(&["create", "namespace", "team"])?;
    let widget = path(&s, "w1.yaml", WIDGET)?;
    s.ok(&["apply", "--validate=false", "-f", &widget])?;
    s.ok(&["apply", "--validate=false", "-n", "team", "-f", &widget])?;
    // One object holds the CRD's deletion with a finalizer of its own.
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "-n",
        "team",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])?;
    s.ok(&["delete", "crd", "widgets.example.com", "--wait=false"])?;
    wait_for("the unheld widget to go", || {
        gone(&s, &["wd", "w1", "-n", "default"])
    })?;
    let crd = s.json(&["get", "crd", "widgets.example.com"])?;
    ensure!(
        crd["metadata"]["finalizers"] == json!(["customresourcecleanup.apiextensions.k8s.io"]),
        "{crd}"
    );
    ensure!(
        crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Terminating" && c["status"] == "True"),
        "{crd}"
    );
    let again = path(&s, "w2.yaml", &WIDGET.replace("name: w1", "name: w2"))?;
    let err = s.fails(&["apply", "--validate=false", "-f", &again])?;
    ensure!(
        err.contains("create not allowed while custom resource definition is terminating"),
        "{err}"
    );
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "-n",
        "team",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    wait_for("the CRD to go", || {
        gone(&s, &["crd", "widgets.example.com"])
    })?;
    let err = s.fails(&["get", "--raw", "/apis/example.com/v1"])?;
    ensure!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    let groups = s.ok(&["get", "--raw", "/apis"])?;
    ensure!(!groups.contains("example.com"), "{groups}");
    let out = s.ok(&["api-resources"])?;
    ensure!(!out.contains("widgets"), "{out}");
    // Defined again, it starts empty.
    s.apply("crd.yaml", CRD)?;
    wait_established(&s, "widgets.example.com")?;
    let out = s.ok(&["get", "wd", "-A"])?;
    ensure!(!out.contains("w1"), "{out}");
    Ok(())
}

#[test]
fn custom_resources_join_garbage_collection_and_namespace_deletion() -> Result<()> {
    let s = with_crd()?;
    s.ok(&["create", "namespace", "team"])?;
    let widget = path(&s, "w1.yaml", WIDGET)?;
    s.ok(&["apply", "--validate=false", "-n", "team", "-f", &widget])?;
    let uid = s.json(&["get", "wd", "w1", "-n", "team"])?["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let owned = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owned", "namespace": "team", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w1", "uid": uid}]}});
    let f = path(&s, "owned.json", &owned.to_string())?;
    s.ok(&["apply", "-f", &f])?;
    s.ok(&["delete", "wd", "w1", "-n", "team"])?;
    wait_for("the Widget's ConfigMap to be collected", || {
        gone(&s, &["cm", "owned", "-n", "team"])
    })?;
    s.ok(&["apply", "--validate=false", "-n", "team", "-f", &widget])?;
    s.ok(&["delete", "namespace", "team"])?;
    wait_for("namespace team to be gone", || gone(&s, &["ns", "team"]))?;
    let out = s.ok(&["get", "wd", "-A"])?;
    ensure!(!out.contains("w1"), "{out}");
    Ok(())
}

#[test]
fn versions_served_side_by_side_and_crd_validation() -> Result<()> {
    let s = Skiff::control_plane()?;
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer, maximum: 10}}}
"#;
    s.apply("gizmos.yaml", crd)?;
    wait_established(&s, "gizmos.example.com")?;
    let old = path(
        &s,
        "g1.yaml",
        "apiVersion: example.com/v1beta1\nkind: Gizmo\nmetadata: {name: g1}\nspec: {size: 3}\n",
    )?;
    let out = s.kubectl(&["apply", "-f", &old])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("example.com/v1beta1 Gizmo is deprecated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at_v1 = s.json(&["get", "gizmos.v1.example.com", "g1"])?;
    ensure!(
        at_v1["apiVersion"] == "example.com/v1" && at_v1["spec"]["size"] == 3,
        "{at_v1}"
    );
    let list: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/apis/example.com/v1beta1/gizmos"])?)?;
    ensure!(list["apiVersion"] == "example.com/v1beta1", "{list}");
    ensure!(
        list["items"][0]["apiVersion"] == "example.com/v1beta1",
        "{list}"
    );
    let group: Value = serde_json::from_str(&s.ok(&["get", "--raw", "/apis/example.com"])?)?;
    ensure!(group["preferredVersion"]["version"] == "v1", "{group}");

    // The storage version moves to v1beta1 and v1 gains a default: objects stored before
    // read at either version, with the default applied on the way out.
    let moved = crd
        .replace("storage: true", "storage: TRUE")
        .replace("storage: false", "storage: true")
        .replace("storage: TRUE", "storage: false")
        .replace(
            "{size: {type: integer, maximum: 10}}",
            "{size: {type: integer, maximum: 10}, color: {type: string, default: blue}}",
        );
    s.apply("gizmos2.yaml", &moved)?;
    let stored = s.json(&["get", "crd", "gizmos.example.com"])?["status"]["storedVersions"].clone();
    ensure!(stored == json!(["v1", "v1beta1"]), "{stored}");
    let at_v1 = s.json(&["get", "gizmos.v1.example.com", "g1"])?;
    ensure!(at_v1["apiVersion"] == "example.com/v1", "{at_v1}");
    ensure!(
        at_v1["spec"]["color"] == "blue",
        "defaulted on read: {at_v1}"
    );
    let at_beta: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/apis/example.com/v1beta1/gizmos/g1"])?)?;
    ensure!(at_beta["apiVersion"] == "example.com/v1beta1", "{at_beta}");
    ensure!(at_beta["spec"].get("color").is_none(), "{at_beta}");

    // Kubernetes' CRD validation, and conversion webhooks refused clearly.
    let bad = crd
        .replace("name: gizmos.example.com", "name: gadgets.example.com")
        .replace("storage: true", "storage: false");
    let f = path(&s, "bad.yaml", &bad)?;
    let err = s.fails(&["apply", "-f", &f])?;
    for want in [
        "metadata.name: Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group",
        "must have exactly one version marked as storage version",
    ] {
        ensure!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let webhook = crd.replace(
        "  scope: Cluster\n",
        "  scope: Cluster\n  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig: {url: \"https://convert.example.com/\"}\n",
    );
    let f = path(&s, "webhook.yaml", &webhook)?;
    let err = s.fails(&["apply", "-f", &f])?;
    ensure!(err.contains("spec.conversion.strategy: Invalid value: \"Webhook\": conversion webhooks are not supported"), "{err}");
    let unstructural = crd.replace(
        "spec: {type: object, properties: {size: {type: integer, maximum: 10}}}",
        "spec: {properties: {size: {type: integer}}}",
    );
    let f = path(&s, "unstructural.yaml", &unstructural)?;
    let err = s.fails(&["apply", "-f", &f])?;
    ensure!(
        err.contains("spec.versions[1].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
    Ok(())
}

#[test]
fn crds_and_their_objects_survive_restarts() -> Result<()> {
    let mut s = with_crd()?;
    let widget = path(&s, "w1.yaml", WIDGET)?;
    s.ok(&["apply", "--validate=false", "-f", &widget])?;
    s.restart()?;
    let out = s.ok(&["get", "wd"])?;
    ensure!(out.contains("w1") && out.contains("REPLICAS"), "{out}");
    s.crash_and_restart()?;
    let w2 = path(&s, "w2.yaml", &WIDGET.replace("name: w1", "name: w2"))?;
    s.ok(&["apply", "--validate=false", "-f", &w2])?;
    let err = s.fails(&[
        "patch",
        "wd",
        "w2",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":-3}}"#,
    ])?;
    ensure!(
        err.contains("spec.replicas in body should be greater than or equal to 0"),
        "{err}"
    );
    let out = s.ok(&["get", "widgets"])?;
    ensure!(out.contains("w1") && out.contains("w2"), "{out}");
    wait_established(&s, "widgets.example.com")?;
    Ok(())
}

const CEL_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: limits.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: limits, kind: Limit}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.min <= self.max"
            properties:
              min: {type: integer}
              max: {type: integer}
"#;

#[test]
fn cel_rules_are_accepted_with_a_warning_that_they_are_not_enforced() -> Result<()> {
    let s = Skiff::control_plane()?;
    let file = path(&s, "cel.yaml", CEL_CRD)?;
    let out = s.kubectl(&["apply", "-f", &file])?;
    ensure!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stderr.contains("spec.versions[0].schema.openAPIV3Schema.properties.spec")
            && stderr.contains("not enforced"),
        "{stderr}"
    );
    Ok(())
}
