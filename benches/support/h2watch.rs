//! Watches as client-go (kubectl, informers) opens them: streams multiplexed on a few HTTP/2
//! connections, up to the server's `SETTINGS_MAX_CONCURRENT_STREAMS` each. The kube crate
//! speaks HTTP/1.1 only, so this is written by hand over tokio-rustls, with just enough HTTP/2
//! for GET streams that stay open: the preface and settings, HEADERS of literal HPACK fields,
//! receive windows opened wide and given back as data arrives, SETTINGS and PING acknowledged
//! (the server pings idle connections and closes those that do not answer). Each stream's body
//! is counted by [`Lines`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::watches::{Lines, WatchCounts, WatchSet};

type Tls = TlsStream<TcpStream>;
type Writer = Arc<tokio::sync::Mutex<WriteHalf<Tls>>>;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
/// The largest flow-control window HTTP/2 allows, and the protocol's initial one.
const MAX_WINDOW: u32 = (1 << 31) - 1;
const INITIAL_WINDOW: u32 = 65_535;
/// Received bytes are given back to the server's send window once they reach this, so a
/// stream or the connection never runs dry.
const WINDOW_REFILL: u64 = 1 << 30;
/// A read buffer big enough for a few frames of watch events.
const READ_BUFFER: usize = 64 * 1024;

/// The API server's address, the admin token and a TLS connector trusting the cluster CA that
/// offers only `h2`: all from the server's kubeconfig.
pub struct Endpoint {
    addr: SocketAddr,
    token: String,
    tls: TlsConnector,
}

impl Endpoint {
    pub fn from_kubeconfig(kubeconfig: &Path) -> Result<Endpoint> {
        let kc: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(kubeconfig)
                .with_context(|| format!("reading {}", kubeconfig.display()))?,
        )?;
        let cluster = &kc["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().context("kubeconfig server")?;
        let addr: SocketAddr = server
            .trim_start_matches("https://")
            .parse()
            .with_context(|| format!("kubeconfig server {server}"))?;
        let ca = base64::engine::general_purpose::STANDARD.decode(
            cluster["certificate-authority-data"]
                .as_str()
                .context("kubeconfig CA")?,
        )?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let token = kc["users"][0]["user"]["token"]
            .as_str()
            .context("kubeconfig token")?
            .to_string();
        Ok(Endpoint {
            addr,
            token,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect(&self) -> Result<Tls> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("the server did not negotiate HTTP/2 (ALPN h2)");
        }
        Ok(tls)
    }
}

/// One frame: length, type, flags, stream and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(
        WINDOW_UPDATE,
        0,
        stream,
        &(increment & MAX_WINDOW).to_be_bytes(),
    )
}

/// An HPACK integer with an `prefix`-bit prefix after the bits of `first` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u8, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// A literal header field without indexing, with a literal name, neither Huffman-coded.
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The `:status` a response's header block starts with, when it is one of the static table's
/// (the encoder indexes those); else an error showing the block.
fn status(block: &[u8]) -> Result<u16> {
    let mut i = 0;
    // Dynamic table size updates (001xxxxx, an integer with a 5-bit prefix) may come first.
    while i < block.len() && block[i] & 0xe0 == 0x20 {
        let multi = block[i] & 0x1f == 0x1f;
        i += 1;
        while multi && i < block.len() && block[i] & 0x80 != 0 {
            i += 1;
        }
        i += usize::from(multi);
    }
    // The static table's :status entries, indexed (1xxxxxxx).
    let statuses = [
        (0x88, 200),
        (0x89, 204),
        (0x8a, 206),
        (0x8b, 304),
        (0x8c, 400),
        (0x8d, 404),
        (0x8e, 500),
    ];
    match statuses.iter().find(|(b, _)| block.get(i) == Some(b)) {
        Some(&(_, s)) => Ok(s),
        None => bail!("a response whose :status is not indexed: {block:02x?}"),
    }
}

/// The header block fragment of a HEADERS frame (padding and priority removed).
fn header_block(flags: u8, payload: &[u8]) -> &[u8] {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 && !p.is_empty() {
        pad = usize::from(p[0]);
        p = &p[1..];
    }
    if flags & PRIORITY != 0 {
        p = p.get(5..).unwrap_or_default();
    }
    &p[..p.len().saturating_sub(pad)]
}

/// The data of a DATA frame (padding removed).
fn data(flags: u8, payload: &[u8]) -> &[u8] {
    if flags & PADDED != 0 && !payload.is_empty() {
        let pad = usize::from(payload[0]);
        let p = &payload[1..];
        return &p[..p.len().saturating_sub(pad)];
    }
    payload
}

async fn read_frame(
    rd: &mut BufReader<ReadHalf<Tls>>,
    payload: &mut Vec<u8>,
) -> Result<(u8, u8, u32)> {
    let mut head = [0u8; 9];
    rd.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & MAX_WINDOW;
    payload.resize(len, 0);
    rd.read_exact(payload).await?;
    Ok((head[3], head[4], stream))
}

async fn send(wr: &Writer, bytes: &[u8]) -> Result<()> {
    let mut w = wr.lock().await;
    w.write_all(bytes).await?;
    w.flush().await?;
    Ok(())
}

