//! A Skiff project: the directory `skiff new` makes, described by its `skiff.toml` — how to
//! build the component (a shell command and the file it produces), which sources make it stale,
//! which Kubernetes manifests deploy it, and which tools the build needs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The manifest's file name in a project directory.
pub const MANIFEST: &str = "skiff.toml";

/// `skiff.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The project's name: the image repository and (in the templates) the workload's name.
    pub name: String,
    /// rust, python or js: informational (the build command is what runs).
    pub language: String,
    /// http or job: what the template made.
    #[serde(default)]
    pub template: Option<String>,
    /// What `skiff build` runs with `sh -c` in the project directory.
    pub build: String,
    /// The component the build produces, relative to the project directory.
    pub component: PathBuf,
    /// Globs (relative to the project directory) whose files make the component stale.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Kubernetes manifests `skiff deploy` applies, relative to the project directory.
    #[serde(default)]
    pub manifests: Vec<PathBuf>,
    /// Tools the build needs.
    #[serde(default)]
    pub requires: Vec<Requirement>,
}

/// One tool the build needs, and the command that installs it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// A program that must be on `PATH` (or a path relative to the project directory).
    #[serde(default)]
    pub command: Option<String>,
    /// A Rust target whose standard library must be installed.
    #[serde(default, rename = "rust-target")]
    pub rust_target: Option<String>,
    /// What to run to get it.
    pub install: String,
}

