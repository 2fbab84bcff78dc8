//! Kubernetes' `duration.HumanDuration` and the timestamp helpers the
//! printers use (`translateTimestampSince`).

use jiff::Timestamp;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

/// Port of `k8s.io/apimachinery/pkg/util/duration.HumanDuration`, taking a
/// Go `time.Duration` (nanoseconds). Integer divisions truncate toward zero
/// exactly like Go's.
pub fn human_duration_nanos(d: i64) -> String {
    // Allow deviation no more than 2 seconds (excluded) to tolerate clock skew.
    let seconds = d / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = (d / NANOS_PER_SECOND) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / NANOS_PER_HOUR;
    if hours < 8 {
        let m = (d / NANOS_PER_MINUTE) % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// `HumanDuration` for a `std::time::Duration`-free caller: whole seconds.
pub fn human_duration_secs(secs: i64) -> String {
    human_duration_nanos(secs.saturating_mul(NANOS_PER_SECOND))
}

/// Go's `t.Sub(u)`: nanoseconds, saturating at the `time.Duration` range.
pub(crate) fn sub_nanos(t: Timestamp, u: Timestamp) -> i64 {
    let diff = t.as_nanosecond() - u.as_nanosecond();
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

/// Parses a `metav1.Time` / `metav1.MicroTime` JSON string. Go's zero time
/// (`0001-01-01T00:00:00Z`) counts as unset, like `Time.IsZero()`.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let ts: Timestamp = s.trim().parse().ok()?;
    // 0001-01-01T00:00:00Z, Go's zero `time.Time`.
    const GO_ZERO_SECONDS: i64 = -62_135_596_800;
    if ts.as_second() == GO_ZERO_SECONDS && ts.subsec_nanosecond() == 0 {
        return None;
    }
    Some(ts)
}

/// `translateTimestampSince`: `<unknown>` for an unset time, else the age.
pub(crate) fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration_nanos(sub_nanos(now, t)),
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const S: i64 = NANOS_PER_SECOND;
    const M: i64 = NANOS_PER_MINUTE;
    const H: i64 = NANOS_PER_HOUR;
    const D: i64 = 24 * H;
    const Y: i64 = 365 * D;

    /// The cases of apimachinery's duration_test.go (TestHumanDuration and
    /// TestHumanDurationBoundaries), plus a few more around each boundary.
    #[test]
    fn human_duration_matches_go() {
        let cases: &[(i64, &str)] = &[
            (S, "1s"),
            (70 * S, "70s"),
            (190 * S, "3m10s"),
            (70 * M, "70m"),
            (47 * H, "47h"),
            (49 * H, "2d1h"),
            ((8 * 24 + 2) * H, "8d"),
            (367 * D, "367d"),
            (2 * Y + 25 * H, "2y1d"),
            (8 * Y + 2 * H, "8y"),
            (-2 * S, "<invalid>"),
            (-2 * S + 1, "0s"),
            (-S, "0s"),
            (0, "0s"),
            (S - MS, "0s"),
            (59 * S, "59s"),
            (90 * S, "90s"),
            (119 * S, "119s"),
            (2 * M - MS, "119s"),
            (2 * M, "2m"),
            (2 * M + S, "2m1s"),
            (2 * M + 30 * S, "2m30s"),
            (3 * M + 20 * S, "3m20s"),
            (9 * M + 59 * S, "9m59s"),
            (10 * M - MS, "9m59s"),
            (10 * M, "10m"),
            (10 * M + S, "10m"),
            (3 * H - MS, "179m"),
            (2 * H + 59 * M, "179m"),
            (3 * H, "3h"),
            (3 * H + M, "3h1m"),
            (7 * H + 59 * M, "7h59m"),
            (8 * H - MS, "7h59m"),
            (8 * H, "8h"),
            (8 * H + 59 * M, "8h"),
            (47 * H + 59 * M, "47h"),
            (2 * D - MS, "47h"),
            (2 * D, "2d"),
            (2 * D + H, "2d1h"),
            (7 * D + 23 * H, "7d23h"),
            (8 * D - MS, "7d23h"),
            (8 * D, "8d"),
            (8 * D + 23 * H, "8d"),
            (10 * D, "10d"),
            (2 * Y - MS, "729d"),
            (2 * Y, "2y"),
            (2 * Y + 23 * H, "2y"),
            (2 * Y + 23 * H + 59 * M, "2y"),
            (2 * Y + D - MS, "2y"),
            (2 * Y + D, "2y1d"),
            (3 * Y, "3y"),
            (7 * Y, "7y"),
            (7 * Y + 364 * D, "7y364d"),
            (8 * Y - MS, "7y364d"),
            (8 * Y, "8y"),
            (8 * Y + 364 * D, "8y"),
            (9 * Y, "9y"),
            (i64::MAX, "292y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration_nanos(*d), *want, "HumanDuration({d}ns)");
        }
    }

    #[test]
    fn seconds_helper() {
        assert_eq!(human_duration_secs(300), "5m");
        assert_eq!(human_duration_secs(-5), "<invalid>");
        assert_eq!(human_duration_secs(i64::MAX), "292y");
    }

    #[test]
    fn time_parsing() {
        assert!(parse_time("2024-05-01T10:00:00Z").is_some());
        assert!(parse_time("2024-05-01T10:00:00.123456Z").is_some());
        assert!(parse_time("2024-05-01T12:00:00+02:00").is_some());
        assert!(parse_time("0001-01-01T00:00:00Z").is_none());
        assert!(parse_time("").is_none());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn since_is_age() {
        let now: Timestamp = "2024-05-01T10:05:00Z".parse().unwrap();
        let t = parse_time("2024-05-01T10:00:00Z");
        assert_eq!(since(t, now), "5m");
        assert_eq!(since(None, now), "<unknown>");
        // A creation time in the future by more than the tolerated skew.
        let future = parse_time("2024-05-01T10:05:02Z");
        assert_eq!(since(future, now), "<invalid>");
    }
}
