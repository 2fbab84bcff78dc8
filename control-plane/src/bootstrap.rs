//! Objects every cluster starts with: the standard namespaces, the RuntimeClasses, the default
//! IngressClass and the `kubernetes` Service.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::api::admission::prepare_create;
use crate::api::request::Query;
use crate::api::resources;
use crate::api::{ApiError, ApiState};
use crate::store::{ObjectKey, Precondition, StoreError};

/// The RuntimeClass for WebAssembly pods.
pub const WASM_RUNTIME_CLASS: &str = "wasm";
/// The handler of the `wasm` RuntimeClass: a node agent's wasmtime runtime.
pub const WASM_HANDLER: &str = "wasmtime";
/// The label a node agent with the Wasm runtime puts on its Node.
pub const WASM_NODE_LABEL: &str = "skiff.dev/runtime-wasm";
/// The RuntimeClass for Linux container (OCI) pods.
pub const OCI_RUNTIME_CLASS: &str = "oci";
/// The handler of the `oci` RuntimeClass: containerd's runc runtime on a node agent.
pub const OCI_HANDLER: &str = "runc";
/// The label a node agent puts on its Node: `true` when it has containerd.
pub const OCI_NODE_LABEL: &str = "skiff.dev/runtime-oci";

/// The IngressClass whose Ingresses Skiff's ingress controller serves (the default class).
pub const INGRESS_CLASS: &str = "skiff";
/// `spec.controller` of the `skiff` IngressClass: any class naming it is Skiff's.
pub const INGRESS_CONTROLLER: &str = "skiff.dev/ingress";

pub const BOOTSTRAP_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn ensure(
    st: &ApiState,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
    obj: Value,
) -> Result<(), ApiError> {
    let def = resources::find_kind(api_version, kind)
        .ok_or_else(|| ApiError::internal(format!("bootstrap kind {kind} is not served")))?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let key = ObjectKey::new(&def.store_resource(), ns.unwrap_or(""), &name);
    if st
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .is_some()
    {
        return Ok(());
    }
    let prepared = prepare_create(st, def, ns, obj, &Query::default()).await?;
    match st.store.create(key, prepared.object).await {
        Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

pub async fn run(st: &ApiState, advertise: IpAddr, port: u16) -> Result<(), ApiError> {
    for ns in BOOTSTRAP_NAMESPACES {
        ensure(
            st,
            "v1",
            "Namespace",
            None,
            json!({"metadata": {"name": ns}}),
        )
        .await?;
    }
    // Pods with `runtimeClassName: wasm` run on wasmtime, on nodes whose agent offers it;
    // pods with `runtimeClassName: oci` run as containers, on nodes whose agent has containerd.
    for (class, handler, label) in [
        (WASM_RUNTIME_CLASS, WASM_HANDLER, WASM_NODE_LABEL),
        (OCI_RUNTIME_CLASS, OCI_HANDLER, OCI_NODE_LABEL),
    ] {
        ensure(
            st,
            "node.k8s.io/v1",
            "RuntimeClass",
            None,
            json!({
                "metadata": {"name": class},
                "handler": handler,
                "scheduling": {"nodeSelector": {label: "true"}},
            }),
        )
        .await?;
    }
    // Ingresses name it, or get it by DefaultIngressClass admission; `controllers/ingress.rs`
    // serves them. A class the user changed (or un-defaulted) is left as it is.
    ensure(
        st,
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        json!({
            "metadata": {
                "name": INGRESS_CLASS,
                "annotations": {crate::api::admission::ingress::DEFAULT_CLASS_ANNOTATION: "true"},
            },
            "spec": {"controller": INGRESS_CONTROLLER},
        }),
    )
    .await?;
    let first_ip = st.services.first_ip().to_string();
    ensure(
        st,
        "v1",
        "Service",
        Some("default"),
        json!({
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": first_ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
        }),
    )
    .await?;
    // Cluster DNS: every node's agent serves it and sends this address to its own server,
    // so the Service has no selector and no endpoints.
    let dns = json!({
        "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
        "spec": {"clusterIP": st.services.dns_ip().to_string(), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        ]},
    });
    if let Err(e) = ensure(st, "v1", "Service", Some("kube-system"), dns).await {
        // A user Service took the address before this server created kube-dns (an older
        // data dir): the cluster still runs, pods cannot reach DNS by its usual address.
        tracing::error!(error = %e, address = %st.services.dns_ip(), "cannot create the kube-system/kube-dns Service");
    }
    // The endpoints follow this server's address, which may change between starts.
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let key = ObjectKey::new("core/endpoints", "default", "kubernetes");
    match st
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    {
        None => ensure(st, "v1", "Endpoints", Some("default"), endpoints).await?,
        Some(current) => {
            let mut updated = current.clone();
            updated["subsets"] = endpoints["subsets"].clone();
            if updated != current {
                st.store
                    .update(key, updated, Precondition::default())
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            }
        }
    }
    Ok(())
}
