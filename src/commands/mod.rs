//! One module per `skiff` subcommand.

pub mod agent;
pub mod image;
pub mod server;

use anyhow::Context;

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    Ok(())
}
