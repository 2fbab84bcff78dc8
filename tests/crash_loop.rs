//! The store under a crash loop: 16 clients create, update (with their resourceVersion) and
//! delete ConfigMaps while the server is `kill -9`ed again and again. No acknowledged write is
//! lost, nothing appears that no client wrote, resourceVersions only grow across restarts, and
//! a watch resumed after each crash from its last resourceVersion sees every acknowledged write
//! in order. The same run against a store that commits without fsync must find a loss: the
//! test proves it can fail.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::writes::{apply, config_map, next_state, read, rv_of, Known};
use common::Skiff;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::Client;

const WRITERS: usize = 16;
/// Every third change on a present name deletes it.
const DELETE_EVERY: u64 = 3;
/// Names each writer cycles through (create → update → update → delete → create …).
const NAMES_PER_WRITER: usize = 4;
const KILLS: usize = 10;
/// How long the writers run between two kills.
const BETWEEN_KILLS: Duration = Duration::from_millis(700);
/// A writer or the watcher waits at most this long for the server to come back.
const RECONNECT_BOUND: Duration = Duration::from_secs(60);
/// After the run, the watch must deliver the last write within this.
const WATCH_END_BOUND: Duration = Duration::from_secs(20);

/// The server the clients talk to: its client, and a generation that changes at each restart.
struct Cluster {
    client: RwLock<Client>,
    generation: AtomicU64,
    done: AtomicBool,
}

