//! A `metav1.Status` body for the requests hyper refuses before the API sees them.
//!
//! hyper answers an HTTP/1 request it cannot parse — a malformed request or header line, a
//! NUL byte in a header, a URI over 64 KiB, a head larger than its buffer — on its own, with a
//! bare `400`, `414` or `431` and no body, then closes the connection; it has no hook to shape
//! that answer, and kubectl shows an empty body as an unexplained error. [`StatusAcceptor`]
//! wraps each accepted connection: a counter of the requests in flight on it (taken when the
//! service is called, released when the response body ends) tells when hyper, not the API, is
//! writing, and a bodiless `400`/`414`/`431` written then is replaced by the same status with
//! a Status body naming the problem. Requests the API answers carry their own Status; upgraded
//! connections (exec, attach, port-forward) and HTTP/2 are left alone.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum_server::accept::Accept;
use futures::future::{BoxFuture, FutureExt, MapOk, TryFutureExt};
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::status::ApiError;

/// What a connection's stream and service share.
#[derive(Default)]
struct ConnState {
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
}

/// Wraps another acceptor's connections (see the module docs).
#[derive(Clone)]
pub struct StatusAcceptor<A> {
    inner: A,
}

impl<A> StatusAcceptor<A> {
    pub fn new(inner: A) -> Self {
        StatusAcceptor { inner }
    }
}

type Wrap<St, Sv> = fn((St, Sv)) -> (StatusStream<St>, TrackedService<Sv>);

fn wrap<St, Sv>((io, service): (St, Sv)) -> (StatusStream<St>, TrackedService<Sv>) {
    let state = Arc::new(ConnState::default());
    (
        StatusStream {
            inner: io,
            state: state.clone(),
            pending: Vec::new(),
            replaced: false,
        },
        TrackedService {
            inner: service,
            state,
        },
    )
}

impl<A, I, S> Accept<I, S> for StatusAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Future<Output = io::Result<(A::Stream, A::Service)>>,
{
    type Stream = StatusStream<A::Stream>;
    type Service = TrackedService<A::Service>;
    type Future = MapOk<A::Future, Wrap<A::Stream, A::Service>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        self.inner
            .accept(stream, service)
            .map_ok(wrap as Wrap<A::Stream, A::Service>)
    }
}

/// The connection's service: counts the requests in flight.
#[derive(Clone)]
pub struct TrackedService<S> {
    inner: S,
    state: Arc<ConnState>,
}

/// One request in flight, released when dropped.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B, Req> tower_service::Service<Request<Req>> for TrackedService<S>
where
    S: tower_service::Service<Request<Req>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Req>) -> Self::Future {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.state.clone());
        let state = self.state.clone();
        self.inner
            .call(req)
            .map(move |result| {
                result.map(|resp| {
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        state.upgraded.store(true, Ordering::Release);
                    }
                    resp.map(|body| TrackedBody {
                        inner: body,
                        guard: Some(guard),
                    })
                })
            })
            .boxed()
    }
}

/// A response body that releases its request's [`InFlight`] when it ends.
pub struct TrackedBody<B> {
    inner: B,
    guard: Option<InFlight>,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's stream: replaces hyper's own bodiless error answers.
pub struct StatusStream<T> {
    inner: T,
    state: Arc<ConnState>,
    /// The replacement answer still to be written.
    pending: Vec<u8>,
    /// The answer was replaced: whatever hyper still writes is not sent.
    replaced: bool,
}

/// The status of a bodiless `400`, `414` or `431` response head that `buf` starts with and
/// holds whole: the answers hyper makes on its own.
fn hyper_error(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let code = match rest.get(..4)? {
        b"400 " => StatusCode::BAD_REQUEST,
        b"414 " => StatusCode::URI_TOO_LONG,
        b"431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let bodiless = head.contains("\r\ncontent-length: 0") && !head.contains("content-type");
    bodiless.then_some(code)
}

/// The answer hyper's refusal becomes: the same status, with a Status body saying why.
fn status_answer(code: StatusCode) -> Vec<u8> {
    let message = match code {
        StatusCode::URI_TOO_LONG => format!(
            "the request URI is longer than the {} bytes the HTTP layer reads: shorten the label \
             or field selector, or list and filter on the client",
            u16::MAX - 1
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
            "the request head is larger than the {} bytes the HTTP layer reads: send fewer or \
             shorter headers (the API's own limit is {} bytes of headers)",
            super::limits::HTTP_HEAD_BUFFER_BYTES,
            super::limits::DEFAULT_MAX_HEADER_BYTES
        ),
        _ => "the request could not be read as HTTP/1.1: the request line or a header line is \
              malformed (a header name must be a token followed by ':', and no name or value may \
              hold a NUL, CR or LF)"
            .to_string(),
    };
    let body = ApiError::new(code, "BadRequest", message).status_body();
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or(""),
        json.len()
    )
    .into_bytes();
    out.extend_from_slice(&json);
    out
}

impl<T: AsyncWrite + Unpin> StatusStream<T> {
    /// Writes what is left of the replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `buf`, about to be written, is hyper's own refusal; if so it is replaced.
    fn replace(&mut self, buf: &[u8]) -> bool {
        if self.replaced {
            return true;
        }
        let idle = self.state.in_flight.load(Ordering::Acquire) == 0
            && !self.state.upgraded.load(Ordering::Acquire);
        match hyper_error(buf).filter(|_| idle) {
            Some(code) => {
                tracing::debug!(
                    code = code.as_u16(),
                    "a request hyper refused answered with a Status"
                );
                self.pending = status_answer(code);
                self.replaced = true;
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StatusStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StatusStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if self.replace(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if self.replace(first) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_bodiless_refusals_are_hypers() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_error(bare), Some(StatusCode::BAD_REQUEST));
        let long = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error(long), Some(StatusCode::URI_TOO_LONG));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 90\r\n\r\n{";
        assert_eq!(hyper_error(ours), None);
        assert_eq!(
            hyper_error(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(
            hyper_error(b"HTTP/1.1 400 Bad Request\r\ncontent-len"),
            None
        );
        assert_eq!(hyper_error(b"{\"kind\":\"Status\"}"), None);
    }

    async fn written(state: Arc<ConnState>, parts: &[&[u8]]) -> String {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut stream = StatusStream {
            inner: server,
            state,
            pending: Vec::new(),
            replaced: false,
        };
        for p in parts {
            stream.write_all(p).await.unwrap();
        }
        stream.shutdown().await.unwrap();
        drop(stream);
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_refusal_while_idle_gets_a_status_body() {
        let bare: &[u8] =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let out = written(Arc::new(ConnState::default()), &[bare]).await;
        assert!(
            out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let status: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 431);
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
    }

    #[tokio::test]
    async fn bytes_written_for_a_request_in_flight_or_after_an_upgrade_pass_untouched() {
        let bare: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let busy = Arc::new(ConnState::default());
        busy.in_flight.store(1, Ordering::Release);
        assert_eq!(written(busy, &[bare]).await.as_bytes(), bare);
        let upgraded = Arc::new(ConnState::default());
        upgraded.upgraded.store(true, Ordering::Release);
        assert_eq!(written(upgraded, &[bare]).await.as_bytes(), bare);
        let ordinary: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(
            written(Arc::new(ConnState::default()), &[ordinary])
                .await
                .as_bytes(),
            ordinary
        );
    }
}
