//! docs/quickstart.md, executed verbatim: the commands of its ```sh blocks, in order, as one
//! bash script (stopping at the first failure), in a network namespace of the test's own with
//! a fresh HOME — so the `skiff server` it starts is a new cluster on 127.0.0.1:6443 there.
//! Blocks preceded by `<!-- quickstart: skip (why) -->` are not run (only the install step,
//! since the test runs the `skiff` it built).

mod common;

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::NetNs;

/// The whole quickstart, build included, takes about two minutes here; this bounds a hang.
const LIMIT: Duration = Duration::from_secs(600);
const SKIP_MARKER: &str = "<!-- quickstart: skip";

/// The commands of the document's ```sh blocks, and how many blocks were skipped.
fn sh_blocks(doc: &str) -> (Vec<String>, usize) {
    let mut blocks = Vec::new();
    let mut skipped = 0;
    let mut skip_next = false;
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            Some(block) => {
                if line.trim_start().starts_with("```") {
                    if skip_next {
                        skipped += 1;
                    } else {
                        blocks.push(std::mem::take(block));
                    }
                    skip_next = false;
                    current = None;
                } else {
                    block.push_str(line);
                    block.push('\n');
                }
            }
            None => {
                if line.trim() == "```sh" {
                    current = Some(String::new());
                } else if line.trim_start().starts_with(SKIP_MARKER) {
                    skip_next = true;
                } else if !line.trim().is_empty() {
                    skip_next = false;
                }
            }
        }
    }
    (blocks, skipped)
}

#[test]
fn the_blocks_of_a_document_are_found() {
    let doc = "x\n<!-- quickstart: skip (no) -->\n```sh\ninstall\n```\n\n```sh\na\nb\n```\ntext\n```yaml\nk: v\n```\n```sh\nc\n```\n";
    let (blocks, skipped) = sh_blocks(doc);
    assert_eq!(blocks, vec!["a\nb\n".to_string(), "c\n".to_string()]);
    assert_eq!(skipped, 1);
}

#[test]
fn the_quickstart_runs_as_written() -> Result<()> {
    if !common::network_available() {
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/quickstart.md"))?;
    let (blocks, skipped) = sh_blocks(&doc);
    assert_eq!(skipped, 1, "only the install step is skipped");
    assert!(blocks.len() >= 5, "{blocks:?}");
    // The harness's own lines: stop at the first failure, show each command, and wait for the
    // server the quickstart stops at its end to finish shutting down.
    let script = format!("set -euo pipefail\nset -x\n{}wait\n", blocks.concat());

    let ns = NetNs::new()?;
    let home = tempfile::tempdir()?;
    let real_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_skiff"))
        .parent()
        .context("the skiff binary's directory")?
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = ns.command("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        // The toolchains stay where they are installed, whatever HOME says.
        .env(
            "RUSTUP_HOME",
            std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{real_home}/.rustup")),
        )
        .env(
            "CARGO_HOME",
            std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{real_home}/.cargo")),
        )
        // The namespace has no route out: cargo builds from the crates already downloaded
        // (the samples use the same SDK and dependencies).
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so everything it started can be stopped if it hangs.
        .process_group(0);
    let mut child = cmd.spawn().context("starting bash")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let pgid = child.id() as i32;
    if status.is_none() {
        // SAFETY-free: a plain kill(2) of the process group the test created.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = child.wait();
    }
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let log = std::fs::read_to_string(home.path().join("skiff.log")).unwrap_or_default();
    let tail: String = log
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        None => bail!("the quickstart did not finish within {LIMIT:?}\nstdout:\n{out}\nstderr:\n{err}\nskiff.log (end):\n{tail}"),
        Some(s) if !s.success() => bail!("the quickstart failed ({s})\nstdout:\n{out}\nstderr:\n{err}\nskiff.log (end):\n{tail}"),
        Some(_) => {}
    }
    assert!(
        out.contains("Hello from hello (rust)!"),
        "step 5's answer:\n{out}\n{err}"
    );
    assert!(
        out.contains("Hello, Skiff!"),
        "step 6's answer:\n{out}\n{err}"
    );
    assert!(out.contains("GET /"), "the log of step 5:\n{out}");
    assert!(err.contains("deployment.apps/hello: rolled out"), "{err}");
    Ok(())
}
