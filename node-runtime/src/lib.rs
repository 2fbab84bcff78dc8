//! Skiff's node runtime: the agent that registers a node with the control plane (through its
//! API only, like any remote client) and runs the pods bound to it.
//!
//! - [`agent`]: Node registration and Lease, pod workers (pull, start, restart, probe,
//!   status, deletion), the log endpoint.
//! - [`runtime`]: the runtimes a node can run a container with.
//! - [`containerd`]: the managed (or external) containerd for container pods.
//! - [`cri`]: the CRI v1 gRPC client.
//! - [`dns`]: cluster DNS: the Kubernetes records of Services and endpoints, other names
//!   forwarded to the node's resolvers (hickory).
//! - [`network`]: the pod network: the node bridge, Wasm pods' addresses, routes to other nodes.
//! - [`oci`]: container pods through CRI: sandboxes, containers, the pause image.
//! - [`wasm`]: the wasmtime engine, component cache, commands and `wasi:http` serving.
//! - [`images`]: pulling images by reference from the cluster registry or any OCI registry.
//! - [`metrics`]: the node's Prometheus metrics (cold-start stages) at the agent's `/metrics`.
//! - [`logs`]: per-container logs in CRI format, rotation, tail and follow.
//! - [`activator`]: holds scale-to-zero Services' connections while they have no ready
//!   endpoint, and counts their connections for the autoscaler.
//! - [`ingress`]: the `skiff` IngressClass: HTTP and HTTPS on every node, routed by host and
//!   path to Services.
//! - [`proxy`]: the Service data path (ClusterIP, NodePort, LoadBalancer) in nftables, as
//!   kube-proxy's nftables mode does it.

pub mod activator;
pub mod agent;
pub mod containerd;
pub mod cri;
pub mod dns;
pub mod images;
pub mod ingress;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod oci;
pub mod proxy;
pub mod runtime;
pub mod wasm;

pub use agent::{start, AgentConfig, RunningAgent};
