//! CronJob schedule validation: the schedule must parse with the same grammar the CronJob
//! controller runs it with (`controllers::cronjob::schedule`, robfig/cron `ParseStandard` as
//! Kubernetes uses), so admission and execution can never disagree.

use crate::controllers::cronjob::schedule;

/// Kubernetes' `validateScheduleFormat`: cron syntax plus the rule that
/// `TZ=`/`CRON_TZ=` may not be used (unless the old object already did).
pub fn validate_schedule(schedule: &str, allow_tz: bool) -> Result<(), String> {
    schedule::parse(schedule)?;
    if !allow_tz && schedule.contains("TZ") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string());
    }
    Ok(())
}
