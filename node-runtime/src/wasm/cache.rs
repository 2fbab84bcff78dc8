//! Compiling each component once: on disk as `<cache_dir>/<digest-hex>-<engine-hash>.cwasm`
//! (the engine hash changes with the wasmtime version and settings, so a stale artifact is
//! never loaded), in memory as a pre-instantiated [`LoadedComponent`] per digest.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::host::Host;
use super::{ComponentWorld, WasmError};

/// A component ready to instantiate: compiled, its imports resolved against the host.
pub struct LoadedComponent {
    pub world: ComponentWorld,
    /// The digest it was loaded under (`sha256:<hex>`).
    pub digest: String,
    /// Whether it was compiled now or read from the on-disk cache.
    pub source: LoadSource,
    pub(crate) pre: WorldPre,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("world", &self.world)
            .field("digest", &self.digest)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Where a [`LoadedComponent`]'s machine code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled from the `.wasm` file (and written to the cache).
    Compiled,
    /// Read from a `.cwasm` file a previous compilation left in the cache directory.
    DiskCache,
}

pub(crate) enum WorldPre {
    Command(CommandPre<Host>),
    Http(ProxyPre<Host>),
}

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine: Engine,
    linker: Linker<Host>,
    /// Hash of the engine's compilation settings, in the file names.
    engine_hash: String,
    /// One cell per digest, so concurrent loads of a digest wait for one compilation.
    loaded: Mutex<HashMap<String, Arc<OnceCell<Arc<LoadedComponent>>>>>,
}

/// Links `wasi:http` (`types` and `outgoing-handler`) with the optional parts of its WIT
/// enabled, so that a component built against a newer WASI 0.2 WIT that imports them links
/// (componentize-js and componentize-py do, from 0.2.10 on); a call to
/// `response-outparam.send-informational` traps with "not implemented".
fn add_http_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p2::bindings::{http, LinkOptions};
    use wasmtime_wasi_http::{WasiHttp, WasiHttpView};
    let mut options = LinkOptions::default();
    options.informational_outbound_responses(true);
    http::outgoing_handler::add_to_linker::<_, WasiHttp>(linker, <Host as WasiHttpView>::http)?;
    http::types::add_to_linker::<_, WasiHttp>(
        linker,
        &(&options).into(),
        <Host as WasiHttpView>::http,
    )
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> Result<Self, WasmError> {
        std::fs::create_dir_all(&dir).map_err(|source| WasmError::CacheDir {
            path: dir.clone(),
            source,
        })?;
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| super::sockets::add_to_linker(&mut linker))
            .and_then(|()| add_http_to_linker(&mut linker))
            .map_err(|e| {
                WasmError::Engine(format!("cannot link the WASI host functions: {e:#}"))
            })?;
        Ok(ComponentCache {
            dir,
            engine: engine.clone(),
            linker,
            engine_hash: engine_hash(engine),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `digest` is loaded in memory.
    pub(crate) fn is_loaded(&self, digest: &str) -> bool {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.get(digest).is_some_and(|c| c.initialized())
    }

    pub(crate) async fn load(
        &self,
        digest: &str,
        path: &Path,
    ) -> Result<Arc<LoadedComponent>, WasmError> {
        let hex = digest_hex(digest)?;
        let cell = {
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            loaded.entry(digest.to_string()).or_default().clone()
        };
        let loaded = cell
            .get_or_try_init(|| async {
                let cwasm = self.dir.join(format!("{hex}-{}.cwasm", self.engine_hash));
                let (engine, digest_owned, wasm) =
                    (self.engine.clone(), digest.to_string(), path.to_path_buf());
                let (component, source) = tokio::task::spawn_blocking(move || {
                    compile_or_read(&engine, &digest_owned, &wasm, &cwasm)
                })
                .await
                .map_err(|e| WasmError::Internal(format!("the compile task failed: {e}")))??;
                self.prepare(digest, component, source).map(Arc::new)
            })
            .await?;
        Ok(loaded.clone())
    }

    /// Tells the component's world and resolves its imports.
    fn prepare(
        &self,
        digest: &str,
        component: Component,
        source: LoadSource,
    ) -> Result<LoadedComponent, WasmError> {
        let world = world_of(&self.engine, digest, &component)?;
        let link_err = |e: wasmtime::Error| WasmError::Link {
            digest: digest.to_string(),
            message: format!("{e:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = match world {
            ComponentWorld::Command => {
                WorldPre::Command(CommandPre::new(instance_pre).map_err(link_err)?)
            }
            ComponentWorld::HttpProxy => {
                WorldPre::Http(ProxyPre::new(instance_pre).map_err(link_err)?)
            }
        };
        tracing::info!(%digest, ?world, ?source, "component loaded");
        Ok(LoadedComponent {
            world,
            digest: digest.to_string(),
            source,
            pre,
        })
    }
}

/// The hex part of `sha256:<hex>`, checked to be hex (it becomes a file name).
fn digest_hex(digest: &str) -> Result<&str, WasmError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if !hex.is_empty()
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(WasmError::InvalidDigest(digest.to_string())),
    }
}

