//! Reading container logs back as `kubectl logs` shows them: the text of each record, lines
//! rebuilt from `P` records, optionally prefixed with the record's timestamp, the last N lines,
//! at most N bytes; and following a log as it grows (across rotations).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;

use super::rotated_path;

/// How often a followed log is checked for new records. 200 ms feels live to a person watching
/// `kubectl logs -f` while costing one `read`/`stat` per follower five times a second.
pub const DEFAULT_FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Most bytes read from a followed file per poll, so one burst of output is sent in bounded
/// pieces rather than buffered whole.
const DEFAULT_FOLLOW_READ_BYTES: usize = 1024 * 1024;

/// What part of a log to show, like `kubectl logs` flags.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Only the last N lines (`--tail`).
    pub tail_lines: Option<usize>,
    /// Prefix each line with its RFC 3339 timestamp and a space (`--timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes of output (`--limit-bytes`).
    pub limit_bytes: Option<usize>,
    /// Only records written at or after this time (`--since`, `--since-time`).
    pub since: Option<jiff::Timestamp>,
}

/// Drops the records written before `since`.
fn since_filter<'a>(
    mut records: Vec<Record<'a>>,
    since: Option<jiff::Timestamp>,
) -> Vec<Record<'a>> {
    if let Some(since) = since {
        records.retain(|r| {
            std::str::from_utf8(r.timestamp)
                .ok()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t >= since)
        });
    }
    records
}

/// The log at `path` (after `<path>.1`, its rotated part, if present), as `kubectl logs` shows it.
pub fn read_log(path: &Path, opts: &LogOptions) -> io::Result<Vec<u8>> {
    let mut data = read_if_exists(&rotated_path(path))?;
    data.extend(std::fs::read(path)?);
    let complete = complete_records(&data);
    let records = since_filter(parse_records(complete), opts.since);
    let mut renderer = Renderer::new(opts);
    let mut out = Vec::new();
    for record in &records[tail_start(&records, opts.tail_lines)..] {
        renderer.push(record, &mut out);
    }
    renderer.limit(&mut out);
    Ok(out)
}

/// Shows the log at `path` like [`read_log`], then keeps sending what is appended (polling every
/// [`DEFAULT_FOLLOW_POLL_INTERVAL`]) until `stop` turns true (or its sender is gone), the byte
/// limit is reached, or the stream is dropped. A rotation is followed: the old file is read to
/// its end before the new one is opened.
pub fn follow_log(
    path: PathBuf,
    opts: LogOptions,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let state = FollowState {
        phase: Phase::Start(path, opts),
        stop,
    };
    futures::stream::unfold(state, next_chunk)
}

struct FollowState {
    phase: Phase,
    stop: watch::Receiver<bool>,
}

enum Phase {
    Start(PathBuf, LogOptions),
    Following(Box<Follower>),
    Done,
}

async fn next_chunk(mut st: FollowState) -> Option<(io::Result<Bytes>, FollowState)> {
    loop {
        if *st.stop.borrow() {
            return None;
        }
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Done => return None,
            Phase::Start(path, opts) => {
                match tokio::task::spawn_blocking(move || Follower::start(path, &opts)).await {
                    Ok(Ok((follower, out))) => {
                        if !follower.exhausted() {
                            st.phase = Phase::Following(follower);
                        }
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), st));
                        }
                    }
                    Ok(Err(e)) => return Some((Err(e), st)),
                    Err(e) => return Some((Err(io::Error::other(e)), st)),
                }
            }
            Phase::Following(mut follower) => {
                let polled = tokio::task::spawn_blocking(move || {
                    let out = follower.poll();
                    (follower, out)
                })
                .await;
                let (follower, out) = match polled {
                    Ok((follower, Ok(out))) => (follower, out),
                    Ok((_, Err(e))) => return Some((Err(e), st)),
                    Err(e) => return Some((Err(io::Error::other(e)), st)),
                };
                let exhausted = follower.exhausted();
                if !exhausted {
                    st.phase = Phase::Following(follower);
                }
                if !out.is_empty() {
                    return Some((Ok(Bytes::from(out)), st));
                }
                if exhausted {
                    return None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(DEFAULT_FOLLOW_POLL_INTERVAL) => {}
                    changed = st.stop.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                }
            }
        }
    }
}

