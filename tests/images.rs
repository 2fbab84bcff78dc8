//! The cluster image store end to end: `skiff image import`/`ls` against a real server, the
//! `/v2/` distribution API as any client sees it (curl), durability across a restart, and the
//! node puller pulling what was imported.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use common::Skiff;
use serde_json::{json, Value};
use sha2::Digest as _;
use skiff_node_runtime::images::{ImageKind, ImagePuller, PullPolicy, RegistryTarget};

fn sha256(b: &[u8]) -> String {
    format!(
        "sha256:{}",
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// A Wasm component to import: the real sample if it was built, else a stand-in (the store
/// does not run it).
fn wasm_file(dir: &Path) -> Result<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/wasm/wasm32-wasip2/release/hello_wasm.wasm");
    if built.is_file() {
        return Ok(built);
    }
    let p = dir.join("hello.wasm");
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend((0..4096u32).map(|i| (i % 251) as u8));
    std::fs::write(&p, bytes)?;
    Ok(p)
}

/// An OCI image layout tarball with one image (one gzipped layer holding one file), tagged by
/// the `org.opencontainers.image.ref.name` annotation.
fn oci_layout(dir: &Path, ref_name: &str) -> Result<PathBuf> {
    let mut layer_tar = tar::Builder::new(Vec::new());
    let content = b"hello from an OCI layer\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    layer_tar.append_data(&mut h, "hello.txt", &content[..])?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&layer_tar.into_inner()?)?;
    let layer = gz.finish()?;
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    )?;
    let desc = |b: &[u8], mt: &str| json!({"mediaType": mt, "digest": sha256(b), "size": b.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc(&config, "application/vnd.oci.image.config.v1+json"),
        "layers": [desc(&layer, "application/vnd.oci.image.layer.v1.tar+gzip")],
    }))?;
    let mut entry = desc(&manifest, "application/vnd.oci.image.manifest.v1+json");
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [entry]}))?;
    let path = dir.join("layout.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path)?,
        flate2::Compression::default(),
    );
    let mut t = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data)?;
        Ok(())
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    for b in [&config, &layer, &manifest] {
        add(
            &format!("blobs/sha256/{}", &sha256(b)["sha256:".len()..]),
            b,
        )?;
    }
    t.into_inner()?.finish()?;
    Ok(path)
}

fn server_url(s: &Skiff) -> Result<String> {
    let kc = std::fs::read_to_string(s.kubeconfig())?;
    kc.lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .map(str::to_string)
        .context("no server in kubeconfig")
}

fn token(s: &Skiff, which: &str) -> Result<String> {
    Ok(std::fs::read_to_string(s.data_dir().join(which))?
        .trim()
        .to_string())
}

/// `curl` GET of `path` with an optional bearer token: status, body, response headers.
fn curl(s: &Skiff, path: &str, token: Option<&str>) -> Result<(u16, Vec<u8>, String)> {
    let out_dir = tempfile::tempdir()?;
    let (body, headers) = (out_dir.path().join("body"), out_dir.path().join("headers"));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--cacert"])
        .arg(s.data_dir().join("pki/ca.crt"))
        .arg("-o")
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(format!("{}{path}", server_url(s)?))
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!(
            "curl {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let code = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok((
        code,
        std::fs::read(&body).unwrap_or_default(),
        std::fs::read_to_string(&headers)?.to_lowercase(),
    ))
}

fn skiff_image(s: &Skiff, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("image")
        .args(args)
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .output()?)
}

