//! Helpers shared by tests/samples.rs and tests/samples_containers.rs: applying a sample's
//! own YAML files from disk and talking to it from the node.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use crate::common::Skiff;

/// `samples/<sample>/<file>` in this checkout.
pub fn sample_file(sample: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(sample)
        .join(file)
}

/// `kubectl apply -f samples/<sample>/<file>`, as the sample's README says.
pub fn apply_sample(s: &Skiff, sample: &str, file: &str) -> Result<()> {
    let path = sample_file(sample, file);
    ensure!(path.is_file(), "{} is missing", path.display());
    s.ok(&["apply", "-f", &path.to_string_lossy()])?;
    Ok(())
}

/// `kubectl rollout status` of a workload, bounded.
pub fn rollout(s: &Skiff, what: &str) -> Result<()> {
    s.ok(&["rollout", "status", what, "--timeout=90s"])
        .map_err(|e| anyhow::anyhow!("{e}; server log tail:\n{}", tail(&s.log())))?;
    Ok(())
}

/// The last 60 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A request from the node (inside the cluster's network namespace): status code and body,
/// whatever the status.
pub fn request(s: &Skiff, method: &str, url: &str, json: Option<&str>) -> Result<(u16, String)> {
    let mut cmd = s.command("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(body) = json {
        cmd.args(["-H", "content-type: application/json", "--data", body]);
    }
    let out = cmd.arg(url).output()?;
    ensure!(
        out.status.success(),
        "curl -X {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').context("curl's status line")?;
    Ok((code.trim().parse()?, body.to_string()))
}
