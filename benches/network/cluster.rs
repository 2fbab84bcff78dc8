//! The network benchmark's cluster: the pods it creates and deletes, and the container
//! backend it builds for them (its release `skiff server` is `support::BenchNode`'s).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use super::support::run_ok;
use super::*;

// ---------------------------------------------------------------------------------------------
// Pods.

pub(crate) fn is_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Running")
}

pub(crate) fn wasm_pod(name: &str, labels: serde_json::Value) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "runtimeClassName": "wasm", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "hello", "image": "hello-wasm:v1",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 8080}]}]
        },
    }))?)
}

/// The container backend: [`KEEPALIVE_HTTPD`] (compiled into `bin_dir` by
/// [`build_keepalive_httpd`]) in a busybox container, mounted from the node.
pub(crate) fn container_pod(name: &str, labels: serde_json::Value, bin_dir: &Path) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "runtimeClassName": "oci", "terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "bin", "hostPath": {"path": bin_dir}}],
            "containers": [{"name": "httpd", "image": "busybox:1.35",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/bench/keepalive_httpd", "80"],
                            "volumeMounts": [{"name": "bin", "mountPath": "/bench", "readOnly": true}],
                            "ports": [{"containerPort": 80}]}]
        },
    }))?)
}

/// The container backend's source (std only).
pub(crate) const KEEPALIVE_HTTPD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/fixtures/keepalive_httpd.rs"
);

/// Compiles [`KEEPALIVE_HTTPD`] with rustc, statically linked (the busybox image has no C
/// library), into `bin_dir/keepalive_httpd`.
pub(crate) fn build_keepalive_httpd(bin_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(bin_dir)?;
    run_ok(
        Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-o",
            ])
            .arg(bin_dir.join("keepalive_httpd"))
            .arg(KEEPALIVE_HTTPD),
    )
    .context("compiling the container backend (benches/fixtures/keepalive_httpd.rs)")?;
    Ok(())
}

/// Creates the pod and waits (by watch) until it is Ready; returns the elapsed time.
pub(crate) async fn create_until_ready(pods: &Api<Pod>, pod: &Pod) -> Result<Duration> {
    super::support::create_until_ready(pods, pod, WAIT).await
}

/// Deletes the pods matching `selector` (all pods when it is empty) and waits until they are
/// gone from the API.
pub(crate) async fn delete_pods(pods: &Api<Pod>, selector: &str) -> Result<()> {
    let lp = if selector.is_empty() {
        ListParams::default()
    } else {
        ListParams::default().labels(selector)
    };
    pods.delete_collection(&DeleteParams::default(), &lp)
        .await?;
    let deadline = Instant::now() + LONG_WAIT;
    loop {
        let left = pods.list_metadata(&lp).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{LONG_WAIT:?} after deleting them, {left} pods ({selector}) are still there");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
