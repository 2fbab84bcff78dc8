//! Unit tests of the schedule parser and `next`.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn next_utc(spec: &str, after: &str) -> String {
    let p = parse(spec).unwrap();
    p.schedule
        .next(ts(after), &TimeZone::UTC)
        .unwrap()
        .to_string()
}

fn nexts(spec: &str, after: &str, n: usize, tz: &TimeZone) -> Vec<String> {
    let s = parse(spec).unwrap().schedule;
    let mut t = ts(after);
    (0..n)
        .map(|_| {
            t = s.next(t, tz).unwrap();
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %a %:z")
                .to_string()
        })
        .collect()
}

#[test]
fn every_minute_and_steps() {
    assert_eq!(
        next_utc("* * * * *", "2024-01-01T10:00:00Z"),
        "2024-01-01T10:01:00Z"
    );
    assert_eq!(
        next_utc("*/1 * * * *", "2024-01-01T10:00:30.5Z"),
        "2024-01-01T10:01:00Z"
    );
    assert_eq!(
        next_utc("*/15 * * * *", "2024-01-01T10:16:00Z"),
        "2024-01-01T10:30:00Z"
    );
    assert_eq!(
        next_utc("5/20 * * * *", "2024-01-01T10:26:00Z"),
        "2024-01-01T10:45:00Z"
    );
    assert_eq!(
        next_utc("10-20/5 3 * * *", "2024-01-01T03:16:00Z"),
        "2024-01-01T03:20:00Z"
    );
    assert_eq!(
        next_utc("10-20/5 3 * * *", "2024-01-01T03:20:00Z"),
        "2024-01-02T03:10:00Z"
    );
    assert_eq!(
        next_utc("0 0,12 * * *", "2024-01-01T00:00:00Z"),
        "2024-01-01T12:00:00Z"
    );
    assert_eq!(
        next_utc("59 23 31 12 *", "2024-01-01T00:00:00Z"),
        "2024-12-31T23:59:00Z"
    );
}

