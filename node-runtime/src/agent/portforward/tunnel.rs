//! kubectl's SPDY-over-websocket tunnel (`SPDY/3.1+portforward.k8s.io`, client-go's
//! `tunneling_connection.go`): the SPDY byte stream rides in binary websocket messages, with
//! no meaning to message boundaries. The websocket is turned back into a byte stream (an
//! in-memory duplex) and the same SPDY session runs on it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{session, Target};

/// Bytes buffered between the websocket and the session in each direction.
const PIPE: usize = 64 * 1024;
/// How long the other pump may take to finish once one side has ended.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves one upgraded websocket connection until it ends.
pub async fn run<IO>(io: IO, target: Arc<Target>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (spdy_side, pipe) = tokio::io::duplex(PIPE);
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(pipe);
    // kubectl → session.
    let inbound = async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(data)) => {
                    if pipe_wr.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) => break,
                // Pings are answered by the websocket layer; text is not part of the tunnel.
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    break;
                }
            }
        }
        let _ = pipe_wr.shutdown().await;
    };
    // session → kubectl.
    let outbound = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match pipe_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    match tokio::time::timeout(session::STALL_TIMEOUT, sink.send(msg)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
            }
        }
        let _ = tokio::time::timeout(DRAIN, sink.close()).await;
    };
    // The session's writer needs the outbound pump running to drain.
    let spdy = async {
        tokio::join!(session::run(spdy_side, target), outbound);
    };
    tokio::pin!(spdy, inbound);
    tokio::select! {
        _ = &mut spdy => {
            // The session is over; give kubectl's close a moment to arrive.
            let _ = tokio::time::timeout(DRAIN, &mut inbound).await;
        }
        _ = &mut inbound => {
            // kubectl is gone: the session reads the end of the stream and winds down.
            let _ = tokio::time::timeout(DRAIN, &mut spdy).await;
        }
    }
}
