//! `wasi:http/proxy` components: an HTTP/1.1 server (hyper, keep-alive) per listener, a fresh
//! store and instance per request from the component's pre-instantiation, as `wasmtime serve`
//! does. A request whose guest traps, runs out of memory or past its deadline gets a 500 (504
//! for the deadline) and is reported on [`HttpServer::failures`]; other requests carry on.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;
use wasmtime::component::Resource;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::WasiHttpView;

use super::cache::{LoadedComponent, WorldPre};
use super::engine::{EngineParts, EpochTicker};
use super::host::{until, GuardSettings, Host};
use super::{ComponentWorld, ExitReason, InstanceConfig, RequestFailure, WasmError};

/// Failed requests kept for the agent to read; more are logged and dropped, so a component
/// failing every request cannot make the server buffer without bound.
pub const DEFAULT_FAILURE_QUEUE: usize = 64;

/// How long a client may take to send a request's headers before its connection is closed,
/// so idle or slow (slowloris) clients cannot hold connections forever.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again, so the
/// loop does not spin while the condition lasts.
const DEFAULT_ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A component serving HTTP on one or more listeners.
pub struct HttpServer {
    addrs: Vec<SocketAddr>,
    failures: mpsc::Receiver<RequestFailure>,
    /// True: stop accepting, finish in-flight requests.
    draining: watch::Sender<bool>,
    /// True: drop in-flight requests and connections.
    aborting: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// The listeners' addresses, in the order they were given.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Requests that failed; the channel closes once the server has stopped.
    pub fn failures(&mut self) -> &mut mpsc::Receiver<RequestFailure> {
        &mut self.failures
    }

    /// Stops accepting at once (the listeners are closed), lets in-flight requests finish for up
    /// to `grace`, then drops what is left. Returns once every connection has ended.
    pub async fn shutdown(mut self, grace: Duration) {
        self.draining.send_replace(true);
        let mut accept_loops = futures::future::join_all(std::mem::take(&mut self.accept_tasks));
        if tokio::time::timeout(grace, &mut accept_loops)
            .await
            .is_err()
        {
            tracing::info!(
                ?grace,
                "HTTP server grace period over; dropping in-flight requests"
            );
            self.aborting.send_replace(true);
            accept_loops.await;
        }
        // Guests still running for clients that went away end now too.
        self.aborting.send_replace(true);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.draining.send_replace(true);
        self.aborting.send_replace(true);
    }
}

/// What every connection and request of one server shares.
struct Service {
    pre: ProxyPre<Host>,
    engine: wasmtime::Engine,
    guard: GuardSettings,
    cfg: InstanceConfig,
    failures: mpsc::Sender<RequestFailure>,
    aborting: watch::Receiver<bool>,
    _ticker: Arc<EpochTicker>,
    /// The server's first request is still to come (its instantiation is a cold-start stage).
    first: std::sync::atomic::AtomicBool,
}

pub(crate) fn serve(
    parts: &EngineParts,
    comp: &LoadedComponent,
    cfg: InstanceConfig,
    listeners: Vec<StdTcpListener>,
) -> Result<HttpServer, WasmError> {
    let WorldPre::Http(pre) = &comp.pre else {
        return Err(WasmError::WrongWorld {
            digest: comp.digest.clone(),
            expected: ComponentWorld::HttpProxy,
            actual: comp.world,
        });
    };
    // Fail now, not on every request, if the instance cannot be set up (e.g. a missing preopen).
    Host::new(parts.guard, &cfg, Arc::new(AtomicBool::new(false)), None)?;
    let mut bound = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let addr = listener.local_addr().map_err(WasmError::Listener)?;
        listener
            .set_nonblocking(true)
            .map_err(WasmError::Listener)?;
        bound.push((
            addr,
            TcpListener::from_std(listener).map_err(WasmError::Listener)?,
        ));
    }
    let (failures_tx, failures) = mpsc::channel(DEFAULT_FAILURE_QUEUE);
    let (draining, draining_rx) = watch::channel(false);
    let (aborting, aborting_rx) = watch::channel(false);
    let service = Arc::new(Service {
        pre: pre.clone(),
        engine: parts.engine.clone(),
        guard: parts.guard,
        cfg,
        failures: failures_tx,
        aborting: aborting_rx.clone(),
        _ticker: parts.ticker.clone(),
        first: std::sync::atomic::AtomicBool::new(true),
    });
    let addrs = bound.iter().map(|(addr, _)| *addr).collect();
    let accept_tasks = bound
        .into_iter()
        .map(|(addr, listener)| {
            let span = tracing::info_span!("http_server", digest = %comp.digest, %addr);
            let accept = accept_loop(
                listener,
                service.clone(),
                draining_rx.clone(),
                aborting_rx.clone(),
            );
            tokio::spawn(accept.instrument(span))
        })
        .collect();
    tracing::info!(digest = %comp.digest, ?addrs, "serving HTTP");
    Ok(HttpServer {
        addrs,
        failures,
        draining,
        aborting,
        accept_tasks,
    })
}