/// Reads a log file as it grows; runs on the blocking pool.
struct Follower {
    path: PathBuf,
    /// The file being read and its inode; `None` until the log file exists.
    file: Option<(File, u64)>,
    /// Bytes read after the last complete record.
    pending: Vec<u8>,
    renderer: Renderer,
}

impl Follower {
    /// Opens the log and renders what is already there (with the tail applied).
    fn start(path: PathBuf, opts: &LogOptions) -> io::Result<(Box<Follower>, Vec<u8>)> {
        let mut data = read_if_exists(&rotated_path(&path))?;
        let file = match File::open(&path) {
            Ok(mut f) => {
                let ino = f.metadata()?.ino();
                f.read_to_end(&mut data)?;
                Some((f, ino))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let complete_len = complete_records(&data).len();
        let records = since_filter(parse_records(&data[..complete_len]), opts.since);
        let mut renderer = Renderer::new(opts);
        let mut out = Vec::new();
        for record in &records[tail_start(&records, opts.tail_lines)..] {
            renderer.push(record, &mut out);
        }
        renderer.limit(&mut out);
        let pending = data[complete_len..].to_vec();
        Ok((
            Box::new(Follower {
                path,
                file,
                pending,
                renderer,
            }),
            out,
        ))
    }

    fn exhausted(&self) -> bool {
        self.renderer.limit_left == Some(0)
    }

    /// Renders what was appended since the last call; switches to the new file after a rotation.
    fn poll(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if self.read_more(&mut out)? {
            return Ok(out);
        }
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let held = self.file.as_ref().map(|(_, ino)| *ino);
        if held == Some(current) {
            return Ok(out);
        }
        // Rotated (or created): finish the old file — it may have been appended to between our
        // last read and the rename — then, if it rotated twice since, the file between (now
        // `<path>.1`), then start on the new one from its beginning.
        while self.read_more(&mut out)? {}
        let new = File::open(&self.path)?;
        let new_ino = new.metadata()?.ino();
        if let Ok(between) = File::open(rotated_path(&self.path)) {
            let ino = between.metadata()?.ino();
            if held.is_some() && Some(ino) != held && ino != new_ino {
                self.switch_to(between, ino);
                while self.read_more(&mut out)? {}
            }
        }
        self.switch_to(new, new_ino);
        self.read_more(&mut out)?;
        Ok(out)
    }

    fn switch_to(&mut self, file: File, ino: u64) {
        self.pending.clear();
        self.file = Some((file, ino));
    }

    /// Reads up to [`DEFAULT_FOLLOW_READ_BYTES`] and renders the complete records; false at end of file.
    fn read_more(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        let Some((file, _)) = self.file.as_mut() else {
            return Ok(false);
        };
        let before = self.pending.len();
        file.take(DEFAULT_FOLLOW_READ_BYTES as u64)
            .read_to_end(&mut self.pending)?;
        if self.pending.len() == before {
            return Ok(false);
        }
        let complete_len = complete_records(&self.pending).len();
        let start = out.len();
        for record in parse_records(&self.pending[..complete_len]) {
            self.renderer.push(&record, out);
        }
        self.pending.drain(..complete_len);
        let mut rendered = out.split_off(start);
        self.renderer.limit(&mut rendered);
        out.extend(rendered);
        Ok(true)
    }
}

fn read_if_exists(path: &Path) -> io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(data) => Ok(data),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `data` up to and including its last newline (a record being written may be cut short).
fn complete_records(data: &[u8]) -> &[u8] {
    match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => &data[..=i],
        None => &[],
    }
}

/// One line of a CRI log file.
#[derive(Debug, PartialEq)]
struct Record<'a> {
    timestamp: &'a [u8],
    partial: bool,
    text: &'a [u8],
}

