//! Many open watches held by a benchmark and what they receive: the lines of each watch stream
//! counted by type (events, bookmarks, errors), and the streams that ended. One HTTP/1.1
//! connection per watch, as the kube crate opens them, is here; HTTP/2 streams multiplexed on a
//! few connections, as client-go opens them, are in `h2watch.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;

/// What the watches of one [`WatchSet`] received, summed over them.
#[derive(Default)]
pub struct WatchCounts {
    /// Streams answered 200.
    pub opened: AtomicU64,
    /// ADDED, MODIFIED and DELETED lines.
    pub events: AtomicU64,
    pub bookmarks: AtomicU64,
    /// ERROR lines (a 410 when a watch fell behind the change log).
    pub errors: AtomicU64,
    /// Streams that ended (the server closed or reset them) while held.
    pub ended: AtomicU64,
    /// The first failure seen (an answer other than 200, a broken connection).
    failure: Mutex<Option<String>>,
}

/// A copy of [`WatchCounts`] at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub opened: u64,
    pub events: u64,
    pub bookmarks: u64,
    pub errors: u64,
    pub ended: u64,
}

impl WatchCounts {
    pub fn get(&self) -> Counts {
        Counts {
            opened: self.opened.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            bookmarks: self.bookmarks.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
        }
    }

    /// Records a failure (the first one is kept).
    pub fn fail(&self, what: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(what);
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// The bytes kept from each end of a line: enough to hold `"type":"BOOKMARK"`, which the server
/// writes first or last depending on how its JSON orders keys.
const EDGE: usize = 32;

/// Splits one stream's body into lines and counts them by type.
#[derive(Default)]
pub struct Lines {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Lines {
    pub fn feed(&mut self, mut data: &[u8], counts: &WatchCounts) {
        while !data.is_empty() {
            let (part, rest, done) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            let room = EDGE.saturating_sub(self.head.len());
            self.head.extend_from_slice(&part[..part.len().min(room)]);
            self.tail
                .extend_from_slice(&part[part.len().saturating_sub(EDGE)..]);
            if self.tail.len() > EDGE {
                self.tail.drain(..self.tail.len() - EDGE);
            }
            if done {
                self.classify(counts);
            }
            data = rest;
        }
    }

    fn classify(&mut self, counts: &WatchCounts) {
        let has = |needle: &[u8]| {
            [&self.head, &self.tail]
                .iter()
                .any(|edge| edge.windows(needle.len()).any(|w| w == needle))
        };
        let counter = if self.head.is_empty() {
            None
        } else if has(b"\"type\":\"BOOKMARK\"") {
            Some(&counts.bookmarks)
        } else if has(b"\"type\":\"ERROR\"") {
            Some(&counts.errors)
        } else {
            Some(&counts.events)
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.head.clear();
        self.tail.clear();
    }
}

/// Open watches; dropping the set closes them (their tasks end, and with them the
/// connections).
pub struct WatchSet {
    pub counts: Arc<WatchCounts>,
    pub tasks: Vec<JoinHandle<()>>,
    /// Connections the watches use.
    pub connections: usize,
}

impl WatchSet {
    /// Waits (at most `wait`) until all `n` watches were answered 200; fails on the first
    /// failure or a stream that ended meanwhile.
    pub async fn wait_open(&self, n: u64, wait: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(f) = self.counts.failure() {
                bail!("a watch failed: {f}");
            }
            let c = self.counts.get();
            if c.ended > 0 {
                bail!("{} of the watches ended while opening", c.ended);
            }
            if c.opened >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("only {} of {n} watches answered within {wait:?}", c.opened);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WatchSet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens `n` watches of `path` (a watch URL with its query) through `client` (the kube crate:
/// HTTP/1.1, so one TLS connection each), `parallel` being opened at a time, and waits (at most
/// `wait`) until all are answered.
pub async fn open_h1(
    client: &kube::Client,
    path: &str,
    n: usize,
    parallel: usize,
    wait: Duration,
) -> Result<WatchSet> {
    let counts = Arc::new(WatchCounts::default());
    let opening = futures::stream::iter(0..n).map(|_| {
        let client = client.clone();
        let counts = counts.clone();
        let path = path.to_string();
        async move {
            let req = http::Request::get(&path)
                .header(http::header::ACCEPT, "application/json")
                .body(kube::client::Body::from(Vec::new()))?;
            let resp = client.send(req).await.context("opening a watch")?;
            if resp.status() != http::StatusCode::OK {
                bail!("watch {path} answered {}", resp.status());
            }
            counts.opened.fetch_add(1, Ordering::Relaxed);
            let mut body = resp.into_body();
            Ok::<_, anyhow::Error>(tokio::spawn(async move {
                let mut lines = Lines::default();
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => {
                            if let Some(d) = f.data_ref() {
                                lines.feed(d, &counts);
                            }
                        }
                        Err(e) => {
                            counts.fail(format!("watch stream broke: {e}"));
                            break;
                        }
                    }
                }
                counts.ended.fetch_add(1, Ordering::Relaxed);
            }))
        }
    });
    let mut set = WatchSet {
        counts: counts.clone(),
        tasks: Vec::with_capacity(n),
        connections: n,
    };
    let mut opening = opening.buffer_unordered(parallel.max(1));
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(task) = tokio::time::timeout_at(deadline, opening.next())
        .await
        .map_err(|_| anyhow::anyhow!("{n} HTTP/1.1 watches not open within {wait:?}"))?
    {
        set.tasks.push(task?);
    }
    set.wait_open(n as u64, wait).await?;
    Ok(set)
}
