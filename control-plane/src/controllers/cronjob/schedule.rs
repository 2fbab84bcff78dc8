//! CronJob schedules with Kubernetes' semantics, which are robfig/cron v3's `ParseStandard`:
//! five fields (minute hour day-of-month month day-of-week) with `*`, `?`, ranges `a-b`,
//! lists `a,b`, steps `*/n` and `a/n` (= `a-max/n`), month names `JAN`–`DEC` and weekday
//! names `SUN`–`SAT` (case-insensitive; weekdays 0–6); the descriptors `@yearly`
//! `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`; `@every <duration>` (Go
//! duration syntax; Kubernetes accepts it because robfig does); and a `TZ=`/`CRON_TZ=` prefix.
//!
//! Day matching is Vixie cron's, as robfig implements it: when the day-of-month or the
//! day-of-week field starts with `*` (a star without a step greater than 1), a day must match
//! both; when both are restricted, either one is enough (`0 0 1,15 * MON` = the 1st, the 15th
//! and every Monday). [`Schedule::next`] follows robfig's `SpecSchedule.Next` step for step in
//! the schedule's time zone, so DST transitions behave as on Kubernetes.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{civil, Timestamp, ToSpan, Zoned};

/// robfig gives up looking for a next activation this many years ahead (e.g. `0 0 30 2 *`).
const YEAR_LIMIT: i16 = 5;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
/// Month names; index + 1 is the month number.
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// One field: a bit per allowed value, and whether it was written with a leading star.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    fn has(self, v: i8) -> bool {
        (0..64).contains(&v) && self.bits & (1u64 << v) != 0
    }
}

/// A five-field schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Cron(CronSpec),
    /// `@every d`: activations `d` apart (whole seconds, at least one second), counted from the
    /// time asked about, as robfig's `ConstantDelaySchedule`.
    Every(Duration),
}

/// A schedule and the time zone its `TZ=`/`CRON_TZ=` prefix named, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub time_zone: Option<String>,
    pub schedule: Schedule,
}

fn parse_int(expr: &str) -> Result<u32, String> {
    let n: i64 = expr.parse().map_err(|_| {
        format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax")
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| format!("failed to parse int from {expr}: value out of range"))
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    match b.names.iter().position(|n| *n == lower) {
        Some(i) => Ok(i as u32 + b.min),
        None => parse_int(expr),
    }
}

/// One comma-separated part of a field (robfig's `getRange`).
fn range(expr: &str, b: &Bounds) -> Result<Field, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let mut star = false;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        star = true;
        (b.min, b.max)
    } else {
        let start = int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let bits = (start..=end)
        .step_by(step as usize)
        .fold(0u64, |acc, v| acc | (1u64 << v));
    Ok(Field { bits, star })
}

fn field(expr: &str, b: &Bounds) -> Result<Field, String> {
    let mut out = Field {
        bits: 0,
        star: false,
    };
    for part in expr.split(',') {
        let f = range(part, b)?;
        out.bits |= f.bits;
        out.star |= f.star;
    }
    Ok(out)
}

/// Go's `time.ParseDuration` (units ns us µs μs ms s m h, decimals, a sign).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration \"{s}\"");
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            u => return Err(format!("time: unknown unit \"{u}\" in duration \"{s}\"")),
        };
        total += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Parses a schedule as Kubernetes' CronJob controller does (`cron.ParseStandard`).
pub fn parse(spec: &str) -> Result<Parsed, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec.trim();
    let mut time_zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some(i) = spec.find(' ') else {
            return Err(format!("provided bad location {spec}"));
        };
        let (_, name) = spec[..i].split_once('=').unwrap_or(("", ""));
        time_zone = Some(name.to_string());
        spec = spec[i..].trim();
    }
    let expanded = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        s if s.starts_with('@') => {
            return match s.strip_prefix("@every ") {
                Some(d) => {
                    let d = parse_go_duration(d.trim())
                        .map_err(|e| format!("failed to parse duration {s}: {e}"))?;
                    // robfig: at least a second, rounded down to whole seconds.
                    let secs = d.as_secs().max(1);
                    Ok(Parsed {
                        time_zone,
                        schedule: Schedule::Every(Duration::from_secs(secs)),
                    })
                }
                None => Err(format!("unrecognized descriptor: {s}")),
            };
        }
        s => s,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let spec = CronSpec {
        minute: field(fields[0], &MINUTES)?,
        hour: field(fields[1], &HOURS)?,
        dom: field(fields[2], &DOM)?,
        month: field(fields[3], &MONTHS)?,
        dow: field(fields[4], &DOW)?,
    };
    Ok(Parsed {
        time_zone,
        schedule: Schedule::Cron(spec),
    })
}

impl Schedule {
    /// The first activation strictly after `after`, in time zone `tz`; `None` when there is
    /// none within five years (an impossible date such as `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(d) => {
                // robfig: t + delay - t's sub-second part.
                let secs = after
                    .as_second()
                    .checked_add(i64::try_from(d.as_secs()).ok()?)?;
                Timestamp::from_second(secs).ok()
            }
            Schedule::Cron(c) => c.next(after, tz),
        }
    }
}

fn at(z: &Zoned, year: i16, month: i8, day: i8, hour: i8) -> Option<Zoned> {
    civil::date(year, month, day)
        .at(hour, 0, 0, 0)
        .to_zoned(z.time_zone().clone())
        .ok()
}

fn truncate(z: &Zoned, unit_secs: i64) -> Option<Zoned> {
    let s = z.timestamp().as_second();
    Timestamp::from_second(s - s.rem_euclid(unit_secs))
        .ok()
        .map(|t| t.to_zoned(z.time_zone().clone()))
}

impl CronSpec {
    fn day_matches(&self, z: &Zoned) -> bool {
        let dom = self.dom.has(z.day());
        let dow = self.dow.has(z.weekday().to_sunday_zero_offset());
        if self.dom.star || self.dow.star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// robfig's `SpecSchedule.Next`.
    fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // Start at the next whole second.
        let start = Timestamp::from_second(after.as_second().checked_add(1)?).ok()?;
        let mut t = start.to_zoned(tz.clone());
        let year_limit = t.year().checked_add(YEAR_LIMIT)?;
        let mut added = false;
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while !self.month.has(t.month()) {
                if !added {
                    added = true;
                    t = at(&t, t.year(), t.month(), 1, 0)?;
                }
                t = t.checked_add(1.month()).ok()?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&t) {
                if !added {
                    added = true;
                    t = at(&t, t.year(), t.month(), t.day(), 0)?;
                }
                t = t.checked_add(1.day()).ok()?;
                // A DST change can move midnight; put it back.
                let h = i64::from(t.hour());
                if h != 0 {
                    t = if h > 12 {
                        t.checked_add((24 - h).hours()).ok()?
                    } else {
                        t.checked_sub(h.hours()).ok()?
                    };
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while !self.hour.has(t.hour()) {
                if !added {
                    added = true;
                    t = at(&t, t.year(), t.month(), t.day(), t.hour())?;
                }
                t = t.checked_add(1.hour()).ok()?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !self.minute.has(t.minute()) {
                if !added {
                    added = true;
                    t = truncate(&t, 60)?;
                }
                t = t.checked_add(1.minute()).ok()?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            while t.second() != 0 {
                if !added {
                    added = true;
                    t = truncate(&t, 1)?;
                }
                t = t.checked_add(1.second()).ok()?;
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(t.timestamp());
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
