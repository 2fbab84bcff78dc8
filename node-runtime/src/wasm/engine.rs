//! The process's `wasmtime::Engine` and the thread that advances its epoch.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::host::GuardSettings;
use super::WasmError;

/// How often the engine's epoch advances. Each tick a running guest yields to tokio and its
/// kill flag, deadline and CPU share are checked, so this bounds how long a spinning guest holds
/// a tokio worker (other pods' tasks wait at most this long) and how late a kill or deadline
/// lands. 10 ms is short for people and long for a fiber switch (~1 µs).
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(10);

/// The window CPU limits are measured over: a guest limited to `c` millicores runs about
/// `c/1000` of each window. 100 ms is the Linux CFS period kubelet uses for `limits.cpu`.
pub const DEFAULT_CPU_PERIOD: Duration = Duration::from_millis(100);

/// Try the pooling instance allocator first: it makes the per-request instantiation of HTTP
/// components a few microseconds (slots and memory images are reused) instead of mmap calls.
pub const DEFAULT_POOLING: bool = true;

/// Instances (and their memories and fiber stacks) the pool holds at once: the most guests —
/// running commands plus in-flight HTTP requests — a node runs concurrently. 1000 is
/// wasmtime's own default; each slot only reserves address space until used.
pub const DEFAULT_POOL_TOTAL_INSTANCES: u32 = 1000;

/// Largest linear memory a pool slot can hold: 4 GiB, all that 32-bit Wasm can address, so any
/// `limits.memory` (512 MiB and up) is enforced by the store limiter rather than by the pool.
/// Address space only (1000 slots ≈ 4 TiB of the 128 TiB a 64-bit process has).
pub const DEFAULT_POOL_MAX_MEMORY_BYTES: u64 = 4 << 30;

/// Core Wasm instances per component instance in the pool: a component built by
/// `wasm-component-ld` has a few (the program, the WASI adapter, shims).
const DEFAULT_POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 4;

/// Tables per component instance in the pool (the program's and the shims' tables).
const DEFAULT_POOL_TABLES_PER_COMPONENT: u32 = 4;

/// Tuning of the node's Wasm runtime.
#[derive(Clone, Debug)]
pub struct WasmConfig {
    /// Where compiled components (`.cwasm`) are kept across restarts.
    pub cache_dir: PathBuf,
    /// See [`DEFAULT_EPOCH_TICK`].
    pub epoch_tick: Duration,
    /// See [`DEFAULT_CPU_PERIOD`].
    pub cpu_period: Duration,
    /// See [`DEFAULT_POOLING`].
    pub pooling: bool,
    /// See [`DEFAULT_POOL_TOTAL_INSTANCES`].
    pub pool_total_instances: u32,
    /// See [`DEFAULT_POOL_MAX_MEMORY_BYTES`].
    pub pool_max_memory_bytes: u64,
}

impl WasmConfig {
    pub fn new(cache_dir: PathBuf) -> Self {
        WasmConfig {
            cache_dir,
            epoch_tick: DEFAULT_EPOCH_TICK,
            cpu_period: DEFAULT_CPU_PERIOD,
            pooling: DEFAULT_POOLING,
            pool_total_instances: DEFAULT_POOL_TOTAL_INSTANCES,
            pool_max_memory_bytes: DEFAULT_POOL_MAX_MEMORY_BYTES,
        }
    }
}

impl Default for WasmConfig {
    /// Defaults, with the cache in `<tmp>/skiff-wasm-cache` (callers normally set `cache_dir`).
    fn default() -> Self {
        WasmConfig::new(std::env::temp_dir().join("skiff-wasm-cache"))
    }
}

/// The engine and what every instance needs from the runtime.
pub(crate) struct EngineParts {
    pub(crate) engine: Engine,
    pub(crate) pooling: bool,
    pub(crate) guard: GuardSettings,
    /// Held by the runtime and by every running command and server: the epoch keeps ticking
    /// while any guest may run.
    pub(crate) ticker: Arc<EpochTicker>,
}

impl EngineParts {
    pub(crate) fn new(cfg: &WasmConfig) -> Result<Self, WasmError> {
        let (engine, pooling) = build_engine(cfg)?;
        let ticker = Arc::new(EpochTicker::start(engine.clone(), cfg.epoch_tick)?);
        Ok(EngineParts {
            engine,
            pooling,
            guard: GuardSettings {
                epoch_tick: cfg.epoch_tick,
                cpu_period: cfg.cpu_period,
            },
            ticker,
        })
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    config
}

/// The pooling engine if the host allows it, else the on-demand one (logged).
fn build_engine(cfg: &WasmConfig) -> Result<(Engine, bool), WasmError> {
    if cfg.pooling {
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(cfg)));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, true)),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "cannot reserve the wasmtime pooling allocator (address space or memory limits?); \
                 falling back to on-demand instance allocation"
            ),
        }
    }
    let engine = Engine::new(&base_config()).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
    Ok((engine, false))
}

fn pooling_config(cfg: &WasmConfig) -> PoolingAllocationConfig {
    let total = cfg.pool_total_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(total)
        .total_core_instances(total.saturating_mul(DEFAULT_POOL_CORE_INSTANCES_PER_COMPONENT))
        .total_memories(total)
        .total_tables(total.saturating_mul(DEFAULT_POOL_TABLES_PER_COMPONENT))
        .total_stacks(total)
        .max_memory_size(usize::try_from(cfg.pool_max_memory_bytes).unwrap_or(usize::MAX));
    pool
}

/// The thread that advances the engine's epoch every tick; stops when dropped.
pub(crate) struct EpochTicker {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Result<Self, WasmError> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || loop {
                match stop_rx.recv_timeout(tick) {
                    Err(mpsc::RecvTimeoutError::Timeout) => engine.increment_epoch(),
                    // A stop message, or the ticker was dropped.
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(EpochTicker {
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        let stop = self
            .stop
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(stop); // wakes the thread at once (disconnected)
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            if thread.join().is_err() {
                tracing::warn!("the wasm epoch ticker thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_advances_and_stops() {
        let engine = Engine::new(&base_config()).unwrap();
        let ticker = EpochTicker::start(engine.clone(), Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(ticker); // joins: returns only once the thread has stopped
    }

    #[test]
    fn on_demand_engine_when_pooling_is_off() {
        let cfg = WasmConfig {
            pooling: false,
            ..WasmConfig::default()
        };
        let parts = EngineParts::new(&cfg).unwrap();
        assert!(!parts.pooling);
    }
}
