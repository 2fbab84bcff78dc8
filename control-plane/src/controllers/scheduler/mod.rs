//! The scheduler, built like kube-scheduler: one pods watch, one nodes watch and one
//! PersistentVolumeClaims watch feed an in-memory [`cache::Cache`]; pending pods wait in a
//! [`queue::SchedulingQueue`]; each pod in turn runs PreFilter (claims, inter-pod affinity,
//! spread), the filters ([`filters`]) over enough nodes (kube's `percentageOfNodesToScore`),
//! the scores ([`score`]), and is *assumed* on the chosen node while its bind is written
//! concurrently (the store group-commits them). Unschedulable pods get a `FailedScheduling`
//! event and `PodScheduled=False` with kube-scheduler's message, and are retried when nodes or
//! pods change; bound pods get a `Scheduled` event. No preemption: the message names no
//! preemption outcome.

pub mod affinity;
pub mod cache;
pub mod filters;
pub mod podinfo;
pub mod queue;
mod report;
pub mod score;
pub mod spread;
pub mod taints;
pub mod volumes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, watch};

use crate::binding::BindError;
use crate::events::EventRecorder;
use crate::store::{EventType, ListScope, ObjectKey, Store, StoreError, StoreEvent, Watcher};
use affinity::{AffinityScore, AffinityState};
use cache::{pod_event, Cache, NodeChange};
use filters::{CycleState, Reason};
use podinfo::PodInfo;
use queue::SchedulingQueue;
use volumes::VolumeState;

/// The scheduler name pods get by default; pods naming another scheduler are left alone.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Binds in flight at once: they share the store's group commits; more only queues.
pub const DEFAULT_BIND_CONCURRENCY: usize = 256;
/// Pods scheduled between two looks at the watches, so the cache never lags far behind.
pub const DEFAULT_BATCH: usize = 64;
/// kube-scheduler's `minFeasibleNodesToFind`: below this many nodes, every node is checked.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// kube-scheduler's floor for the adaptive `percentageOfNodesToScore`.
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;
/// Pause before re-listing after a store error.
const RELIST_PAUSE: Duration = Duration::from_millis(200);
/// Longest sleep when nothing is due, so shutdown and timers are looked at regularly.
const IDLE_WAIT: Duration = Duration::from_secs(1);

const PODS: &str = "core/pods";
const NODES: &str = "core/nodes";

/// kube-scheduler's `numFeasibleNodesToFind` with the adaptive percentage.
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let pct = 50usize
        .saturating_sub(all / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    (all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

struct BindOutcome {
    key: String,
    result: Result<(), BindError>,
}

pub struct Scheduler {
    store: Store,
    recorder: Arc<EventRecorder>,
    cache: Cache,
    queue: SchedulingQueue,
    /// Binds in flight: pod key → node (the pod is assumed there).
    binding: HashMap<String, String>,
    /// Last FailedScheduling message per pod uid, so repeats don't rewrite the same thing.
    last_failure: HashMap<String, String>,
    next_start: usize,
    rng: StdRng,
    results_tx: mpsc::UnboundedSender<BindOutcome>,
    results_rx: mpsc::UnboundedReceiver<BindOutcome>,
    /// `Scheduled` events to write (by [`report::scheduled_events`]).
    events_tx: mpsc::UnboundedSender<(serde_json::Value, String)>,
    events_rx: Option<mpsc::UnboundedReceiver<(serde_json::Value, String)>>,
    bind_concurrency: usize,
    /// When each pending pod was first seen, for the `schedule` cold-start stage.
    first_seen: HashMap<String, Instant>,
}

/// Time from a pod's first sighting by the scheduler to its bind: the `schedule` stage of
/// `skiff_cold_start_stage_seconds` on the control plane's `/metrics` (the nodes have the
/// other stages).
pub static SCHEDULE_STAGE: std::sync::LazyLock<prometheus_client::metrics::histogram::Histogram> =
    std::sync::LazyLock::new(|| {
        prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 22),
        )
    });

