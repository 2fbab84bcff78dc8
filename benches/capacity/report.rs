//! The capacity benchmark's figures and their table.

use std::time::Duration;

use crate::support::watches::Counts;
use crate::support::{bytes, cells, head, mib, ms, pct, thousands};
use crate::{Scale, PAGE, WRITERS};

/// Everything the table shows.
pub struct Report {
    pub idle_kib: u64,
    pub objects: Objects,
    pub h2: WatchMemory,
    pub h1: WatchMemory,
    pub list: Lists,
    pub writes_none: Writes,
    pub writes_idle: Writes,
    pub idle_counts: Counts,
    pub writes_fan: Writes,
    pub fan: Fanout,
    pub end_kib: u64,
}

pub struct Objects {
    pub elapsed: Duration,
    pub rss_before: u64,
    pub rss_after: u64,
    pub redb_before: u64,
    pub redb_after: u64,
    pub object_json: usize,
}

pub struct WatchMemory {
    pub rss_before: u64,
    pub rss_after: u64,
    pub connections: usize,
}

pub struct Lists {
    pub full: Vec<Duration>,
    pub walks: Vec<Duration>,
    pub pages: Vec<Duration>,
    pub pages_per_walk: usize,
    pub response_bytes: usize,
    pub full_peak: (u64, u64),
    pub walk_peak: (u64, u64),
}

pub struct Writes {
    pub writes: u64,
    pub elapsed: Duration,
    /// CPU time the server and this process (writers, watch clients) used during the writes:
    /// on a small machine the clients' share is taken from the server.
    pub server_cpu: Duration,
    pub bench_cpu: Duration,
}

impl Writes {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// "N writes in S s; CPU: server A s, bench B s".
    fn detail(&self) -> String {
        format!(
            "{} writes in {:.1} s; CPU: server {:.1} s, bench {:.1} s",
            thousands(self.writes),
            self.elapsed.as_secs_f64(),
            self.server_cpu.as_secs_f64(),
            self.bench_cpu.as_secs_f64()
        )
    }
}

pub struct Fanout {
    pub expected: u64,
    pub counts: Counts,
    /// From the writes' end to the last event delivered (all of them, or until they stalled).
    pub drain: Duration,
}

pub fn per(kib_before: u64, kib_after: u64, n: usize) -> String {
    bytes((kib_after as f64 - kib_before as f64) * 1024.0 / n as f64)
}

/// "1 connection", "5 connections".
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{} {what}s", thousands(n as u64))
    }
}

pub fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b.max(1e-9))
}

impl Report {
    pub fn print(&self, s: &Scale) {
        let (objs, watches) = (thousands(s.objects as u64), thousands(s.watches as u64));
        let kinds = if s.quick {
            " (quick: SKIFF_BENCH_QUICK=1)"
        } else {
            ""
        };
        println!(
            "\ncapacity: control plane alone (`skiff server --no-agent`), loopback, {} cores{kinds}\n",
            crate::support::cores()
        );
        head(&["measure", "value", "detail"]);
        cells(&[
            "idle control plane RSS (`--no-agent`)",
            &mib(self.idle_kib),
            "",
        ]);
        let o = &self.objects;
        cells(&[
            &format!("create {objs} ConfigMaps (1 KiB data), {WRITERS} writers"),
            &format!("{:.0}/s", s.objects as f64 / o.elapsed.as_secs_f64()),
            &format!("{:.1} s", o.elapsed.as_secs_f64()),
        ]);
        cells(&[
            "RSS per stored object",
            &per(o.rss_before, o.rss_after, s.objects),
            &format!("{} → {}", mib(o.rss_before), mib(o.rss_after)),
        ]);
        cells(&[
            "object as served (GET, JSON)",
            &bytes(o.object_json as f64),
            "1 KiB of it is data",
        ]);
        cells(&[
            "`state.redb` growth per object",
            &bytes((o.redb_after as f64 - o.redb_before as f64) / s.objects as f64),
            &format!(
                "{} → {}",
                bytes(o.redb_before as f64),
                bytes(o.redb_after as f64)
            ),
        ]);
        for (m, what) in [
            (&self.h2, "HTTP/2 streams (client-go)"),
            (&self.h1, "HTTP/1.1, a TLS connection each (kube crate)"),
        ] {
            cells(&[
                &format!("RSS per idle watch, {what}"),
                &per(m.rss_before, m.rss_after, s.watches),
                &format!(
                    "{watches} watches on {}: {} → {}",
                    plural(m.connections, "connection"),
                    mib(m.rss_before),
                    mib(m.rss_after)
                ),
            ]);
        }
        let l = &self.list;
        let p = |v: &[Duration]| format!("{} / {}", ms(pct(v, 0.5)), ms(pct(v, 0.9)));
        cells(&[
            &format!("LIST {objs}, JSON, no limit: p50 / p90"),
            &p(&l.full),
            &format!(
                "{} runs; {} response, {} an item",
                l.full.len(),
                bytes(l.response_bytes as f64),
                bytes(l.response_bytes as f64 / s.objects as f64)
            ),
        ]);
        cells(&[
            &format!("LIST {objs} in `limit={PAGE}` pages: whole walk p50 / p90"),
            &p(&l.walks),
            &format!(
                "{} pages a walk; a page p50 / p90 {}",
                l.pages_per_walk,
                p(&l.pages)
            ),
        ]);
        for ((before, hwm), what) in [(l.full_peak, "full LIST"), (l.walk_peak, "paginated walk")] {
            cells(&[
                &format!("server peak RSS during a {what}"),
                &mib(hwm),
                &format!(
                    "+{} over {} before; the growth is {} the full LIST's response",
                    mib(hwm.saturating_sub(before)),
                    mib(before),
                    ratio(
                        (hwm.saturating_sub(before) * 1024) as f64,
                        l.response_bytes as f64
                    )
                ),
            ]);
        }
        let base = self.writes_none.per_sec();
        cells(&[
            &format!("writes/s, {WRITERS} writers (create + update), no watches"),
            &format!("{base:.0}"),
            &self.writes_none.detail(),
        ]);
        let i = &self.idle_counts;
        cells(&[
            &format!("writes/s, {watches} idle watches on another namespace"),
            &format!(
                "{:.0} ({})",
                self.writes_idle.per_sec(),
                ratio(self.writes_idle.per_sec(), base)
            ),
            &format!(
                "{}; the idle watches received {} events, {} bookmarks",
                self.writes_idle.detail(),
                i.events,
                i.bookmarks
            ),
        ]);
        let f = &self.fan;
        cells(&[
            &format!("writes/s, {watches} watches on the written namespace"),
            &format!("{:.0} ({})", self.writes_fan.per_sec(), ratio(self.writes_fan.per_sec(), base)),
            &format!(
                "{}; {} of {} events delivered ({:.1}%, {}/s), the last {:.1} s after the writes; {} watches fell behind (410), {} ended",
                self.writes_fan.detail(),
                thousands(f.counts.events),
                thousands(f.expected),
                100.0 * f.counts.events as f64 / f.expected.max(1) as f64,
                thousands((f.counts.events as f64 / (self.writes_fan.elapsed + f.drain).as_secs_f64()) as u64),
                f.drain.as_secs_f64(),
                f.counts.errors,
                f.counts.ended
            ),
        ]);
        let stored = s.objects as u64
            + (self.writes_none.writes + self.writes_idle.writes + self.writes_fan.writes) / 2;
        cells(&[
            "server RSS at the end",
            &mib(self.end_kib),
            &format!("{} ConfigMaps stored, no watches open", thousands(stored)),
        ]);
    }
}
