//! One port-forward SPDY session, the server side of what kubectl opens: for every local
//! connection kubectl makes a pair of streams sharing a `requestid` — an error stream
//! (kubectl only reads it: a message there is printed and ends the session) and a data stream
//! — both naming the pod's `port`. Each accepted stream gets a SYN_REPLY; once a pair is whole
//! its data stream is connected to the pod's listener for that port ([`super::forward`]).
//! Incomplete pairs expire; PINGs are answered; the session ends when kubectl's connection
//! closes, idles past [`IDLE_TIMEOUT`], or breaks the protocol, and takes every forwarded
//! connection with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::forward::{self, Pair};
use super::spdy::{self, header, status, Decoder, Encoder, Frame, FLAG_FIN};
use super::Target;

/// How long kubectl has to open the second stream of a pair (the kubelet's default).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// A session with no frame for this long is closed (the kubelet's streaming idle timeout;
/// kubectl pings every 5–10 s, so only a vanished peer gets here).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
/// How long one write to kubectl, or one hand-over of its data to a pod connection, may stall.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many forwarded connections one session may have open or opening.
const MAX_PAIRS: usize = 1024;
/// Frames queued for the writer.
const OUT_QUEUE: usize = 64;
/// Chunks of kubectl's data queued for one pod connection.
const INBOUND_QUEUE: usize = 16;
/// How often incomplete pairs and idleness are checked.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Data,
}

/// A request's streams as they arrive.
struct Pending {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
    /// kubectl's data for the pod connection (dropped at its FIN).
    data_tx: Option<mpsc::Sender<Bytes>>,
    data_rx: Option<mpsc::Receiver<Bytes>>,
    /// Tells a running forward that kubectl reset a stream.
    reset: Option<oneshot::Sender<()>>,
    since: Instant,
    running: bool,
}

struct Session {
    target: Arc<Target>,
    out: mpsc::Sender<Frame>,
    pairs: HashMap<String, Pending>,
    streams: HashMap<u32, (String, Kind)>,
    tasks: JoinSet<String>,
    last_stream_id: u32,
    gone_away: bool,
}

/// Serves one upgraded connection until it ends.
pub async fn run<IO>(io: IO, target: Arc<Target>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel(OUT_QUEUE);
    let mut writer = tokio::spawn(write_loop(wr, out_rx).in_current_span());
    let mut s = Session {
        target,
        out,
        pairs: HashMap::new(),
        streams: HashMap::new(),
        tasks: JoinSet::new(),
        last_stream_id: 0,
        gone_away: false,
    };
    let mut dec = Decoder::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut tick = tokio::time::interval(TICK);
    let mut last_frame = Instant::now();
    let end = 'session: loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    last_frame = Instant::now();
                    if let Err(e) = s.on_frame(frame).await {
                        break 'session e;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = s
                        .out
                        .send(Frame::GoAway {
                            last_good_stream_id: s.last_stream_id,
                            status: 1,
                        })
                        .await;
                    break 'session format!("protocol error: {e}");
                }
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break "kubectl closed the connection".to_string(),
                Ok(_) => {}
                Err(e) => break format!("read failed: {e}"),
            },
            Some(done) = s.tasks.join_next() => {
                if let Ok(request) = done {
                    s.remove_pair(&request);
                }
            }
            _ = tick.tick() => {
                if last_frame.elapsed() > IDLE_TIMEOUT {
                    break "idle for too long".to_string();
                }
                s.expire().await;
            }
            _ = &mut writer => break "the writer stopped".to_string(),
        }
    };
    tracing::debug!(reason = %end, pairs = s.pairs.len(), "port-forward session ends");
    // Every forwarded connection goes with the session.
    s.tasks.shutdown().await;
    drop(s);
    // The writer ends once the queue drains (its senders are gone); bounded by its timeout.
    if tokio::time::timeout(STALL_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Encodes queued frames and writes them to kubectl, batching what is ready.
async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Frame>) {
    let mut enc = Encoder::default();
    let mut buf = BytesMut::new();
    while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        while let Some(f) = next {
            if let Err(e) = enc.encode(&f, &mut buf) {
                tracing::debug!(error = %e, "cannot encode a frame");
                return;
            }
            next = if buf.len() < 64 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let write = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        };
        match tokio::time::timeout(STALL_TIMEOUT, write).await {
            Ok(Ok(())) => buf.clear(),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "writing to kubectl failed");
                return;
            }
            Err(_) => {
                tracing::debug!("kubectl stopped reading; closing the session");
                return;
            }
        }
    }
    let _ = wr.shutdown().await;
}

