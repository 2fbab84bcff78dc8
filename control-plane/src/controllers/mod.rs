//! Controllers that run inside the control plane, one module each. Each is level-triggered:
//! it reads the latest state, acts, and waits for the next change or its requeue time.

pub mod namespace;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::ApiState;

/// Starts every controller; each ends when `shutdown` flips to true.
pub fn spawn_all(st: &ApiState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(namespace::run(st.store.clone(), shutdown))]
}
