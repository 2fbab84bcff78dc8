//! Server-side apply with real kubectl: managedFields per manager, conflicts (409 naming the
//! field and its manager), `--force-conflicts`, removal of keys a manager stops applying,
//! ownership handed over between managers, and the upgrade from client-side apply.

mod common;

use anyhow::{ensure, Result};
use common::Skiff;
use serde_json::Value;

const CM_V1: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: test-cm
  labels:
    test-label: test
data:
  a: "1"
  b: "2"
"#;

/// Another manager's intent: a different value for `a`.
const CM_OTHER: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: test-cm
data:
  a: "other"
"#;

/// The first manager's next intent: neither `a` (now another's) nor `b`.
const CM_V2: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: test-cm
  labels:
    test-label: test
data:
  c: "3"
"#;

fn deployment(replicas: Option<u32>, labels: &str) -> String {
    let replicas = replicas
        .map(|r| format!("  replicas: {r}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  labels: {{{labels}}}
spec:
{replicas}  selector:
    matchLabels: {{app: nginx}}
  template:
    metadata:
      labels: {{app: nginx}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
"#
    )
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

#[test]
fn two_managers_conflict_force_and_removal() -> Result<()> {
    let s = Skiff::control_plane()?;
    let v1 = s.write("cm-v1.yaml", CM_V1)?;
    let v1 = v1.to_str().unwrap_or_default();
    s.ok(&["apply", "--server-side", "-f", v1])?;

    let yaml = s.ok(&[
        "get",
        "cm",
        "test-cm",
        "-o",
        "yaml",
        "--show-managed-fields",
    ])?;
    ensure!(yaml.contains("manager: kubectl"), "{yaml}");
    ensure!(yaml.contains("operation: Apply"), "{yaml}");
    ensure!(yaml.contains("f:test-label: {}"), "{yaml}");
    let plain = s.ok(&["get", "cm", "test-cm", "-o", "yaml"])?;
    ensure!(
        !plain.contains("managedFields"),
        "hidden unless asked: {plain}"
    );

    // A second manager changing a field kubectl owns: 409 naming field and owner.
    let other = s.write("cm-other.yaml", CM_OTHER)?;
    let other = other.to_str().unwrap_or_default();
    let err = s.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        other,
    ])?;
    ensure!(err.contains("conflict with \"kubectl\""), "{err}");
    ensure!(err.contains(".data.a"), "{err}");
    let cm = s.json(&["get", "cm", "test-cm"])?;
    ensure!(cm["data"]["a"] == "1", "a conflict changes nothing: {cm}");

    // Forced: the other manager takes `a` over.
    s.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        other,
    ])?;
    let cm = s.json(&["get", "cm", "test-cm", "--show-managed-fields"])?;
    ensure!(cm["data"]["a"] == "other", "{cm}");
    let kubectl = entry(&cm, "kubectl", "Apply").ok_or_else(|| anyhow::anyhow!("{cm}"))?;
    ensure!(
        kubectl["fieldsV1"]["f:data"].get("f:a").is_none(),
        "{kubectl}"
    );
    ensure!(entry(&cm, "other", "Apply").is_some(), "{cm}");

    // kubectl stops applying `a` and `b`: `b` (only kubectl's) goes, `a` (other's) stays.
    let v2 = s.write("cm-v2.yaml", CM_V2)?;
    s.ok(&[
        "apply",
        "--server-side",
        "-f",
        v2.to_str().unwrap_or_default(),
    ])?;
    let cm = s.json(&["get", "cm", "test-cm"])?;
    ensure!(
        cm["data"] == serde_json::json!({"a": "other", "c": "3"}),
        "removed key must disappear, another's must stay: {}",
        cm["data"]
    );

    // An update by another client takes the field; the applier then conflicts with it.
    s.ok(&[
        "patch",
        "cm",
        "test-cm",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"c":"patched"}}"#,
    ])?;
    let err = s.fails(&[
        "apply",
        "--server-side",
        "-f",
        v2.to_str().unwrap_or_default(),
    ])?;
    ensure!(err.contains("conflict with \"kubectl-patch\""), "{err}");
    ensure!(err.contains(".data.c"), "{err}");
    Ok(())
}

