//! `skiff`: one binary for a Kubernetes-API cluster of Wasm components and containers.

mod allocator;
mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A lightweight Kubernetes-API orchestrator for WebAssembly components and containers"
)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole single-node cluster: the API server, store, controllers and a node agent.
    Server(commands::server::ServerArgs),
    /// Join a cluster as a node and run the pods scheduled to it.
    Agent(commands::agent::AgentArgs),
    /// Import images into the cluster image store (`import`) and list them (`ls`).
    Image(commands::image::ImageArgs),
    /// Make a new project from a template: a Wasm HTTP service or job in Rust, Python or JS.
    New(commands::new::NewArgs),
    /// Build the project in this directory (skiff.toml) and name the component it produced.
    Build(commands::build::BuildArgs),
    /// Build if needed, import the component, apply the project's YAML, wait until it is ready.
    Deploy(commands::deploy::DeployArgs),
}

/// The log filter when `SKIFF_LOG` is not set. The server and the agent log what they do; the
/// client commands (`image`, `new`, `build`, `deploy`) print their own progress and errors, so
/// only warnings get through, and not the kube client's, whose failures they report themselves.
fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Server(_) | Command::Agent(_) => "info",
        _ => "warn,kube_client=off",
    }
}

fn init_logging(format: &str, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colour only for a person at a terminal, never into a file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    allocator::tune();
    let cli = Cli::parse();
    init_logging(&cli.log_format, default_log_filter(&cli.command));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Server(args) => commands::server::run(args).await,
            Command::Agent(args) => commands::agent::run(args).await,
            Command::Image(args) => commands::image::run(args).await,
            Command::New(args) => commands::new::run(args),
            Command::Build(args) => commands::build::run(args),
            Command::Deploy(args) => commands::deploy::run(args).await,
        }
    })
}
