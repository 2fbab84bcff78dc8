//! kpt (the machine image's, beside its gcloud SDK) manages a package with its inventory:
//! `kpt live init` → `apply` (installing its ResourceGroup CRD) → `status` → `destroy`.
//! It exercises CRDs, server-side apply, discovery, OpenAPI and status polling together.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{bail, ensure, Result};
use common::Skiff;

const PACKAGE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: kpt-config
  namespace: default
data:
  greeting: hello
---
apiVersion: v1
kind: Service
metadata:
  name: kpt-svc
  namespace: default
spec:
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kpt-idle
  namespace: default
spec:
  replicas: 0
  selector:
    matchLabels: {app: kpt-idle}
  template:
    metadata:
      labels: {app: kpt-idle}
    spec:
      containers:
      - name: c
        image: busybox
"#;

fn kpt(s: &Skiff, args: &[&str]) -> Result<Output> {
    Ok(Command::new("kpt")
        .args(args)
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.data_dir())
        .output()?)
}

fn kpt_ok(s: &Skiff, args: &[&str]) -> Result<String> {
    let out = kpt(s, args)?;
    if !out.status.success() {
        bail!(
            "kpt {} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn kpt_live_init_apply_status_destroy() -> Result<()> {
    if Command::new("kpt").arg("version").output().is_err() {
        bail!("kpt is not on PATH (the machine image ships it with the gcloud SDK)");
    }
    let s = Skiff::control_plane()?;
    let pkg = s.data_dir().join("pkg");
    std::fs::create_dir_all(&pkg)?;
    std::fs::write(pkg.join("resources.yaml"), PACKAGE)?;
    std::fs::write(
        pkg.join("Kptfile"),
        "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: pkg\n",
    )?;
    let dir = path_str(&pkg);
    kpt_ok(&s, &["live", "init", dir, "--namespace", "default"])?;
    let applied = kpt_ok(&s, &["live", "apply", dir, "--reconcile-timeout=2m"])?;
    ensure!(
        applied.contains("apply result: 3 attempted, 3 successful"),
        "{applied}"
    );
    ensure!(
        applied.contains("reconcile result: 3 attempted, 3 successful"),
        "{applied}"
    );
    // The inventory is a ResourceGroup custom resource naming what was applied.
    let groups = s.json(&["get", "resourcegroups.kpt.dev", "-n", "default"])?;
    let inventory = groups["items"]
        .as_array()
        .and_then(|i| i.first())
        .cloned()
        .unwrap_or_default();
    let listed = inventory["spec"]["resources"]
        .as_array()
        .map_or(0, Vec::len);
    ensure!(listed == 3, "inventory: {inventory}");
    let status = kpt_ok(&s, &["live", "status", dir])?;
    ensure!(status.matches("Current").count() >= 3, "{status}");
    let cm = s.json(&["get", "cm", "kpt-config"])?;
    ensure!(cm["data"]["greeting"] == "hello", "{cm}");

    let destroyed = kpt_ok(&s, &["live", "destroy", dir])?;
    ensure!(
        destroyed.contains("delete result: 3 attempted, 3 successful"),
        "{destroyed}"
    );
    let left = s.ok(&["get", "cm,svc,deploy", "-o", "name"])?;
    ensure!(
        !left.contains("kpt-config") && !left.contains("kpt-svc") && !left.contains("kpt-idle"),
        "{left}"
    );
    Ok(())
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
