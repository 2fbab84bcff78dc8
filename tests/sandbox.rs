//! A Wasm pod's filesystem is its preopened volumes and nothing else: `..` out of a volume,
//! absolute paths that are not volumes, and symlinks in a volume that point out of it (absolute,
//! relative, to a directory) all fail, while the volume's own files read fine.

mod common;

use anyhow::{ensure, Result};
use common::{guest, wait_for, Skiff};

const SECRET: &str = "TOP-SECRET-outside-the-volume";

#[test]
fn a_wasm_pod_cannot_read_outside_its_volumes() -> Result<()> {
    let s = Skiff::start()?;
    // On the host: <tmp>/data is the pod's hostPath volume; <tmp>/outside.txt is not.
    let host = tempfile::tempdir()?;
    let data = host.path().join("data");
    std::fs::create_dir(&data)?;
    std::fs::write(data.join("inside.txt"), "readable\n")?;
    let outside = host.path().join("outside.txt");
    std::fs::write(&outside, SECRET)?;
    std::os::unix::fs::symlink(&outside, data.join("link-abs"))?;
    std::os::unix::fs::symlink("../outside.txt", data.join("link-rel"))?;
    std::os::unix::fs::symlink(host.path(), data.join("link-dir"))?;

    s.import(&guest("escape")?, "escape:v1")?;
    s.apply(
        "escape.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: escape}}\nspec:\n  runtimeClassName: wasm\n  \
             restartPolicy: Never\n  containers:\n  - name: escape\n    image: escape:v1\n    \
             volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes:\n  - name: data\n    \
             hostPath: {{path: {}}}\n",
            data.display()
        ),
    )?;
    wait_for("pod escape Succeeded", || {
        let p = s.json(&["get", "pod", "escape"])?;
        Ok((p["status"]["phase"] == "Succeeded").then_some(()))
    })?;
    let logs = s.ok(&["logs", "escape"])?;
    ensure!(
        logs.contains("inside: readable"),
        "the volume itself reads: {logs}"
    );
    ensure!(
        !logs.contains("ESCAPED") && !logs.contains(SECRET),
        "{logs}"
    );
    let blocked = logs
        .lines()
        .filter(|l| l.starts_with("blocked ") && !l.starts_with("blocked root-listing"))
        .count();
    ensure!(blocked == 7, "every attempt is refused: {logs}");
    // The root holds the preopens only.
    ensure!(
        logs.contains("root lists: data") || logs.contains("blocked root-listing"),
        "{logs}"
    );
    Ok(())
}
