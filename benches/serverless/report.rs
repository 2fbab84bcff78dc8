//! The serverless benchmark's table.

use std::time::Duration;

use super::support::pct;
use super::*;

pub(crate) fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m >= 1000.0 {
        format!("{:.2} s", m / 1000.0)
    } else if m >= 100.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.2} ms")
    }
}

/// A round figure (a target, a reference): "25 ms", "1.5 s".
fn round(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// "p50 / p99 / max" of sorted durations, or why there are none.
fn spread(v: &[Duration]) -> String {
    if v.is_empty() {
        return "no successful request".into();
    }
    format!(
        "{} / {} / {}",
        ms(pct(v, 0.5)),
        ms(pct(v, 0.99)),
        ms(*v.last().unwrap_or(&Duration::ZERO))
    )
}

fn failures(failed: &[String], total: usize) -> String {
    format!("{} of {total}", failed.len())
}

fn first(r: &std::result::Result<Duration, String>) -> String {
    match r {
        Ok(d) => ms(*d),
        Err(e) => format!("FAILED: {e}"),
    }
}

/// The cold p50 and whether it meets `target` (and the p99 `p99_target` when given).
fn cold_p50(run: &KindRun, target: Duration) -> String {
    if run.cold.is_empty() {
        return "no successful cold start".into();
    }
    let p50 = pct(&run.cold, 0.5);
    format!("{} ({})", ms(p50), met(p50 <= target))
}

fn cold_p99(run: &KindRun, target: Option<Duration>) -> String {
    if run.cold.is_empty() {
        return "—".into();
    }
    let p99 = pct(&run.cold, 0.99);
    let max = *run.cold.last().unwrap_or(&Duration::ZERO);
    match target {
        Some(t) => format!("{} / {} ({})", ms(p99), ms(max), met(p99 <= t)),
        None => format!("{} / {}", ms(p99), ms(max)),
    }
}

/// Knative's 2–4 s over the cold p50: how many times faster.
fn versus_knative(run: &KindRun) -> String {
    if run.cold.is_empty() {
        return "—".into();
    }
    let p50 = pct(&run.cold, 0.5).as_secs_f64().max(1e-9);
    let (lo, hi) = (
        KNATIVE_COLD_MIN.as_secs_f64() / p50,
        KNATIVE_COLD_MAX.as_secs_f64() / p50,
    );
    if lo >= 10.0 {
        format!("{lo:.0}–{hi:.0}× faster")
    } else {
        format!("{lo:.1}–{hi:.1}× faster")
    }
}

fn path(mode: &str) -> &'static str {
    match mode {
        "serve" => "straight to the pod (serve)",
        "proxy" => "through the activator (proxy)",
        _ => "unknown path",
    }
}