impl Cluster {
    fn client(&self) -> Client {
        self.client
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Waits for the restart after generation `seen`; returns the new generation.
    async fn next_generation(&self, seen: u64) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + RECONNECT_BOUND;
        loop {
            let now = self.generation.load(Ordering::SeqCst);
            if now != seen || self.done.load(Ordering::SeqCst) {
                return Ok(now);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the server did not come back within {RECONNECT_BOUND:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Everything acknowledged: per name its last known state, and per generation the
/// resourceVersions acknowledged in it.
#[derive(Default)]
struct Ledger {
    names: BTreeMap<String, Known>,
    acked: BTreeMap<u64, Vec<u64>>,
    problems: Vec<String>,
}

/// Whether `seen` is the state an unacknowledged change from `from` toward `to` may have left.
fn explains(seen: &Known, from: &Known, to: &Known) -> bool {
    seen == from
        || match (seen, to) {
            (Known::Present { value, .. }, Known::Present { value: want, .. }) => value == want,
            (Known::Absent, Known::Absent) => true,
            _ => false,
        }
}

async fn writer(cluster: Arc<Cluster>, ledger: Arc<Mutex<Ledger>>, w: usize) -> Result<()> {
    let mut generation = cluster.generation.load(Ordering::SeqCst);
    let mut state: Vec<Known> = vec![Known::Absent; NAMES_PER_WRITER];
    let mut step = 1u64;
    while !cluster.done.load(Ordering::SeqCst) {
        let slot = (step as usize) % NAMES_PER_WRITER;
        let name = format!("w{w}-{slot}");
        let from = state[slot].clone();
        let to = next_state(&from, step, DELETE_EVERY);
        let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
        match apply(&api, &name, &from, &to).await {
            Ok(now) => {
                let mut l = ledger
                    .lock()
                    .map_err(|_| anyhow::anyhow!("ledger poisoned"))?;
                if let Known::Present { rv, .. } = &now {
                    l.acked.entry(generation).or_default().push(*rv);
                }
                l.names.insert(name, now.clone());
                state[slot] = now;
            }
            Err(_) => {
                // The server died with this change in flight: it applied or it did not. The
                // restarted server must hold one of the two, and nothing else.
                generation = cluster.next_generation(generation).await?;
                if cluster.done.load(Ordering::SeqCst) {
                    break;
                }
                let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
                let seen = read_retrying(&cluster, &api, &name, &mut generation).await?;
                let mut l = ledger
                    .lock()
                    .map_err(|_| anyhow::anyhow!("ledger poisoned"))?;
                if !explains(&seen, &from, &to) {
                    l.problems.push(format!(
                        "{name}: after a crash the server holds {seen:?}; acknowledged {from:?}, in flight {to:?}"
                    ));
                }
                l.names.insert(name, seen.clone());
                state[slot] = seen;
            }
        }
        step += 1;
    }
    Ok(())
}

async fn read_retrying(
    cluster: &Cluster,
    api: &Api<ConfigMap>,
    name: &str,
    generation: &mut u64,
) -> Result<Known> {
    loop {
        match read(api, name).await {
            Ok(k) => return Ok(k),
            Err(_) => *generation = cluster.next_generation(*generation).await?,
        }
    }
}

/// What the watch delivered: every (resourceVersion, type, name) in the order received, and
/// the error that ended it early, if one did.
type Watched = (Vec<(u64, String, String)>, Option<String>);

/// Watches ConfigMaps from `from`, resuming after each crash from the last resourceVersion it
/// saw, until the ConfigMap `last` appears after the run is done.
async fn watcher(cluster: Arc<Cluster>, from: String) -> Result<Watched> {
    let mut seen = Vec::new();
    let mut last = from;
    let mut generation = cluster.generation.load(Ordering::SeqCst);
    loop {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
        let params = WatchParams::default().timeout(290);
        let Ok(stream) = api.watch(&params, &last).await else {
            if cluster.done.load(Ordering::SeqCst) {
                return Ok((
                    seen,
                    Some(format!("the watch from {last} could not resume")),
                ));
            }
            generation = cluster.next_generation(generation).await?;
            continue;
        };
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            let (kind, obj) = match event {
                Ok(WatchEvent::Added(o)) => ("ADDED", o),
                Ok(WatchEvent::Modified(o)) => ("MODIFIED", o),
                Ok(WatchEvent::Deleted(o)) => ("DELETED", o),
                Ok(WatchEvent::Bookmark(_)) => continue,
                Ok(WatchEvent::Error(e)) => {
                    return Ok((seen, Some(format!("the watch from {last} failed: {e:?}"))))
                }
                Err(_) => break,
            };
            let name = obj.metadata.name.clone().unwrap_or_default();
            last = rv_of(&obj).to_string();
            seen.push((rv_of(&obj), kind.to_string(), name.clone()));
            if name == "last" && cluster.done.load(Ordering::SeqCst) {
                return Ok((seen, None));
            }
        }
        generation = cluster.next_generation(generation).await?;
    }
}

/// Runs the workload with `KILLS` crashes; returns what went wrong.
async fn crash_loop(extra: &[&str]) -> Result<Vec<String>> {
    let mut flags = vec!["--no-agent"];
    flags.extend(extra);
    let mut s = Skiff::start_with(&flags)?;
    let client = s.client().await?;
    let start_rv = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .list_metadata(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let cluster = Arc::new(Cluster {
        client: RwLock::new(client),
        generation: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let watch = tokio::spawn(watcher(cluster.clone(), start_rv));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(cluster.clone(), ledger.clone(), w)))
        .collect();
    for kill in 1..=KILLS {
        tokio::time::sleep(BETWEEN_KILLS).await;
        s.crash_and_restart()
            .with_context(|| format!("restart after kill {kill}"))?;
        *cluster
            .client
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = s.client().await?;
        cluster.generation.store(kill as u64, Ordering::SeqCst);
    }
    tokio::time::sleep(BETWEEN_KILLS).await;
    cluster.done.store(true, Ordering::SeqCst);
    for w in writers {
        w.await??;
    }
    // The watch ends at its timeout; a last write wakes it before that.
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    api.create(&PostParams::default(), &config_map("last", 0, None))
        .await?;
    let abort = watch.abort_handle();
    let (events, watch_failed) = match tokio::time::timeout(WATCH_END_BOUND, watch).await {
        Ok(watched) => watched??,
        Err(_) => {
            abort.abort();
            let failed = format!("the watch did not deliver the last write in {WATCH_END_BOUND:?}");
            (Vec::new(), Some(failed))
        }
    };

    // The writers are done: the ledger is whole, and read without holding its lock.
    let l = std::mem::take(
        &mut *ledger
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger poisoned"))?,
    );
    let mut problems = l.problems.clone();
    problems.extend(watch_failed);
    // The final state: exactly what was last acknowledged (or found and explained) per name.
    for (name, want) in &l.names {
        let now = read(&api, name).await?;
        if &now != want {
            problems.push(format!(
                "{name}: the server holds {now:?}, last known {want:?}"
            ));
        }
    }
    // Revisions only grow: every acknowledged one of a generation is above the previous's.
    let mut floor = 0;
    for (generation, rvs) in &l.acked {
        let (lo, hi) = (rvs.iter().min(), rvs.iter().max());
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if *lo <= floor {
                problems.push(format!(
                    "generation {generation} acknowledged resourceVersion {lo}, not above {floor}"
                ));
            }
            floor = *hi;
        }
    }
    // The resumed watch: in order, and every acknowledged write in it.
    if events.windows(2).any(|w| w[0].0 >= w[1].0) {
        problems.push("the watch delivered resourceVersions out of order".into());
    }
    let delivered: std::collections::BTreeSet<u64> = events.iter().map(|e| e.0).collect();
    let missing: Vec<u64> = l
        .acked
        .values()
        .flatten()
        .filter(|rv| !delivered.contains(rv))
        .copied()
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "the watch missed {} acknowledged writes, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let writes: usize = l.acked.values().map(Vec::len).sum();
    eprintln!(
        "{writes} acknowledged creates and updates, {} names, {} watch events, {KILLS} kills",
        l.names.len(),
        events.len()
    );
    ensure!(writes > 100, "too few writes to mean anything: {writes}");
    Ok(problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_or_invented_across_kill_9() -> Result<()> {
    let problems = crash_loop(&[]).await?;
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_without_fsync_is_caught_losing_writes() -> Result<()> {
    let problems = crash_loop(&["--unsafe-non-durable-store"]).await?;
    ensure!(
        !problems.is_empty(),
        "the crash loop found nothing wrong with a store that does not fsync: it cannot fail"
    );
    eprintln!("the negative control found, as it must: {}", problems[0]);
    Ok(())
}
