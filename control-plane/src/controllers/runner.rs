//! Runs a level-triggered controller, as kube-runtime's `Controller` does: watches turn store
//! changes into object keys on a [`WorkQueue`]; workers reconcile one key at a time (never two
//! reconciles of one key at once), reading the latest state; a reconcile returns
//! done-or-requeue-after, and errors retry with backoff. Watches re-list on `Gone` and every
//! [`DEFAULT_RESYNC`], so a missed event is only ever late, never lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::queue::WorkQueue;
use crate::api::resources::ResourceDef;
use crate::api::ApiError;
use crate::store::{EventType, ListScope, ObjectKey, Store, StoreError, StoreEvent};

/// Full re-list of every watched resource, so nothing waits forever on a missed event.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);
/// A reconcile that takes longer is abandoned and retried (every wait has a bound).
pub const DEFAULT_RECONCILE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle workers and watches look at the shutdown flag.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What to do with a key after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until the next change.
    Done,
    /// Reconcile again after this long (e.g. a timer: minReadySeconds, a deadline).
    RequeueAfter(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// A served `v1` resource of `group` (`""` = core), or why a controller cannot start.
pub fn served(group: &str, plural: &str) -> Result<&'static ResourceDef, ReconcileError> {
    crate::api::resources::find(group, "v1", plural)
        .ok_or_else(|| ReconcileError::Invalid(format!("resource {group}/{plural} is not served")))
}

/// How a [`selector_fanout`] resource selects its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    /// A plain label map (a Service's `spec.selector`); empty or missing selects nothing.
    Map,
    /// A `metav1.LabelSelector` (matchLabels/matchExpressions; empty selects everything).
    LabelSelector,
}

/// Triggers for a controller of `resource` objects that each select `dependents` (pods) of
/// their namespace by the selector at `selector_path`: a change of one reconciles it, and a
/// change of a dependent reconciles only the objects whose selector matches its labels before
/// or after the change (as Kubernetes' controllers look the selecting objects up in their
/// caches) — a namespace of a thousand Services is not reconciled whole at every pod event.
pub fn selector_fanout(
    resource: &'static str,
    dependents: &'static str,
    selector_path: &'static str,
    kind: SelectorKind,
) -> Vec<Trigger> {
    type Index = std::collections::HashMap<String, std::collections::HashMap<String, Value>>;
    let index: Arc<std::sync::Mutex<Index>> = Arc::default();
    let (own, deps) = (index.clone(), index);
    vec![
        Trigger::mapped(resource, move |e| {
            let mut m = own.lock().unwrap_or_else(|e| e.into_inner());
            let set = m.entry(e.key.namespace.clone()).or_default();
            if e.kind == EventType::Deleted {
                set.remove(&e.key.name);
            } else {
                let selector = e
                    .object
                    .pointer(selector_path)
                    .cloned()
                    .unwrap_or(Value::Null);
                set.insert(e.key.name.clone(), selector);
            }
            vec![e.key.clone()]
        }),
        Trigger::mapped(dependents, move |e| {
            let m = deps.lock().unwrap_or_else(|e| e.into_inner());
            let Some(set) = m.get(&e.key.namespace) else {
                return Vec::new();
            };
            let objects: Vec<&Value> = std::iter::once(&e.object).chain(e.prev.as_ref()).collect();
            set.iter()
                .filter(|(_, selector)| objects.iter().any(|o| selects(kind, selector, o)))
                .map(|(name, _)| ObjectKey::new(resource, &e.key.namespace, name))
                .collect()
        }),
    ]
}

/// Whether `selector` (of `kind`) selects `obj` by its labels.
fn selects(kind: SelectorKind, selector: &Value, obj: &Value) -> bool {
    match kind {
        SelectorKind::Map => {
            let Some(pairs) = selector.as_object().filter(|m| !m.is_empty()) else {
                return false;
            };
            let labels = obj.pointer("/metadata/labels");
            pairs
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        }
        SelectorKind::LabelSelector => {
            if selector.is_null() {
                return false;
            }
            match crate::api::selectors::LabelSelector::from_k8s(selector) {
                Ok(s) => s.matches_object(obj),
                // An invalid selector: reconcile it anyway, it reports the problem.
                Err(_) => true,
            }
        }
    }
}

/// Maps a change of a watched resource to the keys of the objects to reconcile.
pub type KeyMapper = Box<dyn Fn(&StoreEvent) -> Vec<ObjectKey> + Send + Sync>;

/// A watched resource (store name, e.g. `apps/replicasets`, `core/pods`) and its mapper.
pub struct Trigger {
    pub resource: String,
    pub map: KeyMapper,
}

impl Trigger {
    /// Changes of the controller's own objects reconcile that object.
    pub fn own(resource: &str) -> Trigger {
        Trigger {
            resource: resource.to_string(),
            map: Box::new(|e| vec![e.key.clone()]),
        }
    }

