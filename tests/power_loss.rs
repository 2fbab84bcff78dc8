//! Power loss, not only process death: the server's data dir lives on LossyFs
//! (tests/common/lossyfs.rs), a FUSE filesystem that keeps only what was fsynced when the
//! power is cut. 12 clients create, update (with their resourceVersion) and delete ConfigMaps;
//! after a random 1–3 s the power goes (the filesystem freezes, the server is `kill -9`ed, the
//! filesystem comes back with its durable state only) and the server starts again on it. Every
//! acknowledged write must still be there, nothing may appear that no client wrote,
//! resourceVersions keep growing, and the cluster's CA and admin token survive. The same run
//! against a store that commits without fsync (`--unsafe-non-durable-store`) must lose
//! acknowledged writes: the layer really drops what was not synced, and the test can fail.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::lossyfs::LossyMount;
use common::writes::{apply, next_state, read, Known};
use common::Skiff;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::Client;

const WRITERS: usize = 12;
/// Every fourth change on a present name deletes it.
const DELETE_EVERY: u64 = 4;
/// Names each writer cycles through (create → update → update → delete → create …).
const NAMES_PER_WRITER: usize = 3;
/// Power cuts in the durable run.
const CYCLES: usize = 4;
/// The negative control stops at its first loss, and fails if none came in this many cuts.
const NEGATIVE_MAX_CYCLES: usize = 4;
/// One API call's bound (a call cut by the power cut fails at once: its connection dies).
const REQUEST_BOUND: Duration = Duration::from_secs(20);
/// The writers' end after the power cut.
const WRITERS_END_BOUND: Duration = Duration::from_secs(30);

fn name(w: usize, slot: usize) -> String {
    format!("pl-w{w}-{slot}")
}

/// One writer's names, carried from cut to cut.
#[derive(Clone)]
struct Writer {
    state: Vec<Known>,
    step: u64,
}

/// What one writer did between two power cuts.
struct Run {
    writer: Writer,
    /// The change in flight when the writer stopped: its slot and target.
    in_flight: Option<(usize, Known)>,
    /// resourceVersions of its acknowledged creates and updates.
    acked: Vec<u64>,
    /// An error that came before the power cut (none should).
    early_error: Option<String>,
}

/// Writes until a call fails (the power cut) or `stop`.
async fn write(
    client: Client,
    w: usize,
    mut writer: Writer,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Run {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut acked = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let slot = (writer.step as usize) % NAMES_PER_WRITER;
        let from = writer.state[slot].clone();
        let to = next_state(&from, writer.step, DELETE_EVERY);
        let result =
            tokio::time::timeout(REQUEST_BOUND, apply(&api, &name(w, slot), &from, &to)).await;
        match result {
            Ok(Ok(now)) => {
                if let Known::Present { rv, .. } = now {
                    acked.push(rv);
                }
                writer.state[slot] = now;
                writer.step += 1;
            }
            Ok(Err(e)) => {
                let early_error = (!cut.load(Ordering::SeqCst)).then(|| format!("{e:#}"));
                return Run {
                    writer,
                    in_flight: Some((slot, to)),
                    acked,
                    early_error,
                };
            }
            Err(_) => {
                let early_error = (!cut.load(Ordering::SeqCst))
                    .then(|| format!("no answer in {REQUEST_BOUND:?}"));
                return Run {
                    writer,
                    in_flight: Some((slot, to)),
                    acked,
                    early_error,
                };
            }
        }
    }
    Run {
        writer,
        in_flight: None,
        acked,
        early_error: None,
    }
}

/// Whether `seen` is what an acknowledged state and an unacknowledged change may have left.
fn explains(seen: &Known, acked: &Known, in_flight: Option<&Known>) -> bool {
    seen == acked
        || match (seen, in_flight) {
            (Known::Present { value, .. }, Some(Known::Present { value: want, .. })) => {
                value == want
            }
            (Known::Absent, Some(Known::Absent)) => true,
            _ => false,
        }
}

/// What a run of power cuts found.
#[derive(Default)]
struct Report {
    /// Acknowledged writes (of a name) missing after a power cut.
    lost: Vec<String>,
    /// Everything else that went wrong.
    problems: Vec<String>,
    acked: usize,
    cuts: usize,
}

/// A small xorshift generator: the cut times need no more.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((nanos ^ u64::from(std::process::id()) << 32) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The startup files clients depend on: the CA and the admin token.
fn credentials(s: &Skiff) -> Result<(String, String)> {
    let read = |p: &str| {
        std::fs::read_to_string(s.data_dir().join(p)).with_context(|| format!("reading {p}"))
    };
    Ok((read("pki/ca.crt")?, read("admin-token")?))
}

