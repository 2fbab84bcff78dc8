//! The server over real sockets, all on loopback: hickory's client asks it over UDP and TCP, and a
//! second hickory server on loopback plays the upstream resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::{Time, TokioRuntimeProvider};
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, Metadata, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use serde_json::json;

use super::zone::tests::{sample_zone, service};
use super::{bind_pair, upstreams_from_resolv_conf, ClusterZone, DnsConfig, DnsServer, ZoneAnswer};

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A stand-in upstream resolver: `db.example.test` has one address, `big.example.test` more
/// than fit a UDP answer, anything else does not exist.
struct FakeUpstream;

#[async_trait::async_trait]
impl RequestHandler for FakeUpstream {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let info = request.request_info().unwrap();
        let name = info.query.name().to_string();
        let count = match name.as_str() {
            "db.example.test." => 1,
            "big.example.test." => 100,
            _ => 0,
        };
        let answers: Vec<Record> = (1..=count)
            .map(|i| {
                Record::from_rdata(
                    Name::from(info.query.name()),
                    60,
                    RData::A(A::new(192, 0, 2, i)),
                )
            })
            .collect();
        if count == 0 {
            metadata.response_code = ResponseCode::NXDomain;
        }
        let builder = MessageResponseBuilder::new(&request.queries, request.edns.as_ref());
        let response = builder.build(metadata, answers.iter(), [], [], []);
        handle.send_response(response).await.unwrap()
    }
}

async fn start_upstream() -> (Server<FakeUpstream>, SocketAddr) {
    let (addr, udp, tcp) = bind_pair(LOOPBACK).await.unwrap();
    let mut server = Server::new(FakeUpstream);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 8);
    (server, addr)
}

async fn start_dns(upstreams: Vec<SocketAddr>) -> DnsServer {
    let cfg = DnsConfig {
        listen: vec![LOOPBACK],
        domain: "cluster.local".into(),
        upstreams,
        forward_timeout: Duration::from_millis(500),
    };
    let server = DnsServer::start(cfg).await.unwrap();
    server.update(sample_zone());
    server
}

async fn udp_query(addr: SocketAddr, name: &str, qtype: RecordType) -> DnsResponse {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(CLIENT_TIMEOUT))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(bg);
    client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, qtype)
        .await
        .unwrap()
}

async fn tcp_query(addr: SocketAddr, name: &str, qtype: RecordType) -> DnsResponse {
    let (connect, sender) = TcpClientStream::new(
        addr,
        None,
        Some(CLIENT_TIMEOUT),
        TokioRuntimeProvider::default(),
    );
    let (mut client, bg) = Client::<TokioRuntimeProvider>::new(connect.await.unwrap(), sender);
    tokio::spawn(bg);
    client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, qtype)
        .await
        .unwrap()
}

fn ipv4s(resp: &DnsResponse) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = resp
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

