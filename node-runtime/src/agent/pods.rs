//! Watches the pods bound to this node and hands each to its worker (one per pod uid).
//! Pods that vanished while the agent was away are cleaned up after the initial list (their
//! workers, and the containerd sandboxes no listed pod owns).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;

use super::worker::{self, WorkerHandle};
use super::AgentCtx;

pub async fn run(ctx: Arc<AgentCtx>, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.cfg.node_name));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    // Workers of pods that went away, still stopping containers and tearing down sandboxes:
    // shutdown waits for them too, so containerd is not stopped under them.
    let mut finishing: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut listed: HashSet<String> = HashSet::new();
    // Sandboxes created from now on are this run's, whatever the initial list says.
    let started_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::Apply(pod))) | Some(Ok(Event::InitApply(pod))) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    listed.insert(uid.clone());
                    match workers.get(&uid) {
                        Some(w) if !w.task.is_finished() => {
                            let _ = w.updates.send(pod);
                        }
                        _ => {
                            workers.insert(uid, worker::spawn(ctx.clone(), pod, shutdown.clone()));
                        }
                    }
                }
                Some(Ok(Event::Delete(pod))) => {
                    // Dropping the sender tells the worker its pod is gone.
                    if let Some(w) = pod.metadata.uid.and_then(|uid| workers.remove(&uid)) {
                        finishing.push(w.task);
                    }
                }
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitDone)) => {
                    let gone: Vec<String> =
                        workers.keys().filter(|uid| !listed.contains(*uid)).cloned().collect();
                    for uid in gone {
                        if let Some(w) = workers.remove(&uid) {
                            finishing.push(w.task);
                        }
                    }
                    if let Some(net) = ctx.network.clone() {
                        // Addresses of Wasm pods deleted while the agent was away.
                        let keep = listed.clone();
                        tokio::spawn(async move {
                            if let Err(e) = net.release_unknown(&keep).await {
                                tracing::warn!(error = %e, "cannot release the addresses of pods that are gone");
                            }
                        });
                    }
                    if let Some(oci) = ctx.runtimes.cri().cloned() {
                        // Sandboxes of pods that are no longer bound here (deleted while the
                        // agent was away); the listed pods' workers adopt theirs.
                        let keep = listed.clone();
                        tokio::spawn(async move {
                            oci.remove_sandboxes_except(&keep, started_ns).await
                        });
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "pod watch error; retrying"),
                None => break,
            },
            _ = shutdown.changed() => break,
        }
        workers.retain(|_, w| !w.task.is_finished() || w.updates.receiver_count() > 0);
        finishing.retain(|t| !t.is_finished());
    }
    // Agent shutdown: workers see the shutdown signal themselves and stop their containers;
    // all of them, and those of pods already gone, are waited for together (bounded).
    let all = workers
        .into_values()
        .map(|w| w.task)
        .chain(finishing)
        .collect::<Vec<_>>();
    let _ = tokio::time::timeout(DEFAULT_SHUTDOWN_WAIT, futures::future::join_all(all)).await;
}

/// How long an agent's shutdown waits for its pod workers to stop their containers and
/// remove their sandboxes (each container gets no grace at agent shutdown).
pub const DEFAULT_SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