/// Up to `max_cuts` power cuts under the writers; with `until_loss` it stops at the first
/// lost acknowledged write.
async fn power_cuts(extra: &[&str], max_cuts: usize, until_loss: bool) -> Result<Report> {
    let mut fs = LossyMount::mount()?;
    let mut flags = vec!["--no-agent"];
    flags.extend(extra);
    let mut s = tokio::task::block_in_place(|| Skiff::start_in_dir(fs.path(), &flags))?;
    let creds = credentials(&s)?;
    let mut writers = vec![
        Writer {
            state: vec![Known::Absent; NAMES_PER_WRITER],
            step: 1
        };
        WRITERS
    ];
    let mut rng = Rng::new();
    let mut report = Report::default();
    // Every resourceVersion acknowledged before the current cut is at most this.
    let mut floor = 0u64;
    for cut_no in 1..=max_cuts {
        let client = s.client().await?;
        let (cut, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let tasks: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, wr)| {
                tokio::spawn(write(
                    client.clone(),
                    w,
                    wr.clone(),
                    cut.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let after = Duration::from_millis(1000 + rng.below(2000));
        tokio::time::sleep(after).await;
        cut.store(true, Ordering::SeqCst);
        tokio::task::block_in_place(|| fs.power_cut(|| s.kill9()))?;
        stop.store(true, Ordering::SeqCst);
        let mut runs = Vec::new();
        for t in tasks {
            runs.push(
                tokio::time::timeout(WRITERS_END_BOUND, t)
                    .await
                    .context("a writer did not stop after the power cut")??,
            );
        }
        report.cuts += 1;
        tokio::task::block_in_place(|| s.restart()).with_context(|| {
            format!(
                "the server did not come back after power cut {cut_no}; log:\n{}",
                s.log()
            )
        })?;
        let acked: Vec<u64> = runs.iter().flat_map(|r| r.acked.iter().copied()).collect();
        report.acked += acked.len();
        eprintln!(
            "cut {cut_no} after {after:?}: {} acknowledged creates and updates",
            acked.len()
        );
        if let Some(lo) = acked.iter().min().filter(|lo| **lo <= floor) {
            report.problems.push(format!("cut {cut_no}: acknowledged resourceVersion {lo}, not above {floor} acknowledged before"));
        }
        floor = floor.max(acked.iter().copied().max().unwrap_or(0));
        verify(&s, cut_no, &mut runs, floor, &mut report).await?;
        if credentials(&s)? != creds {
            report.problems.push(format!(
                "cut {cut_no}: the CA or the admin token changed: a startup file was not durable"
            ));
        }
        writers = runs.into_iter().map(|r| r.writer).collect();
        if until_loss && !report.lost.is_empty() {
            break;
        }
    }
    let unsupported = fs.unsupported();
    eprintln!(
        "{} fsyncs reached the filesystem; answered ENOSYS: {unsupported:?}",
        fs.fsyncs()
    );
    drop(s);
    Ok(report)
}

/// After a restart: every name as its writer's acknowledged state (or its in-flight change)
/// explains, no name no writer wrote, the store's revision not behind what was acknowledged.
/// Each writer goes on from what the server holds.
async fn verify(
    s: &Skiff,
    cut_no: usize,
    runs: &mut [Run],
    floor: u64,
    report: &mut Report,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(s.client().await?, "default");
    let list = tokio::time::timeout(REQUEST_BOUND, api.list(&ListParams::default())).await??;
    let revision: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    if revision < floor {
        report.problems.push(format!(
            "cut {cut_no}: the store's revision is {revision}, below the acknowledged {floor}"
        ));
    }
    let mut ours = BTreeSet::new();
    for (w, run) in runs.iter_mut().enumerate() {
        if let Some(e) = &run.early_error {
            report.problems.push(format!(
                "cut {cut_no}: writer {w} failed before the power cut: {e}"
            ));
        }
        for slot in 0..NAMES_PER_WRITER {
            let n = name(w, slot);
            ours.insert(n.clone());
            let seen = tokio::time::timeout(REQUEST_BOUND, read(&api, &n)).await??;
            let acked = &run.writer.state[slot];
            let in_flight = run
                .in_flight
                .as_ref()
                .filter(|(s, _)| *s == slot)
                .map(|(_, to)| to);
            if !explains(&seen, acked, in_flight) {
                let what = format!("cut {cut_no}: {n}: the server holds {seen:?}; acknowledged {acked:?}, in flight {in_flight:?}");
                // An older state than acknowledged is a lost write; anything else is invented.
                let older = match (&seen, acked) {
                    (Known::Absent, Known::Present { .. }) => true,
                    (Known::Present { rv, .. }, Known::Present { rv: want, .. }) => rv < want,
                    (Known::Present { .. }, Known::Absent) => true,
                    _ => false,
                };
                if older {
                    report.lost.push(what);
                } else {
                    report.problems.push(what);
                }
            }
            run.writer.state[slot] = seen;
        }
    }
    for c in &list.items {
        let n = c.metadata.name.clone().unwrap_or_default();
        if n.starts_with("pl-") && !ours.contains(&n) {
            report
                .problems
                .push(format!("cut {cut_no}: {n} exists, but no client wrote it"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_to_a_power_cut() -> Result<()> {
    let r = power_cuts(&[], CYCLES, false).await?;
    eprintln!(
        "{} acknowledged creates and updates across {} power cuts",
        r.acked, r.cuts
    );
    let all: Vec<String> = r.lost.iter().chain(&r.problems).cloned().collect();
    ensure!(all.is_empty(), "{}", all.join("\n"));
    ensure!(
        r.acked > 100,
        "too few writes to mean anything: {}",
        r.acked
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_without_fsync_is_caught_losing_writes_to_a_power_cut() -> Result<()> {
    let r = power_cuts(&["--unsafe-non-durable-store"], NEGATIVE_MAX_CYCLES, true).await?;
    ensure!(
        !r.lost.is_empty(),
        "{} power cuts under a store that does not fsync lost no acknowledged write ({} acknowledged): the layer keeps unsynced data, the test cannot fail",
        r.cuts,
        r.acked
    );
    eprintln!(
        "the negative control lost, as it must ({} findings), e.g.: {}",
        r.lost.len(),
        r.lost[0]
    );
    Ok(())
}
