//! Running pods' WebAssembly components with wasmtime.
//!
//! - `engine`: one `wasmtime::Engine` per process (pooling allocator when the host
//!   has the address space for it, on-demand otherwise), with epoch interruption driven by a
//!   ticker thread.
//! - `cache`: each component is compiled once; the compiled artifact is kept on disk
//!   (`<cache_dir>/<digest-hex>-<engine-hash>.cwasm`) and the pre-instantiated component in
//!   memory ([`LoadedComponent`]).
//! - `host`: the per-instance host state (WASI, `wasi:http`, memory limiter, the epoch guard
//!   that yields, throttles, and enforces deadlines and kills), and the guest's stdout/stderr
//!   going to the container's [`ContainerLog`].
//! - `command`: `wasi:cli/command` components run `wasi:cli/run` once ([`CommandHandle`]).
//! - `http`: `wasi:http/proxy` components serve HTTP/1.1, one fresh instance per request
//!   ([`HttpServer`]).
//! - `usage`: what each container uses (CPU time in its guests, memory of its live instances,
//!   requests), counted by the runtime for the stats endpoint.
//! - `egress` and `sockets`: a guest's outgoing `wasi:http` requests and its `wasi:sockets`
//!   live in its pod's network (the pod address or sandbox namespace, cluster names).
//!
//! Every guest store gets an epoch deadline of one tick: at each tick the guest yields to tokio
//! (so a spinning guest cannot starve other pods' tasks), and the guard checks the kill flag,
//! the deadline and the CPU limit. Why a guest stopped is recorded in the host state and read
//! back to build the [`ExitReason`].

mod cache;
mod command;
mod egress;
mod engine;
mod host;
mod http;
mod sockets;
mod usage;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use cache::{LoadSource, LoadedComponent};
pub use command::CommandHandle;
pub use egress::{ClusterName, ClusterResolver, Egress, DEFAULT_CONNECT_TIMEOUT};
pub use engine::{
    WasmConfig, DEFAULT_CPU_PERIOD, DEFAULT_EPOCH_TICK, DEFAULT_POOLING,
    DEFAULT_POOL_MAX_MEMORY_BYTES, DEFAULT_POOL_TOTAL_INSTANCES,
};
pub use http::{HttpServer, DEFAULT_FAILURE_QUEUE, DEFAULT_HEADER_READ_TIMEOUT};
pub use sockets::DEFAULT_LOOKUP_TIMEOUT;
pub use usage::{ContainerRef, Usage, UsageRegistry, UsageSnapshot};

use crate::logs::ContainerLog;

/// Why the Wasm runtime could not do what was asked (as opposed to a guest failing at run time,
/// which is an [`ExitReason`]).
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot set up the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot use the compiled-component cache {path}: {source}")]
    CacheDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid component digest {0:?}: expected sha256:<lowercase hex>")]
    InvalidDigest(String),
    #[error("cannot read the component {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot compile the component {digest}: {message}")]
    Compile { digest: String, message: String },
    #[error(
        "the component {digest} exports {exports}, but Skiff runs components that export \
         wasi:cli/run (a wasi:cli/command) or wasi:http/incoming-handler (a wasi:http/proxy)"
    )]
    UnsupportedWorld { digest: String, exports: String },
    #[error("the component {digest} cannot be linked: {message}")]
    Link { digest: String, message: String },
    #[error("the component {digest} is a {actual:?} component, not a {expected:?} one")]
    WrongWorld {
        digest: String,
        expected: ComponentWorld,
        actual: ComponentWorld,
    },
    #[error("cannot preopen {host_path} as {guest_path}: {message}")]
    Preopen {
        host_path: PathBuf,
        guest_path: String,
        message: String,
    },
    #[error("cannot serve on the given listener: {0}")]
    Listener(std::io::Error),
    #[error("the Wasm runtime failed internally: {0}")]
    Internal(String),
}

/// The world a component targets, told by what it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentWorld {
    /// Exports `wasi:cli/run`: run once to completion.
    Command,
    /// Exports `wasi:http/incoming-handler`: serve HTTP, one instance per request.
    HttpProxy,
}

