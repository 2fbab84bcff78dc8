//! `podManagementPolicy: OrderedReady` (the default; Kubernetes' "monotonic" mode): replicas
//! are handled in ordinal order and the pass stops at the first one that is not Running, Ready
//! and available — so `web-1` is created only once `web-0` is Ready — and scale-down deletes
//! the highest ordinal first, one pod at a time, waiting for each to be gone.

use super::pods::Pass;
use crate::controllers::runner::ReconcileError;

/// Runs the scaling steps; returns whether the pass is blocked (no rolling update then).
pub async fn scale(pass: &mut Pass<'_>) -> Result<bool, ReconcileError> {
    for i in 0..pass.replicas.len() {
        let mut step = pass.process_replica(i, true).await?;
        pass.apply_replica(i, &mut step);
        if step.exit {
            return Ok(true);
        }
    }
    pass.fix_condemned_claims().await?;
    for i in 0..pass.condemned.len() {
        let mut step = pass.process_condemned(i, true).await?;
        pass.apply_condemned(i, &mut step);
        if step.exit {
            return Ok(true);
        }
    }
    Ok(false)
}