pub(crate) fn print(r: &Results) {
    let row = |m: &str, w: String, c: String, target: String| {
        println!("| {m} | {w} | {c} | {target} |");
    };
    let c_or = |f: &dyn Fn(&KindRun) -> String| match &r.container {
        Ok(c) => f(c),
        Err(reason) => format!("skipped: {reason}"),
    };
    let n = r.rounds;
    let w = &r.wasm;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "One node, {cores} cores; scale-down-delay {DEFAULT_SCALE_DOWN_DELAY}; each cold start after both Deployments are at zero (no pod, Service `skiff.dev/activator: proxy`, the node's rules on the activator) and a {} ms settle; one HTTP/1.1 GET to the ClusterIP from the node, new connection, connect → complete response, 200 required",
        DEFAULT_SETTLE.as_millis()
    );
    println!();
    println!("| measure | Wasm (hello component) | container (busybox httpd) | target |");
    println!("|---|---|---|---|");
    row(
        "first cold start from zero (image pull + compile / pull + unpack)",
        first(&w.first),
        c_or(&|c| first(&c.first)),
        String::new(),
    );
    row(
        &format!("cold start from zero p50 ({n} per runtime, alternating)"),
        cold_p50(w, WASM_COLD_P50_TARGET),
        c_or(&|c| cold_p50(c, CONTAINER_COLD_P50_TARGET)),
        format!(
            "Wasm ≤ {}, container ≤ {}",
            round(WASM_COLD_P50_TARGET),
            round(CONTAINER_COLD_P50_TARGET)
        ),
    );
    row(
        "cold start p99 / max",
        cold_p99(w, Some(WASM_COLD_P99_TARGET)),
        c_or(&|c| cold_p99(c, None)),
        format!("Wasm p99 ≤ {}", round(WASM_COLD_P99_TARGET)),
    );
    row(
        "cold starts failed (not 200, or no answer)",
        failures(&w.cold_failures, n),
        c_or(&|c| failures(&c.cold_failures, n)),
        String::new(),
    );
    let knative = format!(
        "{}–{}",
        round(KNATIVE_COLD_MIN).trim_end_matches(" s"),
        round(KNATIVE_COLD_MAX)
    );
    row(
        "Knative Serving cold start (published, reference)",
        knative.clone(),
        knative.clone(),
        String::new(),
    );
    row(
        &format!("Knative's {knative} / Skiff's cold p50"),
        versus_knative(w),
        c_or(&versus_knative),
        String::new(),
    );
    let warm = |k: &KindRun| format!("{} — {}", spread(&k.warm), path(&k.warm_mode));
    row(
        &format!(
            "warm GET p50 / p99 / max ({DEFAULT_WARM_REQUESTS} one after another, new connection each; path)"
        ),
        warm(w),
        c_or(&warm),
        String::new(),
    );
    row(
        "warm requests failed",
        failures(&w.warm_failures, DEFAULT_WARM_REQUESTS),
        c_or(&|c| failures(&c.warm_failures, DEFAULT_WARM_REQUESTS)),
        String::new(),
    );
    let added = |k: &KindRun| {
        if k.cold.is_empty() || k.warm.is_empty() {
            return "—".into();
        }
        ms(pct(&k.cold, 0.5).saturating_sub(pct(&k.warm, 0.5)))
    };
    row(
        "cold p50 − warm p50 (what starting from zero adds)",
        added(w),
        c_or(&added),
        String::new(),
    );
    let d = &r.density;
    let k = d.count;
    let secs = |t: Duration| format!("{:.1} s", t.as_secs_f64());
    row(
        &format!("{k} idle scale-to-zero Wasm Deployments + ClusterIP Services ({DEFAULT_CREATE_CONCURRENCY} clients): all created → all marked `activator: proxy` → all on the activator in the node's rules"),
        format!(
            "{} ({:.0} Deployments/s) → {} → {} ({} addresses on the activator)",
            secs(d.created),
            k as f64 / d.created.as_secs_f64().max(1e-9),
            secs(d.marked),
            secs(d.rules),
            d.activator_addresses
        ),
        String::new(),
        String::new(),
    );
    row(
        &format!("skiff server RSS (control plane + agent): before → with {k} idle"),
        format!(
            "{} → {} ({:.1} KiB per Deployment + Service)",
            mib(d.rss_before),
            mib(d.rss_at_count),
            (d.rss_at_count as f64 - d.rss_before as f64) / k as f64
        ),
        String::new(),
        String::new(),
    );
    row(
        &format!("cold start from zero of the last of them ({})", d.last_name),
        first(&d.last_cold),
        String::new(),
        String::new(),
    );
    let mut kinds = vec![("Wasm", w)];
    if let Ok(c) = &r.container {
        kinds.push(("container", c));
    }
    let failed: Vec<(&str, &String)> = kinds
        .iter()
        .flat_map(|(what, run)| {
            run.cold_failures
                .iter()
                .chain(&run.warm_failures)
                .map(move |f| (*what, f))
        })
        .collect();
    if !failed.is_empty() {
        println!();
        println!("Failures:");
        for (what, f) in failed.iter().take(20) {
            println!("- {what}: {f}");
        }
        if failed.len() > 20 {
            println!("- … and {} more", failed.len() - 20);
        }
    }
}