#[tokio::test]
async fn serves_cluster_records_over_udp_and_tcp() {
    let dns = start_dns(vec![]).await;
    let addr = dns.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    for tcp in [false, true] {
        let query = |name: &'static str, qtype| async move {
            if tcp {
                tcp_query(addr, name, qtype).await
            } else {
                udp_query(addr, name, qtype).await
            }
        };
        let a = query("web.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.metadata.authoritative && a.metadata.recursion_available);
        assert_eq!(ipv4s(&a), vec![Ipv4Addr::new(10, 96, 0, 10)]);

        let srv = query("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV).await;
        let targets: Vec<String> = srv
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) if s.port == 5432 => Some(s.target.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(targets.len(), 2, "tcp={tcp}: {srv:?}");
        assert!(targets.contains(&"db-0.db.default.svc.cluster.local.".to_string()));
        assert_eq!(srv.additionals.len(), 2);

        let ptr = query("10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
        assert!(
            matches!(&ptr.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "web.default.svc.cluster.local.")
        );

        let cname = query("ext.default.svc.cluster.local.", RecordType::CNAME).await;
        assert!(
            matches!(&cname.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "db.example.test.")
        );

        let nx = query("nope.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

        let nodata = query("web.default.svc.cluster.local.", RecordType::AAAA).await;
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    }
    dns.shutdown().await;
}

#[tokio::test]
async fn update_swaps_the_served_zone() {
    let dns = start_dns(vec![]).await;
    let addr = dns.local_addrs()[0];
    let name = "api.prod.svc.cluster.local.";
    let before = udp_query(addr, name, RecordType::A).await;
    assert_eq!(before.metadata.response_code, ResponseCode::NXDomain);

    let services = vec![service("prod", "api", json!({"clusterIP": "10.96.5.5"}))];
    dns.update(ClusterZone::build("cluster.local", &services, &[]));
    let after = udp_query(addr, name, RecordType::A).await;
    assert_eq!(ipv4s(&after), vec![Ipv4Addr::new(10, 96, 5, 5)]);
    assert_eq!(
        dns.zone().lookup("api.prod", "default"),
        Some(ZoneAnswer::Addrs {
            name: "api.prod.svc.cluster.local".into(),
            addrs: vec![Ipv4Addr::new(10, 96, 5, 5)],
        })
    );
    dns.shutdown().await;
}

#[tokio::test]
async fn forwards_other_names_upstream() {
    let (mut upstream, upstream_addr) = start_upstream().await;
    let dns = start_dns(vec![upstream_addr]).await;
    let addr = dns.local_addrs()[0];

    let db = udp_query(addr, "db.example.test.", RecordType::A).await;
    assert_eq!(db.metadata.response_code, ResponseCode::NoError);
    assert!(db.metadata.recursion_available && !db.metadata.authoritative);
    assert_eq!(ipv4s(&db), vec![Ipv4Addr::new(192, 0, 2, 1)]);

    let nx = udp_query(addr, "missing.example.test.", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    // Too big for the upstream's UDP answer: fetched again over TCP, and served whole over TCP.
    let big = tcp_query(addr, "big.example.test.", RecordType::A).await;
    assert_eq!(big.answers.len(), 100, "{big:?}");

    // An unknown reverse name is not the cluster's: forwarded (the fake upstream knows none).
    let ptr = udp_query(addr, "1.1.168.192.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptr.metadata.response_code, ResponseCode::NXDomain);

    // An ExternalName's target is resolved upstream along with the alias.
    let ext = udp_query(addr, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(ext.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(ipv4s(&ext), vec![Ipv4Addr::new(192, 0, 2, 1)]);

    dns.shutdown().await;
    upstream.shutdown_gracefully().await.unwrap();
}

#[tokio::test]
async fn servfail_when_no_upstream_answers() {
    // A bound socket that never answers, on loopback.
    let silent = tokio::net::UdpSocket::bind(LOOPBACK).await.unwrap();
    let dns = start_dns(vec![silent.local_addr().unwrap()]).await;
    let resp = udp_query(dns.local_addrs()[0], "db.example.test.", RecordType::A).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
    dns.shutdown().await;

    let none = start_dns(vec![]).await;
    let resp = tcp_query(none.local_addrs()[0], "db.example.test.", RecordType::A).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
    none.shutdown().await;
}

#[tokio::test]
async fn never_forwards_to_itself_and_needs_a_listen_address() {
    let (addr, udp, tcp) = bind_pair(LOOPBACK).await.unwrap();
    drop((udp, tcp));
    let cfg = DnsConfig {
        listen: vec![addr],
        domain: "cluster.local".into(),
        upstreams: vec![addr],
        forward_timeout: Duration::from_millis(500),
    };
    let dns = DnsServer::start(cfg).await.unwrap();
    let resp = udp_query(addr, "db.example.test.", RecordType::A).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
    dns.shutdown().await;

    let mut cfg = DnsConfig::new(vec![]);
    cfg.upstreams.clear();
    assert!(matches!(
        DnsServer::start(cfg).await,
        Err(super::DnsError::NoListenAddress)
    ));
}

#[test]
fn resolv_conf_nameservers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(
        &path,
        "# comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n",
    )
    .unwrap();
    let ups = upstreams_from_resolv_conf(&path);
    assert_eq!(
        ups,
        vec![
            "192.0.2.53:53".parse().unwrap(),
            "[fe80::1]:53".parse().unwrap()
        ]
    );
    assert!(upstreams_from_resolv_conf(&dir.path().join("absent")).is_empty());
}

#[test]
fn server_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let start = DnsServer::start(DnsConfig::new(vec![]));
    send(&start);
    let zone = ClusterZone::build("cluster.local", &[], &[]);
    send_sync(&zone);
    fn server_is_send_sync(server: &DnsServer) {
        send_sync(server);
    }
    let _ = server_is_send_sync;
}
