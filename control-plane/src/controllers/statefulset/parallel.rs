//! `podManagementPolicy: Parallel` (Kubernetes' "burst" mode): every missing replica is created
//! and every condemned pod deleted in one pass, without waiting for readiness, in slow-start
//! batches (1, 2, 4, …) so a failing template fails once rather than `replicas` times.

use futures::future::join_all;

use super::pods::Pass;
use crate::controllers::runner::ReconcileError;

/// The first batch of a slow start (Kubernetes' `slowStartBatch(1, …)`); batches double.
pub const DEFAULT_SLOW_START_BATCH: usize = 1;

/// Runs the scaling steps; a Parallel pass is never blocked by a pod's readiness.
pub async fn scale(pass: &mut Pass<'_>) -> Result<bool, ReconcileError> {
    let mut start = 0;
    let mut batch = DEFAULT_SLOW_START_BATCH.max(1);
    while start < pass.replicas.len() {
        let end = (start + batch).min(pass.replicas.len());
        let results = join_all((start..end).map(|i| pass.process_replica(i, false))).await;
        let mut error = None;
        for (i, r) in (start..end).zip(results) {
            match r {
                Ok(mut step) => pass.apply_replica(i, &mut step),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        start = end;
        batch = batch.saturating_mul(2);
    }
    pass.fix_condemned_claims().await?;
    let results =
        join_all((0..pass.condemned.len()).map(|i| pass.process_condemned(i, false))).await;
    let mut error = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(mut step) => pass.apply_condemned(i, &mut step),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(false),
    }
}
