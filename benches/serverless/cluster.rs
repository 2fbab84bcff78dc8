//! The serverless benchmark's cluster: the scale-to-zero Deployments and Services it creates,
//! and the waits for "at zero, the activator in front" (its release `skiff server` is
//! `support::BenchNode`'s).

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use super::support::{run_ok, Kubectl};
use super::*;

// ---------------------------------------------------------------------------------------------
// The workloads.

/// The annotations of every scale-to-zero Deployment here: to zero `SCALE_DOWN_DELAY` after
/// its last request, and none of its pods before the first request.
fn scale_annotations() -> serde_json::Value {
    json!({
        "autoscaling.skiff.dev/min-scale": "0",
        "autoscaling.skiff.dev/initial-scale": "0",
        "autoscaling.skiff.dev/scale-down-delay": DEFAULT_SCALE_DOWN_DELAY,
    })
}

/// The pod template's container of each runtime (listening on 8080).
fn container(kind: Kind) -> serde_json::Value {
    match kind {
        Kind::Wasm => json!({
            "name": "hello", "image": "hello-wasm:v1", "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080}],
        }),
        // No readiness probe: Ready as soon as httpd's process runs (the activator retries a
        // refused connect every 50 ms), as a probe period would add up to a period per start.
        Kind::Container => json!({
            "name": "httpd", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "mkdir -p /www && echo served-by-httpd > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "ports": [{"containerPort": 8080}],
        }),
    }
}

/// A scale-to-zero Deployment `name` of `kind` and its ClusterIP Service (port 80 → 8080).
pub(crate) fn app(kind: Kind, name: &str) -> [serde_json::Value; 2] {
    let labels = json!({"app": name, "bench": BENCH_LABEL});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"bench": BENCH_LABEL},
                     "annotations": scale_annotations()},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "runtimeClassName": kind.runtime_class(),
                    "terminationGracePeriodSeconds": 0,
                    "containers": [container(kind)],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"bench": BENCH_LABEL}},
        "spec": {"selector": {"app": name},
                 "ports": [{"port": SERVICE_PORT, "targetPort": 8080}]},
    });
    [deployment, service]
}

/// Creates the cold-start app of `kind` in `default` with `kubectl apply`: a YAML file of two
/// documents, each a JSON object (JSON is YAML; the leading comment keeps kubectl from reading
/// the file as a single JSON document).
pub(crate) fn apply_app(kubectl: &Kubectl, kind: Kind) -> Result<()> {
    let [d, s] = app(kind, kind.app());
    let yaml = format!("# benches/serverless.rs: {}\n{d}\n---\n{s}\n", kind.app());
    kubectl.apply(&format!("{}.yaml", kind.app()), &yaml)?;
    Ok(())
}

/// The ClusterIP of Service `name`.
pub(crate) async fn cluster_ip(services: &Api<Service>, name: &str) -> Result<String> {
    services
        .get(name)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .filter(|ip| !ip.is_empty() && ip != "None")
        .with_context(|| format!("Service {name} has no clusterIP"))
}

pub(crate) fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

// ---------------------------------------------------------------------------------------------
// The node's rules.

/// The ClusterIPs whose port `SERVICE_PORT` the node's rules send to the activator now (the
/// elements `IP . tcp . PORT : goto activator` of the `service-ips` map in table `ip skiff`).
pub(crate) fn activator_ips() -> HashSet<String> {
    let map = run_ok(Command::new("nft").args(["list", "map", "ip", "skiff", "service-ips"]))
        .unwrap_or_default();
    let port = format!(". tcp . {SERVICE_PORT} : goto activator");
    map.split([',', '{', '}', '\n'])
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| e.ends_with(&port))
        .filter_map(|e| e.split(' ').next().map(str::to_string))
        .collect()
}

/// Whether the node's rules send `ip`:`SERVICE_PORT` to the activator now.
pub(crate) fn rules_point_at_activator(ip: &str) -> bool {
    activator_ips().contains(ip)
}

/// Waits until the node's rules send `ip` to the activator.
pub(crate) async fn wait_rules(ip: &str, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    while !rules_point_at_activator(ip) {
        if Instant::now() > deadline {
            bail!("the node's rules did not send {ip}:{SERVICE_PORT} to the activator within {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// At zero.

/// Whether `app` in `ns` is at zero now: `spec.replicas` 0, no pod left (terminating ones
/// included), its Service marked `skiff.dev/activator: proxy`.
async fn at_zero(client: &kube::Client, ns: &str, app: &str) -> Result<bool> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let replicas = deployments.get(app).await?.spec.and_then(|s| s.replicas);
    if replicas != Some(0) {
        return Ok(false);
    }
    let lp = ListParams::default().labels(&format!("app={app}"));
    if !pods.list_metadata(&lp).await?.items.is_empty() {
        return Ok(false);
    }
    let svc = services.get(app).await?;
    Ok(annotation(&svc, ACTIVATOR_ANNOTATION) == Some("proxy"))
}

/// Waits until every app of `apps` (namespace, name, ClusterIP) is at zero and the node's
/// rules send its ClusterIP to the activator, then `SETTLE`s; how long that took.
pub(crate) async fn wait_zero(
    client: &kube::Client,
    apps: &[(&str, &str, &str)],
) -> Result<Duration> {
    let t = Instant::now();
    let deadline = t + ZERO_WAIT;
    for (ns, app, ip) in apps {
        while !at_zero(client, ns, app).await? {
            if Instant::now() > deadline {
                bail!(
                    "{ns}/{app} not at zero (no pods, Service in proxy mode) within {ZERO_WAIT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_rules(ip, deadline.saturating_duration_since(Instant::now())).await?;
    }
    tokio::time::sleep(DEFAULT_SETTLE).await;
    Ok(t.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Cleanup.

/// Deletes every Deployment and Service this benchmark made (label `bench`) in `namespaces`
/// and waits until their pods are gone from the API.
pub(crate) async fn delete_all(client: &kube::Client, namespaces: &[&str]) -> Result<()> {
    let lp = ListParams::default().labels(&format!("bench={BENCH_LABEL}"));
    for ns in namespaces {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        deployments
            .delete_collection(&DeleteParams::default(), &lp)
            .await?;
        services
            .delete_collection(&DeleteParams::default(), &lp)
            .await?;
    }
    let deadline = Instant::now() + LONG_WAIT;
    loop {
        let mut left = 0;
        for ns in namespaces {
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            left += pods.list_metadata(&lp).await?.items.len();
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{LONG_WAIT:?} after deleting their Deployments, {left} pods are still there");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
