//! Per-instance host state: WASI and `wasi:http` contexts, the memory limiter, the epoch guard,
//! and the guest's stdout/stderr streams into the container log.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{ExitReason, InstanceConfig, WasmError};
use crate::logs::{ContainerLog, LogStream};

/// Most bytes a guest may hand the log stream in one write (its WASI write permit): large
/// enough that a typical burst of output is one record batch, small enough to bound one write.
const DEFAULT_LOG_WRITE_PERMIT: usize = 64 * 1024;

/// The runtime settings every instance's epoch guard uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardSettings {
    pub(crate) epoch_tick: Duration,
    pub(crate) cpu_period: Duration,
}

/// The `T` of every guest `Store<T>`.
pub(crate) struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    limiter: MemoryLimiter,
    guard: EpochGuard,
    hooks: super::egress::EgressHooks,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl Host {
    /// The container's usage counters.
    pub(crate) fn usage(&self) -> &Arc<super::Usage> {
        &self.limiter.usage
    }

    /// The pod's network, when it has one.
    pub(crate) fn egress(&self) -> Option<&Arc<super::Egress>> {
        self.hooks.0.as_ref()
    }

    /// Host state for one instance: WASI from `cfg` (env, args, preopens, stdio to the log),
    /// its memory limit, and a guard that stops it at `deadline` or once `killed` is set.
    pub(crate) fn new(
        settings: GuardSettings,
        cfg: &InstanceConfig,
        killed: Arc<AtomicBool>,
        deadline: Option<Instant>,
    ) -> Result<Self, WasmError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&cfg.env)
            .args(&cfg.args)
            .stdout(LogSink {
                log: cfg.log.clone(),
                stream: LogStream::Stdout,
            })
            .stderr(LogSink {
                log: cfg.log.clone(),
                stream: LogStream::Stderr,
            });
        if let Some(dir) = &cfg.working_dir {
            wasi.initial_cwd(dir);
        }
        // wasi:sockets, inside the pod's network (see `sockets`).
        let egress = cfg.egress.clone();
        wasi.allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true)
            .socket_addr_check(move |addr, use_| {
                let allowed = super::sockets::allow_address(egress.as_deref(), addr, use_);
                Box::pin(async move { allowed })
            });
        for p in &cfg.preopens {
            let perms = if p.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&p.host_path, &p.guest_path, perms)
                .map_err(|e| WasmError::Preopen {
                    host_path: p.host_path.clone(),
                    guest_path: p.guest_path.clone(),
                    message: format!("{e:#}"),
                })?;
        }
        let limit = cfg
            .memory_limit_bytes
            .map(|b| usize::try_from(b).unwrap_or(usize::MAX));
        Ok(Host {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            limiter: MemoryLimiter {
                limit,
                hit: false,
                held: 0,
                usage: cfg.usage.clone(),
            },
            hooks: super::egress::EgressHooks(cfg.egress.clone()),
            guard: EpochGuard {
                killed,
                deadline,
                cpu: cfg
                    .cpu_limit_millis
                    .and_then(|m| CpuThrottle::new(m, settings.epoch_tick, settings.cpu_period)),
                stopped: None,
            },
        })
    }

    /// A store for this state, limited and guarded: it interrupts the guest every epoch tick.
    pub(crate) fn into_store(self, engine: &Engine) -> Store<Host> {
        let mut store = Store::new(engine, self);
        store.limiter(|host| &mut host.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| cx.data_mut().guard.on_tick());
        store
    }

    /// Why a guest run ended with `err`: the guard's cause if it stopped the guest, an exit
    /// code, out of memory if the memory limit was hit, else the trap.
    pub(crate) fn classify(&self, err: &wasmtime::Error) -> ExitReason {
        if let Some(reason) = &self.guard.stopped {
            return reason.clone();
        }
        if let Some(exit) = err.downcast_ref::<I32Exit>() {
            return ExitReason::Exited(exit.0);
        }
        if self.limiter.hit {
            return ExitReason::OutOfMemory;
        }
        let message = match err.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{err:#}"),
        };
        ExitReason::Trapped(message)
    }
}

/// Why the guard stopped a guest (the error it returned from the epoch callback).
#[derive(Debug, thiserror::Error)]
#[error("the guest was stopped: {0:?}")]
struct GuardStop(ExitReason);

/// Runs at every epoch tick a guest reaches.
struct EpochGuard {
    killed: Arc<AtomicBool>,
    deadline: Option<Instant>,
    cpu: Option<CpuThrottle>,
    /// Set when the guard stops the guest: `Killed` or `DeadlineExceeded`.
    stopped: Option<ExitReason>,
}