/// How a guest run (a command, or one HTTP request) ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ExitReason {
    /// Returned from `wasi:cli/run` (0, or 1 for an error result) or called `exit`.
    Exited(i32),
    /// Trapped; the message names the trap (e.g. "wasm trap: wasm `unreachable` instruction
    /// executed") or the host error that ended it.
    Trapped(String),
    /// Stopped after trying to grow its memory past `memory_limit_bytes`.
    OutOfMemory,
    /// Ran past its deadline.
    DeadlineExceeded,
    /// Stopped on request ([`CommandHandle::kill`], or the server shutting down).
    Killed,
    /// A Linux container's process ended (containerd's report): its exit code, whether the
    /// kernel's OOM killer ended it, and containerd's message.
    Container {
        code: i32,
        oom: bool,
        message: String,
    },
}

/// A directory of the host made visible to the guest.
#[derive(Clone, Debug)]
pub struct Preopen {
    pub host_path: PathBuf,
    /// Where the guest sees it, e.g. `/config`.
    pub guest_path: String,
    /// Read-only: the guest can read the directory and its files but change nothing.
    pub read_only: bool,
}

/// What one instance of a component gets.
#[derive(Clone, Debug)]
pub struct InstanceConfig {
    pub env: Vec<(String, String)>,
    /// `args[0]` is the program name.
    pub args: Vec<String>,
    pub preopens: Vec<Preopen>,
    /// The container's `workingDir`, offered as `wasi:cli/environment.initial-cwd` (what a
    /// guest's libc starts resolving relative paths from, when it asks).
    pub working_dir: Option<String>,
    /// Caps each linear memory; growing past it fails and the guest's end is
    /// [`ExitReason::OutOfMemory`].
    pub memory_limit_bytes: Option<u64>,
    /// Kubernetes `limits.cpu` in millicores: below 1000 the guest is paused after each slice of
    /// running so that it averages that share of one core.
    pub cpu_limit_millis: Option<u64>,
    /// Commands: the whole run; HTTP components: each request.
    pub deadline: Option<Duration>,
    /// Where the guest's stdout and stderr go.
    pub log: ContainerLog,
    /// Where outgoing HTTP requests leave from and how their names resolve (`None`: as the
    /// node sends them).
    pub egress: Option<std::sync::Arc<Egress>>,
    /// The container's usage counters (CPU, memory, requests), shared by its instances.
    pub usage: Arc<Usage>,
}

/// A request an HTTP component failed to answer (trapped, ran out of memory, ran past its
/// deadline, or exited); the client got a 500 (504 for the deadline).
#[derive(Clone, Debug)]
pub struct RequestFailure {
    pub path: String,
    pub reason: ExitReason,
}

/// The node's Wasm runtime: the engine, its epoch ticker and the component cache. Share it by
/// reference (it is `Send + Sync`); the ticker thread stops when it is dropped and every command
/// and server started from it has ended.
pub struct WasmRuntime {
    engine: engine::EngineParts,
    cache: cache::ComponentCache,
}

impl WasmRuntime {
    pub fn new(cfg: WasmConfig) -> Result<Self, WasmError> {
        let engine = engine::EngineParts::new(&cfg)?;
        let cache = cache::ComponentCache::new(&engine.engine, cfg.cache_dir.clone())?;
        Ok(WasmRuntime { engine, cache })
    }

    /// Whether the engine uses the pooling instance allocator (false: on-demand fallback).
    pub fn pooling_enabled(&self) -> bool {
        self.engine.pooling
    }

    /// The component at `path`, compiled (or loaded from the on-disk cache) once per `digest`
    /// (`sha256:<hex>`); concurrent loads of one digest compile once.
    /// Whether the component of `digest` is loaded (compiled and pre-instantiated) already.
    pub fn is_loaded(&self, digest: &str) -> bool {
        self.cache.is_loaded(digest)
    }

    pub async fn load(&self, digest: &str, path: &Path) -> Result<Arc<LoadedComponent>, WasmError> {
        self.cache.load(digest, path).await
    }

    /// Starts running a `wasi:cli/command` component; see [`CommandHandle`].
    pub async fn start_command(
        &self,
        comp: &LoadedComponent,
        cfg: InstanceConfig,
    ) -> Result<CommandHandle, WasmError> {
        command::start(&self.engine, comp, cfg)
    }

    /// Serves a `wasi:http/proxy` component on `listeners` (already bound, nonblocking).
    pub async fn serve_http(
        &self,
        comp: &LoadedComponent,
        cfg: InstanceConfig,
        listeners: Vec<TcpListener>,
    ) -> Result<HttpServer, WasmError> {
        http::serve(&self.engine, comp, cfg, listeners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<WasmRuntime>();
        assert_send_sync::<LoadedComponent>();
        assert_send_sync::<CommandHandle>();
        assert_send_sync::<HttpServer>();
    }
}
