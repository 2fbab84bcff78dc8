//! `wasi:cli/command` components: instantiate once, call `wasi:cli/run`, report how it ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::Instrument;
use wasmtime::Store;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::cache::{LoadedComponent, WorldPre};
use super::engine::EngineParts;
use super::host::{until, Host};
use super::{ComponentWorld, ExitReason, InstanceConfig, WasmError};

/// A running command. Dropping it kills the guest.
pub struct CommandHandle {
    killed: Arc<AtomicBool>,
    kill_tx: watch::Sender<bool>,
    done: watch::Receiver<Option<ExitReason>>,
}

impl CommandHandle {
    /// How the command ended; waits for it. Cancel-safe, and may be called again: once done it
    /// returns the same reason.
    pub async fn wait(&mut self) -> ExitReason {
        loop {
            if let Some(reason) = self.done.borrow_and_update().clone() {
                return reason;
            }
            if self.done.changed().await.is_err() {
                // The runner task ended without a result: it panicked.
                return self.done.borrow().clone().unwrap_or_else(|| {
                    ExitReason::Trapped("the component's runner task ended without a result".into())
                });
            }
        }
    }

    /// Stops the guest: at its next epoch tick if it is running Wasm, at once if it is waiting
    /// in the host (e.g. sleeping). [`wait`](Self::wait) then returns [`ExitReason::Killed`]
    /// (unless it had already ended).
    pub fn kill(&mut self) {
        self.killed.store(true, Ordering::Relaxed);
        self.kill_tx.send_replace(true);
    }
}

impl Drop for CommandHandle {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn start(
    parts: &EngineParts,
    comp: &LoadedComponent,
    cfg: InstanceConfig,
) -> Result<CommandHandle, WasmError> {
    let WorldPre::Command(pre) = &comp.pre else {
        return Err(WasmError::WrongWorld {
            digest: comp.digest.clone(),
            expected: ComponentWorld::Command,
            actual: comp.world,
        });
    };
    let killed = Arc::new(AtomicBool::new(false));
    let deadline = cfg.deadline.map(|d| Instant::now() + d);
    let host = Host::new(parts.guard, &cfg, killed.clone(), deadline)?;
    let mut store = host.into_store(&parts.engine);
    let (kill_tx, kill_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(None);
    let pre = pre.clone();
    let ticker = parts.ticker.clone();
    let span = tracing::info_span!("command", digest = %comp.digest, program = cfg.args.first().map(String::as_str).unwrap_or(""));
    tokio::spawn(
        async move {
            let _ticker = ticker; // keep the epoch ticking while the guest may run
            let started = Instant::now();
            let reason = supervise(&pre, &mut store, kill_rx, deadline).await;
            drop(store); // free the instance before reporting
            tracing::info!(
                ?reason,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "command ended"
            );
            done_tx.send_replace(Some(reason));
        }
        .instrument(span),
    );
    Ok(CommandHandle {
        killed,
        kill_tx,
        done: done_rx,
    })
}

/// Runs the guest until it ends, is killed, or passes its deadline — the last two also while
/// it waits in the host, where no epoch tick reaches it.
async fn supervise(
    pre: &CommandPre<Host>,
    store: &mut Store<Host>,
    mut kill_rx: watch::Receiver<bool>,
    deadline: Option<Instant>,
) -> ExitReason {
    let store_usage = store.data().usage().clone();
    let result = tokio::select! {
        result = super::usage::Timed::new(run(pre, store), store_usage) => result,
        _ = kill_rx.wait_for(|killed| *killed) => return ExitReason::Killed,
        _ = until(deadline) => return ExitReason::DeadlineExceeded,
    };
    match result {
        Ok(Ok(())) => ExitReason::Exited(0),
        Ok(Err(())) => ExitReason::Exited(1),
        Err(e) => {
            let reason = store.data().classify(&e);
            if matches!(reason, ExitReason::Trapped(_)) {
                tracing::warn!(error = %format!("{e:?}"), "command trapped");
            }
            reason
        }
    }
}

async fn run(pre: &CommandPre<Host>, store: &mut Store<Host>) -> wasmtime::Result<Result<(), ()>> {
    let command = pre.instantiate_async(&mut *store).await?;
    command.wasi_cli_run().call_run(&mut *store).await
}