impl Session {
    /// Handles one frame from kubectl; an error ends the session.
    async fn on_frame(&mut self, frame: Frame) -> Result<(), String> {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => self.on_syn_stream(stream_id, flags, &headers).await,
            Frame::Data {
                stream_id,
                flags,
                data,
            } => self.on_data(stream_id, flags, data).await,
            Frame::RstStream { stream_id, .. } => {
                if let Some((request, _)) = self.streams.get(&stream_id).cloned() {
                    tracing::debug!(stream_id, %request, "kubectl reset the stream");
                    self.reset_pair(&request);
                }
                Ok(())
            }
            Frame::Ping { id } if !id.is_multiple_of(2) => self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => {
                // kubectl is closing: no new streams; the connection's end follows.
                self.gone_away = true;
                Ok(())
            }
            // Our own pings (we send none), settings, flow control (spdystream sends no
            // WINDOW_UPDATE and expects none), headers, unknown frames.
            _ => Ok(()),
        }
    }

    async fn send(&self, frame: Frame) -> Result<(), String> {
        self.out
            .send(frame)
            .await
            .map_err(|_| "the writer stopped".to_string())
    }

    async fn refuse(&self, stream_id: u32, status: u32, why: &str) -> Result<(), String> {
        tracing::debug!(stream_id, why, "stream refused");
        self.send(Frame::RstStream { stream_id, status }).await
    }

    async fn on_syn_stream(
        &mut self,
        stream_id: u32,
        flags: u8,
        headers: &spdy::Headers,
    ) -> Result<(), String> {
        // Client streams are odd and increasing (SPDY/3.1 section 2.3.2).
        if stream_id.is_multiple_of(2) || stream_id <= self.last_stream_id {
            return self
                .refuse(stream_id, status::PROTOCOL_ERROR, "bad stream id")
                .await;
        }
        self.last_stream_id = stream_id;
        if self.gone_away {
            return self
                .refuse(stream_id, status::REFUSED_STREAM, "session closing")
                .await;
        }
        let port = match header(headers, "port").map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => p,
            _ => {
                return self
                    .refuse(stream_id, status::PROTOCOL_ERROR, "missing or bad port")
                    .await
            }
        };
        let kind = match header(headers, "streamtype") {
            Some("error") => Kind::Error,
            Some("data") => Kind::Data,
            _ => {
                return self
                    .refuse(stream_id, status::PROTOCOL_ERROR, "bad streamType")
                    .await
            }
        };
        // Clients older than request ids: the kubelet's guess from consecutive stream ids.
        let request = match header(headers, "requestid") {
            Some(id) => id.to_string(),
            None if kind == Kind::Error => stream_id.to_string(),
            None => stream_id.saturating_sub(2).to_string(),
        };
        if !self.pairs.contains_key(&request) && self.pairs.len() >= MAX_PAIRS {
            return self
                .refuse(stream_id, status::REFUSED_STREAM, "too many connections")
                .await;
        }
        let pending = self
            .pairs
            .entry(request.clone())
            .or_insert_with(|| Pending {
                port,
                error: None,
                data: None,
                data_tx: None,
                data_rx: None,
                reset: None,
                since: Instant::now(),
                running: false,
            });
        let slot = match kind {
            Kind::Error => &mut pending.error,
            Kind::Data => &mut pending.data,
        };
        if slot.is_some() || pending.port != port {
            return self
                .refuse(stream_id, status::STREAM_IN_USE, "stream already assigned")
                .await;
        }
        *slot = Some(stream_id);
        if kind == Kind::Data {
            let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
            // A data stream opened with FIN carries nothing to the pod.
            pending.data_tx = (flags & FLAG_FIN == 0).then_some(tx);
            pending.data_rx = Some(rx);
        }
        self.streams.insert(stream_id, (request.clone(), kind));
        tracing::debug!(stream_id, port, %request, ?kind, "stream opened");
        self.send(Frame::SynReply {
            stream_id,
            flags: 0,
            headers: Vec::new(),
        })
        .await?;
        self.start_if_whole(&request);
        Ok(())
    }

    /// Starts forwarding once a request has both its streams.
    fn start_if_whole(&mut self, request: &str) {
        let Some(p) = self.pairs.get_mut(request) else {
            return;
        };
        let (Some(error), Some(data), Some(data_rx)) = (p.error, p.data, p.data_rx.take()) else {
            return;
        };
        let (reset_tx, reset_rx) = oneshot::channel();
        p.reset = Some(reset_tx);
        p.running = true;
        let pair = Pair {
            request: request.to_string(),
            port: p.port,
            error_stream: error,
            data_stream: data,
        };
        let span = tracing::debug_span!("forward", request = %request, port = p.port);
        let (target, out) = (self.target.clone(), self.out.clone());
        self.tasks
            .spawn(forward::run(pair, target, data_rx, reset_rx, out).instrument(span));
    }

    async fn on_data(&mut self, stream_id: u32, flags: u8, data: Bytes) -> Result<(), String> {
        let Some((request, kind)) = self.streams.get(&stream_id).cloned() else {
            // Late data for a finished pair.
            return Ok(());
        };
        if kind == Kind::Error {
            // kubectl only closes its side of the error stream.
            return Ok(());
        }
        let Some(p) = self.pairs.get_mut(&request) else {
            return Ok(());
        };
        if !data.is_empty() {
            if let Some(tx) = p.data_tx.clone() {
                match tokio::time::timeout(STALL_TIMEOUT, tx.send(data)).await {
                    Ok(_) => {}
                    Err(_) => {
                        tracing::debug!(%request, "the pod connection stopped taking data");
                        self.reset_pair(&request);
                        return self.refuse(stream_id, status::CANCEL, "stalled").await;
                    }
                }
            }
        }
        if flags & FLAG_FIN != 0 {
            if let Some(p) = self.pairs.get_mut(&request) {
                p.data_tx = None;
            }
        }
        Ok(())
    }

    /// kubectl reset one of a request's streams: stop its forward, or forget it if not begun.
    fn reset_pair(&mut self, request: &str) {
        let Some(p) = self.pairs.get_mut(request) else {
            return;
        };
        p.data_tx = None;
        if let Some(reset) = p.reset.take() {
            let _ = reset.send(());
        }
        if !p.running {
            self.remove_pair(request);
        }
    }

    fn remove_pair(&mut self, request: &str) {
        if let Some(p) = self.pairs.remove(request) {
            for id in [p.error, p.data].into_iter().flatten() {
                self.streams.remove(&id);
            }
        }
    }

    /// Requests whose second stream never came: say so on the error stream, reset the other.
    async fn expire(&mut self) {
        let stale: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, p)| !p.running && p.since.elapsed() > STREAM_CREATION_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for request in stale {
            let Some(p) = self.pairs.get(&request) else {
                continue;
            };
            let (error, data) = (p.error, p.data);
            tracing::debug!(%request, "timed out waiting for the request's streams");
            if let Some(id) = error {
                let msg = format!("timed out waiting for the streams of request {request}");
                let _ = self.out.send(forward::message(id, msg)).await;
                let _ = self.out.send(forward::fin(id)).await;
            }
            if let Some(id) = data {
                let _ = self
                    .out
                    .send(Frame::RstStream {
                        stream_id: id,
                        status: status::CANCEL,
                    })
                    .await;
            }
            self.remove_pair(&request);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