fn ls(s: &Skiff) -> Result<String> {
    let out = skiff_image(s, &["ls"])?;
    if !out.status.success() {
        bail!(
            "skiff image ls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `imported NAME DIGEST` line's digest.
fn imported_digest(out: &str, name: &str) -> Result<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with("imported "))
        .with_context(|| format!("no imported line in {out:?}"))?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.len() != 3 || parts[1] != name || !parts[2].starts_with("sha256:") {
        bail!("unexpected import output {line:?}");
    }
    Ok(parts[2].to_string())
}

#[test]
fn images_import_list_serve_and_survive_a_restart() -> Result<()> {
    let mut s = Skiff::control_plane()?;
    let work = tempfile::tempdir()?;
    let wasm = wasm_file(work.path())?;
    let wasm_bytes = std::fs::read(&wasm)?;
    let digest = imported_digest(&s.import(&wasm, "hello-wasm:v1")?, "hello-wasm:v1")?;

    // Read side of the distribution API, as any OCI client sees it.
    let admin = token(&s, "admin-token")?;
    let (code, body, headers) = curl(&s, "/v2/hello-wasm/manifests/v1", Some(&admin))?;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(sha256(&body), digest);
    assert!(
        headers.contains(&format!("docker-content-digest: {digest}")),
        "{headers}"
    );
    assert!(
        headers.contains("content-type: application/vnd.oci.image.manifest.v1+json"),
        "{headers}"
    );
    let m: Value = serde_json::from_slice(&body)?;
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    let layer = m["layers"][0]["digest"].as_str().context("layer digest")?;
    assert_eq!(layer, sha256(&wasm_bytes));
    let (code, blob, _) = curl(&s, &format!("/v2/hello-wasm/blobs/{layer}"), Some(&admin))?;
    assert_eq!((code, sha256(&blob)), (200, sha256(&wasm_bytes)));
    let (code, _, _) = curl(
        &s,
        "/v2/hello-wasm/manifests/v1",
        Some(&token(&s, "node-token")?),
    )?;
    assert_eq!(code, 200, "the node token may pull");

    let (code, _, _) = curl(&s, "/v2/hello-wasm/manifests/v1", None)?;
    assert_eq!(code, 401);
    let (code, body, _) = curl(&s, "/v2/hello-wasm/manifests/nope", Some(&admin))?;
    assert_eq!(code, 404);
    let e: Value = serde_json::from_slice(&body)?;
    assert_eq!(e["errors"][0]["code"], "MANIFEST_UNKNOWN");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("hello-wasm:nope"),
        "{e}"
    );
    let (code, body, _) = curl(&s, "/v2/_catalog", Some(&admin))?;
    assert_eq!(
        (code, serde_json::from_slice::<Value>(&body)?),
        (200, json!({"repositories": ["hello-wasm"]}))
    );

    // An OCI layout, named by its annotation.
    let layout = oci_layout(work.path(), "oci-demo:v1")?;
    let out = skiff_image(&s, &["import", layout.to_str().context("path")?])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oci_digest = imported_digest(&String::from_utf8_lossy(&out.stdout), "oci-demo:v1")?;

    let listed = ls(&s)?;
    let row = |repo: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{repo} ")))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    assert!(listed.starts_with("IMAGE"), "{listed}");
    let w = row("hello-wasm").with_context(|| listed.clone())?;
    assert_eq!(
        (w[1].as_str(), w[2].as_str(), w[3].as_str()),
        ("v1", digest.as_str(), "wasm"),
        "{listed}"
    );
    let o = row("oci-demo").with_context(|| listed.clone())?;
    assert_eq!(
        (o[1].as_str(), o[2].as_str(), o[3].as_str()),
        ("v1", oci_digest.as_str(), "oci"),
        "{listed}"
    );

    // Files that are neither are refused with a reason.
    let junk = work.path().join("junk.bin");
    std::fs::write(&junk, b"definitely not an image")?;
    let out = skiff_image(&s, &["import", junk.to_str().context("path")?])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither a WebAssembly component"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    s.restart()?;
    let after = ls(&s)?;
    assert_eq!(after, listed, "the store survives a restart");
    let (code, body, _) = curl(&s, "/v2/hello-wasm/manifests/v1", Some(&admin))?;
    assert_eq!((code, sha256(&body)), (200, digest));
    Ok(())
}

#[tokio::test]
async fn the_node_puller_pulls_imported_images() -> Result<()> {
    let s = Skiff::control_plane()?;
    let work = tempfile::tempdir()?;
    let wasm = wasm_file(work.path())?;
    let digest = imported_digest(&s.import(&wasm, "hello-wasm:v1")?, "hello-wasm:v1")?;
    let puller = ImagePuller::new(
        &work.path().join("node-images"),
        RegistryTarget {
            base_url: server_url(&s)?,
            ca_pem: std::fs::read_to_string(s.data_dir().join("pki/ca.crt"))?,
            token: token(&s, "node-token")?,
        },
    )?;
    let img = puller
        .pull("hello-wasm:v1", PullPolicy::IfNotPresent)
        .await?;
    assert_eq!(
        (img.digest.as_str(), img.from_cache),
        (digest.as_str(), false)
    );
    let ImageKind::Wasm { component_path } = &img.kind else {
        bail!("expected a Wasm image, got {:?}", img.kind);
    };
    assert_eq!(
        sha256(&std::fs::read(component_path)?),
        sha256(&std::fs::read(&wasm)?)
    );
    assert!(
        puller
            .pull("hello-wasm:v1", PullPolicy::IfNotPresent)
            .await?
            .from_cache
    );
    assert!(
        puller
            .pull("hello-wasm:v1", PullPolicy::Always)
            .await?
            .from_cache
    );

    let layout = oci_layout(work.path(), "v2")?;
    let out = skiff_image(
        &s,
        &[
            "import",
            layout.to_str().context("path")?,
            "--name",
            "team/app:v2",
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = puller.pull("team/app:v2", PullPolicy::Always).await?;
    assert!(
        matches!(img.kind, ImageKind::Oci { ref layer_paths, .. } if layer_paths.len() == 1),
        "{img:?}"
    );

    let e = puller
        .pull("missing:v1", PullPolicy::IfNotPresent)
        .await
        .err()
        .context("pulling a missing image")?;
    assert_eq!(
        e.to_string(),
        "image \"missing:v1\" not found in the cluster image store; import it with `skiff image import FILE --name missing:v1`"
    );
    Ok(())
}
