//! Container logs: CRI records, P/F lines, tail, timestamps, byte limits, rotation, follow.

use std::time::Duration;

use futures::StreamExt;
use skiff_node_runtime::logs::{
    follow_log, read_log, rotated_path, ContainerLog, LogOptions, LogStream, DEFAULT_MAX_LOG_BYTES,
};
use tokio::sync::watch;

fn read(path: &std::path::Path, opts: LogOptions) -> String {
    String::from_utf8(read_log(path, &opts).unwrap()).unwrap()
}

#[test]
fn writes_cri_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c/0.log"); // parent directories are created
    let log = ContainerLog::open(path.clone(), DEFAULT_MAX_LOG_BYTES).unwrap();
    log.write(LogStream::Stdout, b"hello\nwor").unwrap();
    log.write(LogStream::Stdout, b"ld\n").unwrap();
    log.write(LogStream::Stderr, b"oops\n\n").unwrap();
    let raw = std::fs::read_to_string(&path).unwrap();
    let records: Vec<(&str, &str, &str)> = raw
        .lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let ts = f.next().unwrap();
            assert!(
                ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{ts}"
            );
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        records,
        vec![
            ("stdout", "F", "hello"),
            ("stdout", "P", "wor"),
            ("stdout", "F", "ld"),
            ("stderr", "F", "oops"),
            ("stderr", "F", ""),
        ]
    );
    assert_eq!(read(&path, LogOptions::default()), "hello\nworld\noops\n\n");
}

#[test]
fn long_lines_are_split_into_partials_and_joined_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let log = ContainerLog::open(path.clone(), DEFAULT_MAX_LOG_BYTES).unwrap();
    let long = "x".repeat(40 * 1024);
    log.write(LogStream::Stdout, format!("{long}\n").as_bytes())
        .unwrap();
    let raw = std::fs::read_to_string(&path).unwrap();
    assert_eq!(raw.lines().count(), 3, "16 KiB + 16 KiB + 8 KiB");
    assert_eq!(raw.lines().filter(|l| l.contains(" stdout P ")).count(), 2);
    assert_eq!(read(&path, LogOptions::default()), format!("{long}\n"));
}

#[test]
fn tail_timestamps_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let log = ContainerLog::open(path.clone(), DEFAULT_MAX_LOG_BYTES).unwrap();
    for i in 0..10 {
        log.write(LogStream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    let tail = |n| {
        read(
            &path,
            LogOptions {
                tail_lines: Some(n),
                ..Default::default()
            },
        )
    };
    assert_eq!(tail(2), "line 8\nline 9\n");
    assert_eq!(tail(0), "");
    assert_eq!(tail(100).lines().count(), 10);

    let stamped = read(
        &path,
        LogOptions {
            tail_lines: Some(1),
            timestamps: true,
            ..Default::default()
        },
    );
    let (ts, text) = stamped.split_once(' ').unwrap();
    assert_eq!(text, "line 9\n");
    assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");

    let limited = read(
        &path,
        LogOptions {
            limit_bytes: Some(10),
            ..Default::default()
        },
    );
    assert_eq!(limited, "line 0\nlin");
}

#[test]
fn rotation_keeps_the_tail_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    // Each record is about 50 bytes: a 1000-byte bound rotates every ~20 lines.
    let log = ContainerLog::open(path.clone(), 1000).unwrap();
    for i in 0..30 {
        log.write(LogStream::Stdout, format!("line {i:02}\n").as_bytes())
            .unwrap();
    }
    let rotated = rotated_path(&path);
    assert!(rotated.exists(), "rotated to {}", rotated.display());
    assert!(!rotated.to_string_lossy().ends_with(".log"));
    assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
    assert!(std::fs::metadata(&rotated).unwrap().len() <= 1000);
    // The last lines span both files.
    let current_lines = std::fs::read_to_string(&path).unwrap().lines().count();
    let want = current_lines + 3;
    let tail = read(
        &path,
        LogOptions {
            tail_lines: Some(want),
            ..Default::default()
        },
    );
    let expected: String = (30 - want..30).map(|i| format!("line {i:02}\n")).collect();
    assert_eq!(tail, expected);
    // Reopening (an agent restart) appends to the current file.
    drop(log);
    let log = ContainerLog::open(path.clone(), 1000).unwrap();
    log.write(LogStream::Stderr, b"after reopen\n").unwrap();
    assert!(read(&path, LogOptions::default()).ends_with("line 29\nafter reopen\n"));
}

