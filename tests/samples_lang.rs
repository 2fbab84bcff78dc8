//! The Python and JavaScript samples (samples/python-hello, samples/js-hello) and the Python and
//! JavaScript templates of `skiff new`, end to end: built with their real toolchains
//! (componentize-py from PyPI, componentize-js from npm, installed by the test under cargo's
//! target tmp dir), run by a fresh `skiff server` with a pod network, and asked over their
//! Service's ClusterIP from the node.
//!
//! The cluster's network namespace has no route out, so what a build downloads (npm packages) is
//! fetched first from the test's own namespace, as a developer's machine would have it cached.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::net::{cluster_ip, fetch, fetch_until};
use common::toolchains::{self, path_with};
use common::{run_ok, wait_for_within, Skiff};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// How long a rollout may take: the node compiles a 14–18 MiB component first (tens of seconds
/// in a debug build on a busy machine).
const ROLLOUT: Duration = Duration::from_secs(300);

/// The build command samples/python-hello/README.md documents.
const PYTHON_HELLO_BUILD: &str =
    "componentize-py -d wit -w service componentize app -o python-hello.wasm";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `src` (without build outputs) in a fresh temp dir, so builds leave the checkout alone.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str == "node_modules" || name_str == "__pycache__" || name_str.ends_with(".wasm") {
            continue;
        }
        let (from, to) = (entry.path(), dst.join(&name));
        if entry.file_type()?.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Runs `sh -c command` in `dir` with `bin` first on PATH; reports how long it took.
