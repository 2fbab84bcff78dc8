//! The Python and JavaScript component toolchains the language tests build with, installed by
//! the tests themselves under cargo's target tmp dir (once; later runs reuse them):
//! componentize-py (PyPI) in a venv, componentize-js and jco (npm) in a node_modules.
//!
//! Test binaries run concurrently: each installation happens under an exclusive lock on a file
//! next to it, and is marked complete (with its version) only once it has fully succeeded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The componentize-py the Python templates and samples are built with (their READMEs name it).
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js the JavaScript templates and samples pin in their package.json.
pub const COMPONENTIZE_JS: &str = "0.22.0";
/// The jco pinned next to it.
pub const JCO: &str = "1.35.0";
/// componentize-js imports the WASI shims but declares them only as a development dependency,
/// so projects pin them too (else a second `npm install` prunes them).
pub const PREVIEW2_SHIM: &str = "0.25.0";

fn tmp_root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Runs `install` into `dir` unless `dir/.installed` already says `version`, holding an
/// exclusive lock on `<dir>.lock` meanwhile. `dir` is emptied first, so a half-done install
/// (an interrupted run) is never reused.
fn install_once(
    dir: &Path,
    version: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let marker = dir.join(".installed");
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if std::fs::read_to_string(&marker).is_ok_and(|v| v == version) {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    install(dir)?;
    eprintln!(
        "installed {} in {:.1}s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, version)?;
    Ok(())
    // `lock` is released when dropped.
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A venv with componentize-py [`COMPONENTIZE_PY`] pip-installed; returns its `bin` directory,
/// to put first on `PATH`.
pub fn componentize_py() -> Result<PathBuf> {
    let dir = tmp_root().join(format!("componentize-py-{COMPONENTIZE_PY}"));
    install_once(&dir, COMPONENTIZE_PY, |dir| {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(dir),
            "python3 -m venv (Debian: apt-get install python3-venv)",
        )?;
        run(
            Command::new(dir.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]),
            &format!("pip install componentize-py=={COMPONENTIZE_PY}"),
        )
    })?;
    Ok(dir.join("bin"))
}

/// Checks that `node` and `npm` run; the error says how to install them.
pub fn node_toolchain() -> Result<()> {
    for tool in ["node", "npm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            bail!(
                "`{tool}` is not installed; the JavaScript tests need Node.js 18 or newer and npm \
                 (Debian: apt-get install nodejs npm)"
            );
        }
    }
    Ok(())
}

/// A node_modules with componentize-js [`COMPONENTIZE_JS`] and jco [`JCO`] npm-installed;
/// returns its `.bin` directory (holding `componentize-js` and `jco`), to put first on `PATH`.
pub fn componentize_js() -> Result<PathBuf> {
    node_toolchain()?;
    let dir = tmp_root().join(format!("componentize-js-{COMPONENTIZE_JS}"));
    let version = format!("{COMPONENTIZE_JS}+jco-{JCO}+preview2-shim-{PREVIEW2_SHIM}");
    install_once(&dir, &version, |dir| {
        let package = format!(
            "{{\"name\":\"skiff-test-toolchain\",\"private\":true,\"devDependencies\":{{\
             \"@bytecodealliance/componentize-js\":\"{COMPONENTIZE_JS}\",\
             \"@bytecodealliance/jco\":\"{JCO}\",\
             \"@bytecodealliance/preview2-shim\":\"{PREVIEW2_SHIM}\"}}}}\n"
        );
        std::fs::write(dir.join("package.json"), package)?;
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(dir),
            "npm install @bytecodealliance/componentize-js @bytecodealliance/jco",
        )
    })?;
    Ok(dir.join("node_modules/.bin"))
}

/// `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> Result<std::ffi::OsString> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).context("PATH")
}
