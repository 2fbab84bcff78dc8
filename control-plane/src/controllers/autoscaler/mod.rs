//! The request-driven autoscaler, Knative-style, for Deployments carrying
//! `autoscaling.skiff.dev/*` annotations (`api/admission/validation/scale_annotations.rs`
//! parses them). Each tick (one second while the Deployment has replicas) it:
//!
//! 1. finds the Services in front of the Deployment and marks them for the nodes' activators
//!    (`services.rs`: `skiff.dev/activator` `serve` or `proxy`, `skiff.dev/scale-target`);
//! 2. reads the requests the nodes counted (`usage::requests`: its Wasm pods' own counts, the
//!    activators' per Service) into one sample (`meter.rs`);
//! 3. decides the replicas (`decide.rs`: stable and panic windows, rate limits, scale-down
//!    delay, to zero after the idle delay when `min-scale` is 0) and writes `spec.replicas`
//!    as the `scale` subresource does, with an Event for every change.
//!
//! At zero nothing ticks: a node whose activator holds a connection for one of the Services
//! reports it at once, and that demand queues the Deployment (`spawn`), which scales it up.
//! A Deployment without the annotations is never touched (and loses its Services' marks, so
//! deleting the annotations hands control back); one that a HorizontalPodAutoscaler targets
//! is left to it, with a Warning event.

mod decide;
mod meter;
pub mod services;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use super::queue::WorkQueue;
use super::runner::{served, Action, ReconcileError, Reconciler, Trigger};
use crate::api::admission::validation::scale_annotations::ScaleAnnotations;
use crate::api::handlers::{Objects, Subresource};
use crate::api::object;
use crate::api::selectors::LabelSelector;
use crate::events::{EventRecorder, EventType};
use crate::store::ObjectKey;
use crate::usage::RequestStore;
pub use decide::{
    Metric, Settings, DEFAULT_PANIC_WINDOW_PERCENT, DEFAULT_STABLE_WINDOW,
    DEFAULT_TARGET_UTILIZATION, DEFAULT_TICK,
};

/// One worker: a tick is a few reads and rarely a write.
pub const DEFAULT_WORKERS: usize = 1;
const DEPLOYMENTS: &str = "apps/deployments";
/// How long the activator is in a Service's path before its last pods go: every node's rules
/// follow an annotation within a watch event and a rule sync (~100 ms batch), so no
/// connection is sent to a pod that is going away. Knative waits for the same reason.
pub const DEFAULT_ZERO_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A workload's history between ticks.
struct Tracked {
    scaler: decide::Scaler,
    meter: meter::Meter,
    /// Since when the Services have been in proxy mode (the activator in their path).
    proxy_since: Option<Instant>,
}

pub struct Autoscaler {
    objects: Objects,
    requests: RequestStore,
    recorder: EventRecorder,
    tracked: Mutex<HashMap<ObjectKey, Tracked>>,
    /// Every Service's selector and marks by namespace, kept by the Service trigger, so a
    /// reconcile does not read a namespace's Services from the store.
    services: Arc<Mutex<ServiceIndex>>,
}

/// namespace → Service name → the Service trimmed to its name, selector and marks.
type ServiceIndex = HashMap<String, HashMap<String, Value>>;

impl Autoscaler {
    pub fn new(objects: Objects) -> Self {
        let st = objects.state();
        Autoscaler {
            recorder: EventRecorder::new(st.store.clone(), "skiff-autoscaler"),
            requests: st.requests.clone(),
            objects,
            tracked: Mutex::default(),
            services: Arc::default(),
        }
    }

    async fn event(&self, obj: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(obj, kind, reason, message).await {
            tracing::debug!(error = %e, "cannot record event");
        }
    }