fn build(dir: &Path, bin: &Path, command: &str) -> Result<()> {
    let started = Instant::now();
    run_ok(
        Command::new("sh")
            .args(["-c", command])
            .current_dir(dir)
            .env("PATH", path_with(bin)?),
    )?;
    eprintln!(
        "built `{command}` in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits until Deployment `name` has a ready replica.
fn wait_rolled_out(s: &Skiff, name: &str) -> Result<()> {
    let started = Instant::now();
    wait_for_within(&format!("deployment {name} ready"), ROLLOUT, || {
        let d = s.json(&["get", "deploy", name, "-o", "json"])?;
        Ok((d["status"]["readyReplicas"].as_u64() == Some(1)).then_some(()))
    })
    .with_context(|| pods_state(s, name))?;
    eprintln!("{name} ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The pods of `app` with their states, for failure messages.
fn pods_state(s: &Skiff, app: &str) -> String {
    s.ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "yaml"])
        .unwrap_or_else(|e| format!("(cannot list the pods: {e})"))
}

/// The status code and body of GET `url` from the node, whatever the status.
fn get_any(s: &Skiff, url: &str) -> Result<(u16, String)> {
    let out = s.in_netns(
        "curl",
        &["-sS", "--max-time", "5", "-w", "\n%{http_code}", url],
    )?;
    let (body, code) = out.rsplit_once('\n').context("curl printed no status")?;
    Ok((code.trim().parse()?, body.to_string()))
}

/// Asserts what a hello sample (python-hello or js-hello) answers through its Service, and that
/// it logged the requests.
fn check_hello_sample(s: &Skiff, name: &str, language: &str) -> Result<()> {
    let ip = cluster_ip(s, name)?;
    let json = |text: &str| -> Result<serde_json::Value> {
        serde_json::from_str(text).with_context(|| format!("{name} answered {text:?}"))
    };
    // The Service's rules follow its endpoints within moments of the rollout.
    fetch_until(s, &format!("http://{ip}/healthz"), "ok")?;
    let root = json(&fetch(s, &format!("http://{ip}/"))?)?;
    assert_eq!(root["service"], name, "{root}");
    assert_eq!(root["language"], language, "{root}");
    assert_eq!(root["greeting"], "Hello from a ConfigMap", "{root}");
    assert_eq!(root["namespace"], "default", "{root}");
    let hello = json(&fetch(s, &format!("http://{ip}/hello/Ada"))?)?;
    assert_eq!(hello["message"], "Hello from a ConfigMap, Ada!", "{hello}");
    let (code, body) = get_any(s, &format!("http://{ip}/no/such/page"))?;
    assert_eq!(code, 404, "{body}");
    assert_eq!(json(&body)?["error"], "no route for /no/such/page");
    assert_eq!(fetch(s, &format!("http://{ip}/healthz"))?, "ok");
    let logs = s.ok(&["logs", &format!("deploy/{name}")])?;
    let logged: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for (path, status) in [("/hello/Ada", 200), ("/no/such/page", 404)] {
        assert!(
            logged
                .iter()
                .any(|l| l["path"] == path && l["status"] == status),
            "{name} logs {path} {status}: {logs}"
        );
    }
    Ok(())
}

/// Imports `wasm` as `<name>:v1` and applies the sample's deploy.yaml from the checkout.
fn deploy_sample(s: &Skiff, name: &str, wasm: &Path) -> Result<()> {
    let started = Instant::now();
    s.import(wasm, &format!("{name}:v1"))?;
    eprintln!("imported {name} in {:.1}s", started.elapsed().as_secs_f64());
    let yaml = repo().join("samples").join(name).join("deploy.yaml");
    s.ok(&["apply", "-f", yaml.to_str().context("path")?])?;
    wait_rolled_out(s, name)
}

#[test]
fn python_hello_sample_serves_json_with_its_configmap_greeting() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let readme = std::fs::read_to_string(repo().join("samples/python-hello/README.md"))?;
    assert!(
        readme.contains(PYTHON_HELLO_BUILD),
        "the README documents the build"
    );
    let bin = toolchains::componentize_py()?;
    let work = tempfile::tempdir()?;
    copy_tree(&repo().join("samples/python-hello"), work.path())?;
    build(work.path(), &bin, PYTHON_HELLO_BUILD)?;

    let s = Skiff::start_networked()?;
    deploy_sample(&s, "python-hello", &work.path().join("python-hello.wasm"))?;
    check_hello_sample(&s, "python-hello", "python")
}

#[test]
fn js_hello_sample_serves_json_with_its_configmap_greeting() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let bin = toolchains::componentize_js()?;
    let work = tempfile::tempdir()?;
    copy_tree(&repo().join("samples/js-hello"), work.path())?;
    // The build is package.json's, as the README runs it (`npm run build`).
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("package.json"))?)?;
    let script = package["scripts"]["build"]
        .as_str()
        .context("package.json has no build script")?;
    for (dep, wanted) in [
        (
            "@bytecodealliance/componentize-js",
            toolchains::COMPONENTIZE_JS,
        ),
        ("@bytecodealliance/jco", toolchains::JCO),
        ("@bytecodealliance/preview2-shim", toolchains::PREVIEW2_SHIM),
    ] {
        let pinned = package["devDependencies"][dep].as_str().unwrap_or("");
        ensure!(
            pinned == wanted,
            "package.json pins {dep} {pinned:?}, the test installs {wanted}"
        );
    }
    build(work.path(), &bin, script)?;

    let s = Skiff::start_networked()?;
    deploy_sample(&s, "js-hello", &work.path().join("js-hello.wasm"))?;
    check_hello_sample(&s, "js-hello", "javascript")
}

