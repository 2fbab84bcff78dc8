//! The serverless benchmark's client: one HTTP/1.1 GET on a new connection, timed from the
//! start of the connect to the last byte of the response (its length from `Content-Length`,
//! the chunked encoding's last chunk, or the server's close).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answered request.
pub struct Answer {
    pub status: u16,
    /// Connect start → complete response.
    pub elapsed: Duration,
    /// The body's first line (for a failure's message: the activator's 503 says why).
    pub first_line: String,
}

/// How the response's body ends.
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// The end of the head (after `\r\n\r\n`), if it has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Status code and framing from a response head.
fn parse_head(head: &str) -> Result<(u16, Framing)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut framing = Framing::Close;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            framing = Framing::Length(value.parse().context("a bad Content-Length")?);
        } else if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            framing = Framing::Chunked;
            break;
        }
    }
    Ok((status, framing))
}

/// Whether `body` (chunked) holds the last chunk and the end of the trailers.
fn chunked_complete(body: &[u8]) -> bool {
    let mut rest = body;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return false;
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers (none expected), then an empty line.
            return rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n");
        }
        if rest.len() < size + 2 {
            return false;
        }
        rest = &rest[size + 2..];
    }
}

/// The body's first line, de-chunked well enough for a message.
fn first_line(body: &[u8], chunked: bool) -> String {
    let text = String::from_utf8_lossy(body);
    let text = if chunked {
        // Skip the first chunk-size line.
        text.split_once("\r\n").map_or("", |(_, t)| t).to_string()
    } else {
        text.into_owned()
    };
    text.lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// `GET / HTTP/1.1` to `addr` on a new connection (`Connection: close`), at most `timeout`.
pub async fn get(addr: &str, timeout: Duration) -> Result<Answer> {
    let started = Instant::now();
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.context("connect")?;
        s.set_nodelay(true)?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: skiff-bench\r\nConnection: close\r\n\r\n")
            .await
            .context("sending the request")?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        let mut head: Option<(usize, u16, Framing)> = None;
        loop {
            if head.is_none() {
                if let Some(end) = head_end(&buf) {
                    let (status, framing) = parse_head(&String::from_utf8_lossy(&buf[..end]))?;
                    head = Some((end, status, framing));
                }
            }
            if let Some((end, status, framing)) = &head {
                let body = &buf[*end..];
                let complete = match framing {
                    Framing::Length(n) => body.len() >= *n,
                    Framing::Chunked => chunked_complete(body),
                    Framing::Close => false,
                };
                if complete {
                    let chunked = matches!(framing, Framing::Chunked);
                    return Ok::<_, anyhow::Error>((*status, first_line(body, chunked)));
                }
            }
            let n = s.read(&mut chunk).await.context("reading the response")?;
            if n == 0 {
                return match head {
                    Some((end, status, Framing::Close)) => {
                        Ok((status, first_line(&buf[end..], false)))
                    }
                    Some(_) => bail!("the connection closed before the whole body arrived"),
                    None if buf.is_empty() => bail!("the connection closed without an answer"),
                    None => bail!(
                        "the connection closed within the response head: {:?}",
                        String::from_utf8_lossy(&buf[..buf.len().min(100)])
                    ),
                };
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let (status, line) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no complete answer within {timeout:?}"))??;
    Ok(Answer {
        status,
        elapsed: started.elapsed(),
        first_line: line,
    })
}