    fn forget(&self, key: &ObjectKey) {
        self.tracked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Marks `names` for `deployment` in `mode`, and unmarks the other Services marked for it.
    async fn mark_services(
        &self,
        ns: &str,
        deployment: &str,
        services: &[Value],
        names: &[String],
        mode: Option<&str>,
    ) -> Result<(), ReconcileError> {
        let def = served("", "services")?;
        for svc in services {
            let name = object::name(svc);
            let wanted = match mode {
                Some(m) if names.iter().any(|n| n == name) => Some((m, deployment)),
                _ if services::annotation(svc, services::SCALE_TARGET_ANNOTATION)
                    == Some(deployment) =>
                {
                    None
                }
                _ => continue,
            };
            let mut probe = svc.clone();
            if !services::set_marks(&mut probe, wanted) {
                continue;
            }
            self.objects
                .modify(def, ns, name, Subresource::Main, |s| {
                    services::set_marks(s, wanted);
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// The Services of `ns` as the index has them (trimmed).
    fn namespace_services(&self, ns: &str) -> Vec<Value> {
        let idx = self.services.lock().unwrap_or_else(|p| p.into_inner());
        idx.get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a HorizontalPodAutoscaler in `ns` scales Deployment `name`.
    async fn hpa_targets(&self, ns: &str, name: &str) -> Result<bool, ReconcileError> {
        let Some(def) =
            crate::api::resources::find("autoscaling", "v2", "horizontalpodautoscalers")
        else {
            return Ok(false);
        };
        let hpas = self.objects.list(def, ns, None).await?;
        Ok(hpas.iter().any(|h| {
            h.pointer("/spec/scaleTargetRef/kind")
                .and_then(Value::as_str)
                == Some("Deployment")
                && h.pointer("/spec/scaleTargetRef/name")
                    .and_then(Value::as_str)
                    == Some(name)
        }))
    }
}

/// The annotations as the decision's settings.
fn settings(a: &ScaleAnnotations) -> Settings {
    let (metric, target) = match a.target_rps {
        Some(rps) => (Metric::Rps, rps),
        None => (
            Metric::Concurrency,
            a.target_concurrency * DEFAULT_TARGET_UTILIZATION,
        ),
    };
    Settings {
        min: a.min_scale,
        max: a.max_scale,
        metric,
        target,
        scale_down_delay: a.scale_down_delay,
        stable_window: DEFAULT_STABLE_WINDOW,
        panic_window: DEFAULT_STABLE_WINDOW.mul_f64(DEFAULT_PANIC_WINDOW_PERCENT / 100.0),
    }
}

/// The reason of an Event for a change from `from` to `to` replicas.
fn reason(from: u32, to: u32) -> &'static str {
    match (from, to) {
        (0, _) => "ScaledFromZero",
        (_, 0) => "ScaledToZero",
        (f, t) if t > f => "ScaledUp",
        _ => "ScaledDown",
    }
}

impl Reconciler for Autoscaler {
    fn name(&self) -> &'static str {
        "autoscaler"
    }

    fn triggers(&self) -> Vec<Trigger> {
        // The Deployments themselves (their pod template labels remembered), and a Service's
        // change for the Deployments it selects (before and after) or is marked for: a new
        // Service in front of one, a changed selector, a lost mark.
        let templates: Arc<Mutex<HashMap<String, HashMap<String, Value>>>> = Arc::default();
        let (own, deps) = (templates.clone(), templates);
        let index = self.services.clone();
        vec![
            Trigger::mapped(DEPLOYMENTS, move |e| {
                let mut m = own.lock().unwrap_or_else(|p| p.into_inner());
                let ns = m.entry(e.key.namespace.clone()).or_default();
                if e.kind == crate::store::EventType::Deleted {
                    ns.remove(&e.key.name);
                } else {
                    let labels = e
                        .object
                        .pointer("/spec/template/metadata/labels")
                        .cloned()
                        .unwrap_or(Value::Null);
                    ns.insert(e.key.name.clone(), labels);
                }
                vec![e.key.clone()]
            }),
            Trigger::mapped("core/services", move |e| {
                {
                    let mut idx = index.lock().unwrap_or_else(|p| p.into_inner());
                    let ns = idx.entry(e.key.namespace.clone()).or_default();
                    if e.kind == crate::store::EventType::Deleted {
                        ns.remove(&e.key.name);
                    } else {
                        ns.insert(e.key.name.clone(), services::trimmed(&e.object));
                    }
                }
                let m = deps.lock().unwrap_or_else(|p| p.into_inner());
                let mut names = std::collections::BTreeSet::new();
                for svc in std::iter::once(&e.object).chain(e.prev.as_ref()) {
                    if let Some(t) = services::annotation(svc, services::SCALE_TARGET_ANNOTATION) {
                        names.insert(t.to_string());
                    }
                    for (name, labels) in m.get(&e.key.namespace).into_iter().flatten() {
                        if services::selects(svc, labels) {
                            names.insert(name.clone());
                        }
                    }
                }
                names
                    .into_iter()
                    .map(|n| ObjectKey::new(DEPLOYMENTS, &e.key.namespace, &n))
                    .collect()
            }),
        ]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let ns = key.namespace.as_str();
        let deployment = self
            .objects
            .get(served("apps", "deployments")?, ns, &key.name)
            .await?;
        let annotations = deployment
            .as_ref()
            .filter(|d| d.pointer("/metadata/deletionTimestamp").is_none())
            .and_then(|d| ScaleAnnotations::of(d).ok().flatten());
        let (Some(dep), Some(annotations)) = (deployment, annotations) else {
            // Not (or no longer) autoscaled: hand the Services back.
            self.forget(key);
            let services = self.namespace_services(ns);
            if !services::marked_for(&services, &key.name).is_empty() {
                self.mark_services(ns, &key.name, &services, &[], None)
                    .await?;
            }
            return Ok(Action::Done);
        };
        if self.hpa_targets(ns, &key.name).await? {
            self.forget(key);
            let msg = "a HorizontalPodAutoscaler scales this Deployment: its autoscaling.skiff.dev annotations are ignored until it is deleted";
            self.event(&dep, EventType::Warning, "AutoscalerConflict", msg)
                .await;
            return Ok(Action::Done);
        }

        let selector = dep
            .pointer("/spec/selector")
            .map(LabelSelector::from_k8s)
            .transpose()
            .map_err(|e| ReconcileError::Invalid(e.to_string()))?
            .unwrap_or_else(LabelSelector::nothing);
        // The API's label selector when the Deployment's is plain matchLabels (most are),
        // so a namespace of a thousand workloads is not read whole each tick.
        let by_labels = match dep.pointer("/spec/selector") {
            Some(sel) if sel.get("matchExpressions").is_none() => sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                }),
            _ => None,
        };
        let pods: Vec<Value> = self
            .objects
            .list(served("", "pods")?, ns, by_labels.as_deref())
            .await?
            .into_iter()
            .filter(|p| selector.matches_object(p))
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        let all_services = self.namespace_services(ns);
        let fronting = services::fronting(&all_services, &dep);
        // The mode the nodes apply now.
        let applied = all_services
            .iter()
            .filter(|s| fronting.iter().any(|n| n == object::name(s)))
            .find_map(|s| services::annotation(s, services::ACTIVATOR_ANNOTATION))
            .map(str::to_string);

        // The sample: the pods' own counts while they are served directly, and the
        // activators' (which see every connection in proxy mode, the held ones in serve mode).
        let mut counters = Vec::new();
        if applied.as_deref() == Some(services::SERVE) {
            for p in &pods {
                counters.extend(
                    self.requests
                        .pod(ns, object::meta_str(p, "uid").unwrap_or("")),
                );
            }
        }
        for name in &fronting {
            counters.extend(self.requests.service(ns, name));
        }
        let now = Instant::now();
        let current = dep
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1) as u32;
        let ready = dep
            .pointer("/status/readyReplicas")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        let settings = settings(&annotations);
        let decision = {
            let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
            let t = tracked.entry(key.clone()).or_insert_with(|| Tracked {
                scaler: decide::Scaler::new(now),
                meter: meter::Meter::default(),
                proxy_since: None,
            });
            let sample = if current == 0 {
                // At zero only the held connections matter (the rates resume with the pods).
                let held: u64 = counters.iter().map(|c| c.held).sum();
                decide::Sample {
                    held,
                    active: held > 0,
                    ..decide::Sample::default()
                }
            } else {
                let wait = t.meter.due_in(now);
                if !wait.is_zero() {
                    return Ok(Action::RequeueAfter(wait));
                }
                t.meter.measure(&counters, now)
            };
            t.scaler.decide(&settings, &sample, current, ready, now)
        };

        // The activator goes into the path before the pods go away.
        let to_zero = decision.replicas == 0 && current > 0;
        let mode = services::mode(&pods, &dep, decision.replicas == 0);
        self.mark_services(ns, &key.name, &all_services, &fronting, Some(mode))
            .await?;
        let proxied_for = {
            let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
            let t = tracked.get_mut(key);
            match (t, mode) {
                (Some(t), services::PROXY) => {
                    // Written now, or already applied (then conservatively from now).
                    let since = *t.proxy_since.get_or_insert(now);
                    now.duration_since(since)
                }
                (Some(t), _) => {
                    t.proxy_since = None;
                    std::time::Duration::ZERO
                }
                (None, _) => std::time::Duration::ZERO,
            }
        };
        if to_zero && !fronting.is_empty() && proxied_for < DEFAULT_ZERO_GRACE {
            return Ok(Action::RequeueAfter(DEFAULT_ZERO_GRACE - proxied_for));
        }
        let mut replicas = current;
        if decision.replicas != current {
            let desired = decision.replicas;
            let changed = self
                .objects
                .modify(
                    served("apps", "deployments")?,
                    ns,
                    &key.name,
                    Subresource::Main,
                    |d| {
                        d["spec"]["replicas"] = json!(desired);
                        Ok(())
                    },
                )
                .await?;
            if let Some(changed) = changed {
                replicas = desired;
                let msg = format!(
                    "Scaled from {current} to {desired} replicas; reason: {}",
                    decision.reason
                );
                tracing::info!(namespace = ns, deployment = %key.name, from = current, to = desired, reason = %decision.reason, "autoscaled");
                self.event(&changed, EventType::Normal, reason(current, desired), &msg)
                    .await;
            }
        }
        Ok(if replicas == 0 {
            // Woken by demand (or a change); nothing to sample meanwhile.
            Action::Done
        } else {
            Action::RequeueAfter(DEFAULT_TICK)
        })
    }
}

/// Starts the autoscaler and the task that turns nodes' demand for a Service into an
/// immediate reconcile of the Deployment it fronts.
pub fn spawn(
    objects: Objects,
    store: crate::store::Store,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let autoscaler = Arc::new(Autoscaler::new(objects));
    let requests = autoscaler.requests.clone();
    let queue = Arc::new(WorkQueue::new());
    let mut tasks = super::runner::spawn_on(
        autoscaler,
        store.clone(),
        DEFAULT_WORKERS,
        queue.clone(),
        shutdown.clone(),
    );
    tasks.push(tokio::spawn(demand(requests, store, queue, shutdown)));
    tasks
}

/// Queues the Deployment behind each Service a node holds connections for.
async fn demand(
    requests: RequestStore,
    store: crate::store::Store,
    queue: Arc<WorkQueue>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let wanted = tokio::select! {
            w = requests.demand() => w,
            _ = shutdown.changed() => return,
        };
        for (ns, name) in wanted {
            let key = ObjectKey::new("core/services", &ns, &name);
            let Ok(Some(svc)) = store.get(&key).await else {
                continue;
            };
            if let Some(target) = services::annotation(&svc, services::SCALE_TARGET_ANNOTATION) {
                queue.add(ObjectKey::new(DEPLOYMENTS, &ns, target));
            }
        }
    }
}