/// `skiff ARGS` in `dir`, inside the cluster's namespace, against its kubeconfig, with `bin`
/// first on PATH.
fn skiff_in(s: &Skiff, dir: &Path, bin: &Path, args: &[&str]) -> Result<String> {
    let started = Instant::now();
    let out = s
        .command(SKIFF)
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", s.kubeconfig())
        .env("PATH", path_with(bin)?)
        .output()
        .with_context(|| format!("running skiff {}", args.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("skiff {} failed ({}):\n{text}", args.join(" "), out.status);
    }
    eprintln!(
        "skiff {} in {}: {:.1}s",
        args.join(" "),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(text)
}

/// `skiff new TEMPLATE NAME --lang LANG` in `dir`; returns the project directory.
fn new_project(dir: &Path, template: &str, name: &str, lang: &str) -> Result<PathBuf> {
    run_ok(
        Command::new(SKIFF)
            .args(["new", template, name, "--lang", lang])
            .current_dir(dir),
    )?;
    let project = dir.join(name);
    for file in ["skiff.toml", "README.md", ".gitignore"] {
        ensure!(project.join(file).is_file(), "{lang} {template}: no {file}");
    }
    Ok(project)
}

/// A job template's Job completed and printed its two lines.
fn check_job(s: &Skiff, name: &str, language: &str) -> Result<()> {
    wait_for_within(&format!("job {name} complete"), ROLLOUT, || {
        let j = s.json(&["get", "job", name, "-o", "json"])?;
        ensure!(
            j["status"]["failed"].as_u64().unwrap_or(0) == 0,
            "job {name} failed: {}\n{}",
            j["status"],
            pods_state(s, name)
        );
        Ok((j["status"]["succeeded"].as_u64() == Some(1)).then_some(()))
    })?;
    let logs = s.ok(&["logs", &format!("job/{name}")])?;
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{name}: hello from a Skiff job ({language})"),
            format!("{name}: done")
        ],
        "{logs}"
    );
    Ok(())
}

/// An http template's Service answers the template's greeting and health check, and its pod
/// logged the requests.
fn check_http(s: &Skiff, name: &str, language: &str) -> Result<()> {
    let ip = cluster_ip(s, name)?;
    fetch_until(
        s,
        &format!("http://{ip}/"),
        &format!("Hello from {name} ({language})!\n"),
    )?;
    assert_eq!(fetch(s, &format!("http://{ip}/healthz"))?, "ok");
    let headers = s.in_netns(
        "curl",
        &[
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("http://{ip}/x"),
        ],
    )?;
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{headers}"
    );
    let logs = s.ok(&["logs", &format!("deploy/{name}")])?;
    assert!(logs.lines().any(|l| l == "GET /x"), "{logs}");
    Ok(())
}

#[test]
fn python_templates_go_from_nothing_to_serving() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let bin = toolchains::componentize_py()?;
    let work = tempfile::tempdir()?;
    let s = Skiff::start_networked()?;
    let web = new_project(work.path(), "http", "pyweb", "python")?;
    skiff_in(&s, &web, &bin, &["deploy", "--timeout", "300s"])?;
    wait_rolled_out(&s, "pyweb")?;
    check_http(&s, "pyweb", "python")?;
    let job = new_project(work.path(), "job", "pyjob", "python")?;
    skiff_in(&s, &job, &bin, &["deploy", "--timeout", "300s"])?;
    check_job(&s, "pyjob", "python")
}

#[test]
fn js_templates_go_from_nothing_to_serving() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    toolchains::node_toolchain()?;
    // The npm packages come from the npm registry, reached from the test's namespace (the
    // cluster's has no route out); `skiff deploy`'s own `npm install` then finds them current.
    let bin = toolchains::componentize_js()?;
    let work = tempfile::tempdir()?;
    let web = new_project(work.path(), "http", "jsweb", "js")?;
    let job = new_project(work.path(), "job", "jsjob", "js")?;
    for dir in [&web, &job] {
        let started = Instant::now();
        run_ok(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(dir),
        )?;
        eprintln!(
            "npm install in {}: {:.1}s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let s = Skiff::start_networked()?;
    skiff_in(&s, &web, &bin, &["deploy", "--timeout", "300s"])?;
    wait_rolled_out(&s, "jsweb")?;
    check_http(&s, "jsweb", "javascript")?;
    skiff_in(&s, &job, &bin, &["deploy", "--timeout", "300s"])?;
    check_job(&s, "jsjob", "javascript")
}
