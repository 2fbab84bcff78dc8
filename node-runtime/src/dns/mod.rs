//! Cluster DNS on every node: serves the Kubernetes DNS records of the cluster domain
//! ([`ClusterZone`], rebuilt by the agent whenever Services or EndpointSlices change) and forwards
//! every other name to the node's upstream resolvers. hickory's server owns the sockets (UDP and
//! TCP on each listen address) and the wire format; its client does the forwarding.

mod forward;
mod zone;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_net::runtime::Time;
use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use forward::Forwarder;
use zone::ZoneResponse;
pub use zone::{ClusterZone, ZoneAnswer, DEFAULT_DOMAIN, DEFAULT_NDOTS, DEFAULT_TTL};

/// How long one upstream may take to answer before the next is asked. Pods' resolvers (glibc)
/// wait 5 s before retrying: two upstreams must both be tried within that.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP client may stay idle before the server closes its connection: long enough for
/// a resolver's follow-up queries, short enough that idle connections do not pile up.
const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses queued per TCP connection; DNS clients rarely pipeline more than a few queries.
const DEFAULT_TCP_RESPONSE_BUFFER: usize = 32;

/// How long `shutdown` waits for in-flight requests (a forward can take `DEFAULT_FORWARD_TIMEOUT`
/// per upstream) before the listeners are dropped anyway.
const DEFAULT_SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Tries at binding TCP on the port the kernel picked for UDP when listening on port 0 (the port
/// may already be taken for TCP).
const DEFAULT_BIND_ATTEMPTS: usize = 8;

/// Where the default upstreams come from: the host's own resolvers, as with CoreDNS's
/// `forward . /etc/resolv.conf`.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

/// What the DNS server listens on, serves and forwards to.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// UDP and TCP on each; port 0 picks a free port (the same for both, see
    /// [`DnsServer::local_addrs`]).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain, e.g. "cluster.local".
    pub domain: String,
    /// Where names outside the cluster domain go, asked in order.
    pub upstreams: Vec<SocketAddr>,
    /// How long each upstream may take.
    pub forward_timeout: Duration,
}

impl DnsConfig {
    /// The cluster domain `cluster.local`, the host's nameservers (from /etc/resolv.conf) as
    /// upstreams.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        DnsConfig {
            listen,
            domain: DEFAULT_DOMAIN.to_string(),
            upstreams: upstreams_from_resolv_conf(Path::new(DEFAULT_RESOLV_CONF)),
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
        }
    }
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no listen address configured")]
    NoListenAddress,
    #[error("binding DNS {protocol} on {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// The nameservers of a resolv.conf, on port 53. Missing file or no usable line: none.
pub fn upstreams_from_resolv_conf(path: &Path) -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string(path) else {
        tracing::debug!(path = %path.display(), "no resolv.conf: no upstream resolvers");
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // A link-local IPv6 address may carry a zone (`fe80::1%eth0`), which SocketAddr can't.
            let ip = words.next()?.split('%').next()?;
            Some(SocketAddr::new(ip.parse().ok()?, 53))
        })
        .collect()
}

/// A running cluster DNS server.
pub struct DnsServer {
    zone: Arc<RwLock<Arc<ClusterZone>>>,
    server: Server<ClusterDns>,
    local_addrs: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds UDP and TCP on every listen address and starts serving an empty cluster zone.
    pub async fn start(cfg: DnsConfig) -> Result<Self, DnsError> {
        if cfg.listen.is_empty() {
            return Err(DnsError::NoListenAddress);
        }
        let mut sockets = Vec::with_capacity(cfg.listen.len());
        for addr in &cfg.listen {
            sockets.push(bind_pair(*addr).await?);
        }
        let local_addrs: Vec<SocketAddr> = sockets.iter().map(|(addr, _, _)| *addr).collect();
        // Forwarding to ourselves would loop until every query times out.
        let upstreams: Vec<SocketAddr> = cfg
            .upstreams
            .iter()
            .copied()
            .filter(|up| {
                let ours = local_addrs.iter().any(|l| {
                    l.port() == up.port()
                        && (l.ip() == up.ip() || (l.ip().is_unspecified() && up.ip().is_loopback()))
                });
                if ours {
                    tracing::warn!(upstream = %up, "skipping upstream: it is this DNS server");
                }
                !ours
            })
            .collect();
        let zone = Arc::new(RwLock::new(Arc::new(ClusterZone::build(
            &cfg.domain,
            &[],
            &[],
        ))));
        let handler = ClusterDns {
            zone: zone.clone(),
            forwarder: Forwarder::new(&upstreams, cfg.forward_timeout),
        };
        let mut server = Server::new(handler);
        for (_, udp, tcp) in sockets {
            server.register_socket(udp);
            server.register_listener(tcp, DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_TCP_RESPONSE_BUFFER);
        }
        tracing::info!(listen = ?local_addrs, upstreams = ?upstreams, domain = %cfg.domain, "cluster DNS serving");
        Ok(DnsServer {
            zone,
            server,
            local_addrs,
        })
    }

    /// The bound addresses (UDP and TCP on each), with the ports picked for port 0.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Atomically swaps the served zone: queries see either the old or the new one, whole.
    pub fn update(&self, zone: ClusterZone) {
        let zone = Arc::new(zone);
        *self.zone.write().unwrap_or_else(PoisonError::into_inner) = zone;
    }

    /// The current zone, for in-process lookups.
    pub fn zone(&self) -> Arc<ClusterZone> {
        current(&self.zone)
    }