/// A stable hash of what makes compiled code loadable by this engine (wasmtime version,
/// target, settings): 16 hex digits of SHA-256 over `Engine::precompile_compatibility_hash`.
fn engine_hash(engine: &Engine) -> String {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0 // only the digest below is used
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the cached artifact if there is a usable one, else compiles `wasm` and caches it.
/// Runs on the blocking pool (compilation takes seconds of CPU).
fn compile_or_read(
    engine: &Engine,
    digest: &str,
    wasm: &Path,
    cwasm: &Path,
) -> Result<(Component, LoadSource), WasmError> {
    if cwasm.exists() {
        // SAFETY: `cwasm` is in the agent's private cache directory and only ever written (whole,
        // by rename) by `write_atomically` below with the output of `precompile_component` of an
        // engine with the same compatibility hash; wasmtime checks its header and version.
        match unsafe { Component::deserialize_file(engine, cwasm) } {
            Ok(component) => return Ok((component, LoadSource::DiskCache)),
            Err(e) => tracing::warn!(
                path = %cwasm.display(), error = %format!("{e:#}"),
                "cannot load the cached compiled component; compiling it again"
            ),
        }
    }
    let bytes = std::fs::read(wasm).map_err(|source| WasmError::Read {
        path: wasm.to_path_buf(),
        source,
    })?;
    let started = std::time::Instant::now();
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| WasmError::Compile {
            digest: digest.to_string(),
            message: format!("{e:#}"),
        })?;
    tracing::info!(%digest, elapsed_ms = started.elapsed().as_millis() as u64, "component compiled");
    if let Err(e) = write_atomically(cwasm, &compiled) {
        tracing::warn!(path = %cwasm.display(), error = %e, "cannot cache the compiled component");
    }
    // SAFETY: `compiled` was just produced by `precompile_component` of this very engine.
    let component =
        unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| WasmError::Compile {
            digest: digest.to_string(),
            message: format!("{e:#}"),
        })?;
    Ok((component, LoadSource::Compiled))
}

/// Writes `bytes` to `path` so that readers see either no file or the whole of it: a unique
/// temporary file in the same directory, fsynced, then renamed over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every filesystem allows it).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The world a component targets, from its exports.
fn world_of(
    engine: &Engine,
    digest: &str,
    component: &Component,
) -> Result<ComponentWorld, WasmError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports_interface = |interface: &str| {
        exports.iter().any(|name| {
            name == interface
                || name
                    .strip_prefix(interface)
                    .is_some_and(|rest| rest.starts_with('@'))
        })
    };
    if exports_interface("wasi:http/incoming-handler") {
        Ok(ComponentWorld::HttpProxy)
    } else if exports_interface("wasi:cli/run") {
        Ok(ComponentWorld::Command)
    } else {
        Err(WasmError::UnsupportedWorld {
            digest: digest.to_string(),
            exports: if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_must_be_sha256_hex() {
        assert_eq!(digest_hex("sha256:00af").unwrap(), "00af");
        for bad in ["sha256:", "sha256:../x", "sha256:ABCD", "sha512:00", "00af"] {
            assert!(digest_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cwasm");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary files left"
        );
    }

    #[test]
    fn component_exporting_nothing_useful_is_refused() {
        let engine = Engine::default();
        // The smallest component: no imports, no exports (binary format, layer 1, version 0xd).
        let component = Component::new(&engine, b"\0asm\x0d\0\x01\0").unwrap();
        let err = world_of(&engine, "sha256:00", &component)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exports nothing") && err.contains("wasi:cli/run"),
            "{err}"
        );
    }
}
