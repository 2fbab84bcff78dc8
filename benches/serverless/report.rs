//! The serverless benchmark's table.

use std::time::Duration;

use super::support::{cores, header, met, mib, or_skipped, pct, row};
use super::*;

/// A duration: seconds with two decimals from 1 s, else [`support::ms`](super::support::ms).
pub(crate) fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m >= 1000.0 {
        format!("{:.2} s", m / 1000.0)
    } else {
        super::support::ms(d)
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
    let c_or = |f: &dyn Fn(&KindRun) -> String| or_skipped(&r.container, f);
    let n = r.rounds;
    let w = &r.wasm;
    // A row of `f` of each runtime's run, without a target.
    let both = |m: &str, f: &dyn Fn(&KindRun) -> String| row(m, f(w), c_or(f), "");
    let cores = cores();
    println!(
        "One node, {cores} cores; scale-down-delay {DEFAULT_SCALE_DOWN_DELAY}; each cold start after both Deployments are at zero (no pod, Service `skiff.dev/activator: proxy`, the node's rules on the activator) and a {} ms settle; one HTTP/1.1 GET to the ClusterIP from the node, new connection, connect → complete response, 200 required",
        DEFAULT_SETTLE.as_millis()
    );
    println!();
    header("Wasm (hello component)", "container (busybox httpd)");
    both(
        "first cold start from zero (image pull + compile / pull + unpack)",
        &|k| first(&k.first),
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
    both("cold starts failed (not 200, or no answer)", &|k| {
        failures(&k.cold_failures, n)
    });
    let stages = match &r.stages {
        Ok(list) if !list.is_empty() => list
            .iter()
            .map(|(stage, mean, count)| format!("{stage} {} ({count})", ms(*mean)))
            .collect::<Vec<_>>()
            .join(", "),
        Ok(_) => "no stage recorded".to_string(),
        Err(e) => format!("unavailable: {e}"),
    };
    row(
        "where cold starts go: `skiff_cold_start_stage_seconds` mean (count), both runtimes",
        stages,
        String::new(),
        "",
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
    both(
        &format!("Knative's {knative} / Skiff's cold p50"),
        &versus_knative,
    );
    let warm = |k: &KindRun| format!("{} — {}", spread(&k.warm), path(&k.warm_mode));
    both(
        &format!(
            "warm GET p50 / p99 / max ({DEFAULT_WARM_REQUESTS} one after another, new connection each; path)"
        ),
        &warm,
    );
    both("warm requests failed", &|k| {
        failures(&k.warm_failures, DEFAULT_WARM_REQUESTS)
    });
    let added = |k: &KindRun| {
        if k.cold.is_empty() || k.warm.is_empty() {
            return "—".into();
        }
        ms(pct(&k.cold, 0.5).saturating_sub(pct(&k.warm, 0.5)))
    };
    both("cold p50 − warm p50 (what starting from zero adds)", &added);
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
