//! The compiled-component cache: compile once per digest (also under concurrent loads), reuse
//! the `.cwasm` across runtimes, recompile a damaged one, refuse bad input.

mod wasm_support;

use std::sync::Arc;
use std::time::Instant;

use skiff_node_runtime::wasm::{
    ComponentWorld, ExitReason, LoadSource, WasmConfig, WasmError, WasmRuntime,
};
use wasm_support::{digest_of, guest, instance};

fn cwasm_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_once_then_loaded_from_disk() {
    let cache = tempfile::tempdir().unwrap();
    let path = guest("wasm-job");
    let digest = digest_of(&path);
    let hex = digest.trim_start_matches("sha256:").to_string();

    let rt = WasmRuntime::new(WasmConfig::new(cache.path().to_path_buf())).unwrap();
    let started = Instant::now();
    let (a, b) = tokio::join!(rt.load(&digest, &path), rt.load(&digest, &path));
    let compile_time = started.elapsed();
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        Arc::ptr_eq(&a, &b),
        "concurrent loads share one compilation"
    );
    assert_eq!(
        (a.source, a.world),
        (LoadSource::Compiled, ComponentWorld::Command)
    );
    let files = cwasm_files(cache.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with(&format!("{hex}-")) && files[0].ends_with(".cwasm"),
        "{files:?}"
    );
    // In memory: the same Arc again.
    assert!(Arc::ptr_eq(&a, &rt.load(&digest, &path).await.unwrap()));
    drop(rt);

    let rt = WasmRuntime::new(WasmConfig::new(cache.path().to_path_buf())).unwrap();
    let started = Instant::now();
    let cached = rt.load(&digest, &path).await.unwrap();
    let load_time = started.elapsed();
    assert_eq!(cached.source, LoadSource::DiskCache);
    assert!(
        load_time < compile_time,
        "cache load {load_time:?} vs compile {compile_time:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut handle = rt
        .start_command(&cached, instance(dir.path(), &["wasm-job"]))
        .await
        .unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(0));
    assert!(wasm_support::log_text(dir.path()).contains("sum: 639"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_file_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let path = guest("fail-exit");
    let digest = digest_of(&path);
    let rt = WasmRuntime::new(WasmConfig::new(cache.path().to_path_buf())).unwrap();
    rt.load(&digest, &path).await.unwrap();
    drop(rt);
    let file = cache.path().join(&cwasm_files(cache.path())[0]);
    std::fs::write(&file, b"not a compiled component").unwrap();

    let rt = WasmRuntime::new(WasmConfig::new(cache.path().to_path_buf())).unwrap();
    let comp = rt.load(&digest, &path).await.unwrap();
    assert_eq!(comp.source, LoadSource::Compiled);
    let dir = tempfile::tempdir().unwrap();
    let mut handle = rt
        .start_command(&comp, instance(dir.path(), &["fail-exit"]))
        .await
        .unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(3));
    assert!(
        std::fs::read(&file).unwrap().len() > 1000,
        "the cache file was rewritten"
    );
}

#[tokio::test]
async fn bad_input_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let rt = WasmRuntime::new(WasmConfig::new(cache.path().to_path_buf())).unwrap();
    let err = rt
        .load("sha256:../../etc", &guest("spin"))
        .await
        .unwrap_err();
    assert!(matches!(err, WasmError::InvalidDigest(_)), "{err}");

    let missing = cache.path().join("missing.wasm");
    let err = rt.load("sha256:01", &missing).await.unwrap_err();
    assert!(matches!(err, WasmError::Read { .. }), "{err}");

    let junk = cache.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").unwrap();
    let err = rt.load("sha256:02", &junk).await.unwrap_err();
    assert!(matches!(err, WasmError::Compile { .. }), "{err}");

    // A component exporting nothing Skiff can run (no imports, no exports).
    let empty = cache.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let err = rt.load("sha256:03", &empty).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("exports nothing") && msg.contains("wasi:http/incoming-handler"),
        "{msg}"
    );
    // A failed load is not cached as a failure: it is tried again.
    let err = rt.load("sha256:03", &empty).await.unwrap_err();
    assert!(matches!(err, WasmError::UnsupportedWorld { .. }), "{err}");
}

#[tokio::test]
async fn pooling_by_default_and_on_demand_when_asked() {
    let cache = tempfile::tempdir().unwrap();
    let pooled = WasmRuntime::new(WasmConfig::new(cache.path().to_path_buf())).unwrap();
    // This machine has the address space for the pool; a host without it falls back.
    assert!(pooled.pooling_enabled());
    drop(pooled);

    let cfg = WasmConfig {
        pooling: false,
        ..WasmConfig::new(cache.path().to_path_buf())
    };
    let rt = WasmRuntime::new(cfg).unwrap();
    assert!(!rt.pooling_enabled());
    let path = guest("fail-exit");
    let comp = rt.load(&digest_of(&path), &path).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut handle = rt
        .start_command(&comp, instance(dir.path(), &["fail-exit"]))
        .await
        .unwrap();
    assert_eq!(handle.wait().await, ExitReason::Exited(3));
}