    /// Changes of dependents reconcile their controlling owner of `owner_kind`, stored as
    /// `owner_resource` (before and after the change, so a released dependent counts too).
    pub fn owner(
        resource: &str,
        owner_kind: &'static str,
        owner_resource: &'static str,
    ) -> Trigger {
        Trigger {
            resource: resource.to_string(),
            map: Box::new(move |e| {
                let mut keys = Vec::new();
                for obj in std::iter::once(&e.object).chain(e.prev.as_ref()) {
                    if let Some(name) = controller_of(obj, owner_kind) {
                        let key = ObjectKey::new(owner_resource, &e.key.namespace, &name);
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                }
                keys
            }),
        }
    }

    /// A custom mapping.
    pub fn mapped(
        resource: &str,
        map: impl Fn(&StoreEvent) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Trigger {
        Trigger {
            resource: resource.to_string(),
            map: Box::new(map),
        }
    }
}

/// The name of the owner of `kind` with `controller: true` in `obj`'s ownerReferences.
pub fn controller_of(obj: &Value, kind: &str) -> Option<String> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| {
            r.get("controller").and_then(Value::as_bool) == Some(true)
                && r.get("kind").and_then(Value::as_str) == Some(kind)
        })
        .and_then(|r| r.get("name").and_then(Value::as_str))
        .map(str::to_string)
}

/// A controller: its watches and its reconcile of one key.
pub trait Reconciler: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn triggers(&self) -> Vec<Trigger>;
    fn reconcile(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Action, ReconcileError>> + Send;
}

/// Starts the watches and `workers` reconcile workers; all end when `shutdown` flips.
pub fn spawn<R: Reconciler>(
    reconciler: Arc<R>,
    store: Store,
    workers: usize,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    spawn_on(
        reconciler,
        store,
        workers,
        Arc::new(WorkQueue::new()),
        shutdown,
    )
}

/// [`spawn`] on a given queue, so another source (e.g. a node's demand) can add keys too.
pub fn spawn_on<R: Reconciler>(
    reconciler: Arc<R>,
    store: Store,
    workers: usize,
    queue: Arc<WorkQueue>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for trigger in reconciler.triggers() {
        tasks.push(tokio::spawn(watch_trigger(
            reconciler.name(),
            trigger,
            store.clone(),
            queue.clone(),
            shutdown.clone(),
        )));
    }
    for _ in 0..workers.max(1) {
        tasks.push(tokio::spawn(work(
            reconciler.clone(),
            queue.clone(),
            shutdown.clone(),
        )));
    }
    tasks
}

async fn work<R: Reconciler>(r: Arc<R>, queue: Arc<WorkQueue>, shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let Some(key) = queue.next(IDLE_POLL).await else {
            continue;
        };
        let span = tracing::info_span!("reconcile", controller = r.name(), namespace = %key.namespace, name = %key.name);
        let result = tokio::time::timeout(DEFAULT_RECONCILE_TIMEOUT, r.reconcile(&key))
            .instrument(span.clone())
            .await;
        match result {
            Ok(Ok(Action::Done)) => queue.forget(&key),
            Ok(Ok(Action::RequeueAfter(d))) => {
                queue.forget(&key);
                queue.add_after(key.clone(), d);
            }
            Ok(Err(e)) => {
                // Conflicts are routine (someone wrote first): retry soon without noise.
                if matches!(&e, ReconcileError::Api(a) if a.code == http::StatusCode::CONFLICT) {
                    tracing::debug!(parent: &span, error = %e, "conflict; retrying");
                } else {
                    tracing::warn!(parent: &span, error = %e, "reconcile failed; retrying with backoff");
                }
                queue.add_failed(key.clone());
            }
            Err(_) => {
                tracing::warn!(parent: &span, "reconcile timed out; retrying with backoff");
                queue.add_failed(key.clone());
            }
        }
        queue.done(&key);
    }
}

/// Starts one more watch feeding `queue` (for resources that appear after the controller
/// started: custom resources).
pub fn spawn_watch(
    name: &'static str,
    trigger: Trigger,
    store: Store,
    queue: Arc<WorkQueue>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(watch_trigger(name, trigger, store, queue, shutdown))
}

async fn watch_trigger(
    name: &'static str,
    trigger: Trigger,
    store: Store,
    queue: Arc<WorkQueue>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scope = ListScope::new(&trigger.resource, None);
    'relist: loop {
        if *shutdown.borrow() {
            return;
        }
        let list = match store.list(&scope).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(controller = name, resource = %trigger.resource, error = %e, "list failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        for obj in list.items {
            let key = ObjectKey::new(
                &trigger.resource,
                crate::api::object::namespace(&obj),
                crate::api::object::name(&obj),
            );
            let event = StoreEvent::new(list.revision, EventType::Added, key, obj, None);
            for k in (trigger.map)(&event) {
                queue.add(k);
            }
        }
        let mut watcher = match store.watch(scope.clone(), list.revision).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(controller = name, error = %e, "watch failed; re-listing");
                continue;
            }
        };
        let resync = tokio::time::sleep(DEFAULT_RESYNC);
        tokio::pin!(resync);
        loop {
            tokio::select! {
                ev = watcher.next() => match ev {
                    Ok(ev) => {
                        for k in (trigger.map)(&ev) {
                            queue.add(k);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(controller = name, error = %e, "watch ended; re-listing");
                        continue 'relist;
                    }
                },
                _ = &mut resync => continue 'relist,
                _ = shutdown.changed() => return,
            }
        }
    }
}