impl EpochGuard {
    fn on_tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        let now = Instant::now();
        let stop = if self.killed.load(Ordering::Relaxed) {
            Some(ExitReason::Killed)
        } else if self.deadline.is_some_and(|d| now >= d) {
            Some(ExitReason::DeadlineExceeded)
        } else {
            None
        };
        if let Some(reason) = stop {
            self.stopped = Some(reason.clone());
            return Err(GuardStop(reason).into());
        }
        match self.cpu.as_mut().and_then(|cpu| cpu.on_tick(now)) {
            Some(pause) => Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::time::sleep(pause)),
            )),
            // Yield at every tick so other tasks on this tokio worker get to run. tokio's own
            // yield (rather than wasmtime's generic one) also lets its I/O and timer drivers run.
            None => Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            )),
        }
    }
}

/// Keeps a guest to `millis`/1000 of a core: after each period's worth of running it sleeps
/// long enough that running / (running + sleeping) = millis / 1000.
struct CpuThrottle {
    millis: u64,
    tick: Duration,
    /// Running time allowed before pausing: the quota of one period.
    slice: Duration,
    used: Duration,
    last: Instant,
}

impl CpuThrottle {
    /// `None` when there is nothing to throttle (a single-threaded guest uses at most one core).
    fn new(millis: u64, tick: Duration, period: Duration) -> Option<Self> {
        if millis >= 1000 {
            return None;
        }
        let millis = millis.max(1);
        Some(CpuThrottle {
            millis,
            tick,
            slice: period.mul_f64(millis as f64 / 1000.0),
            used: Duration::ZERO,
            last: Instant::now(),
        })
    }

    /// Counts the time since the last tick as running (at most two ticks: a longer gap was spent
    /// blocked in the host or asleep) and returns a pause once a slice is used up.
    fn on_tick(&mut self, now: Instant) -> Option<Duration> {
        self.used += now.saturating_duration_since(self.last).min(self.tick * 2);
        self.last = now;
        if self.used < self.slice {
            return None;
        }
        let pause = self
            .used
            .mul_f64((1000 - self.millis) as f64 / self.millis as f64);
        self.used = Duration::ZERO;
        self.last = now + pause;
        Some(pause)
    }
}

/// Caps each linear memory at `limit` and remembers whether a growth was refused, so the trap a
/// guest hits next (Rust's std aborts on allocation failure) is reported as out of memory.
/// Counts the memory this store holds into the container's usage, until the store goes.
struct MemoryLimiter {
    limit: Option<usize>,
    hit: bool,
    held: usize,
    usage: Arc<super::Usage>,
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.usage.memory_released(self.held);
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.limit.is_some_and(|limit| desired > limit) {
            self.hit = true;
            return Ok(false);
        }
        let allowed = maximum.is_none_or(|max| desired <= max);
        if allowed {
            let grown = desired.saturating_sub(current);
            self.held += grown;
            self.usage.memory_grew(grown);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        tracing::debug!(error = %format!("{error:#}"), "guest memory growth failed");
        self.hit = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

/// A guest's stdout or stderr: every write goes to the container log at once.
struct LogSink {
    log: ContainerLog,
    stream: LogStream,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LogWriter::new(self))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogWriter::new(self))
    }
}

/// Writes to the container log. A failed write (say, a full disk) is logged once and otherwise
/// ignored: as with kubelet, losing log lines must not kill the workload (Rust's `println!`
/// panics when stdout fails).
struct LogWriter {
    log: ContainerLog,
    stream: LogStream,
    warned: bool,
}

impl LogWriter {
    fn new(sink: &LogSink) -> Self {
        LogWriter {
            log: sink.log.clone(),
            stream: sink.stream,
            warned: false,
        }
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        if let Err(e) = self.log.write(self.stream, bytes) {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!(error = %e, log = ?self.log, "cannot write the container log; dropping output");
            }
        }
    }
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(DEFAULT_LOG_WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LogWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Completes at `deadline`, never without one.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_pauses_to_the_limit_share() {
        let tick = Duration::from_millis(10);
        let mut cpu = CpuThrottle::new(250, tick, Duration::from_millis(100)).unwrap();
        let mut now = cpu.last;
        let mut pauses = Vec::new();
        for _ in 0..3 {
            now += tick;
            pauses.push(cpu.on_tick(now));
        }
        // 25 ms of quota: the third tick (30 ms run) pauses 3 × 30 = 90 ms.
        assert_eq!(pauses, vec![None, None, Some(Duration::from_millis(90))]);
        // Time asleep is not counted as running.
        now += Duration::from_millis(90) + tick;
        assert_eq!(cpu.on_tick(now), None);
        assert!(CpuThrottle::new(1000, tick, Duration::from_millis(100)).is_none());
    }

    #[test]
    fn limiter_refuses_and_remembers() {
        let usage = Arc::new(crate::wasm::Usage::default());
        let mut l = MemoryLimiter {
            limit: Some(1 << 20),
            hit: false,
            held: 0,
            usage: usage.clone(),
        };
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!l.hit);
        assert!(!l.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(l.hit);
        // What the store holds counts until it goes.
        assert_eq!(usage.snapshot().memory_bytes, 1 << 20);
        drop(l);
        assert_eq!(usage.snapshot().memory_bytes, 0);
    }
}
