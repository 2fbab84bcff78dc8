//! The RollingUpdate strategy (Kubernetes' `rolloutRolling`): grow the new ReplicaSet while the
//! total stays within `replicas + maxSurge`, shrink old ones while at least
//! `replicas − maxUnavailable` pods stay available, one step per reconcile.

use super::sync::Pass;
use super::util;
use crate::controllers::replicaset::{spec_replicas, status_i64};
use crate::controllers::runner::{Action, ReconcileError};

pub async fn rollout(p: &mut Pass<'_>) -> Result<Action, ReconcileError> {
    let (new, old) = p.sync_revision(true).await?;
    let Some(new) = new else {
        return p.sync_rollout_status(None, &old).await;
    };
    if reconcile_new(p, new, &old).await? {
        return p.sync_rollout_status(Some(new), &old).await;
    }
    if reconcile_old(p, new, &old).await? {
        return p.sync_rollout_status(Some(new), &old).await;
    }
    let all = p.all(Some(new), &old);
    let (st, _) = super::status::rollout(&p.refs(&all), Some(&p.rss[new]), &p.d, p.now);
    if super::status::complete(&p.d, &st) {
        p.cleanup(&old).await?;
    }
    p.sync_rollout_status(Some(new), &old).await
}

/// Scales the new ReplicaSet up within the surge (or down to `replicas`). Returns whether it
/// changed.
async fn reconcile_new(
    p: &mut Pass<'_>,
    new: usize,
    old: &[usize],
) -> Result<bool, ReconcileError> {
    let replicas = spec_replicas(&p.d);
    let current = spec_replicas(&p.rss[new]);
    if current == replicas {
        return Ok(false);
    }
    if current > replicas {
        return p.scale_rs(new, replicas).await;
    }
    let all = p.all(Some(new), old);
    let target = util::new_rs_new_replicas(&p.d, &p.refs(&all), &p.rss[new]);
    p.scale_rs(new, target).await
}

/// Scales old ReplicaSets down: first their unhealthy pods, then available ones while enough
/// stay available. Waits while any ReplicaSet's status lags its spec, since these numbers
/// decide how many pods may go. Returns whether anything was scaled.
async fn reconcile_old(
    p: &mut Pass<'_>,
    new: usize,
    old: &[usize],
) -> Result<bool, ReconcileError> {
    let old_pods = util::spec_total(&p.refs(old));
    if old_pods == 0 {
        return Ok(false);
    }
    let all = p.all(Some(new), old);
    if p.refs(&all).iter().any(|rs| !util::status_fresh(rs)) {
        return Ok(false);
    }
    let all_pods = util::spec_total(&p.refs(&all));
    let min_available = spec_replicas(&p.d) - util::max_unavailable(&p.d);
    let new_unavailable = spec_replicas(&p.rss[new]) - status_i64(&p.rss[new], "availableReplicas");
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    let cleaned = cleanup_unhealthy(p, old, max_scaled_down).await?;
    let scaled = scale_down_old(p, new, old).await?;
    Ok(cleaned + scaled > 0)
}

/// Removes old replicas that aren't available (they don't count toward availability anyway),
/// oldest ReplicaSets first, at most `max` (`cleanupUnhealthyReplicas`).
async fn cleanup_unhealthy(
    p: &mut Pass<'_>,
    old: &[usize],
    max: i64,
) -> Result<i64, ReconcileError> {
    let mut order = old.to_vec();
    order.sort_by(|a, b| util::by_creation(&p.rss[*a], &p.rss[*b]));
    let mut total = 0;
    for i in order {
        let size = spec_replicas(&p.rss[i]);
        if size == 0 {
            continue;
        }
        if total >= max {
            break;
        }
        let available = status_i64(&p.rss[i], "availableReplicas");
        if size <= available {
            continue;
        }
        let n = (max - total).min(size - available);
        p.scale_rs(i, size - n).await?;
        total += n;
    }
    Ok(total)
}

/// Scales old ReplicaSets down while more than `replicas − maxUnavailable` pods are available
/// (`scaleDownOldReplicaSetsForRollingUpdate`).
async fn scale_down_old(
    p: &mut Pass<'_>,
    new: usize,
    old: &[usize],
) -> Result<i64, ReconcileError> {
    let min_available = spec_replicas(&p.d) - util::max_unavailable(&p.d);
    let all = p.all(Some(new), old);
    let available = util::status_total(&p.refs(&all), "availableReplicas");
    if available <= min_available {
        return Ok(0);
    }
    let target = available - min_available;
    let mut order = old.to_vec();
    order.sort_by(|a, b| util::by_creation(&p.rss[*a], &p.rss[*b]));
    let mut total = 0;
    for i in order {
        if total >= target {
            break;
        }
        let size = spec_replicas(&p.rss[i]);
        if size == 0 {
            continue;
        }
        let n = size.min(target - total);
        p.scale_rs(i, size - n).await?;
        total += n;
    }
    Ok(total)
}
