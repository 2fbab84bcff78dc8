//! `skiff build`: runs the project's build (its `skiff.toml`), after checking the tools it
//! needs, and names the component it produced.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::project::{human_size, Project};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The project directory (holding skiff.toml). Default: the current directory.
    #[arg(long)]
    project: Option<PathBuf>,
}

pub fn run(args: BuildArgs) -> Result<()> {
    let project = Project::open(args.project.as_deref())?;
    let (component, size) = project.build()?;
    println!(
        "built {} ({}): {}",
        project.manifest.name,
        human_size(size),
        component.display()
    );
    Ok(())
}