/// A project directory and its manifest.
#[derive(Clone, Debug)]
pub struct Project {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Project {
    /// Reads `DIR/skiff.toml` (DIR: `--project`, else the current directory).
    pub fn open(dir: Option<&Path>) -> Result<Project> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} not found: run this in a project made by `skiff new` (or pass --project DIR)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid project manifest", path.display()))?;
        if manifest.build.trim().is_empty() {
            bail!(
                "{}: `build` is empty: give the command that builds the component",
                path.display()
            );
        }
        crate::commands::new::check_name(&manifest.name)
            .with_context(|| format!("{}: `name`", path.display()))?;
        Ok(Project { dir, manifest })
    }

    /// The component's path.
    pub fn component(&self) -> PathBuf {
        self.dir.join(&self.manifest.component)
    }

    /// The first missing tool, as an error that names the command installing it.
    pub fn check_toolchain(&self) -> Result<()> {
        for req in &self.manifest.requires {
            if let Some(cmd) = &req.command {
                if !self.has_command(cmd) {
                    bail!(
                        "the build needs `{cmd}`, which is not installed (not on PATH); install it with:\n    {}",
                        req.install
                    );
                }
            }
            if let Some(target) = &req.rust_target {
                if !rust_target_installed(target) {
                    bail!(
                        "the build needs the Rust target {target}, which is not installed; install it with:\n    {}",
                        req.install
                    );
                }
            }
        }
        Ok(())
    }

    fn has_command(&self, cmd: &str) -> bool {
        if cmd.contains('/') {
            return self.dir.join(cmd).is_file();
        }
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| {
                let p = dir.join(cmd);
                p.is_file()
                    && std::fs::metadata(&p)
                        .map(|m| {
                            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                        })
                        .unwrap_or(false)
            })
        })
    }

    /// Whether the component is missing or older than a source (or the manifest itself).
    pub fn is_stale(&self) -> Result<bool> {
        let Ok(built) = std::fs::metadata(self.component()).and_then(|m| m.modified()) else {
            return Ok(true);
        };
        Ok(self.newest_source()?.is_some_and(|newest| newest > built))
    }

    fn newest_source(&self) -> Result<Option<SystemTime>> {
        let mut newest = modified(&self.dir.join(MANIFEST));
        for pattern in &self.manifest.sources {
            let full = self.dir.join(pattern);
            let full = full
                .to_str()
                .with_context(|| format!("source pattern {pattern:?} is not UTF-8"))?;
            let paths = glob::glob(full).with_context(|| {
                format!("{MANIFEST}: source pattern {pattern:?} is not a valid glob")
            })?;
            for path in paths.flatten() {
                newest = newest.max(modified(&path));
            }
        }
        Ok(newest)
    }

    /// Runs the build command; returns the component's path and size.
    pub fn build(&self) -> Result<(PathBuf, u64)> {
        self.check_toolchain()?;
        let m = &self.manifest;
        let what = [Some(m.language.as_str()), m.template.as_deref()]
            .into_iter()
            .flatten();
        eprintln!(
            "building {} ({}): {}",
            m.name,
            what.collect::<Vec<_>>().join(" "),
            m.build
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(&m.build)
            .current_dir(&self.dir)
            // The build's output is the user's to read; ours stays on stdout.
            .stdout(std::process::Stdio::from(
                std::os::fd::AsFd::as_fd(&std::io::stderr())
                    .try_clone_to_owned()
                    .context("cannot pass stderr to the build")?,
            ))
            .status()
            .with_context(|| format!("cannot run `sh -c {:?}`", m.build))?;
        if !status.success() {
            bail!(
                "the build failed ({status}): `{}` in {}",
                m.build,
                self.dir.display()
            );
        }
        let component = self.component();
        let size = std::fs::metadata(&component)
            .with_context(|| {
                format!(
                    "the build succeeded but did not produce {} (`component` in {MANIFEST})",
                    component.display()
                )
            })?
            .len();
        let mut head = [0u8; 8];
        {
            use std::io::Read as _;
            let mut f = std::fs::File::open(&component)
                .with_context(|| format!("cannot open {}", component.display()))?;
            f.read_exact(&mut head)
                .with_context(|| format!("{} is not a WebAssembly file", component.display()))?;
        }
        if &head[..4] != b"\0asm" {
            bail!("{} is not a WebAssembly file", component.display());
        }
        if head[4..8] == [1, 0, 0, 0] {
            bail!(
                "{} is a core WebAssembly module, not a component: Skiff runs components (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)",
                component.display()
            );
        }
        Ok((component, size))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether rustc's sysroot has the standard library for `target`.
fn rust_target_installed(target: &str) -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && Path::new(&sysroot)
            .join("lib/rustlib")
            .join(target)
            .is_dir()
}

/// A size for people: `812 KiB`, `3.4 MiB`.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{} KiB", bytes.div_ceil(1024))
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(dir: &Path, toml: &str) -> Result<Project> {
        std::fs::write(dir.join(MANIFEST), toml)?;
        Project::open(Some(dir))
    }

    const BASE: &str = "name = \"demo\"\nlanguage = \"rust\"\nbuild = \"true\"\ncomponent = \"out.wasm\"\nsources = [\"src/*.txt\"]\n";

    #[test]
    fn missing_manifest_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = Project::open(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("skiff.toml not found") && err.contains("skiff new"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            project(dir.path(), &format!("{BASE}colour = 1\n")).unwrap_err()
        );
        assert!(err.contains("colour"), "{err}");
        let err = format!(
            "{:#}",
            project(dir.path(), &BASE.replace("\"demo\"", "\"Demo_1\"")).unwrap_err()
        );
        assert!(err.contains("name"), "{err}");
    }

    #[test]
    fn missing_tools_name_their_install_command() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(
            dir.path(),
            &format!("{BASE}[[requires]]\ncommand = \"no-such-tool-xyz\"\ninstall = \"pip install no-such-tool-xyz\"\n"),
        )
        .unwrap();
        let err = p.check_toolchain().unwrap_err().to_string();
        assert!(
            err.contains("`no-such-tool-xyz`") && err.contains("pip install no-such-tool-xyz"),
            "{err}"
        );
        let p = project(
            dir.path(),
            &format!("{BASE}[[requires]]\nrust-target = \"no-such-target\"\ninstall = \"rustup target add no-such-target\"\n"),
        )
        .unwrap();
        let err = p.check_toolchain().unwrap_err().to_string();
        assert!(err.contains("rustup target add no-such-target"), "{err}");
    }

    #[test]
    fn staleness_follows_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let p = project(dir.path(), BASE).unwrap();
        assert!(p.is_stale().unwrap(), "no component yet");
        std::fs::write(dir.path().join("out.wasm"), b"\0asm").unwrap();
        assert!(!p.is_stale().unwrap());
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        let f = std::fs::File::create(dir.path().join("src/a.txt")).unwrap();
        f.set_modified(later).unwrap();
        assert!(p.is_stale().unwrap(), "a newer source");
    }

    #[test]
    fn a_core_module_is_not_a_component() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(
            dir.path(),
            &BASE.replace(
                "build = \"true\"",
                "build = \"printf '\\\\0asm\\\\1\\\\0\\\\0\\\\0' > out.wasm\"",
            ),
        )
        .unwrap();
        let err = p.build().unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
    }
}