async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    mut draining: watch::Receiver<bool>,
    aborting: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_draining = draining.clone();
    loop {
        let accepted = tokio::select! {
            _ = draining.wait_for(|d| *d) => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Responses go out as soon as they are written (no Nagle delay); a failure
                // here only costs latency.
                let _ = tcp.set_nodelay(true);
                let span = tracing::debug_span!("connection", %peer);
                let conn = serve_connection(
                    tcp,
                    service.clone(),
                    connection_draining.clone(),
                    aborting.clone(),
                );
                connections.spawn(conn.instrument(span));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::select! {
                    _ = draining.wait_for(|d| *d) => break,
                    _ = tokio::time::sleep(DEFAULT_ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
    drop(listener); // the port is free from here on
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    tcp: TcpStream,
    service: Arc<Service>,
    mut draining: watch::Receiver<bool>,
    mut aborting: watch::Receiver<bool>,
) {
    let handler = service_fn(move |req| {
        let service = service.clone();
        let span =
            tracing::info_span!("http_request", method = %req.method(), path = %req.uri().path());
        async move { Ok::<_, Infallible>(handle_request(service, req).await) }.instrument(span)
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(DEFAULT_HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tcp), handler);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = draining.wait_for(|d| *d) => {}
        _ = aborting.wait_for(|a| *a) => return,
    }
    // Finish the request in flight, if any, then close (idle connections close at once).
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = aborting.wait_for(|a| *a) => {}
    }
}

async fn handle_request(
    service: Arc<Service>,
    req: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let path = req.uri().path().to_string();
    let _in_flight = service.cfg.usage.request();
    let deadline = service.cfg.deadline.map(|d| Instant::now() + d);
    let host = match Host::new(
        service.guard,
        &service.cfg,
        Arc::new(AtomicBool::new(false)),
        deadline,
    ) {
        Ok(host) => host,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up an instance for the request");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot set up the component\n",
            );
        }
    };
    let mut store = host.into_store(&service.engine);
    let (response_tx, response_rx) = oneshot::channel();
    let resources = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|req| {
            let out = store.data_mut().http().new_response_outparam(response_tx)?;
            Ok((req, out))
        });
    let (req, out) = match resources {
        Ok(resources) => resources,
        Err(e) => {
            tracing::info!(error = %format!("{e:#}"), "bad request");
            return error_response(StatusCode::BAD_REQUEST, "bad request\n");
        }
    };
    // The guest runs in its own task: after setting the response it may still be streaming the
    // body, which hyper sends from this connection's task.
    let usage = service.cfg.usage.clone();
    let guest = tokio::spawn(
        super::usage::Timed::new(run_guest(service, store, req, out, deadline, path), usage)
            .in_current_span(),
    );
    match response_rx.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => {
            tracing::warn!(error = ?code, "the component answered with an error");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the component failed to answer\n",
            )
        }
        // The guest ended (or was stopped) without setting a response.
        Err(_) => match guest.await {
            Ok(Some(ExitReason::DeadlineExceeded)) => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "the component ran past its deadline\n",
            ),
            Ok(Some(ExitReason::Killed)) => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down\n",
            ),
            _ => error_response(StatusCode::INTERNAL_SERVER_ERROR, "the component failed\n"),
        },
    }
}

/// Runs the guest's `handle` to its end; returns (and reports) why it failed, if it did.
async fn run_guest(
    service: Arc<Service>,
    mut store: Store<Host>,
    req: Resource<HostIncomingRequest>,
    out: Resource<HostResponseOutparam>,
    deadline: Option<Instant>,
    path: String,
) -> Option<ExitReason> {
    let mut aborting = service.aborting.clone();
    let outcome = tokio::select! {
        result = call_handle(&service.pre, &mut store, req, out, &service.first) => Some(result),
        // Server shutdown: not the component's failure, so not reported.
        _ = aborting.wait_for(|a| *a) => return Some(ExitReason::Killed),
        // Waiting in the host past the deadline (a spinning guest is stopped by its epoch guard).
        _ = until(deadline) => None,
    };
    let reason = match outcome {
        Some(Ok(())) => return None,
        Some(Err(e)) => {
            let reason = store.data().classify(&e);
            if matches!(reason, ExitReason::Trapped(_)) {
                tracing::warn!(error = %format!("{e:?}"), "request trapped");
            }
            reason
        }
        None => ExitReason::DeadlineExceeded,
    };
    drop(store);
    tracing::warn!(?reason, "request failed");
    let failure = RequestFailure {
        path,
        reason: reason.clone(),
    };
    if service.failures.try_send(failure).is_err() {
        tracing::debug!("failure queue full or closed; not reported");
    }
    Some(reason)
}

async fn call_handle(
    pre: &ProxyPre<Host>,
    store: &mut Store<Host>,
    req: Resource<HostIncomingRequest>,
    out: Resource<HostResponseOutparam>,
    first: &std::sync::atomic::AtomicBool,
) -> wasmtime::Result<()> {
    let started = Instant::now();
    let proxy = pre.instantiate_async(&mut *store).await?;
    // A plain read first: after the first request this stays a shared, unwritten cache line.
    if first.load(std::sync::atomic::Ordering::Relaxed)
        && first.swap(false, std::sync::atomic::Ordering::Relaxed)
    {
        crate::metrics::observe(crate::metrics::Stage::Instantiate, started.elapsed());
    }
    proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut *store, req, out)
        .await
}

fn error_response(status: StatusCode, message: &'static str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(message.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}