#[derive(Default)]
struct Stream {
    lines: Lines,
    answered: bool,
    unacked: u64,
}

/// Reads one connection's frames until it ends, counting each stream's lines.
async fn read_loop(
    mut rd: BufReader<ReadHalf<Tls>>,
    wr: Writer,
    counts: Arc<WatchCounts>,
) -> Result<()> {
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut unacked: u64 = 0;
    let mut payload = Vec::new();
    loop {
        let (kind, flags, id) = read_frame(&mut rd, &mut payload).await?;
        let mut ended = false;
        match kind {
            DATA => {
                let s = streams.entry(id).or_default();
                s.lines.feed(data(flags, &payload), &counts);
                s.unacked += payload.len() as u64;
                unacked += payload.len() as u64;
                if s.unacked >= WINDOW_REFILL {
                    send(&wr, &window_update(id, s.unacked as u32)).await?;
                    s.unacked = 0;
                }
                if unacked >= WINDOW_REFILL {
                    send(&wr, &window_update(0, unacked as u32)).await?;
                    unacked = 0;
                }
                ended = flags & END_STREAM != 0;
            }
            HEADERS => {
                let s = streams.entry(id).or_default();
                if !s.answered {
                    s.answered = true;
                    match status(header_block(flags, &payload)) {
                        Ok(200) => {
                            counts.opened.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(other) => counts.fail(format!("a watch stream answered {other}")),
                        Err(e) => counts.fail(e.to_string()),
                    }
                }
                ended = flags & END_STREAM != 0;
            }
            RST_STREAM => ended = true,
            SETTINGS if flags & ACK == 0 => send(&wr, &frame(SETTINGS, ACK, 0, &[])).await?,
            PING if flags & ACK == 0 => send(&wr, &frame(PING, ACK, 0, &payload)).await?,
            GOAWAY => bail!("the server sent GOAWAY"),
            _ => {}
        }
        if ended && streams.remove(&id).is_some() {
            counts.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One connection's preface exchange: our settings (no push, the largest windows), then the
/// server's settings, acknowledged. Returns the server's stream limit, if it set one.
async fn handshake(rd: &mut BufReader<ReadHalf<Tls>>, wr: &Writer) -> Result<Option<u32>> {
    let mut settings = Vec::new();
    for (id, value) in [
        (SETTINGS_ENABLE_PUSH, 0),
        (SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW),
    ] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &settings));
    out.extend(window_update(0, MAX_WINDOW - INITIAL_WINDOW));
    send(wr, &out).await?;
    let mut payload = Vec::new();
    let (kind, flags, _) = read_frame(rd, &mut payload).await?;
    if kind != SETTINGS || flags & ACK != 0 {
        bail!("the server's first frame is not its SETTINGS (type {kind})");
    }
    let max = payload
        .chunks_exact(6)
        .find(|s| u16::from_be_bytes([s[0], s[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    send(wr, &frame(SETTINGS, ACK, 0, &[])).await?;
    Ok(max)
}

/// Opens `n` watches of `path` (a watch URL with its query) as HTTP/2 streams, up to
/// `per_connection` on each connection (fewer if the server allows fewer), and waits (at most
/// `wait`) until all are answered.
pub async fn open_h2(
    endpoint: &Endpoint,
    path: &str,
    n: usize,
    per_connection: usize,
    wait: Duration,
) -> Result<WatchSet> {
    let counts = Arc::new(WatchCounts::default());
    let mut set = WatchSet {
        counts: counts.clone(),
        tasks: Vec::new(),
        connections: 0,
    };
    let authority = endpoint.addr.to_string();
    let bearer = format!("Bearer {}", endpoint.token);
    let mut left = n;
    while left > 0 {
        let tls = tokio::time::timeout(wait, endpoint.connect())
            .await
            .context("connecting for HTTP/2 watches")??;
        let (rd, wr) = tokio::io::split(tls);
        let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
        let wr: Writer = Arc::new(tokio::sync::Mutex::new(wr));
        let limit = tokio::time::timeout(wait, handshake(&mut rd, &wr))
            .await
            .context("HTTP/2 handshake")??;
        let here = left
            .min(per_connection)
            .min(limit.map_or(usize::MAX, |l| l as usize));
        if here == 0 {
            bail!("the server allows no HTTP/2 streams");
        }
        let mut out = Vec::new();
        for i in 0..here {
            let mut block = Vec::new();
            for (name, value) in [
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", authority.as_str()),
                (":path", path),
                ("accept", "application/json"),
                ("authorization", bearer.as_str()),
                ("user-agent", "skiff-bench-capacity"),
            ] {
                hpack_literal(&mut block, name, value);
            }
            let id = 1 + 2 * i as u32;
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        }
        send(&wr, &out).await?;
        let task_counts = counts.clone();
        set.tasks.push(tokio::spawn(async move {
            if let Err(e) = read_loop(rd, wr, task_counts.clone()).await {
                task_counts.fail(format!("an HTTP/2 watch connection broke: {e:#}"));
            }
        }));
        set.connections += 1;
        left -= here;
    }
    set.wait_open(n as u64, wait).await?;
    Ok(set)
}