#[test]
fn names_and_descriptors() {
    assert_eq!(
        next_utc("0 9 * JAN-mar MON-fri", "2024-03-29T10:00:00Z"),
        "2025-01-01T09:00:00Z"
    );
    assert_eq!(
        next_utc("0 0 * * SUN", "2024-01-01T00:00:00Z"),
        "2024-01-07T00:00:00Z"
    );
    assert_eq!(
        next_utc("@hourly", "2024-01-01T10:00:00Z"),
        "2024-01-01T11:00:00Z"
    );
    assert_eq!(
        next_utc("@daily", "2024-01-01T10:00:00Z"),
        "2024-01-02T00:00:00Z"
    );
    assert_eq!(
        next_utc("@midnight", "2024-01-01T10:00:00Z"),
        "2024-01-02T00:00:00Z"
    );
    assert_eq!(
        next_utc("@weekly", "2024-01-01T10:00:00Z"),
        "2024-01-07T00:00:00Z"
    );
    assert_eq!(
        next_utc("@monthly", "2024-01-15T10:00:00Z"),
        "2024-02-01T00:00:00Z"
    );
    assert_eq!(
        next_utc("@yearly", "2024-01-15T10:00:00Z"),
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(
        next_utc("@annually", "2024-01-15T10:00:00Z"),
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(
        next_utc("@every 90s", "2024-01-01T10:00:00.7Z"),
        "2024-01-01T10:01:30Z"
    );
    assert_eq!(
        parse("@every 1h30m").unwrap().schedule,
        Schedule::Every(Duration::from_secs(5400))
    );
    assert_eq!(
        parse("@every 10ms").unwrap().schedule,
        Schedule::Every(Duration::from_secs(1))
    );
}

#[test]
fn day_of_month_and_day_of_week() {
    // Both restricted: either matches (the 1st, the 15th, and Mondays).
    let got = nexts("0 0 1,15 * MON", "2024-01-01T00:00:00Z", 5, &TimeZone::UTC);
    assert_eq!(
        got,
        [
            "2024-01-08 00:00 Mon +00:00",
            "2024-01-15 00:00 Mon +00:00",
            "2024-01-22 00:00 Mon +00:00",
            "2024-01-29 00:00 Mon +00:00",
            "2024-02-01 00:00 Thu +00:00"
        ]
    );
    // A star in day-of-week: only the day of month counts.
    assert_eq!(
        next_utc("0 0 13 * *", "2024-01-01T00:00:00Z"),
        "2024-01-13T00:00:00Z"
    );
    // `*/1` keeps the star; `*/2` (step > 1) does not, so either field matches.
    assert_eq!(
        next_utc("0 0 13 * */1", "2024-01-01T00:00:00Z"),
        "2024-01-13T00:00:00Z"
    );
    assert_eq!(
        next_utc("0 0 13 * */2", "2024-01-01T00:00:00Z"),
        "2024-01-02T00:00:00Z"
    );
    // `?` is a star too.
    assert_eq!(
        next_utc("0 0 ? * FRI", "2024-01-01T00:00:00Z"),
        "2024-01-05T00:00:00Z"
    );
    // Leap days only.
    assert_eq!(
        next_utc("0 0 29 2 *", "2024-03-01T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
}

#[test]
fn impossible_dates_have_no_next() {
    let s = parse("0 0 30 2 *").unwrap().schedule;
    assert_eq!(s.next(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC), None);
}

#[test]
fn time_zones_and_dst() {
    let ny = TimeZone::get("America/New_York").unwrap();
    assert_eq!(
        nexts("0 9 * * *", "2024-01-01T00:00:00Z", 1, &ny),
        ["2024-01-01 09:00 Mon -05:00"]
    );
    // Spring forward (2024-03-10, 02:00 → 03:00): 02:30 does not exist that day, and
    // robfig (so Kubernetes) skips it.
    assert_eq!(
        nexts("30 2 * * *", "2024-03-09T12:00:00Z", 3, &ny),
        [
            "2024-03-11 02:30 Mon -04:00",
            "2024-03-12 02:30 Tue -04:00",
            "2024-03-13 02:30 Wed -04:00"
        ]
    );
    // Fall back (2024-11-03, 02:00 → 01:00): 01:30 happens twice; both run, as robfig does.
    assert_eq!(
        nexts("30 1 * * *", "2024-11-02T12:00:00Z", 3, &ny),
        [
            "2024-11-03 01:30 Sun -04:00",
            "2024-11-03 01:30 Sun -05:00",
            "2024-11-04 01:30 Mon -05:00"
        ]
    );
    let p = parse("CRON_TZ=Asia/Tokyo 0 6 * * *").unwrap();
    assert_eq!(p.time_zone.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(
        parse("TZ=UTC @hourly").unwrap().time_zone.as_deref(),
        Some("UTC")
    );
}

#[test]
fn errors_read_as_robfigs() {
    let e = |s: &str| parse(s).unwrap_err();
    assert_eq!(e(""), "empty spec string");
    assert_eq!(
        e("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(e("60 * * * *"), "end of range (60) above maximum (59): 60");
    assert_eq!(
        e("* * 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert_eq!(e("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(
        e("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(
        e("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(e("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(e("*/2/3 * * * *"), "too many slashes: */2/3");
    assert_eq!(e("@fortnightly"), "unrecognized descriptor: @fortnightly");
    assert!(e("x * * * *").starts_with("failed to parse int from x"));
    assert_eq!(e("TZ=UTC"), "provided bad location TZ=UTC");
    assert!(e("@every 5x").contains("unknown unit"));
}

#[test]
fn go_durations() {
    assert_eq!(
        parse_go_duration("1.5h").unwrap(),
        Duration::from_secs(5400)
    );
    assert_eq!(parse_go_duration("2m3s").unwrap(), Duration::from_secs(123));
    assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
    assert!(parse_go_duration("5").is_err());
    assert!(parse_go_duration("").is_err());
    assert!(parse_go_duration("h").is_err());
}
