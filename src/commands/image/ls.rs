//! `skiff image ls`: a table of every tag in the cluster image store.

use anyhow::{Context, Result};
use serde_json::Value;

use super::{sha256_digest, Store, ACCEPTED, WASM_CONFIG, WASM_LAYER};

struct Row {
    repo: String,
    tag: String,
    digest: String,
    kind: &'static str,
    size: u64,
}

pub async fn list(store: &Store) -> Result<String> {
    store.authenticate().await;
    let any = store.tagged("skiff", "latest");
    let catalog = store
        .client
        .catalog(&any, &store.auth, None, None)
        .await
        .with_context(|| format!("cannot list the cluster image store at {}", store.server))?;
    let mut rows = Vec::new();
    for repo in catalog.repositories {
        let tags = store
            .client
            .list_tags(&store.tagged(&repo, "latest"), &store.auth, None, None)
            .await
            .with_context(|| store.failed("list tags of", &repo))?;
        for tag in tags.tags {
            let (bytes, _) = store
                .client
                .pull_manifest_raw(&store.tagged(&repo, &tag), &store.auth, ACCEPTED)
                .await
                .with_context(|| store.failed("read", &format!("{repo}:{tag}")))?;
            let (kind, size) = describe(store, &repo, &bytes).await?;
            rows.push(Row {
                digest: sha256_digest(&bytes),
                repo: repo.clone(),
                tag,
                kind,
                size,
            });
        }
    }
    Ok(table(&rows))
}

/// `wasm` or `oci`, and the size of config and layers (of every platform, for an index).
async fn describe(store: &Store, repo: &str, manifest: &[u8]) -> Result<(&'static str, u64)> {
    let v: Value = serde_json::from_slice(manifest)
        .context("the store returned a manifest that is not JSON")?;
    if let Some(entries) = v.get("manifests").and_then(Value::as_array) {
        let (mut wasm, mut oci, mut size) = (false, false, 0);
        for e in entries {
            let Some(d) = e.get("digest").and_then(Value::as_str) else {
                continue;
            };
            let (bytes, _) = store
                .client
                .pull_manifest_raw(&store.pinned(repo, d), &store.auth, ACCEPTED)
                .await
                .with_context(|| store.failed("read", &format!("{repo}@{d}")))?;
            let child: Value =
                serde_json::from_slice(&bytes).context("an index entry is not JSON")?;
            let (k, s) = describe_image(&child);
            wasm |= k == "wasm";
            oci |= k == "oci";
            size += s;
        }
        return Ok((if wasm && !oci { "wasm" } else { "oci" }, size));
    }
    Ok(describe_image(&v))
}

fn describe_image(m: &Value) -> (&'static str, u64) {
    let size_of = |d: &Value| d.get("size").and_then(Value::as_u64).unwrap_or(0);
    let media = |d: &Value| {
        d.get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let layers = m
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let config = m.get("config").cloned().unwrap_or(Value::Null);
    let wasm = media(&config) == WASM_CONFIG || layers.iter().any(|l| media(l) == WASM_LAYER);
    let size = size_of(&config) + layers.iter().map(size_of).sum::<u64>();
    (if wasm { "wasm" } else { "oci" }, size)
}

fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "IMAGE".to_string(),
        "TAG".into(),
        "DIGEST".into(),
        "TYPE".into(),
        "SIZE".into(),
    ]];
    for r in rows {
        lines.push([
            r.repo.clone(),
            r.tag.clone(),
            r.digest.clone(),
            r.kind.to_string(),
            human_size(r.size),
        ]);
    }
    let mut widths = [0usize; 5];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 4 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
    out
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1536), "1.5KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0MiB");
    }
}