/// Parses `<timestamp> <stream> <P|F> <text>` lines, skipping any that are not records.
fn parse_records(data: &[u8]) -> Vec<Record<'_>> {
    data.split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut fields = line.splitn(4, |b| *b == b' ');
            let timestamp = fields.next()?;
            let _stream = fields.next()?;
            let partial = match fields.next()? {
                b"P" => true,
                b"F" => false,
                _ => return None,
            };
            Some(Record {
                timestamp,
                partial,
                text: fields.next().unwrap_or_default(),
            })
        })
        .collect()
}

/// Index of the first record of the last `tail` lines (a line is `P` records ended by an `F`
/// record; trailing `P` records are a line of their own).
fn tail_start(records: &[Record<'_>], tail: Option<usize>) -> usize {
    let Some(n) = tail else { return 0 };
    if n == 0 {
        return records.len();
    }
    let mut line_starts = vec![0];
    for (i, r) in records.iter().enumerate() {
        if !r.partial && i + 1 < records.len() {
            line_starts.push(i + 1);
        }
    }
    if records.is_empty() {
        return 0;
    }
    line_starts[line_starts.len().saturating_sub(n)]
}

/// Turns records into output text, remembering across calls whether a line is open.
struct Renderer {
    timestamps: bool,
    at_line_start: bool,
    limit_left: Option<usize>,
}

impl Renderer {
    fn new(opts: &LogOptions) -> Self {
        Renderer {
            timestamps: opts.timestamps,
            at_line_start: true,
            limit_left: opts.limit_bytes,
        }
    }

    fn push(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(record.timestamp);
            out.push(b' ');
        }
        out.extend_from_slice(record.text);
        if !record.partial {
            out.push(b'\n');
        }
        self.at_line_start = !record.partial;
    }

    /// Cuts `out` (the next piece of output) to what the byte limit leaves.
    fn limit(&mut self, out: &mut Vec<u8>) {
        if let Some(left) = self.limit_left.as_mut() {
            out.truncate(*left);
            *left -= out.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-01-01T00:00:00.000000001Z stdout F one\n\
2026-01-01T00:00:00.000000002Z stderr P tw\n\
2026-01-01T00:00:00.000000003Z stderr F o\n\
garbage\n\
2026-01-01T00:00:00.000000004Z stdout F \n\
2026-01-01T00:00:00.000000005Z stdout P four";

    fn render(opts: &LogOptions) -> String {
        let records = since_filter(parse_records(complete_records(LOG)), opts.since);
        let mut r = Renderer::new(opts);
        let mut out = Vec::new();
        for rec in &records[tail_start(&records, opts.tail_lines)..] {
            r.push(rec, &mut out);
        }
        r.limit(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn joins_partials_and_skips_torn_and_bad_lines() {
        assert_eq!(render(&LogOptions::default()), "one\ntwo\n\n");
    }

    #[test]
    fn timestamps_prefix_each_line_once() {
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(&opts),
            "2026-01-01T00:00:00.000000001Z one\n2026-01-01T00:00:00.000000002Z two\n\
2026-01-01T00:00:00.000000004Z \n"
        );
    }

    #[test]
    fn tail_counts_lines_not_records() {
        let opts = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(render(&opts(1)), "\n");
        assert_eq!(render(&opts(2)), "two\n\n");
        assert_eq!(render(&opts(10)), "one\ntwo\n\n");
        assert_eq!(render(&opts(0)), "");
    }

    #[test]
    fn since_drops_older_records() {
        let opts = LogOptions {
            since: "2026-01-01T00:00:00.000000002Z".parse().ok(),
            ..Default::default()
        };
        assert_eq!(render(&opts), "two\n\n");
    }

    #[test]
    fn limit_bytes_cuts_output() {
        let opts = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(render(&opts), "one\nt");
    }
}
