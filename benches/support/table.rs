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

/// Prints the head of a table with the columns `cols`.
pub fn head(cols: &[&str]) {
    println!("| {} |", cols.join(" | "));
    println!("|{}", "---|".repeat(cols.len()));
}

/// Prints a row of a table of any width: `| a | b | … |`.
pub fn cells(cells: &[&str]) {
    println!("| {} |", cells.join(" | "));
}

/// A count with thousands separators ("10,000").
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as B, KiB or MiB (one decimal from KiB on; negative for a shrink).
pub fn bytes(n: f64) -> String {
    let a = n.abs();
    if a >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if a >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}
