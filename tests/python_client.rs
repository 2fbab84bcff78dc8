//! The official Kubernetes Python client (`kubernetes` from PyPI, installed by this test
//! into a venv) through CRUD, the three patch types, server-side apply, watch, pagination,
//! the dynamic client, and every served kind read back as its typed model right after
//! creation (`tests/python/client_flow.py`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use common::Skiff;

/// The venv with the client, kept under cargo's target tmp dir between runs.
fn venv() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-kubernetes-client");
    let python = dir.join("bin/python");
    let ready = dir.join(".installed");
    if ready.exists() {
        return Ok(python);
    }
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .status()
        .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
    if !status.success() {
        bail!("python3 -m venv failed (Debian: apt-get install python3-venv)");
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "kubernetes",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "pip install kubernetes failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(&ready, b"")?;
    Ok(python)
}

#[test]
fn official_python_client_flow() -> Result<()> {
    let python = venv()?;
    let s = Skiff::control_plane()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_flow.py");
    let out = Command::new(python)
        .arg(script)
        .env("KUBECONFIG", s.kubeconfig())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the Python client flow failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for step in [
        "OK version",
        "OK crud",
        "OK patch types",
        "OK dynamic client and server-side apply",
        "OK watch",
        "OK pagination",
        "OK every served kind",
        "OK delete",
    ] {
        if !stdout.contains(step) {
            bail!("missing {step:?} in:\n{stdout}");
        }
    }
    Ok(())
}
