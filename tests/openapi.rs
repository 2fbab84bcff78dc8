//! `/openapi/v2` and `/openapi/v3` as the kubectl releases users run read them: each of kubectl
//! 1.27, 1.30 and 1.33 explains a field, creates, applies (`-f` and `-k`), diffs and autoscales.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, ensure, Context, Result};
use common::Skiff;

const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: hello:1.0
        ports:
        - containerPort: 8080
        env:
        - name: A
          value: "1"
        resources:
          requests: {cpu: 100m}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
"#;

const KUSTOMIZATION: &str = r#"resources:
- service.yaml
configMapGenerator:
- name: generated
  literals:
  - colour=blue
"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: kust
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

/// One kubectl release with a cache dir of its own, against one server.
struct Kubectl<'a> {
    s: &'a Skiff,
    bin: PathBuf,
    cache: tempfile::TempDir,
    ns: String,
}

impl<'a> Kubectl<'a> {
    fn new(s: &'a Skiff, version: &str) -> Result<Kubectl<'a>> {
        let bin = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"));
        ensure!(bin.is_file(), "{} is missing", bin.display());
        Ok(Kubectl {
            s,
            bin,
            cache: tempfile::tempdir()?,
            ns: format!("openapi-{}", version.replace('.', "-")),
        })
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        let bin = self.bin.to_str().context("kubectl path")?;
        let out = self
            .s
            .command(bin)
            .env("KUBECONFIG", self.s.kubeconfig())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .output()?;
        Ok(out)
    }

    /// Runs kubectl; its stdout and stderr, failing unless it exits 0.
    fn ok(&self, args: &[&str]) -> Result<(String, String)> {
        let out = self.run(args)?;
        let (stdout, stderr) = texts(&out);
        if !out.status.success() {
            bail!(
                "{} {} failed ({}):\n{stderr}\n{stdout}\nserver log tail:\n{}",
                self.bin.display(),
                args.join(" "),
                out.status,
                tail(&self.s.log())
            );
        }
        Ok((stdout, stderr))
    }

    fn path_arg(p: &Path) -> Result<&str> {
        p.to_str().context("non-UTF-8 path")
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// kubectl falls back silently (or with these warnings) when a document is missing or bad.
fn ensure_no_openapi_warning(what: &str, stderr: &str) -> Result<()> {
    for bad in [
        "error calculating patch from openapi",
        "failed to download openapi",
        "OpenAPI",
        "openapi",
    ] {
        ensure!(
            !stderr.contains(bad),
            "{what}: kubectl complained: {stderr}"
        );
    }
    Ok(())
}

fn flow(version: &str) -> Result<()> {
    ensure!(
        Path::new("/usr/bin/diff").is_file()
            || Command::new("diff").arg("--version").output().is_ok(),
        "kubectl diff needs the diff program"
    );
    let s = Skiff::control_plane()?;
    let k = Kubectl::new(&s, version)?;
    let ns = k.ns.as_str();

    // explain: from /openapi/v3 (the default since 1.27) and from /openapi/v2 (protobuf).
    let (out, err) = k.ok(&["explain", "deployment.spec.replicas"])?;
    ensure!(
        out.contains("replicas") && out.contains("<integer>") && out.contains("Deployment"),
        "kubectl {version} explain:\n{out}\n{err}"
    );
    let (out, _) = k.ok(&[
        "explain",
        "deployment.spec.replicas",
        "--output=plaintext-openapiv2",
    ])?;
    ensure!(
        out.contains("replicas") && out.contains("<integer>"),
        "kubectl {version} explain (v2):\n{out}"
    );
    let (out, _) = k.ok(&["explain", "pods.spec.containers.ports"])?;
    ensure!(
        out.contains("containerPort"),
        "kubectl {version} explain ports:\n{out}"
    );

    k.ok(&["create", "namespace", ns])?;

    // create -f (client-side validation or the server's fieldValidation, per version).
    let created = s.write(
        &format!("created-{version}.yaml"),
        &MANIFEST
            .replace("name: web", "name: made")
            .replace("web-config", "made-config"),
    )?;
    let (out, err) = k.ok(&["-n", ns, "create", "-f", Kubectl::path_arg(&created)?])?;
    ensure!(
        out.contains("deployment.apps/made created")
            && out.contains("configmap/made-config created"),
        "kubectl {version} create:\n{out}\n{err}"
    );
    // An unknown field is refused (strict validation is kubectl's default since 1.25).
    let bad = s.write(
        &format!("bad-{version}.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndataa:\n  a: b\n",
    )?;
    let out = k.run(&["-n", ns, "create", "-f", Kubectl::path_arg(&bad)?])?;
    let (_, err) = texts(&out);
    ensure!(
        !out.status.success() && err.contains("dataa"),
        "kubectl {version} accepted an unknown field: {err}"
    );

    // apply -f: creates, then patches (the patch is computed from the OpenAPI schemas).
    let manifest = s.write(&format!("app-{version}.yaml"), MANIFEST)?;
    let manifest_arg = Kubectl::path_arg(&manifest)?;
    let (out, err) = k.ok(&["-n", ns, "apply", "-f", manifest_arg])?;
    ensure!(
        out.contains("deployment.apps/web created") && out.contains("configmap/web-config created"),
        "kubectl {version} apply:\n{out}\n{err}"
    );
    ensure_no_openapi_warning("apply", &err)?;

    // diff after editing the manifest: exit code 1 and the changed lines.
    let edited = MANIFEST
        .replace("replicas: 2", "replicas: 3")
        .replace("greeting: hello", "greeting: hi");
    std::fs::write(&manifest, &edited)?;
    let out = k.run(&["-n", ns, "diff", "-f", manifest_arg])?;
    let (stdout, stderr) = texts(&out);
    ensure!(
        out.status.code() == Some(1),
        "kubectl {version} diff exited {}:\n{stdout}\n{stderr}",
        out.status
    );
    ensure!(
        stdout.contains("+  replicas: 3") && stdout.contains("-  replicas: 2"),
        "kubectl {version} diff:\n{stdout}"
    );
    ensure!(
        stdout.contains("+  greeting: hi"),
        "kubectl {version} diff:\n{stdout}"
    );

    let (out, err) = k.ok(&["-n", ns, "apply", "-f", manifest_arg])?;
    ensure!(
        out.contains("deployment.apps/web configured")
            && out.contains("configmap/web-config configured"),
        "kubectl {version} apply (edited):\n{out}\n{err}"
    );
    ensure_no_openapi_warning("apply (edited)", &err)?;
    let (out, _) = k.ok(&["-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[0].name} {.spec.template.spec.containers[0].ports[0].containerPort}"])?;
    ensure!(out == "3 A 8080", "kubectl {version}: after apply: {out}");
    // Nothing left to diff.
    let out = k.run(&["-n", ns, "diff", "-f", manifest_arg])?;
    ensure!(
        out.status.success(),
        "kubectl {version} diff after apply: {:?}",
        texts(&out)
    );

    // apply -k: a configMapGenerator and a resource.
    let dir = s.dir.path().join(format!("kust-{version}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("kustomization.yaml"), KUSTOMIZATION)?;
    std::fs::write(dir.join("service.yaml"), SERVICE)?;
    let (out, err) = k.ok(&["-n", ns, "apply", "-k", Kubectl::path_arg(&dir)?])?;
    ensure!(
        out.contains("service/kust created") && out.contains("configmap/generated-"),
        "kubectl {version} apply -k:\n{out}\n{err}"
    );
    ensure_no_openapi_warning("apply -k", &err)?;
    let (out, _) = k.ok(&["-n", ns, "get", "cm", "-o", "name"])?;
    ensure!(
        out.contains("configmap/generated-"),
        "kubectl {version}: {out}"
    );

    // autoscale.
    let (out, err) = k.ok(&[
        "-n",
        ns,
        "autoscale",
        "deployment",
        "web",
        "--min=1",
        "--max=3",
        "--cpu-percent=50",
    ])?;
    ensure!(
        out.contains("web autoscaled"),
        "kubectl {version} autoscale:\n{out}\n{err}"
    );
    let (out, _) = k.ok(&[
        "-n",
        ns,
        "get",
        "hpa",
        "web",
        "-o",
        "jsonpath={.spec.minReplicas} {.spec.maxReplicas}",
    ])?;
    ensure!(out == "1 3", "kubectl {version}: hpa: {out}");
    Ok(())
}

#[test]
fn kubectl_1_27() -> Result<()> {
    flow("1.27")
}

#[test]
fn kubectl_1_30() -> Result<()> {
    flow("1.30")
}

#[test]
fn kubectl_1_33() -> Result<()> {
    flow("1.33")
}
