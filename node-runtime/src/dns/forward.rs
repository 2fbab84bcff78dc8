//! Forwarding of the names outside the cluster zone to the node's upstream resolvers, through
//! hickory's client: UDP first, TCP again when the UDP answer is truncated.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsExchange;
use hickory_net::{DnsHandle, NetError};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, Query, ResponseCode};

/// EDNS payload size advertised upstream: the DNS Flag Day 2020 value, which avoids IP
/// fragmentation on any usual MTU; larger answers come back truncated and are fetched over TCP.
const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("no upstream resolver is configured")]
    NoUpstreams,
    #[error("upstream {addr} timed out")]
    Timeout { addr: SocketAddr },
    #[error("upstream {addr}: {source}")]
    Net {
        addr: SocketAddr,
        #[source]
        source: NetError,
    },
    #[error("upstream {addr} sent no response")]
    NoResponse { addr: SocketAddr },
    #[error("upstream {addr} answered {rcode}")]
    Failed {
        addr: SocketAddr,
        rcode: ResponseCode,
    },
}

struct Upstream {
    addr: SocketAddr,
    /// Stateless: hickory's UDP client opens a fresh socket (random port) per request.
    udp: DnsExchange<TokioRuntimeProvider>,
}

/// The upstream resolvers, asked in order until one answers.
pub(crate) struct Forwarder {
    upstreams: Vec<Upstream>,
    timeout: Duration,
    /// Owns the client connections' background tasks (in a JoinSet that aborts them when the
    /// last clone drops), so it must live as long as the forwarder.
    provider: TokioRuntimeProvider,
}

impl Forwarder {
    /// Must be called within a Tokio runtime (the UDP exchanges' background tasks are spawned).
    pub(crate) fn new(addrs: &[SocketAddr], timeout: Duration) -> Self {
        let provider = TokioRuntimeProvider::default();
        let upstreams = addrs
            .iter()
            .map(|&addr| Upstream {
                addr,
                udp: UdpClientStream::builder(addr, provider.clone())
                    .with_timeout(Some(timeout))
                    .exchange(),
            })
            .collect();
        Forwarder {
            upstreams,
            timeout,
            provider,
        }
    }

    /// Asks each upstream in turn; the first answer other than SERVFAIL or REFUSED is returned
    /// as the upstream sent it (NXDOMAIN included).
    pub(crate) async fn forward(
        &self,
        query: Query,
        recursion_desired: bool,
    ) -> Result<Message, ForwardError> {
        let mut last = ForwardError::NoUpstreams;
        for upstream in &self.upstreams {
            match self.ask(upstream, query.clone(), recursion_desired).await {
                Ok(msg)
                    if matches!(
                        msg.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    last = ForwardError::Failed {
                        addr: upstream.addr,
                        rcode: msg.metadata.response_code,
                    };
                }
                Ok(msg) => return Ok(msg),
                Err(e) => last = e,
            }
            tracing::debug!(upstream = %upstream.addr, error = %last, "upstream failed");
        }
        Err(last)
    }

    async fn ask(
        &self,
        upstream: &Upstream,
        query: Query,
        recursion_desired: bool,
    ) -> Result<Message, ForwardError> {
        let addr = upstream.addr;
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = recursion_desired;
        options.edns_payload_len = DEFAULT_EDNS_PAYLOAD;
        let request = DnsRequest::from_query(query, options);
        let first = exchange(&upstream.udp, request.clone(), addr, self.timeout).await?;
        if !first.metadata.truncation {
            return Ok(first);
        }
        tracing::debug!(upstream = %addr, "truncated over UDP, asking again over TCP");
        let connect =
            TcpClientStream::exchange(addr, None, self.timeout, Some(1), self.provider.clone());
        let tcp = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| ForwardError::Timeout { addr })?
            .map_err(|source| ForwardError::Net { addr, source })?;
        exchange(&tcp, request, addr, self.timeout).await
    }
}

async fn exchange(
    handle: &DnsExchange<TokioRuntimeProvider>,
    request: DnsRequest,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Message, ForwardError> {
    let mut responses = handle.send(request);
    match tokio::time::timeout(timeout, responses.next()).await {
        Err(_) => Err(ForwardError::Timeout { addr }),
        Ok(None) => Err(ForwardError::NoResponse { addr }),
        Ok(Some(Err(source))) => Err(ForwardError::Net { addr, source }),
        Ok(Some(Ok(response))) => Ok(response.into_message()),
    }
}