#[test]
fn missing_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_log(&dir.path().join("nope.log"), &LogOptions::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

async fn next_text<S>(stream: &mut S) -> String
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("follow produced nothing in time")
        .expect("stream ended")
        .expect("read error");
    String::from_utf8(chunk.to_vec()).unwrap()
}

/// Reads chunks until `want` has been seen in total.
async fn read_until<S>(stream: &mut S, want: &str) -> String
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    let mut seen = String::new();
    while !seen.contains(want) {
        seen.push_str(&next_text(stream).await);
    }
    seen
}

#[tokio::test]
async fn follow_tails_then_streams_across_rotation_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let log = ContainerLog::open(path.clone(), 600).unwrap();
    for i in 0..3 {
        log.write(LogStream::Stdout, format!("old {i}\n").as_bytes())
            .unwrap();
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let opts = LogOptions {
        tail_lines: Some(1),
        ..Default::default()
    };
    let mut stream = Box::pin(follow_log(path.clone(), opts, stop_rx));
    assert_eq!(next_text(&mut stream).await, "old 2\n");

    log.write(LogStream::Stdout, b"new 1\n").unwrap();
    assert_eq!(read_until(&mut stream, "new 1\n").await, "new 1\n");

    // Enough to rotate (twice) while the follower is between polls: nothing is lost.
    let burst: String = (0..20).map(|i| format!("burst {i:02}\n")).collect();
    for line in burst.lines() {
        log.write(LogStream::Stdout, format!("{line}\n").as_bytes())
            .unwrap();
    }
    assert!(rotated_path(&path).exists());
    let seen = read_until(&mut stream, "burst 19\n").await;
    assert_eq!(seen, burst);
    // Partial lines come through as they are written.
    log.write(LogStream::Stdout, b"half").unwrap();
    assert_eq!(next_text(&mut stream).await, "half");
    log.write(LogStream::Stdout, b" and half\n").unwrap();
    assert_eq!(next_text(&mut stream).await, " and half\n");

    stop_tx.send(true).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("ends on stop");
    assert!(end.is_none());
}

#[tokio::test]
async fn follow_with_timestamps_and_limit_ends_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let log = ContainerLog::open(path.clone(), DEFAULT_MAX_LOG_BYTES).unwrap();
    log.write(LogStream::Stdout, b"abc\n").unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let opts = LogOptions {
        timestamps: true,
        limit_bytes: Some(45),
        ..Default::default()
    };
    let mut stream = Box::pin(follow_log(path.clone(), opts, stop_rx));
    let first = next_text(&mut stream).await;
    assert!(first.ends_with("Z abc\n") && first.len() == 35, "{first:?}");
    log.write(LogStream::Stdout, b"defghijklmnop\n").unwrap();
    let second = next_text(&mut stream).await;
    assert_eq!(second.len(), 10, "cut at the limit: {second:?}");
    let end = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("ends at the limit");
    assert!(end.is_none());
}

#[tokio::test]
async fn dropping_the_stop_sender_ends_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    ContainerLog::open(path.clone(), DEFAULT_MAX_LOG_BYTES).unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stream = Box::pin(follow_log(path, LogOptions::default(), stop_rx));
    let next = tokio::spawn(async move { stream.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stop_tx);
    assert!(tokio::time::timeout(Duration::from_secs(2), next)
        .await
        .unwrap()
        .unwrap());
}
