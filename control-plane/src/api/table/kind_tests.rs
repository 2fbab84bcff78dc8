//! Table tests by kind group, with shared fixtures in `common`.
mod cluster;
mod common;
mod pods;
mod table_shape;
mod workloads;