    /// A handle on the served zone for other tasks (the agent's sync loop, Wasm guests'
    /// lookups), while the server itself stays with its owner for shutdown.
    pub fn handle(&self) -> ZoneHandle {
        ZoneHandle(self.zone.clone())
    }

    /// Stops listening and waits (bounded) for the requests in flight.
    pub async fn shutdown(mut self) {
        match tokio::time::timeout(DEFAULT_SHUTDOWN_WAIT, self.server.shutdown_gracefully()).await {
            Ok(Ok(())) => tracing::debug!("cluster DNS stopped"),
            Ok(Err(e)) => tracing::debug!(error = %e, "cluster DNS stopped"),
            Err(_) => tracing::debug!("cluster DNS stop timed out; dropping its tasks"),
        }
    }
}

/// The zone a [`DnsServer`] serves, shared: read it, or swap in a new one.
#[derive(Clone)]
pub struct ZoneHandle(Arc<RwLock<Arc<ClusterZone>>>);

impl ZoneHandle {
    pub fn get(&self) -> Arc<ClusterZone> {
        current(&self.0)
    }

    pub fn set(&self, zone: ClusterZone) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(zone);
    }
}

fn current(zone: &RwLock<Arc<ClusterZone>>) -> Arc<ClusterZone> {
    zone.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Binds UDP, then TCP on the same address and port (the kernel's pick for port 0).
async fn bind_pair(addr: SocketAddr) -> Result<(SocketAddr, UdpSocket, TcpListener), DnsError> {
    let attempts = if addr.port() == 0 {
        DEFAULT_BIND_ATTEMPTS
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        let bind_err = |protocol| {
            move |source| DnsError::Bind {
                protocol,
                addr,
                source,
            }
        };
        let udp = UdpSocket::bind(addr).await.map_err(bind_err("UDP"))?;
        let local = udp.local_addr().map_err(bind_err("UDP"))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((local, udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    protocol: "TCP",
                    addr: local,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or(DnsError::NoListenAddress))
}

/// What is sent back for one question.
struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
}

impl From<ZoneResponse> for Reply {
    fn from(z: ZoneResponse) -> Self {
        Reply {
            rcode: z.rcode,
            authoritative: true,
            answers: z.answers,
            authority: z.authority,
            additionals: z.additionals,
        }
    }
}

impl From<Message> for Reply {
    fn from(m: Message) -> Self {
        Reply {
            rcode: m.metadata.response_code,
            authoritative: false,
            answers: m.answers,
            authority: m.authorities,
            additionals: m.additionals,
        }
    }
}

impl Reply {
    fn error(rcode: ResponseCode) -> Self {
        Reply {
            rcode,
            authoritative: false,
            answers: vec![],
            authority: vec![],
            additionals: vec![],
        }
    }
}

/// hickory's request handler: the cluster zone first, the upstreams for the rest.
struct ClusterDns {
    zone: Arc<RwLock<Arc<ClusterZone>>>,
    forwarder: Forwarder,
}

impl ClusterDns {
    async fn resolve(&self, query: &Query, recursion_desired: bool) -> Reply {
        let zone = current(&self.zone);
        let name = LowerName::new(&query.name);
        let local = if query.query_class == DNSClass::IN {
            zone.query(&name, query.query_type)
        } else {
            None
        };
        let Some(local) = local else {
            return match self
                .forwarder
                .forward(query.clone(), recursion_desired)
                .await
            {
                Ok(msg) => msg.into(),
                Err(e) => {
                    tracing::debug!(name = %query.name, error = %e, "forwarding failed");
                    Reply::error(ResponseCode::ServFail)
                }
            };
        };
        let mut reply = Reply::from(local);
        // An ExternalName's target outside the cluster: resolve it upstream, as a recursive
        // resolver would, so clients get the addresses with the alias.
        let chase = match reply.answers.last().map(|r| &r.data) {
            Some(RData::CNAME(target))
                if !matches!(query.query_type, RecordType::CNAME | RecordType::ANY) =>
            {
                (!zone.domain().zone_of(&target.0)).then(|| target.0.clone())
            }
            _ => None,
        };
        if let Some(target) = chase {
            let mut q = Query::query(target, query.query_type);
            q.query_class = query.query_class;
            match self.forwarder.forward(q, true).await {
                Ok(msg) if msg.metadata.response_code == ResponseCode::NoError => {
                    reply.answers.extend(msg.answers)
                }
                Ok(msg) => {
                    tracing::debug!(rcode = %msg.metadata.response_code, "alias target did not resolve")
                }
                Err(e) => tracing::debug!(error = %e, "alias target did not resolve"),
            }
        }
        reply
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns
        });
        let bad_version = request.edns.as_ref().is_some_and(|e| e.version() > 0);
        let reply = if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            Reply::error(ResponseCode::NotImp)
        } else if bad_version {
            Reply::error(ResponseCode::BADVERS)
        } else {
            match request.request_info() {
                Ok(info) => {
                    let query = info.query.original();
                    let reply = self
                        .resolve(query, request.metadata.recursion_desired)
                        .await;
                    tracing::debug!(
                        src = %request.src(),
                        name = %query.name,
                        qtype = %query.query_type,
                        rcode = %reply.rcode,
                        answers = reply.answers.len(),
                        "dns query"
                    );
                    reply
                }
                // Not exactly one question.
                Err(_) => Reply::error(ResponseCode::FormErr),
            }
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.authoritative = reply.authoritative;
        metadata.response_code = reply.rcode;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authority.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending DNS response failed");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
