//! `updateStrategy`: RollingUpdate replaces, from the highest ordinal down to `partition`, one
//! pod at a time the pods not at the update revision, waiting for each replacement to be
//! Running and Ready (Kubernetes' `updateStatefulSet` tail); pods below the partition keep
//! the current revision. OnDelete replaces nothing: a pod gets the new template when the user
//! deletes it and the scaling pass recreates it.

use serde_json::Value;

use super::identity::pod_revision;
use super::pods::Pass;
use super::status::{is_created, is_healthy};
use crate::api::object;
use crate::controllers::runner::ReconcileError;

/// `spec.updateStrategy.rollingUpdate.partition` (0 when unset).
pub fn partition(set: &Value) -> i64 {
    set.pointer("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0)
}

pub fn is_on_delete(set: &Value) -> bool {
    set.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
}

/// The replica slot a RollingUpdate acts on next: `Some(i)` to delete slot `i` (an old
/// revision), `None` when waiting for an unhealthy pod or done.
pub fn next_to_replace(replicas: &[Value], update_revision: &str, partition: i64) -> Option<usize> {
    let min = usize::try_from(partition).unwrap_or(0);
    for target in (min..replicas.len()).rev() {
        let pod = &replicas[target];
        if !is_created(pod) {
            return None;
        }
        if pod_revision(pod) != update_revision && !object::is_terminating(pod) {
            return Some(target);
        }
        if !is_healthy(pod) {
            return None;
        }
    }
    None
}

/// One RollingUpdate step after a scaling pass that was not blocked.
pub async fn update(pass: &mut Pass<'_>) -> Result<(), ReconcileError> {
    if is_on_delete(pass.set) {
        return Ok(());
    }
    let Some(i) = next_to_replace(&pass.replicas, &pass.update_revision, partition(pass.set))
    else {
        return Ok(());
    };
    tracing::info!(
        pod = object::name(&pass.replicas[i]),
        "terminating pod for update"
    );
    let gone = pass.delete_pod(&pass.replicas[i]).await?;
    pass.replicas[i] = gone;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(rev: &str, healthy: bool) -> Value {
        json!({"metadata": {"name": "p", "labels": {"controller-revision-hash": rev}},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if healthy {"True"} else {"False"}}]}})
    }

    #[test]
    fn reverse_ordinal_respecting_partition() {
        let all_old = vec![pod("r1", true), pod("r1", true), pod("r1", true)];
        assert_eq!(next_to_replace(&all_old, "r2", 0), Some(2));
        // The highest is updated and healthy: the next one down.
        let some_new = vec![pod("r1", true), pod("r1", true), pod("r2", true)];
        assert_eq!(next_to_replace(&some_new, "r2", 0), Some(1));
        // The updated one is not ready yet: wait.
        let waiting = vec![pod("r1", true), pod("r1", true), pod("r2", false)];
        assert_eq!(next_to_replace(&waiting, "r2", 0), None);
        // Partition 2: only ordinals ≥ 2 are updated.
        assert_eq!(next_to_replace(&some_new, "r2", 2), None);
        assert_eq!(next_to_replace(&all_old, "r2", 2), Some(2));
        assert_eq!(next_to_replace(&all_old, "r2", 5), None);
    }
}
