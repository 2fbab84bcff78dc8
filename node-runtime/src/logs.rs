//! Per-container logs, in the CRI format kubelet reads and writes:
//!
//! ```text
//! 2026-11-29T20:31:35.123456789Z stdout F a full line
//! 2026-11-29T20:31:35.123456789Z stderr P a chunk without its newline (yet)
//! ```
//!
//! One record per line: an RFC 3339 timestamp with nanoseconds (UTC), the stream, a tag (`F` for
//! a record that ends a line, `P` for a partial one) and the text without its newline. A guest
//! write that ends without a newline is written at once as a `P` record (so a `print!` shows up
//! promptly); a line longer than [`DEFAULT_MAX_LINE_BYTES`] is split into `P` records.
//!
//! [`ContainerLog`] is the writer the Wasm runtime hands a guest's stdout and stderr to. When the
//! file would grow past its size bound it is renamed to `<path>.1` (replacing an older one) and
//! a new file is started. [`read_log`] and [`follow_log`] read `<path>.1` then `<path>`, so
//! `--tail` still works right after a rotation. (The rotated name must not end in `.log`: the
//! agent lists `<container>/<n>.log` files to find restarts.)

mod read;

pub use read::{follow_log, read_log, LogOptions, DEFAULT_FOLLOW_POLL_INTERVAL};

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Rotate a container's log above this size. 10 MiB is kubelet's default
/// `containerLogMaxSize`; with one rotated file kept a container uses at most about 20 MiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// Longest text in one record; longer lines are split into `P` records. 16 KiB is containerd's
/// `max_container_log_line_size` default, which tools reading CRI logs are used to.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024;

/// Which of a container's output streams a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// The name a log file is rotated to: `<path>.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// A container's log file, shared by its stdout and stderr writers (cheap to clone).
#[derive(Clone)]
pub struct ContainerLog {
    inner: Arc<Mutex<LogFile>>,
}

struct LogFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    max_bytes: u64,
}

impl std::fmt::Debug for ContainerLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerLog")
            .field("path", &self.lock().path)
            .finish()
    }
}

impl ContainerLog {
    /// Opens (appending) or creates the log at `path`, creating its parent directories.
    /// `max_bytes` is the size above which the file is rotated (see the module docs).
    pub fn open(path: PathBuf, max_bytes: u64) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(ContainerLog {
            inner: Arc::new(Mutex::new(LogFile {
                path,
                file,
                size,
                max_bytes: max_bytes.max(1),
            })),
        })
    }

    /// The path of the current (not rotated) file.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Appends what a guest wrote to `stream`: one `F` record per complete line, a `P` record
    /// for a trailing chunk without newline and for each piece of an over-long line. All records
    /// of one call share a timestamp.
    pub fn write(&self, stream: LogStream, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let timestamp = now_rfc3339_nano();
        let mut log = self.lock();
        let mut batch = Vec::with_capacity(data.len() + 64);
        for (text, partial) in split_records(data, DEFAULT_MAX_LINE_BYTES) {
            let record_len = (timestamp.len() + stream.as_str().len() + text.len() + 5) as u64;
            let pending = log.size + batch.len() as u64;
            if pending > 0 && pending + record_len > log.max_bytes {
                log.append(&batch)?;
                batch.clear();
                log.rotate()?;
            }
            batch.extend_from_slice(timestamp.as_bytes());
            batch.push(b' ');
            batch.extend_from_slice(stream.as_str().as_bytes());
            batch.extend_from_slice(if partial { b" P " } else { b" F " });
            batch.extend_from_slice(text);
            batch.push(b'\n');
        }
        log.append(&batch)
    }

    fn lock(&self) -> MutexGuard<'_, LogFile> {
        // A writer that panicked mid-write leaves at worst a torn record; keep logging.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LogFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, rotated_path(&self.path))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Splits `data` into record texts: `(text, partial)`, `text` without its newline.
fn split_records(mut data: &[u8], max_line: usize) -> Vec<(&[u8], bool)> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let window = &data[..data.len().min(max_line + 1)];
        match window.iter().position(|b| *b == b'\n') {
            Some(i) => {
                records.push((&data[..i], false));
                data = &data[i + 1..];
            }
            None => {
                let take = data.len().min(max_line);
                records.push((&data[..take], true));
                data = &data[take..];
            }
        }
    }
    records
}

/// Now, as kubelet writes it: `2026-11-29T20:31:35.123456789Z` (always nine fraction digits, so
/// records sort as text).
pub(crate) fn now_rfc3339_nano() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_full_partial_and_long_lines() {
        let recs = split_records(b"one\ntwo\nthr", 16);
        assert_eq!(
            recs,
            vec![
                (&b"one"[..], false),
                (&b"two"[..], false),
                (&b"thr"[..], true)
            ]
        );
        let recs = split_records(b"abcdefgh\n", 3);
        assert_eq!(
            recs,
            vec![
                (&b"abc"[..], true),
                (&b"def"[..], true),
                (&b"gh"[..], false)
            ]
        );
        // A line of exactly the bound stays one F record.
        assert_eq!(split_records(b"abc\n", 3), vec![(&b"abc"[..], false)]);
        assert_eq!(split_records(b"\n", 3), vec![(&b""[..], false)]);
    }

    #[test]
    fn timestamp_is_fixed_width_utc() {
        let ts = now_rfc3339_nano();
        assert_eq!(ts.len(), "2026-11-29T20:31:35.123456789Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn rotated_name_does_not_end_in_log() {
        assert_eq!(
            rotated_path(Path::new("/x/0.log")),
            PathBuf::from("/x/0.log.1")
        );
    }
}
