//! Ingress and IngressClass (`networking.k8s.io/v1`) through real kubectl and the kube crate:
//! the bootstrapped default class `skiff`, DefaultIngressClass admission, `kubectl get`
//! columns, the status controller's node address (the embedded agent's node registers
//! InternalIP 127.0.0.1), Kubernetes' validation errors by field, `describe`, and
//! `kubectl create ingress` (a protobuf body).

mod common;

use anyhow::{ensure, Result};
use common::{wait_for, Skiff};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WEB: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  tls: [{hosts: [shop.example], secretName: shop-tls}]
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}
"#;

/// `WEB`'s second path.
const API_PATH: &str =
    "      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}\n";

const BAD: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Regex, backend: {service: {name: web, port: {number: 80}}}}
      - {path: api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /both, pathType: Prefix, backend: {service: {name: web, port: {number: 80, name: http}}}}
"#;

/// `kubectl get ingress NAME --no-headers` split on blanks: NAME CLASS HOSTS ADDRESS PORTS… AGE.
fn ingress_columns(s: &Skiff, name: &str) -> Result<Vec<String>> {
    let out = s.ok(&["get", "ingress", name, "--no-headers"])?;
    Ok(out.split_whitespace().map(str::to_string).collect())
}

#[test]
fn ingresses_through_kubectl() -> Result<()> {
    let s = Skiff::start()?;

    // The default class, as `kubectl get ingressclass` and `-o yaml` show it.
    let classes = s.ok(&["get", "ingressclass", "--no-headers"])?;
    let cols: Vec<&str> = classes.split_whitespace().collect();
    ensure!(
        cols.get(..3) == Some(&["skiff", "skiff.dev/ingress", "<none>"][..]),
        "{classes}"
    );
    let yaml = s.ok(&["get", "ingressclass", "skiff", "-o", "yaml"])?;
    ensure!(
        yaml.contains("ingressclass.kubernetes.io/is-default-class: \"true\"")
            && yaml.contains("controller: skiff.dev/ingress"),
        "{yaml}"
    );

    // An Ingress without a class gets the default one; the status controller gives it the
    // node's address.
    s.apply("web.yaml", WEB)?;
    let ing = s.json(&["get", "ingress", "web"])?;
    ensure!(ing["spec"]["ingressClassName"] == "skiff", "{ing}");
    ensure!(ing["metadata"]["generation"] == 1, "{ing}");
    let cols = wait_for("web's ADDRESS to be the node's", || {
        let cols = ingress_columns(&s, "web")?;
        Ok(Some(cols).filter(|c| c.get(3).map(String::as_str) == Some("127.0.0.1")))
    })?;
    ensure!(
        cols.get(..6)
            == Some(
                &["web", "skiff", "shop.example", "127.0.0.1", "80,", "443"].map(String::from)[..]
            ),
        "{cols:?}"
    );
    let ing = s.json(&["get", "ing", "web"])?;
    ensure!(
        ing["status"]["loadBalancer"]["ingress"] == json!([{"ip": "127.0.0.1"}]),
        "{ing}"
    );
    let header = s.ok(&["get", "ingress"])?;
    ensure!(
        header
            .lines()
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>())
            == Some(vec!["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]),
        "{header}"
    );

    // Re-applied with one path: the lists are replaced (atomic), the generation counts it.
    s.apply("web.yaml", &WEB.replace(API_PATH, ""))?;
    let ing = s.json(&["get", "ingress", "web"])?;
    let paths = &ing["spec"]["rules"][0]["http"]["paths"];
    ensure!(paths.as_array().map(Vec::len) == Some(1), "{ing}");
    ensure!(ing["metadata"]["generation"] == 2, "{ing}");
    ensure!(ing["spec"]["ingressClassName"] == "skiff", "{ing}");

    let described = s.ok(&["describe", "ingress", "web"])?;
    for want in [
        "Name:",
        "web",
        "Ingress Class:",
        "skiff",
        "Address:",
        "127.0.0.1",
        "shop.example",
        "shop-tls",
    ] {
        ensure!(
            described.contains(want),
            "describe lacks {want:?}:\n{described}"
        );
    }

    // Kubernetes' validation, each error by field.
    let bad = s.write("bad.yaml", BAD)?;
    let err = s.fails(&["apply", "-f", bad.to_str().unwrap_or_default()])?;
    for want in [
        r#"spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix""#,
        r#"spec.rules[0].http.paths[1].path: Invalid value: "api": must be an absolute path"#,
        r#"spec.rules[0].http.paths[2].backend: Invalid value: "": cannot set both port name & port number"#,
    ] {
        ensure!(err.contains(want), "missing {want}:\n{err}");
    }
    ensure!(s.fails(&["get", "ingress", "bad"])?.contains("NotFound"));
    let ip_host = s.write(
        "ip.yaml",
        &WEB.replace("host: shop.example", "host: 10.0.0.1")
            .replace("name: web}", "name: ip}"),
    )?;
    let err = s.fails(&["create", "-f", ip_host.to_str().unwrap_or_default()])?;
    ensure!(
        err.contains(r#"spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#),
        "{err}"
    );

    // `kubectl create ingress` sends protobuf; an explicit class is kept, another
    // controller's Ingress gets no address from Skiff.
    s.ok(&[
        "create",
        "ingress",
        "simple",
        "--rule=foo.example/bar*=svc1:8080",
    ])?;
    let simple = s.json(&["get", "ingress", "simple"])?;
    ensure!(simple["spec"]["ingressClassName"] == "skiff", "{simple}");
    ensure!(
        simple["spec"]["rules"][0]["http"]["paths"][0]
            == json!({"path": "/bar", "pathType": "Prefix", "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}),
        "{simple}"
    );
    s.apply(
        "nginx.yaml",
        r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
"#,
    )?;
    s.ok(&[
        "create",
        "ingress",
        "other",
        "--class=nginx",
        "--rule=/=svc1:80",
    ])?;
    wait_for("simple's address", || {
        let cols = ingress_columns(&s, "simple")?;
        Ok(Some(()).filter(|_| cols.get(3).map(String::as_str) == Some("127.0.0.1")))
    })?;
    let cols = ingress_columns(&s, "other")?;
    // No address: the cell is empty.
    ensure!(
        cols.get(..4) == Some(&["other", "nginx", "*", "80"].map(String::from)[..]),
        "{cols:?}"
    );
    let other = s.json(&["get", "ingress", "other"])?;
    ensure!(other["status"]["loadBalancer"] == json!({}), "{other}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_through_the_kube_crate() -> Result<()> {
    let s = Skiff::control_plane()?;
    let client = s.client().await?;
    let classes: Api<IngressClass> = Api::all(client.clone());
    let skiff = classes.get("skiff").await?;
    ensure!(
        skiff.spec.and_then(|s| s.controller).as_deref() == Some("skiff.dev/ingress"),
        "the bootstrapped class"
    );
    let api: Api<Ingress> = Api::namespaced(client, "default");
    let ing: Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "typed"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    }))?;
    let created = api.create(&PostParams::default(), &ing).await?;
    ensure!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref())
            == Some("skiff"),
        "defaulted class"
    );
    let patch = json!({"spec": {"rules": [{"host": "typed.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    ]}}]}});
    let patched = api
        .patch("typed", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    let hosts: Vec<String> = patched
        .spec
        .and_then(|s| s.rules)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    ensure!(hosts == ["typed.example"], "{hosts:?}");
    let listed = api.list(&ListParams::default()).await?;
    ensure!(listed.items.len() == 1, "one Ingress");
    let bad: Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "bad"}, "spec": {}
    }))?;
    let err = api
        .create(&PostParams::default(), &bad)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(
        err.contains("either `defaultBackend` or `rules` must be specified"),
        "{err}"
    );
    Ok(())
}
