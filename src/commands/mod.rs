//! One module per `skiff` subcommand.

pub mod agent;
pub mod build;
pub mod deploy;
pub mod image;
pub mod new;
mod project;
pub mod server;

use anyhow::Context;

/// Resolves on SIGINT or SIGTERM.
/// SIGINT and SIGTERM handlers, installed when a command starts, so a signal that arrives
/// while it is still starting (containerd, pods) is kept and leads to a clean shutdown once
/// it is up, instead of killing it half-started.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?,
        })
    }

    /// Waits for SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = self.term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    }
}
