//! The samples that mix Wasm and Linux containers, end to end: `mixed-app` (a Wasm frontend
//! calling a container backend through its Service) and `sidecar` (a Wasm app and a busybox
//! sidecar in one pod). Each applies the sample's own YAML files from disk, in a cluster whose
//! node runs containerd and a pod network inside a network namespace of its own; traffic goes
//! only inside it. Without containerd they skip, unless SKIFF_REQUIRE_CONTAINERD=1.

mod common;
#[path = "samples/support.rs"]
mod support;

use anyhow::{Context, Result};
use common::net::{cluster_ip, fetch};
use common::{guest, wait_for, Skiff};
use serde_json::Value;
use support::{apply_sample, request, rollout};

/// A cluster with containerd and a pod network, busybox imported as the samples' READMEs say.
fn container_cluster() -> Result<Option<Skiff>> {
    if !common::containerd_available() {
        return Ok(None);
    }
    let s = Skiff::start_with_containerd()?;
    let tar = common::busybox::layout_tarball(s.data_dir())?;
    s.import(&tar, "busybox:1.35")?;
    Ok(Some(s))
}

const INVENTORY_PAGE: &str = "Inventory of warehouse north-1 (from the container backend):
apples: 12
pears: 4
plums: 30
total: 46
";

#[test]
fn mixed_app_frontend_renders_the_container_backend_through_its_service() -> Result<()> {
    let Some(s) = container_cluster()? else {
        return Ok(());
    };
    s.import(&guest("mixed_app")?, "mixed-app:v1")?;
    apply_sample(&s, "mixed-app", "backend.yaml")?;
    apply_sample(&s, "mixed-app", "frontend.yaml")?;
    rollout(&s, "deployment/inventory")?;
    rollout(&s, "deployment/frontend")?;

    // The backend is a container pod; the frontend's pods are Wasm.
    let backend = s.json(&["get", "pods", "-l", "app=inventory"])?;
    assert!(
        backend["items"][0]["spec"]["runtimeClassName"].is_null(),
        "{backend}"
    );

    let vip = cluster_ip(&s, "frontend")?;
    // Right after rollout the node may still be programming the backend's endpoint.
    let page = wait_for("the frontend's page with the backend's data", || {
        Ok(fetch(&s, &format!("http://{vip}/")).ok())
    })?;
    assert_eq!(page, INVENTORY_PAGE);

    let api: Value = serde_json::from_str(&fetch(&s, &format!("http://{vip}/api/inventory"))?)?;
    assert_eq!(api["warehouse"], "north-1", "{api}");
    assert_eq!(api["total"], 46, "{api}");
    assert_eq!(api["items"][2]["name"], "plums", "{api}");
    assert_eq!(
        api["source"], "http://inventory.default.svc.cluster.local/inventory.json",
        "{api}"
    );
    let logs = s.ok(&["logs", "-l", "app=frontend", "--prefix"])?;
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""msg":"inventory fetched""#)
                && l.contains(r#""warehouse":"north-1""#)),
        "{logs}"
    );
    let httpd_logs = s.ok(&["logs", "deployment/inventory"])?;
    // busybox httpd -v logs each answer it sent.
    assert!(httpd_logs.contains("response:200"), "{httpd_logs}");

    // Without the backend the frontend answers 502 with a generic body (the SDK hides the
    // cause from clients); the cause is in its log as a structured error line.
    s.ok(&["scale", "deployment/inventory", "--replicas=0"])?;
    let (code, body) = wait_for("a 502 once the backend is gone", || {
        let (code, body) = request(&s, "GET", &format!("http://{vip}/"), None)?;
        Ok((code == 502).then_some((code, body)))
    })?;
    assert_eq!((code, body.as_str()), (502, "bad gateway\n"));
    let logs = s.ok(&["logs", "-l", "app=frontend", "--prefix"])?;
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""level":"error""#) && l.contains("inventory")),
        "{logs}"
    );
    Ok(())
}

/// The heartbeat number in `from …: beat N at TIME`.
fn beat(body: &str) -> Result<u64> {
    let n = body
        .split_once("beat ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .with_context(|| format!("no heartbeat in {body:?}"))?;
    Ok(n.parse()?)
}

#[test]
fn sidecar_wasm_app_serves_what_its_container_sidecar_writes() -> Result<()> {
    let Some(s) = container_cluster()? else {
        return Ok(());
    };
    s.import(&guest("sidecar")?, "sidecar:v1")?;
    apply_sample(&s, "sidecar", "deploy.yaml")?;
    rollout(&s, "deployment/sidecar")?;

    // One pod, two containers: the Wasm app and the busybox sidecar.
    let pods = s.json(&["get", "pods", "-l", "app=sidecar"])?;
    let statuses = pods["items"][0]["status"]["containerStatuses"]
        .as_array()
        .context("containerStatuses")?;
    assert_eq!(statuses.len(), 2, "{pods}");
    assert!(statuses.iter().all(|c| c["ready"] == true), "{pods}");

    let vip = cluster_ip(&s, "sidecar")?;
    // Through the shared emptyDir: the file the sidecar rewrites every 2 s.
    let first = wait_for("the heartbeat through the shared volume", || {
        Ok(fetch(&s, &format!("http://{vip}/"))
            .ok()
            .filter(|b| b.starts_with("from the shared volume: beat ")))
    })?;
    let n = beat(&first)?;
    // It moves on: the sidecar keeps writing and the Wasm app reads the new file.
    let later = wait_for("a later heartbeat", || {
        let body = fetch(&s, &format!("http://{vip}/"))?;
        Ok((beat(&body)? > n).then_some(body))
    })?;
    assert!(later.ends_with('\n'), "{later:?}");
    // Through the pod's localhost: the sidecar's httpd on 127.0.0.1:9000.
    let local = wait_for("the heartbeat through localhost:9000", || {
        Ok(fetch(&s, &format!("http://{vip}/localhost"))
            .ok()
            .filter(|b| b.starts_with("from localhost:9000: beat ")))
    })?;
    beat(&local)?;
    let (code, body) = request(&s, "GET", &format!("http://{vip}/nothing"), None)?;
    assert_eq!(code, 404, "{body}");
    let logs = s.ok(&["logs", "deployment/sidecar", "-c", "app"])?;
    assert!(logs.contains("GET /localhost"), "{logs}");
    Ok(())
}
