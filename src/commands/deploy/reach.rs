//! What `skiff deploy` prints at the end: how to reach each Service it applied, and what each
//! Job printed.

use std::fmt::Write as _;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams, LogParams};

use super::apply::Applied;
use super::Cluster;

/// The most log a finished Job's pod shows here; `kubectl logs` has the rest.
const DEFAULT_JOB_LOG_BYTES: i64 = 16 * 1024;

pub async fn describe(cluster: &Cluster, applied: &[Applied]) -> Result<String> {
    let mut out = String::new();
    let pod_network = pod_network_on(cluster).await;
    for obj in applied {
        let ns = obj.namespace.as_deref().unwrap_or("default");
        match obj.kind.as_str() {
            "Service" => {
                let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
                let svc = api.get(&obj.name).await?;
                service(&mut out, &svc, ns, pod_network);
            }
            "Job" => job_logs(&mut out, cluster, ns, &obj.name).await?,
            _ => {}
        }
    }
    Ok(out)
}

/// Whether this cluster's nodes program Services (a node without CAP_NET_ADMIN reports
/// NetworkUnavailable, and cluster IPs do not answer there).
async fn pod_network_on(cluster: &Cluster) -> bool {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let Ok(nodes) = api.list(&ListParams::default()).await else {
        return true;
    };
    nodes.items.iter().any(|n| {
        !n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
            })
    })
}

fn service(out: &mut String, svc: &Service, ns: &str, pod_network: bool) {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &svc.spec else { return };
    let Some(port) = spec.ports.as_ref().and_then(|p| p.first()) else {
        return;
    };
    let suffix = |p: i32| {
        if p == 80 {
            String::new()
        } else {
            format!(":{p}")
        }
    };
    let _ = writeln!(out, "service/{name} in namespace {ns} is ready:");
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| *ip != "None" && pod_network)
    {
        let _ = writeln!(
            out,
            "  from this node:  curl http://{ip}{}/",
            suffix(port.port)
        );
    }
    if let Some(node_port) = port.node_port.filter(|_| pod_network) {
        let _ = writeln!(
            out,
            "  on every node:   curl http://NODE-ADDRESS:{node_port}/"
        );
    }
    let _ = writeln!(
        out,
        "  from a pod:      http://{name}.{ns}.svc.cluster.local{}/",
        suffix(port.port)
    );
    let _ = writeln!(
        out,
        "  from anywhere:   kubectl port-forward -n {ns} svc/{name} 8080:{}   then   curl http://localhost:8080/",
        port.port
    );
}

async fn job_logs(out: &mut String, cluster: &Cluster, ns: &str, job: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let pods = api
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    let _ = writeln!(
        out,
        "job/{job} in namespace {ns} completed; its output (kubectl logs job/{job}):"
    );
    let Some(pod) = pods
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .max_by_key(|p| p.metadata.creation_timestamp.clone())
    else {
        return Ok(());
    };
    let params = LogParams {
        limit_bytes: Some(DEFAULT_JOB_LOG_BYTES),
        ..LogParams::default()
    };
    let logs = api
        .logs(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await?;
    for line in logs.lines() {
        let _ = writeln!(out, "  {line}");
    }
    Ok(())
}
