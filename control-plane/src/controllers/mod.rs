//! Controllers that run inside the control plane, one module each. Each is level-triggered:
//! it reads the latest state, acts, and waits for the next change or its requeue time.
//! `queue.rs` + `runner.rs` are the shared machinery (a work queue of object keys, watches that
//! fill it, workers that reconcile one key at a time); controllers change objects through
//! [`crate::api::handlers::Objects`], the in-process API with full admission.

pub mod autoscaler;
pub mod clock;
pub mod crd;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod gc;
pub mod hpa;
pub mod ingress;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod queue;
pub mod replicaset;
pub mod revisions;
pub mod runner;
pub mod scheduler;
pub mod servicelb;
pub mod statefulset;
#[cfg(test)]
pub(crate) mod test_support;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::ApiState;

/// Starts every controller; each ends when `shutdown` flips to true.
pub fn spawn_all(st: &ApiState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(namespace::run(st.store.clone(), shutdown.clone())),
        tokio::spawn(scheduler::Scheduler::new(st.store.clone()).run(shutdown.clone())),
    ];
    let jobs = job::JobController::new(st.clone(), job::JobConfig::default(), clock::Clock::System);
    tasks.extend(runner::spawn(
        std::sync::Arc::new(jobs),
        st.store.clone(),
        job::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    let cronjobs = cronjob::CronJobController::new(st.clone(), clock::Clock::System);
    tasks.extend(runner::spawn(
        std::sync::Arc::new(cronjobs),
        st.store.clone(),
        1,
        shutdown.clone(),
    ));
    let collector = std::sync::Arc::new(gc::GarbageCollector::new(
        crate::api::handlers::Objects::new(st.clone()),
    ));
    let gc_queue = std::sync::Arc::new(queue::WorkQueue::new());
    tasks.extend(runner::spawn_on(
        collector.clone(),
        st.store.clone(),
        gc::DEFAULT_WORKERS,
        gc_queue.clone(),
        shutdown.clone(),
    ));
    // CustomResourceDefinitions: status, deletion, and the collector's custom resource watches.
    let crds = crd::CrdController::new(
        crate::api::handlers::Objects::new(st.clone()),
        Some(crd::GcWatches::new(
            collector,
            gc_queue,
            st.store.clone(),
            shutdown.clone(),
        )),
    );
    tasks.extend(runner::spawn(
        std::sync::Arc::new(crds),
        st.store.clone(),
        crd::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    if let Ok(dc) =
        deployment::DeploymentController::new(crate::api::handlers::Objects::new(st.clone()))
    {
        tasks.extend(runner::spawn(
            std::sync::Arc::new(dc),
            st.store.clone(),
            deployment::DEFAULT_WORKERS,
            shutdown.clone(),
        ));
    }
    if let Ok(rs) =
        replicaset::ReplicaSetController::new(crate::api::handlers::Objects::new(st.clone()))
    {
        tasks.extend(runner::spawn(
            std::sync::Arc::new(rs),
            st.store.clone(),
            replicaset::DEFAULT_WORKERS,
            shutdown.clone(),
        ));
    }
    let nodes = nodelifecycle::NodeLifecycleController::new(
        crate::api::handlers::Objects::new(st.clone()),
        nodelifecycle::NodeLifecycleConfig::from_api(&st.config),
        clock::Clock::System,
    );
    let ipam = nodeipam::NodeIpamController::new(
        crate::api::handlers::Objects::new(st.clone()),
        st.config.cluster_cidr,
    );
    tasks.extend(runner::spawn(
        std::sync::Arc::new(ipam),
        st.store.clone(),
        1,
        shutdown.clone(),
    ));
    let endpoints =
        endpoints::EndpointsController::new(crate::api::handlers::Objects::new(st.clone()));
    tasks.extend(runner::spawn(
        std::sync::Arc::new(endpoints),
        st.store.clone(),
        endpoints::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    let servicelb =
        servicelb::ServiceLbController::new(crate::api::handlers::Objects::new(st.clone()));
    tasks.extend(runner::spawn(
        std::sync::Arc::new(servicelb),
        st.store.clone(),
        servicelb::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    let ingresses = ingress::IngressController::new(crate::api::handlers::Objects::new(st.clone()));
    tasks.extend(runner::spawn(
        std::sync::Arc::new(ingresses),
        st.store.clone(),
        ingress::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    tasks.extend(autoscaler::spawn(
        crate::api::handlers::Objects::new(st.clone()),
        st.store.clone(),
        shutdown.clone(),
    ));
    tasks.extend(hpa::spawn(
        crate::api::handlers::Objects::new(st.clone()),
        st.config.metrics_resolution,
        st.store.clone(),
        shutdown.clone(),
    ));
    let pdbs =
        disruption::DisruptionController::new(crate::api::handlers::Objects::new(st.clone()));
    tasks.extend(runner::spawn(
        std::sync::Arc::new(pdbs),
        st.store.clone(),
        disruption::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    tasks.extend(runner::spawn(
        std::sync::Arc::new(nodes),
        st.store.clone(),
        nodelifecycle::DEFAULT_WORKERS,
        shutdown.clone(),
    ));
    if let Ok(sts) =
        statefulset::StatefulSetController::new(crate::api::handlers::Objects::new(st.clone()))
    {
        tasks.extend(runner::spawn(
            std::sync::Arc::new(sts),
            st.store.clone(),
            statefulset::DEFAULT_WORKERS,
            shutdown.clone(),
        ));
    }
    if let Ok(ds) =
        daemonset::DaemonSetController::new(crate::api::handlers::Objects::new(st.clone()))
    {
        tasks.extend(runner::spawn(
            std::sync::Arc::new(ds),
            st.store.clone(),
            daemonset::DEFAULT_WORKERS,
            shutdown.clone(),
        ));
    }
    tasks
}
