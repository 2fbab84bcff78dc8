//! `skiff new TEMPLATE NAME [--lang rust|python|js]`: a project directory from one of the
//! templates compiled into the binary (`templates/<lang>/<template>/` in the repository): the
//! source, `skiff.toml`, the Kubernetes YAML and a README. Rust projects get a copy of the
//! SDK that matches this `skiff` (`vendor/skiff-sdk`), so they build offline and anywhere.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use include_dir::{include_dir, Dir};

use super::project::Project;

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");
static SDK_SOURCES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/sdk/src");
const SDK_CARGO_TOML: &str = include_str!("../../sdk/Cargo.toml");
const SDK_README: &str = include_str!("../../sdk/README.md");
/// Where a Rust project keeps its copy of the SDK (its Cargo.toml depends on this path).
const SDK_VENDOR_DIR: &str = "vendor/skiff-sdk";

#[derive(Args, Debug)]
pub struct NewArgs {
    /// What to make: `http` (a wasi:http service, Deployment + Service) or `job` (a wasi:cli
    /// command, Job).
    template: Template,
    /// The project's name: a DNS label (lowercase letters, digits, '-'), used for the directory,
    /// the image and the Kubernetes objects.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The directory to create. Default: ./NAME.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write into a directory that already exists (files the template has are overwritten).
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Template {
    Http,
    Job,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

impl Template {
    fn dir_name(self) -> &'static str {
        match self {
            Template::Http => "http",
            Template::Job => "job",
        }
    }
}

impl Lang {
    fn dir_name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// A project name must be a DNS-1035 label (it names a Deployment, a Service and an image
/// repository).
pub fn check_name(name: &str) -> Result<()> {
    // The rule the API server applies to a Service's name (a DNS-1035 label), the strictest of
    // the names it becomes.
    let errors = skiff_control_plane::api::admission::names::dns1035_label(name);
    if !errors.is_empty() {
        bail!(
            "{name:?} is not a valid name (it names the Deployment, the Service and the image): {}; e.g. {:?}",
            errors.join("; "),
            suggest(name)
        );
    }
    Ok(())
}

/// `My_App` → `my-app`.
fn suggest(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "my-service".into()
    } else {
        out.chars().take(63).collect()
    }
}

pub fn run(args: NewArgs) -> Result<()> {
    check_name(&args.name)?;
    let template_path = format!("{}/{}", args.lang.dir_name(), args.template.dir_name());
    let template = TEMPLATES.get_dir(&template_path).with_context(|| {
        format!(
            "there is no {} template for {}",
            args.template.dir_name(),
            args.lang.dir_name()
        )
    })?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("{} exists and cannot be read", dir.display()))?
            .next()
            .is_none();
        if !empty && !args.force {
            bail!(
                "{} already exists: choose another name (or --dir), or pass --force to write the template into it (its files of the same names are overwritten)",
                dir.display()
            );
        }
    }
    let vars = Vars {
        name: args.name.clone(),
        crate_name: args.name.replace('-', "_"),
    };
    let mut written = Vec::new();
    write_dir(template, template, &dir, &vars, &mut written)?;
    if matches!(args.lang, Lang::Rust) && matches!(args.template, Template::Http) {
        vendor_sdk(&dir)?;
        written.push(PathBuf::from(SDK_VENDOR_DIR).join(""));
    }
    written.sort();

    println!(
        "created {} ({} {} template): {}",
        dir.display(),
        args.lang.dir_name(),
        args.template.dir_name(),
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Say now, not at the first build, when a tool the build needs is missing.
    let project = Project::open(Some(&dir))?;
    if let Err(missing) = project.check_toolchain() {
        println!("note: {missing}");
    }
    println!(
        "next:\n  cd {}\n  skiff deploy     # build, import, apply, wait until it is ready",
        dir.display()
    );
    Ok(())
}

struct Vars {
    name: String,
    crate_name: String,
}

impl Vars {
    fn fill(&self, text: &str) -> String {
        text.replace("{{name}}", &self.name)
            .replace("{{crate_name}}", &self.crate_name)
    }
}