#[test]
fn replicas_handed_over_and_client_side_apply_upgraded() -> Result<()> {
    let s = Skiff::control_plane()?;
    // Upstream's example: a Deployment applied with replicas, scaled by someone else.
    let dep = s.write("dep.yaml", &deployment(Some(3), "app: nginx, tier: web"))?;
    let dep = dep.to_str().unwrap_or_default();
    s.ok(&["apply", "--server-side", "-f", dep])?;
    s.ok(&["scale", "deployment", "nginx", "--replicas=5"])?;
    let err = s.fails(&["apply", "--server-side", "-f", dep])?;
    ensure!(err.contains(".spec.replicas"), "{err}");
    // Hand replicas over: the manifest stops setting them, the scaled value stays.
    let without = s.write(
        "dep-noreplicas.yaml",
        &deployment(None, "app: nginx, tier: web"),
    )?;
    s.ok(&[
        "apply",
        "--server-side",
        "-f",
        without.to_str().unwrap_or_default(),
    ])?;
    let d = s.json(&["get", "deployment", "nginx"])?;
    ensure!(d["spec"]["replicas"] == 5, "{}", d["spec"]);

    // Client-side apply first, then server-side: kubectl upgrades the ownership, after
    // which a label dropped from the manifest is removed.
    let csa = s.write(
        "csa.yaml",
        &deployment(Some(1), "app: nginx, tier: web")
            .replace("name: nginx\n  labels", "name: csa\n  labels"),
    )?;
    s.ok(&["apply", "-f", csa.to_str().unwrap_or_default()])?;
    let d = s.json(&["get", "deployment", "csa", "--show-managed-fields"])?;
    ensure!(
        entry(&d, "kubectl-client-side-apply", "Update").is_some(),
        "{d}"
    );
    s.ok(&[
        "apply",
        "--server-side",
        "-f",
        csa.to_str().unwrap_or_default(),
    ])?;
    let trimmed = s.write(
        "csa2.yaml",
        &deployment(Some(1), "app: nginx").replace("name: nginx\n  labels", "name: csa\n  labels"),
    )?;
    s.ok(&[
        "apply",
        "--server-side",
        "-f",
        trimmed.to_str().unwrap_or_default(),
    ])?;
    let d = s.json(&["get", "deployment", "csa", "--show-managed-fields"])?;
    ensure!(
        d["metadata"]["labels"] == serde_json::json!({"app": "nginx"}),
        "{}",
        d["metadata"]
    );
    ensure!(entry(&d, "kubectl", "Apply").is_some(), "{d}");
    Ok(())
}

/// A bare Wasm Pod: the RuntimeClass adds a nodeSelector, admission a service account
/// and tolerations.
const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: upgraded
spec:
  runtimeClassName: wasm
  containers:
  - name: c
    image: nothere:v1
"#;

#[test]
fn a_pod_applied_client_side_is_applied_server_side_again_and_again() -> Result<()> {
    let s = Skiff::control_plane()?;
    let pod = s.write("pod.yaml", POD)?;
    let pod = pod.to_str().unwrap_or_default();
    s.ok(&["apply", "-f", pod])?;
    // As in Kubernetes, what admission added belongs to no manager: the upgraded ownership
    // covers what the client sent and its defaults, and a pod's spec cannot change.
    let p = s.json(&["get", "pod", "upgraded", "--show-managed-fields"])?;
    let owned = entry(&p, "kubectl-client-side-apply", "Update")
        .map(|e| e["fieldsV1"]["f:spec"].clone())
        .unwrap_or_default();
    for admitted in ["f:nodeSelector", "f:tolerations", "f:serviceAccountName"] {
        ensure!(owned.get(admitted).is_none(), "{admitted} in {owned}");
    }
    ensure!(
        owned.get("f:dnsPolicy").is_some(),
        "defaults are owned: {owned}"
    );
    for round in 0..2 {
        let out = s.kubectl(&["apply", "--server-side", "-f", pod])?;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // kubectl's migration re-applies right away and warns when that fails.
        ensure!(
            out.status.success() && stdout.contains("serverside-applied") && stderr.is_empty(),
            "round {round}: {stdout}{stderr}"
        );
    }
    let p = s.json(&["get", "pod", "upgraded"])?;
    ensure!(
        p["spec"]["nodeSelector"]["skiff.dev/runtime-wasm"] == "true"
            && p["spec"]["dnsPolicy"] == "ClusterFirst",
        "{}",
        p["spec"]
    );
    Ok(())
}