enum Wake {
    Pod(Result<Arc<StoreEvent>, StoreError>),
    Node(Result<Arc<StoreEvent>, StoreError>),
    Pvc(Result<Arc<StoreEvent>, StoreError>),
    Bound(Option<BindOutcome>),
    Timer,
    Shutdown,
}

impl Scheduler {
    pub fn new(store: Store) -> Self {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Scheduler {
            events_tx,
            events_rx: Some(events_rx),
            recorder: Arc::new(EventRecorder::new(store.clone(), SCHEDULER_NAME)),
            store,
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
            binding: HashMap::new(),
            last_failure: HashMap::new(),
            next_start: 0,
            rng: StdRng::from_os_rng(),
            results_tx,
            results_rx,
            bind_concurrency: DEFAULT_BIND_CONCURRENCY,
            first_seen: HashMap::new(),
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Some(rx) = self.events_rx.take() {
            tokio::spawn(report::scheduled_events(self.recorder.clone(), rx));
        }
        while !*shutdown.borrow() {
            match self.session(&mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "scheduler watches ended; re-listing");
                    tokio::select! {
                        _ = tokio::time::sleep(RELIST_PAUSE) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Lists everything, then follows the watches until one fails (Err: re-list) or shutdown.
    async fn session(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), StoreError> {
        let mut pods = self.list_and_watch(PODS).await?;
        let mut nodes = self.list_and_watch(NODES).await?;
        let mut pvcs = self.list_and_watch(volumes::PVC_RESOURCE).await?;
        self.cache.clear();
        self.queue = SchedulingQueue::default();
        for ev in nodes.0 {
            self.cache.set_node(&ev.object);
        }
        for ev in pvcs.0 {
            self.cache.set_pvc(&ev.object);
        }
        for ev in pods.0 {
            self.on_pod(ev);
        }
        let inflight: Vec<(String, String)> = self
            .binding
            .iter()
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect();
        for (key, node) in inflight {
            self.queue.remove(&key);
            self.cache.assume(&key, &node);
        }
        loop {
            // Take in every change already there, then schedule a batch.
            loop {
                let mut any = false;
                while let Some(ev) = pods.1.next().now_or_never() {
                    self.on_pod(ev?);
                    any = true;
                }
                while let Some(ev) = nodes.1.next().now_or_never() {
                    self.on_node(ev?);
                    any = true;
                }
                while let Some(ev) = pvcs.1.next().now_or_never() {
                    self.on_pvc(ev?);
                    any = true;
                }
                while let Ok(out) = self.results_rx.try_recv() {
                    self.on_bound(out);
                    any = true;
                }
                if !any {
                    break;
                }
            }
            let next_tick = self.queue.tick(Instant::now());
            let mut scheduled = 0;
            while scheduled < DEFAULT_BATCH && self.binding.len() < self.bind_concurrency {
                let Some(key) = self.queue.pop() else {
                    break;
                };
                self.schedule_one(&key);
                scheduled += 1;
            }
            if scheduled > 0 && self.queue.len_active() > 0 {
                tokio::task::yield_now().await;
                continue;
            }
            let wait = next_tick
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(IDLE_WAIT)
                .min(IDLE_WAIT);
            let wake = tokio::select! {
                ev = pods.1.next() => Wake::Pod(ev),
                ev = nodes.1.next() => Wake::Node(ev),
                ev = pvcs.1.next() => Wake::Pvc(ev),
                out = self.results_rx.recv() => Wake::Bound(out),
                _ = tokio::time::sleep(wait) => Wake::Timer,
                _ = shutdown.changed() => Wake::Shutdown,
            };
            match wake {
                Wake::Pod(ev) => self.on_pod(ev?),
                Wake::Node(ev) => self.on_node(ev?),
                Wake::Pvc(ev) => self.on_pvc(ev?),
                Wake::Bound(Some(out)) => self.on_bound(out),
                Wake::Bound(None) | Wake::Timer => {}
                Wake::Shutdown => return Ok(()),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
    }

    async fn list_and_watch(
        &self,
        resource: &str,
    ) -> Result<(Vec<Arc<StoreEvent>>, Watcher), StoreError> {
        let scope = ListScope::new(resource, None);
        let list = self.store.list(&scope).await?;
        let watcher = self.store.watch(scope, list.revision).await?;
        let events = list
            .items
            .into_iter()
            .map(|obj| match resource {
                PODS => pod_event(obj),
                _ => {
                    let key = ObjectKey::new(
                        resource,
                        crate::api::object::namespace(&obj),
                        crate::api::object::name(&obj),
                    );
                    Arc::new(StoreEvent::new(0, EventType::Added, key, obj, None))
                }
            })
            .collect();
        Ok((events, watcher))
    }

    fn on_pod(&mut self, ev: Arc<StoreEvent>) {
        let key = format!("{}/{}", ev.key.namespace, ev.key.name);
        let now = Instant::now();
        if ev.kind == EventType::Deleted {
            if let Some(p) = self.cache.remove_pod(&key) {
                self.last_failure.remove(&p.info.uid);
                if p.node.is_some() {
                    self.queue.move_all(now);
                }
            }
            self.queue.remove(&key);
            self.first_seen.remove(&key);
            return;
        }
        let (info, prev) = self.cache.set_pod(ev.clone());
        if info.wants_scheduling(SCHEDULER_NAME) {
            self.first_seen.entry(key.clone()).or_insert(now);
            if self.binding.contains_key(&key) {
                return;
            }
            // A parked pod whose spec or labels changed is worth a new try right away.
            let changed = prev.as_ref().is_some_and(|p| {
                p.obj.object.get("spec") != ev.object.get("spec")
                    || p.obj.object.pointer("/metadata/labels")
                        != ev.object.pointer("/metadata/labels")
            });
            if changed {
                self.queue.remove(&key);
            }
            self.queue.add(&info);
            return;
        }
        self.queue.remove(&key);
        let was_on = prev.as_ref().and_then(|p| p.node.clone());
        let now_on = self.cache.pod(&key).and_then(|p| p.node.clone());
        if was_on.is_some() && now_on.is_none() {
            // Terminal: its room is free.
            self.queue.move_all(now);
        } else if was_on.is_none() && now_on.is_some() && self.queue.len_parked() > 0 {
            // Landed somewhere else (by another scheduler or by hand): affinity may change.
            self.queue.move_all(now);
        } else if !info.node_name.is_empty() {
            self.last_failure.remove(&info.uid);
        }
    }

    fn on_node(&mut self, ev: Arc<StoreEvent>) {
        if ev.kind == EventType::Deleted {
            self.cache.remove_node(&ev.key.name);
            return;
        }
        if self.cache.set_node(&ev.object) != NodeChange::Unchanged {
            self.queue.move_all(Instant::now());
        }
    }

    fn on_pvc(&mut self, ev: Arc<StoreEvent>) {
        if ev.kind == EventType::Deleted {
            self.cache.remove_pvc(&ev.key.namespace, &ev.key.name);
        } else {
            self.cache.set_pvc(&ev.object);
        }
        self.queue.move_all(Instant::now());
    }

    fn on_bound(&mut self, out: BindOutcome) {
        self.binding.remove(&out.key);
        if out.result.is_ok() {
            if let Some(seen) = self.first_seen.remove(&out.key) {
                SCHEDULE_STAGE.observe(seen.elapsed().as_secs_f64());
            }
        }
        let Err(e) = out.result else {
            // A pod landed: pods waiting for pod affinity to it may fit now.
            if self.queue.len_parked() > 0 {
                self.queue.move_all(Instant::now());
            }
            return;
        };
        let still_pending = self.cache.forget(&out.key);
        match e {
            // Bound or deleted meanwhile: the watch brings the truth.
            BindError::AlreadyBound { .. } | BindError::NotFound(_) | BindError::Terminating(_) => {
            }
            e => {
                tracing::warn!(pod = %out.key, error = %e, "bind failed; retrying");
                if let Some(p) = self.cache.pod(&out.key).filter(|_| still_pending) {
                    let info = p.info.clone();
                    self.queue.park(&info, true, Instant::now());
                }
            }
        }
    }

    /// One scheduling cycle for one pod: PreFilter, Filter, Score, assume, bind.
    fn schedule_one(&mut self, key: &str) {
        let Some(p) = self.cache.pod(key) else {
            return;
        };
        if p.node.is_some() || !p.info.wants_scheduling(SCHEDULER_NAME) {
            return;
        }
        let (info, obj) = (p.info.clone(), p.obj.clone());
        let total = self.cache.nodes().len();
        if total == 0 {
            return self.unschedulable(&info, &obj, filters::summarize(0, &HashMap::new(), None));
        }
        let volumes = match VolumeState::compute(&info, &self.cache) {
            Ok(v) => v,
            Err(msg) => {
                let msg = filters::summarize(total, &HashMap::new(), Some(&msg));
                return self.unschedulable(&info, &obj, msg);
            }
        };
        let nodes = self.cache.nodes();
        let existing_anti = nodes.iter().any(|n| n.with_anti_affinity > 0);
        let state = CycleState {
            volumes,
            affinity: (!info.affinity.is_empty()
                || !info.anti_affinity.is_empty()
                || existing_anti)
                .then(|| AffinityState::compute(&info, &self.cache)),
            spread: (!info.spread.is_empty())
                .then(|| spread::SpreadState::compute(&info, &self.cache)),
        };
        let want = feasible_nodes_to_find(total);
        let mut feasible = Vec::with_capacity(want.min(total));
        let mut reasons: HashMap<Reason, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut processed = 0;
        for i in 0..total {
            let node = &nodes[(self.next_start + i) % total];
            processed = i + 1;
            out.clear();
            filters::filter(&info, node, &state, &mut out);
            if out.is_empty() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                for r in out.drain(..) {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
        self.next_start = (self.next_start + processed) % total;
        if feasible.is_empty() {
            let msg = filters::summarize(total, &reasons, None);
            return self.unschedulable(&info, &obj, msg);
        }
        let chosen = if feasible.len() == 1 {
            0
        } else {
            let with_affinity = !info.preferred_affinity.is_empty()
                || !info.preferred_anti_affinity.is_empty()
                || nodes.iter().any(|n| n.with_affinity > 0);
            let aff = with_affinity.then(|| AffinityScore::compute(&info, &self.cache));
            let scores = score::score_nodes(&info, &feasible, aff.as_ref(), state.spread.as_ref());
            score::select(&scores, &mut self.rng).unwrap_or(0)
        };
        let node = feasible[chosen].name.clone();
        for claim in &state.volumes.unbound {
            self.cache.assume_pvc(&info.namespace, claim, &node);
        }
        self.cache.assume(key, &node);
        self.binding.insert(key.to_string(), node.clone());
        self.queue.remove(key);
        let (store, events, tx) = (
            self.store.clone(),
            self.events_tx.clone(),
            self.results_tx.clone(),
        );
        let (key, claims) = (key.to_string(), state.volumes.unbound);
        tokio::spawn(async move {
            report::bind(
                &store,
                &events,
                &obj.object,
                &info,
                &node,
                &claims,
                &tx,
                key,
            )
            .await;
        });
    }

    fn unschedulable(&mut self, info: &PodInfo, obj: &Arc<StoreEvent>, msg: String) {
        self.queue.park(info, false, Instant::now());
        if self.last_failure.get(&info.uid) == Some(&msg) {
            return;
        }
        tracing::info!(pod = %info.key(), message = %msg, "unschedulable");
        self.last_failure.insert(info.uid.clone(), msg.clone());
        let (store, recorder, obj) = (self.store.clone(), self.recorder.clone(), obj.clone());
        tokio::spawn(
            async move { report::unschedulable(&store, &recorder, &obj.object, &msg).await },
        );
    }
}

#[cfg(test)]
mod tests;
