//! The order a pod's containers start in: init containers one after another, each after the
//! previous one succeeded; native sidecars (init containers with `restartPolicy: Always`)
//! started in that sequence, the next one following as soon as the sidecar has started, and
//! kept running (restarted whatever their exit) beside the main containers, which start once
//! every init container is done or running. When the main containers have all finished, the
//! sidecars are stopped.

use std::time::{Duration, Instant};

use super::status::CState;
use super::worker::Worker;

impl Worker {
    /// Whether slot `i` is a native sidecar.
    pub(super) fn is_sidecar(&self, i: usize) -> bool {
        let s = &self.slots[i];
        s.init && s.c.restart_policy.as_deref() == Some("Always")
    }

    /// Whether sidecar `i` has started (its startupProbe passed, if it has one) at least once:
    /// what lets the sequence go on past it.
    fn sidecar_started(&self, i: usize) -> bool {
        let s = &self.slots[i];
        s.generation > 0 && (s.started || !matches!(s.state, CState::Running { .. }))
    }

    /// Schedules whatever may start now: the first init container not done (or the first
    /// sidecar not started), else every main container that is neither running, finished nor
    /// already scheduled. Idempotent: call it after any start, exit or startup probe.
    pub(super) fn advance(&mut self) {
        if self.failed_init || self.pod_reason.is_some() || self.terminating() {
            return;
        }
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if !self.slots[i].init {
                continue;
            }
            let passed = if self.is_sidecar(i) {
                self.sidecar_started(i)
            } else {
                self.slots[i].done
            };
            if passed {
                continue;
            }
            let s = &mut self.slots[i];
            if s.stop.is_none() && s.start_at.is_none() && s.generation == 0 {
                s.start_at = Some(now);
            }
            return;
        }
        for s in self.slots.iter_mut().filter(|s| !s.init) {
            if !s.done && s.stop.is_none() && s.start_at.is_none() && s.generation == 0 {
                s.start_at = Some(now);
            }
        }
    }

    /// True once every init container succeeded and every sidecar has started.
    pub(super) fn init_done(&self) -> bool {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].init)
            .all(|i| {
                if self.is_sidecar(i) {
                    self.sidecar_started(i)
                } else {
                    let s = &self.slots[i];
                    s.done && matches!(s.state, CState::Terminated { exit_code: 0, .. })
                }
            })
    }

    /// True when every main container has finished for good.
    pub(super) fn mains_finished(&self) -> bool {
        self.slots
            .iter()
            .filter(|s| !s.init)
            .all(|s| s.done && s.start_at.is_none())
    }

    /// Once the main containers are done, the sidecars stop (with the pod's grace period) and
    /// are not restarted.
    pub(super) fn stop_sidecars_if_done(&mut self, grace: Duration) {
        if !self.mains_finished() {
            return;
        }
        for i in 0..self.slots.len() {
            if !self.is_sidecar(i) {
                continue;
            }
            let s = &mut self.slots[i];
            s.start_at = None;
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(grace);
            } else {
                s.done = true;
            }
        }
    }
}
