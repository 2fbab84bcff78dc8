//! Running helper programs (`ip`, `nft`, `curl`…): shared by the end-to-end tests and the
//! benchmarks (`benches/support`).

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `cmd`, failing with its output unless it succeeds; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
