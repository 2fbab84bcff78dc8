//! Where a Wasm pod's outgoing HTTP requests leave from, and how their names resolve. A pod
//! with an address of its own sends from it (or, in a pod that also has Linux containers,
//! from inside the pod's sandbox namespace, so `localhost` is the pod's); cluster names
//! (`orders`, `orders.shop`, `orders.shop.svc.cluster.local`) resolve through the node's
//! cluster DNS zone with the pod's search list, everything else through the node's resolver.
//! `https` requests go out as wasmtime-wasi-http sends them by default (TLS to the name).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How long connecting may take when the guest sets no connect timeout. Cluster services
/// answer in milliseconds; a guest that needs longer sets its own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the cluster zone says about a name.
pub enum ClusterName {
    /// Its addresses (none: a cluster name that does not exist).
    Addrs(Vec<IpAddr>),
    /// An ExternalName Service: resolve this name instead.
    Alias(String),
}

/// Looks names up in the cluster DNS zone.
pub trait ClusterResolver: Send + Sync {
    /// `host` as a pod of `namespace` resolves it (search list, ndots:5); `None`: not a
    /// cluster name.
    fn resolve(&self, host: &str, namespace: &str) -> Option<ClusterName>;
}

/// A pod's outgoing side.
#[derive(Clone)]
pub struct Egress {
    /// The pod's address (a pure-Wasm pod): its connections leave from it.
    pub source: Option<IpAddr>,
    /// The pod's sandbox namespace (a pod that also has Linux containers).
    pub netns: Option<PathBuf>,
    pub namespace: String,
    pub resolver: Option<Arc<dyn ClusterResolver>>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("source", &self.source)
            .field("netns", &self.netns)
            .field("namespace", &self.namespace)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

/// The wasi:http hooks of an instance.
pub(crate) struct EgressHooks(pub Option<Arc<Egress>>);

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn std::future::Future<Output = SendResult> + Send> {
        _ = fut;
        let egress = self.0.clone();
        Box::new(async move {
            let plain = request.uri().scheme() != Some(&http::uri::Scheme::HTTPS);
            match egress {
                Some(e) if plain => send_plain(&e, request, options).await,
                _ => {
                    let (res, io) =
                        wasmtime_wasi_http::default_send_request(request, options).await?;
                    Ok((
                        res.map(BodyExt::boxed_unsync),
                        Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
                    ))
                }
            }
        })
    }
}

/// The addresses of `host` as the pod sees them: a cluster name answers from the node's zone
/// (with the pod's search list; an ExternalName Service leads to its target), anything else
/// comes from the node's resolver. Empty: a cluster name that does not exist.
pub(crate) async fn resolve_name(e: Option<&Egress>, host: &str) -> std::io::Result<Vec<IpAddr>> {
    let mut host = host.to_string();
    if let Some(e) = e {
        if let Some(r) = &e.resolver {
            match r.resolve(&host, &e.namespace) {
                Some(ClusterName::Addrs(ips)) => return Ok(ips),
                Some(ClusterName::Alias(target)) => host = target,
                None => {}
            }
        }
    }
    let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
    Ok(found.map(|a| a.ip().to_canonical()).collect())
}

/// Where `host` is: an IP literal, a cluster name, or what the node's resolver says.
async fn resolve(e: &Egress, host: &str, port: u16) -> Result<SocketAddr, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let nxdomain = || Error::DnsError {
        rcode: Some("NXDOMAIN".into()),
        info_code: None,
    };
    let found = tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, resolve_name(Some(e), host))
        .await
        .map_err(|_| Error::DnsTimeout)?
        .map_err(|_| nxdomain())?;
    let ip = found.first().ok_or_else(nxdomain)?;
    Ok(SocketAddr::new(*ip, port))
}

/// A connection from the pod: from inside its sandbox namespace, or from its address (to every
/// destination but loopback; the node masquerades what leaves the cluster network).
async fn connect(e: &Egress, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if let Some(netns) = &e.netns {
        let ns = netns.clone();
        let ipv6 = addr.is_ipv6();
        let std = tokio::task::spawn_blocking(move || crate::network::netns::tcp_socket(&ns, ipv6))
            .await
            .map_err(std::io::Error::other)??;
        tokio::net::TcpSocket::from_std_stream(std)
    } else {
        let s = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        match e.source {
            Some(src) if !addr.ip().is_loopback() && src.is_ipv4() == addr.is_ipv4() => {
                s.bind(SocketAddr::new(src, 0))?
            }
            _ => {}
        }
        s
    };
    socket.connect(addr).await
}

fn connect_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        _ => Error::Connect(e),
    }
}

async fn send_plain(
    e: &Egress,
    mut req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = req.uri().clone();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let port = uri.port_u16().unwrap_or(80);
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout);
    let addr = resolve(e, host, port).await?;
    let stream = tokio::time::timeout(connect_timeout, connect(e, addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(connect_error)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::from)?;
    // The connection is driven on its own task; it ends when the exchange is over.
    let driver = tokio::spawn(conn);
    // Origin form on the wire: the authority travels in the Host header.
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let sending = sender.send_request(req);
    let res = match first_byte_timeout {
        Some(t) => tokio::time::timeout(t, sending)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?,
        None => sending.await,
    }
    .map_err(Error::from)?;
    let io = async move {
        match driver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) if err.is_timeout() => Err(Error::HttpResponseTimeout),
            Ok(Err(err)) => Err(Error::from(err)),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    };
    Ok((
        res.map(|b| b.map_err(Error::from).boxed_unsync()),
        Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
    ))
}
