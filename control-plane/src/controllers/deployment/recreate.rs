//! The Recreate strategy (Kubernetes' `rolloutRecreate`): scale every old ReplicaSet to 0,
//! wait until none of their pods is left running, then create/scale up the new one.

use super::sync::Pass;
use super::util;
use super::DEFAULT_WAIT_RECHECK;
use crate::api::object;
use crate::controllers::replicaset::claim::controller_uid;
use crate::controllers::replicaset::pods::phase;
use crate::controllers::replicaset::spec_replicas;
use crate::controllers::runner::{Action, ReconcileError};

pub async fn rollout(p: &mut Pass<'_>) -> Result<Action, ReconcileError> {
    let (new, old) = p.sync_revision(false).await?;
    let mut scaled_down = false;
    for i in p.active(&old) {
        scaled_down |= p.scale_rs(i, 0).await?;
    }
    if scaled_down {
        return p.sync_rollout_status(new, &old).await;
    }
    if old_pods_running(p, new, &old).await? {
        let action = p.sync_rollout_status(new, &old).await?;
        return Ok(match action {
            Action::RequeueAfter(d) => Action::RequeueAfter(d.min(DEFAULT_WAIT_RECHECK)),
            Action::Done => Action::RequeueAfter(DEFAULT_WAIT_RECHECK),
        });
    }
    let (new, old) = match new {
        Some(i) => (i, old),
        None => {
            let (n, o) = p.sync_revision(true).await?;
            match n {
                Some(n) => (n, o),
                None => return p.sync_rollout_status(None, &o).await,
            }
        }
    };
    let replicas = spec_replicas(&p.d);
    if spec_replicas(&p.rss[new]) != replicas {
        p.scale_rs(new, replicas).await?;
    }
    let all = p.all(Some(new), &old);
    let (st, _) = super::status::rollout(&p.refs(&all), Some(&p.rss[new]), &p.d, p.now);
    if super::status::complete(&p.d, &st) {
        p.cleanup(&old).await?;
    }
    p.sync_rollout_status(Some(new), &old).await
}

/// Any old ReplicaSet still reports replicas, or any of their pods (terminating included)
/// has not finished (`oldPodsRunning`).
async fn old_pods_running(
    p: &Pass<'_>,
    new: Option<usize>,
    old: &[usize],
) -> Result<bool, ReconcileError> {
    if util::status_total(&p.refs(old), "replicas") > 0
        || p.refs(old).iter().any(|rs| !util::status_fresh(rs))
    {
        return Ok(true);
    }
    let new_uid = new.and_then(|i| object::meta_str(&p.rss[i], "uid"));
    let pods = p.c.pods_of(&p.rss).await?;
    Ok(pods
        .iter()
        .any(|pod| controller_uid(pod) != new_uid && !matches!(phase(pod), "Succeeded" | "Failed")))
}