/// An Ingress without a class: admission gives it the default one.
const INGRESS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: upgraded
spec:
  rules:
  - http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
"#;

#[test]
fn an_ingress_applied_client_side_keeps_its_default_class_when_applied_server_side() -> Result<()> {
    let s = Skiff::control_plane()?;
    let ingress = s.write("ingress.yaml", INGRESS)?;
    let ingress = ingress.to_str().unwrap_or_default();
    s.ok(&["apply", "-f", ingress])?;
    for _ in 0..2 {
        s.ok(&["apply", "--server-side", "-f", ingress])?;
    }
    let i = s.json(&["get", "ingress", "upgraded"])?;
    ensure!(i["spec"]["ingressClassName"] == "skiff", "{}", i["spec"]);
    Ok(())
}

const ROUTES_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: routes.ssa.example.com
spec:
  group: ssa.example.com
  scope: Namespaced
  names: {plural: routes, singular: route, kind: Route}
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
            properties:
              backends:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [host, port]
                items:
                  type: object
                  required: [host, port]
                  properties:
                    host: {type: string}
                    port: {type: integer}
                    weight: {type: integer}
              tags:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
"#;

fn route(backends: &[(&str, u16)], tags: &[&str]) -> String {
    let backends: Vec<String> = backends
        .iter()
        .map(|(h, p)| format!("    - {{host: {h}, port: {p}}}\n"))
        .collect();
    format!(
        "apiVersion: ssa.example.com/v1\nkind: Route\nmetadata:\n  name: r\nspec:\n  backends:\n{}  tags: [{}]\n",
        backends.concat(),
        tags.join(", ")
    )
}

#[test]
fn custom_resources_merge_lists_by_their_schema_keys() -> Result<()> {
    let s = Skiff::control_plane()?;
    let crd = s.write("crd.yaml", ROUTES_CRD)?;
    s.ok(&["apply", "-f", crd.to_str().unwrap_or_default()])?;
    let a = s.write("a.yaml", &route(&[("a", 80), ("shared", 80)], &["red"]))?;
    let b = s.write("b.yaml", &route(&[("b", 81)], &["blue"]))?;
    s.ok(&[
        "apply",
        "--server-side",
        "--field-manager=team-a",
        "-f",
        a.to_str().unwrap_or_default(),
    ])?;
    s.ok(&[
        "apply",
        "--server-side",
        "--field-manager=team-b",
        "-f",
        b.to_str().unwrap_or_default(),
    ])?;
    let r = s.json(&["get", "route", "r"])?;
    let hosts: Vec<&str> = r["spec"]["backends"]
        .as_array()
        .map(|b| b.iter().filter_map(|e| e["host"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        hosts == ["a", "shared", "b"],
        "map list merged by (host, port): {r}"
    );
    ensure!(
        r["spec"]["tags"] == serde_json::json!(["red", "blue"]),
        "set merged: {r}"
    );
    // team-a drops one of its elements: it goes, team-b's stays.
    let a2 = s.write("a2.yaml", &route(&[("a", 80)], &["red"]))?;
    s.ok(&[
        "apply",
        "--server-side",
        "--field-manager=team-a",
        "-f",
        a2.to_str().unwrap_or_default(),
    ])?;
    let r = s.json(&["get", "route", "r", "--show-managed-fields"])?;
    let hosts: Vec<&str> = r["spec"]["backends"]
        .as_array()
        .map(|b| b.iter().filter_map(|e| e["host"].as_str()).collect())
        .unwrap_or_default();
    ensure!(hosts == ["a", "b"], "{r}");
    let owned = entry(&r, "team-b", "Apply").ok_or_else(|| anyhow::anyhow!("{r}"))?;
    ensure!(
        owned["fieldsV1"]["f:spec"]["f:backends"]
            .get("k:{\"host\":\"b\",\"port\":81}")
            .is_some(),
        "{owned}"
    );
    Ok(())
}
