//! The benchmarks' tables: figures formatted for a cell, and the rows (Markdown) of a table
//! whose columns are the measure, two runtimes and the target.

use std::fmt::Display;
use std::time::Duration;

/// Milliseconds: whole from 100 ms, else with two decimals ("250 ms", "7.52 ms").
pub fn ms(d: Duration) -> String {
    ms_with(d, 2)
}

/// Milliseconds: whole from 100 ms, else with `places` decimals.
pub fn ms_with(d: Duration, places: usize) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.places$} ms")
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Whether a target is met: "met" or "MISSED".
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// Prints the head of a benchmark's table, whose columns are the measure, `a`, `b` and the
/// target.
pub fn header(a: &str, b: &str) {
    println!("| measure | {a} | {b} | target |");
    println!("|---|---|---|---|");
}

/// Prints a row of a benchmark's table: `| measure | a | b | target |`.
pub fn row(measure: &str, a: impl Display, b: impl Display, target: impl Display) {
    println!("| {measure} | {a} | {b} | {target} |");
}

/// A cell of a column whose rows may be skipped (the container runtime's): `f` of its run, or
/// "skipped: REASON".
pub fn or_skipped<T>(run: &std::result::Result<T, String>, f: &dyn Fn(&T) -> String) -> String {
    match run {
        Ok(r) => f(r),
        Err(reason) => format!("skipped: {reason}"),
    }
}

/// The machine's cores (0 when unknown), for a table's caption.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}
