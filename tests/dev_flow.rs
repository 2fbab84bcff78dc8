//! The developer's path, end to end: `skiff new` → `skiff deploy` → a request answered by the
//! template, from an empty directory and a fresh `skiff server`; a component made without the
//! SDK deploys the same way; and the mistakes a newcomer makes are answered with what to do.
//!
//! The cluster runs in a network namespace of its own (its Services answer only there), so
//! `skiff deploy` runs there too. That namespace has no route out: what a build downloads
//! (crates) is fetched first, from the test's own namespace, as a developer's machine would have
//! it cached.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use common::net::{cluster_ip, fetch_until};
use common::{run_ok, Skiff};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// `skiff ARGS` in `dir`, inside the cluster's namespace, against its kubeconfig.
fn skiff_in(s: &Skiff, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = s.command(SKIFF);
    cmd.args(args)
        .current_dir(dir)
        .env("KUBECONFIG", s.kubeconfig())
        // No network in the cluster's namespace: cargo uses what `cargo fetch` got.
        .env("CARGO_NET_OFFLINE", "true");
    cmd
}

fn succeed(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let text = output_text(&out);
    if !out.status.success() {
        bail!("{what} failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

fn fail(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let text = output_text(&out);
    if out.status.success() {
        bail!("{what} succeeded but should have failed:\n{text}");
    }
    Ok(text)
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Downloads a Rust project's dependencies (here, where the network is) so its build works
/// offline in the cluster's namespace.
fn cargo_fetch(project: &Path) -> Result<()> {
    run_ok(
        Command::new("cargo")
            .args(["fetch", "--target", "wasm32-wasip2"])
            .current_dir(project),
    )?;
    Ok(())
}

/// `skiff new ARGS` in `dir`; returns the project directory.
fn new_project(dir: &Path, args: &[&str]) -> Result<PathBuf> {
    let out = succeed(
        Command::new(SKIFF).arg("new").args(args).current_dir(dir),
        &format!("skiff new {}", args.join(" ")),
    )?;
    assert!(out.contains("skiff deploy"), "says what to do next: {out}");
    Ok(dir.join(args[1]))
}

/// The ClusterIP URL `skiff deploy` printed for `svc`, checked against the Service.
fn printed_url(s: &Skiff, out: &str, svc: &str) -> Result<String> {
    let ip = cluster_ip(s, svc)?;
    let url = format!("http://{ip}/");
    assert!(
        out.contains(&format!("curl {url}")),
        "deploy prints how to reach {svc}: {out}"
    );
    assert!(
        out.contains(&format!(
            "kubectl port-forward -n default svc/{svc} 8080:80"
        )),
        "{out}"
    );
    Ok(url)
}

fn image_of(s: &Skiff, what: &str) -> Result<String> {
    s.ok(&[
        "get",
        what,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

#[test]
fn rust_templates_go_from_nothing_to_serving() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    let work = tempfile::tempdir()?;

    // http: new → deploy → curl.
    let demo = new_project(work.path(), &["http", "demo"])?;
    cargo_fetch(&demo)?;
    let out = succeed(&mut skiff_in(&s, &demo, &["deploy"]), "skiff deploy")?;
    assert!(out.contains("building demo (rust http)"), "{out}");
    assert!(
        out.contains("deployment.apps/demo: rolled out (1/1 available)"),
        "{out}"
    );
    let url = printed_url(&s, &out, "demo")?;
    fetch_until(&s, &url, "Hello from demo (rust)!\n")?;
    let image = image_of(&s, "deployment/demo")?;
    let tag = image.strip_prefix("demo:sha256-").context(image.clone())?;
    assert_eq!(tag.len(), 12, "{image}");
    let listed = succeed(&mut skiff_in(&s, &demo, &["image", "ls"]), "skiff image ls")?;
    assert!(listed.contains("demo") && listed.contains(tag), "{listed}");

    // Nothing changed: no build, the same image, still serving.
    let out = succeed(&mut skiff_in(&s, &demo, &["deploy"]), "skiff deploy again")?;
    assert!(
        out.contains("is up to date") && !out.contains("building"),
        "{out}"
    );
    assert_eq!(image_of(&s, "deployment/demo")?, image);

    // An edit: a new component, a new tag, a rollout to the new answer.
    let lib = demo.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib)?;
    std::fs::write(
        &lib,
        src.replace("Hello from demo (rust)!", "Hello again from demo!"),
    )?;
    let out = succeed(
        &mut skiff_in(&s, &demo, &["deploy"]),
        "skiff deploy after an edit",
    )?;
    assert!(out.contains("building demo"), "{out}");
    assert_ne!(image_of(&s, "deployment/demo")?, image);
    fetch_until(&s, &url, "Hello again from demo!\n")?;
    let logs = s.ok(&["logs", "deploy/demo"])?;
    assert!(
        logs.contains("GET /"),
        "the handler logs each request: {logs}"
    );

    // job: new → deploy → the Job completes and its output is shown.
    let job = new_project(work.path(), &["job", "report"])?;
    let out = succeed(&mut skiff_in(&s, &job, &["deploy"]), "skiff deploy (job)")?;
    assert!(out.contains("job.batch/report: complete"), "{out}");
    assert!(
        out.contains("report: hello from a Skiff job (rust)"),
        "{out}"
    );
    assert!(
        out.contains("report: running in namespace default"),
        "{out}"
    );
    assert!(out.contains("report: done"), "{out}");
    // A changed job is replaced (a Job's template cannot change) and runs again.
    let main = job.join("src/main.rs");
    let src = std::fs::read_to_string(&main)?;
    std::fs::write(&main, src.replace("report: done", "report: done twice"))?;
    let out = succeed(
        &mut skiff_in(&s, &job, &["deploy"]),
        "skiff deploy (changed job)",
    )?;
    assert!(out.contains("replacing job.batch/report"), "{out}");
    assert!(out.contains("report: done twice"), "{out}");
    Ok(())
}

#[test]
fn a_wasi_http_component_made_without_the_sdk_deploys_and_serves() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    let work = tempfile::tempdir()?;
    let project = work.path().join("wstd-hello");
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/projects/wstd-hello");
    std::fs::create_dir_all(project.join("src"))?;
    for file in ["Cargo.toml", "skiff.toml", "deploy.yaml", "src/main.rs"] {
        std::fs::copy(from.join(file), project.join(file))?;
    }
    cargo_fetch(&project)?;
    let out = succeed(
        &mut skiff_in(&s, &project, &["deploy"]),
        "skiff deploy (wstd)",
    )?;
    let url = printed_url(&s, &out, "wstd-hello")?;
    fetch_until(&s, &url, "Hello from plain wstd! path=/\n")?;
    let status = s.in_netns(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{url}teapot"),
        ],
    )?;
    assert_eq!(status, "418");
    // The image decided the runtime: no runtimeClassName in its YAML.
    let pods = s.json(&["get", "pods", "-l", "app=wstd-hello"])?;
    assert!(
        pods["items"][0]["spec"]["runtimeClassName"].is_null(),
        "{pods}"
    );
    Ok(())
}

#[test]
fn newcomer_mistakes_are_answered_with_the_fix() -> Result<()> {
    let work = tempfile::tempdir()?;
    let home = tempfile::tempdir()?;
    let skiff = |dir: &Path, args: &[&str]| {
        let mut c = Command::new(SKIFF);
        c.args(args)
            .current_dir(dir)
            .env_remove("KUBECONFIG")
            .env("HOME", home.path());
        c
    };

    // A name that cannot name a Deployment.
    let err = fail(
        &mut skiff(work.path(), &["new", "http", "My_App"]),
        "skiff new My_App",
    )?;
    assert!(
        err.contains("not a valid name") && err.contains("\"my-app\""),
        "{err}"
    );

    // An existing directory is kept unless --force.
    std::fs::create_dir(work.path().join("taken"))?;
    std::fs::write(work.path().join("taken/notes.txt"), "mine")?;
    let err = fail(
        &mut skiff(work.path(), &["new", "http", "taken"]),
        "skiff new into a dir",
    )?;
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    succeed(
        &mut skiff(work.path(), &["new", "http", "taken", "--force"]),
        "skiff new --force",
    )?;
    assert_eq!(
        std::fs::read_to_string(work.path().join("taken/notes.txt"))?,
        "mine"
    );
    assert!(work.path().join("taken/skiff.toml").is_file());

    // Not in a project.
    let err = fail(
        &mut skiff(home.path(), &["build"]),
        "skiff build outside a project",
    )?;
    assert!(
        err.contains("skiff.toml not found") && err.contains("skiff new"),
        "{err}"
    );

    // No cluster: where it looked for a kubeconfig.
    let project = work.path().join("taken");
    let err = fail(
        &mut skiff(&project, &["deploy"]),
        "skiff deploy without a kubeconfig",
    )?;
    let kube = home.path().join(".kube/config");
    assert!(
        err.contains("no kubeconfig found") && err.contains(&kube.display().to_string()),
        "{err}"
    );
    // A kubeconfig whose server is not there: which server and which kubeconfig.
    let kubeconfig = work.path().join("gone.yaml");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n",
    )?;
    let err = fail(
        skiff(&project, &["deploy"]).env("KUBECONFIG", &kubeconfig),
        "skiff deploy to a server that is down",
    )?;
    assert!(
        err.contains("cannot reach the cluster at https://127.0.0.1:1")
            && err.contains(&kubeconfig.display().to_string())
            && err.contains("skiff server"),
        "{err}"
    );

    // A missing toolchain is named with the command that installs it.
    let py = new_project(work.path(), &["http", "pyapp", "--lang", "python"])?;
    let bare_path = "/usr/bin:/bin";
    let err = fail(
        skiff(&py, &["build"]).env("PATH", bare_path),
        "skiff build without componentize-py",
    )?;
    assert!(
        err.contains("componentize-py") && err.contains("pip install componentize-py"),
        "{err}"
    );
    let rust = new_project(work.path(), &["job", "rusty"])?;
    let err = fail(
        skiff(&rust, &["build"]).env("PATH", bare_path),
        "skiff build without cargo",
    )?;
    assert!(err.contains("`cargo`") && err.contains("rustup"), "{err}");
    Ok(())
}
