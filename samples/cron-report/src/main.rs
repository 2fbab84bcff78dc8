//! `cron-report`: the sample Skiff CronJob (a `wasi:cli/command` component).
//!
//! Reads a CSV of sales (`product,units` per line, a header line allowed) from `SALES_FILE`
//! (default `/config/sales.csv`, a ConfigMap mounted by the CronJob) and prints a report: the
//! units per product, best first, their total and the best seller, e.g.
//!
//! ```text
//! Daily sales report
//! source: /config/sales.csv (4 rows)
//! gizmos: 23
//! widgets: 17
//! gadgets: 7
//! total: 47
//! best seller: gizmos
//! ```
//!
//! The title comes from `REPORT_TITLE` (default `Sales report`). A missing file or a malformed
//! line makes it print why on stderr and exit with a failure status, so the Job's pod fails
//! and the Job retries up to its `backoffLimit`.

use std::collections::BTreeMap;
use std::process::ExitCode;

const DEFAULT_FILE: &str = "/config/sales.csv";

fn main() -> ExitCode {
    let path = std::env::var("SALES_FILE").unwrap_or_else(|_| DEFAULT_FILE.to_string());
    let title = std::env::var("REPORT_TITLE").unwrap_or_else(|_| "Sales report".to_string());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("cron-report: cannot read {path}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match parse(&text) {
        Ok(rows) => {
            print!("{}", report(&title, &path, &rows));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cron-report: {path}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The `(product, units)` rows of the CSV: blank lines, `#` comments and a `product,units`
/// header are skipped; anything else must be `NAME,NUMBER`.
fn parse(text: &str) -> Result<Vec<(String, u64)>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.eq_ignore_ascii_case("product,units") {
            continue;
        }
        let (product, units) = line
            .split_once(',')
            .ok_or_else(|| format!("line {}: expected product,units, got {line:?}", i + 1))?;
        let units = units.trim().parse::<u64>().map_err(|_| {
            format!(
                "line {}: units must be a whole number, got {:?}",
                i + 1,
                units.trim()
            )
        })?;
        rows.push((product.trim().to_string(), units));
    }
    Ok(rows)
}

/// The report text, one fact per line.
fn report(title: &str, path: &str, rows: &[(String, u64)]) -> String {
    let mut per_product: BTreeMap<&str, u64> = BTreeMap::new();
    for (product, units) in rows {
        *per_product.entry(product).or_default() += units;
    }
    let mut ranked: Vec<(&str, u64)> = per_product.into_iter().collect();
    // Most units first; ties in name order (the map's order, kept by a stable sort).
    ranked.sort_by_key(|&(_, units)| std::cmp::Reverse(units));
    let mut out = format!("{title}\nsource: {path} ({} rows)\n", rows.len());
    for (product, units) in &ranked {
        out.push_str(&format!("{product}: {units}\n"));
    }
    let total: u64 = ranked.iter().map(|(_, units)| units).sum();
    out.push_str(&format!("total: {total}\n"));
    match ranked.first() {
        Some((best, _)) => out.push_str(&format!("best seller: {best}\n")),
        None => out.push_str("best seller: none (no sales)\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{parse, report};

    #[test]
    fn reports_units_per_product_best_first() {
        let rows = parse("product,units\nwidgets,12\ngadgets,7\n\ngizmos,23\nwidgets,5\n").unwrap();
        assert_eq!(
            report("Daily sales report", "/config/sales.csv", &rows),
            "Daily sales report\nsource: /config/sales.csv (4 rows)\ngizmos: 23\nwidgets: 17\n\
             gadgets: 7\ntotal: 47\nbest seller: gizmos\n"
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(parse("widgets 12\n").unwrap_err().contains("line 1"));
        assert!(parse("widgets,many\n")
            .unwrap_err()
            .contains("whole number"));
        assert_eq!(
            report("t", "f", &[]),
            "t\nsource: f (0 rows)\ntotal: 0\nbest seller: none (no sales)\n"
        );
    }
}
