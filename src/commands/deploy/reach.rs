//! What `skiff deploy` prints at the end: how to reach each Service it applied, and what each
//! Job printed.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, LogParams};
use tokio::time::Instant;

use super::apply::Applied;
use super::Cluster;

/// The most log a finished Job's pod shows here; `kubectl logs` has the rest.
const DEFAULT_JOB_LOG_BYTES: i64 = 16 * 1024;
/// How long a Service's ready workload may take to show up in its EndpointSlices (the
/// endpoints controller reacts within a second; more means the selector picks no ready pod).
const DEFAULT_ENDPOINTS_WAIT: Duration = Duration::from_secs(20);
const DEFAULT_ENDPOINTS_POLL: Duration = Duration::from_millis(200);

pub async fn describe(cluster: &Cluster, applied: &[Applied]) -> Result<String> {
    let mut out = String::new();
    let pod_network = pod_network_on(cluster).await;
    for obj in applied {
        let ns = obj.namespace.as_deref().unwrap_or("default");
        match obj.kind.as_str() {
            "Service" => {
                let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
                let svc = api.get(&obj.name).await?;
                if ready_endpoints(cluster, &svc, ns).await? {
                    service(&mut out, &svc, ns, pod_network);
                } else {
                    let _ = writeln!(
                        out,
                        "service/{name} in namespace {ns} has no ready endpoints: its selector picks \
                         no ready pod (kubectl get endpointslices -n {ns} -l kubernetes.io/service-name={name})",
                        name = obj.name
                    );
                }
            }
            "Job" => job_logs(&mut out, cluster, ns, &obj.name).await?,
            _ => {}
        }
    }
    Ok(out)
}

/// Waits until `svc` has a ready endpoint, so what is printed next answers at once (its nodes
/// program the Service from its EndpointSlices). A Service without a selector, or one scaled
/// to zero on purpose (Skiff's activator answers for it), does not wait.
async fn ready_endpoints(cluster: &Cluster, svc: &Service, ns: &str) -> Result<bool> {
    let selects = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    let at_zero = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("skiff.dev/activator"))
        .is_some_and(|mode| mode == "proxy");
    if !selects || at_zero {
        return Ok(true);
    }
    let name = svc.metadata.name.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let deadline = Instant::now() + DEFAULT_ENDPOINTS_WAIT;
    loop {
        let slices = api.list(&params).await?;
        let ready = slices
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true));
        if ready {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(DEFAULT_ENDPOINTS_POLL).await;
    }
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
