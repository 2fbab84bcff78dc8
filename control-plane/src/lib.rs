//! Skiff's control plane: the Kubernetes-compatible API server and the durable store behind it.

pub mod store;