fn write_dir(
    root: &Dir<'_>,
    dir: &Dir<'_>,
    out: &Path,
    vars: &Vars,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    for file in dir.files() {
        let rel = file.path().strip_prefix(root.path()).unwrap_or(file.path());
        let rel = match rel.file_name().and_then(|n| n.to_str()) {
            // Dotfiles would be hidden in the repository's template directory.
            Some("gitignore") => rel.with_file_name(".gitignore"),
            _ => rel.to_path_buf(),
        };
        let contents = match file.contents_utf8() {
            Some(text) => vars.fill(text).into_bytes(),
            None => file.contents().to_vec(),
        };
        write_file(&out.join(&rel), &contents)?;
        written.push(rel);
    }
    for sub in dir.dirs() {
        write_dir(root, sub, out, vars, written)?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Copies the SDK into `DIR/vendor/skiff-sdk` as a standalone package.
fn vendor_sdk(dir: &Path) -> Result<()> {
    let out = dir.join(SDK_VENDOR_DIR);
    // The SDK is its own workspace in the Skiff repository; vendored, it is a plain package.
    let manifest: String = SDK_CARGO_TOML
        .lines()
        .filter(|l| l.trim() != "[workspace]" && !l.contains("outside the main Skiff workspace"))
        .map(|l| format!("{l}\n"))
        .collect();
    write_file(&out.join("Cargo.toml"), manifest.as_bytes())?;
    write_file(&out.join("README.md"), SDK_README.as_bytes())?;
    fn copy(dir: &Dir<'_>, out: &Path) -> Result<()> {
        for file in dir.files() {
            write_file(&out.join(file.path()), file.contents())?;
        }
        for sub in dir.dirs() {
            copy(sub, out)?;
        }
        Ok(())
    }
    copy(&SDK_SOURCES, &out.join("src"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::project::MANIFEST;

    #[test]
    fn names_are_dns_labels() {
        for ok in ["demo", "a", "hello-wasm-2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Demo", "2fast", "a_b", "end-", &"x".repeat(64)] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid name"), "{bad}: {err}");
        }
        assert!(check_name("My_App")
            .unwrap_err()
            .to_string()
            .contains("\"my-app\""));
    }

    #[test]
    fn every_template_has_a_manifest_yaml_and_readme() {
        for lang in ["rust", "python", "js"] {
            for template in ["http", "job"] {
                let path = format!("{lang}/{template}");
                let dir = TEMPLATES
                    .get_dir(&path)
                    .unwrap_or_else(|| panic!("{path} is missing"));
                let names: Vec<String> = dir
                    .files()
                    .filter_map(|f| f.path().file_name()?.to_str().map(str::to_string))
                    .collect();
                for needed in [MANIFEST, "README.md"] {
                    assert!(
                        names.iter().any(|n| n == needed),
                        "{path} has no {needed}: {names:?}"
                    );
                }
                assert!(
                    names.iter().any(|n| n.ends_with(".yaml")),
                    "{path} has no YAML: {names:?}"
                );
            }
        }
    }

    #[test]
    fn a_new_project_is_written_and_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let args = |force| NewArgs {
            template: Template::Http,
            name: "demo".into(),
            lang: Lang::Rust,
            dir: Some(dir.clone()),
            force,
        };
        run(args(false)).unwrap();
        let project = Project::open(Some(&dir)).unwrap();
        assert_eq!(project.manifest.name, "demo");
        assert!(dir.join(".gitignore").is_file());
        assert!(dir.join("vendor/skiff-sdk/src/lib.rs").is_file());
        assert!(dir.join("vendor/skiff-sdk/README.md").is_file());
        let vendored = std::fs::read_to_string(dir.join("vendor/skiff-sdk/Cargo.toml")).unwrap();
        assert!(!vendored.contains("[workspace]"), "{vendored}");
        let src = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(
            src.contains("Hello from demo (rust)!") && !src.contains("{{"),
            "{src}"
        );

        let err = run(args(false)).unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        run(args(true)).unwrap();
    }
}
