//! Skiff's control plane: the Kubernetes-compatible API server, the durable store behind it,
//! and the controllers that act on stored objects.
//!
//! - [`store`]: redb-backed objects, revisions and watches.
//! - [`api`]: HTTP routing, discovery, admission and the resource handlers.
//! - [`controllers`]: level-triggered controllers (namespace deletion so far).
//! - [`pki`]: CA, certificates, tokens and the admin kubeconfig.
//! - [`registry`]: the cluster image store, served as the OCI Distribution API under `/v2/`.
//! - [`usage`]: nodes' and pods' resource usage read from the node agents (`metrics.k8s.io`).
//! - [`server`]: starts and stops all of it.

pub mod api;
pub mod binding;
pub mod bootstrap;
pub mod controllers;
pub mod events;
pub mod pki;
pub mod registry;
pub mod server;
pub mod store;
pub mod usage;

pub use server::{start, RunningServer, ServerConfig, ServerError};
