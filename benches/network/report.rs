//! The network benchmark's table.

use super::load::Load;
use super::support::{cores, header, or_skipped, row};
use super::*;

pub(crate) fn cell(l: &Load) -> String {
    let mut s = format!(
        "{} req/s, {} / {} (CPU: server {:.0} %, machine {:.0} %)",
        thousands(l.rps),
        ms(l.p50),
        ms(l.p99),
        l.server_cpu,
        l.machine_cpu
    );
    if l.syn_retrans > 0 {
        s.push_str(&format!(", {} SYN retransmits", l.syn_retrans));
    }
    if l.errors > 0 {
        s.push_str(&format!(", {} errors of {} requests", l.errors, l.requests));
    }
    s
}

pub(crate) fn ratio(a: &Load, b: &Load) -> f64 {
    a.rps / b.rps.max(1e-9)
}

pub(crate) fn added_p99_ms(path: &Load, direct: &Load) -> f64 {
    (path.p99.as_secs_f64() - direct.p99.as_secs_f64()) * 1000.0
}

pub(crate) fn print(r: &Results) {
    let cores = cores();
    println!(
        "wrk -t{THREADS} -c{CONNECTIONS} -d{}s (after a {}s warm-up), keep-alive, from a pod of another node (routed by this node: direct, ClusterIP, NodePort) and from a pod on this node's bridge, each path in turn {ROUNDS} times, medians shown, on the same {cores} cores as the server; CPU in % of one core (machine max {}%)",
        LOAD.as_secs(),
        WARMUP.as_secs(),
        cores * 100
    );
    println!();
    header("Wasm (hello component)", "container (keep-alive httpd)");
    let w = &r.wasm;
    // A row of `f` of each Service's run.
    let both = |m: &str, f: &dyn Fn(&ServiceRun) -> String, target: &str| {
        row(m, f(w), or_skipped(&r.container, f), target)
    };
    both("direct: pod IP", &|s| cell(&s.direct), "");
    both("ClusterIP (nftables DNAT)", &|s| cell(&s.cluster_ip), "");
    let node_port = format!("NodePort on {NODE_ADDR}");
    both(&node_port, &|s| cell(&s.node_port), "");
    let ratio_cell = |s: &ServiceRun| {
        let v = ratio(&s.cluster_ip, &s.direct);
        format!("{:.1} % ({})", v * 100.0, met(v >= CLUSTERIP_RATIO_TARGET))
    };
    let ratio_target = format!("≥ {:.0} %", CLUSTERIP_RATIO_TARGET * 100.0);
    both("ClusterIP / direct throughput", &ratio_cell, &ratio_target);
    let p99_cell = |s: &ServiceRun| {
        let v = added_p99_ms(&s.cluster_ip, &s.direct);
        format!("{v:+.2} ms ({})", met(v <= ADDED_P99_TARGET_MS))
    };
    let p99_target = format!("≤ {ADDED_P99_TARGET_MS} ms");
    both("ClusterIP p99 − direct p99", &p99_cell, &p99_target);
    // A path against its direct one: throughput ratio and the p99 it adds.
    let versus = |path: &Load, direct: &Load| {
        format!(
            "{:.1} %, {:+.2} ms",
            ratio(path, direct) * 100.0,
            added_p99_ms(path, direct)
        )
    };
    both(
        "NodePort / direct throughput, NodePort p99 − direct p99",
        &|s| versus(&s.node_port, &s.direct),
        "",
    );
    let bridged_cell = |s: &ServiceRun| {
        format!(
            "{} → {} req/s: {}",
            thousands(s.bridged_direct.rps),
            thousands(s.bridged_cluster_ip.rps),
            versus(&s.bridged_cluster_ip, &s.bridged_direct)
        )
    };
    both(
        "client pod on the same bridge: direct (bridged) → ClusterIP (routed), ratio, p99 added",
        &bridged_cell,
        "",
    );
    let rd = &r.ready;
    let p50 = pct(&rd.ready, 0.5);
    let budget = README_READY_P50_MS + READY_BUDGET_MS;
    row(
        "first Wasm pod create → Ready (cold compile, pod network on)",
        ms(rd.first),
        String::new(),
        String::new(),
    );
    row(
        &format!("Wasm create → Ready p50 / p99 ({READY_PODS} pods one after another, pod network on)"),
        format!(
            "{} / {} ({})",
            ms(p50),
            ms(pct(&rd.ready, 0.99)),
            met(p50.as_secs_f64() * 1000.0 <= budget)
        ),
        String::new(),
        format!("p50 ≤ {budget} ms ({README_READY_P50_MS} ms without the network + {READY_BUDGET_MS} ms)"),
    );
    let m = &r.many;
    row(
        &format!("{MANY_PODS} Wasm pods (a Deployment) create → all Running on one node"),
        format!(
            "{:.1} s ({:.0} pods/s; {} pod addresses on skiff0)",
            m.elapsed.as_secs_f64(),
            MANY_PODS as f64 / m.elapsed.as_secs_f64().max(1e-9),
            m.addresses
        ),
        String::new(),
        String::new(),
    );
    row(
        &format!(
            "skiff server RSS: before → {MANY_PODS} Running → {}s later",
            SETTLE.as_secs()
        ),
        format!(
            "{} → {} → {} ({:.1} KiB per pod)",
            mib(m.rss_before),
            mib(m.rss_running),
            mib(m.rss_settled),
            (m.rss_settled as f64 - m.rss_before as f64) / MANY_PODS as f64
        ),
        String::new(),
        String::new(),
    );
    println!();
    let urls = |s: &ServiceRun| s.urls.join(", ");
    println!("Wasm paths: {}", urls(w));
    if let Ok(c) = &r.container {
        println!("container paths: {}", urls(c));
    }
}
