use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::{ClusterZone, ZoneAnswer, ZoneResponse, DEFAULT_TTL};

pub(crate) fn service(ns: &str, name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap()
}

pub(crate) fn slice(
    ns: &str,
    svc: &str,
    ports: serde_json::Value,
    endpoints: serde_json::Value,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-abc"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}

/// A ClusterIP Service `web` (named and unnamed ports), a headless `db` whose endpoints are a
/// StatefulSet pod, a pod without hostname and an unready pod, and an ExternalName `ext`.
pub(crate) fn sample_zone() -> ClusterZone {
    let services = vec![
        service(
            "default",
            "web",
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9000}]}),
        ),
        service(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        ),
        service(
            "default",
            "ext",
            json!({"type": "ExternalName", "externalName": "db.example.test",
                   "ports": [{"name": "http", "port": 80}]}),
        ),
        service(
            "default",
            "alias",
            json!({"type": "ExternalName", "externalName": "web.default.svc.cluster.local."}),
        ),
        service("default", "empty", json!({"clusterIP": "None"})),
        service(
            "default",
            "byip",
            json!({"type": "ExternalName", "externalName": "192.0.2.1"}),
        ),
    ];
    let slices = vec![
        slice(
            "default",
            "web",
            json!([{"name": "http", "port": 8080}]),
            json!([{"addresses": ["10.1.1.1"]}]),
        ),
        slice(
            "default",
            "db",
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
            json!([
                {"addresses": ["10.1.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.1.0.6"]},
                {"addresses": ["10.1.0.7"], "hostname": "db-2", "conditions": {"ready": false}},
            ]),
        ),
        // Same service name, other namespace: not linked to default/db.
        slice(
            "other",
            "db",
            json!([]),
            json!([{"addresses": ["10.9.9.9"]}]),
        ),
    ];
    ClusterZone::build("cluster.local", &services, &slices)
}

fn ask(zone: &ClusterZone, name: &str, qtype: RecordType) -> Option<ZoneResponse> {
    zone.query(&LowerName::new(&Name::from_ascii(name).unwrap()), qtype)
}

fn answer(zone: &ClusterZone, name: &str, qtype: RecordType) -> ZoneResponse {
    ask(zone, name, qtype).unwrap_or_else(|| panic!("{name} is not in the zone"))
}

fn ipv4s(resp: &ZoneResponse) -> Vec<Ipv4Addr> {
    resp.answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn srvs(resp: &ZoneResponse) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = resp
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn assert_nodata(resp: &ZoneResponse) {
    assert_eq!(resp.rcode, ResponseCode::NoError);
    assert!(resp.answers.is_empty(), "{resp:?}");
    assert_eq!(resp.authority.len(), 1);
    assert_eq!(resp.authority[0].record_type(), RecordType::SOA);
}

#[test]
fn cluster_ip_service_has_a_srv_and_ptr() {
    let zone = sample_zone();
    let a = answer(&zone, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ipv4s(&a), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    assert_eq!(a.answers[0].ttl, DEFAULT_TTL);
    // Case-insensitive.
    let upper = answer(&zone, "WEB.Default.svc.cluster.local.", RecordType::A);
    assert_eq!(ipv4s(&upper), ipv4s(&a));

    let srv = answer(
        &zone,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        srvs(&srv),
        vec![(80, "web.default.svc.cluster.local.".into())]
    );
    assert_eq!(srv.additionals.len(), 1, "the target's address rides along");
    // The service name itself: one SRV per port, named or not, as CoreDNS answers.
    let bare = answer(&zone, "web.default.svc.cluster.local.", RecordType::SRV);
    let target = "web.default.svc.cluster.local.".to_string();
    assert_eq!(srvs(&bare), vec![(80, target.clone()), (9000, target)]);

    let ptr = answer(&zone, "10.0.96.10.in-addr.arpa.", RecordType::PTR);
    match &ptr.answers[..] {
        [r] => assert!(
            matches!(&r.data, RData::PTR(p) if p.0.to_ascii() == "web.default.svc.cluster.local.")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn headless_service_answers_ready_endpoints_and_hostnames() {
    let zone = sample_zone();
    let a = answer(&zone, "db.default.svc.cluster.local.", RecordType::A);
    let mut ips = ipv4s(&a);
    ips.sort();
    assert_eq!(
        ips,
        vec![Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 6)]
    );

    let pod = answer(&zone, "db-0.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ipv4s(&pod), vec![Ipv4Addr::new(10, 1, 0, 5)]);
    let unnamed = answer(
        &zone,
        "10-1-0-6.db.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(ipv4s(&unnamed), vec![Ipv4Addr::new(10, 1, 0, 6)]);
    let unready = answer(&zone, "db-2.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(unready.rcode, ResponseCode::NXDomain);

    let srv = answer(
        &zone,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        srvs(&srv),
        vec![
            (5432, "10-1-0-6.db.default.svc.cluster.local.".into()),
            (5432, "db-0.db.default.svc.cluster.local.".into()),
        ]
    );
    assert_eq!(srv.additionals.len(), 2);

    let ptr = answer(&zone, "5.0.1.10.in-addr.arpa.", RecordType::PTR);
    assert!(
        matches!(&ptr.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "db-0.db.default.svc.cluster.local.")
    );
    // The other namespace's slice is not default/db's, and other/db is no Service.
    assert!(ask(&zone, "9.9.9.10.in-addr.arpa.", RecordType::PTR).is_none());
}

#[test]
fn publish_not_ready_addresses_includes_unready_endpoints() {
    let services = vec![service(
        "default",
        "db",
        json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
    )];
    let slices = vec![slice(
        "default",
        "db",
        json!([]),
        json!([{"addresses": ["10.1.0.7"], "hostname": "db-2", "conditions": {"ready": false}}]),
    )];
    let zone = ClusterZone::build("cluster.local", &services, &slices);
    let a = answer(&zone, "db-2.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ipv4s(&a), vec![Ipv4Addr::new(10, 1, 0, 7)]);
}

#[test]
fn external_name_is_a_cname() {
    let zone = sample_zone();
    for qtype in [RecordType::A, RecordType::CNAME, RecordType::AAAA] {
        let resp = answer(&zone, "ext.default.svc.cluster.local.", qtype);
        assert_eq!(resp.rcode, ResponseCode::NoError);
        match &resp.answers[..] {
            [r] => {
                assert!(matches!(&r.data, RData::CNAME(c) if c.0.to_ascii() == "db.example.test."))
            }
            other => panic!("{qtype}: {other:?}"),
        }
    }
    // No port names under an alias, and an IP address is no alias target.
    let port = answer(
        &zone,
        "_http._tcp.ext.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(port.rcode, ResponseCode::NXDomain);
    assert_nodata(&answer(
        &zone,
        "byip.default.svc.cluster.local.",
        RecordType::A,
    ));
    // An alias to a cluster name is followed within the zone.
    let alias = answer(&zone, "alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(alias.answers.len(), 2);
    assert_eq!(ipv4s(&alias), vec![Ipv4Addr::new(10, 96, 0, 10)]);
}

#[test]
fn pod_names_resolve_to_their_dashed_address() {
    let zone = sample_zone();
    let a = answer(&zone, "10-244-1-5.anyns.pod.cluster.local.", RecordType::A);
    assert_eq!(ipv4s(&a), vec![Ipv4Addr::new(10, 244, 1, 5)]);
    assert_nodata(&answer(
        &zone,
        "10-244-1-5.anyns.pod.cluster.local.",
        RecordType::AAAA,
    ));
    for bad in [
        "10-244-1.ns.pod.cluster.local.",
        "10-244-1-500.ns.pod.cluster.local.",
        "x.10-244-1-5.ns.pod.cluster.local.",
    ] {
        assert_eq!(
            answer(&zone, bad, RecordType::A).rcode,
            ResponseCode::NXDomain,
            "{bad}"
        );
    }
}

#[test]
fn nxdomain_and_nodata_are_told_apart() {
    let zone = sample_zone();
    let nx = answer(&zone, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(nx.rcode, ResponseCode::NXDomain);
    assert_eq!(nx.authority[0].record_type(), RecordType::SOA);
    assert_eq!(
        answer(&zone, "foo.cluster.local.", RecordType::A).rcode,
        ResponseCode::NXDomain
    );
    // Existing names with no record of the type, and empty non-terminals.
    assert_nodata(&answer(
        &zone,
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
    ));
    assert_nodata(&answer(
        &zone,
        "empty.default.svc.cluster.local.",
        RecordType::A,
    ));
    for ent in [
        "_tcp.web.default.svc.cluster.local.",
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
    ] {
        assert_nodata(&answer(&zone, ent, RecordType::A));
    }
    let soa = answer(&zone, "cluster.local.", RecordType::SOA);
    assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
    // Not the zone's: forwarded by the server.
    assert!(ask(&zone, "example.com.", RecordType::A).is_none());
    assert!(ask(&zone, "1.1.168.192.in-addr.arpa.", RecordType::PTR).is_none());
}

#[test]
fn serial_follows_content() {
    let serial = |z: &ClusterZone| match &z.soa.data {
        RData::SOA(s) => s.serial,
        _ => unreachable!(),
    };
    assert_eq!(serial(&sample_zone()), serial(&sample_zone()));
    let other = ClusterZone::build("cluster.local", &[], &[]);
    assert_ne!(serial(&sample_zone()), serial(&other));
}

#[test]
fn lookup_follows_the_search_list() {
    let zone = sample_zone();
    let web = |name: &str| ZoneAnswer::Addrs {
        name: name.to_string(),
        addrs: vec![Ipv4Addr::new(10, 96, 0, 10)],
    };
    let full = "web.default.svc.cluster.local";
    assert_eq!(zone.lookup("web", "default"), Some(web(full)));
    assert_eq!(
        zone.lookup("WEB.default", "other"),
        Some(web("WEB.default.svc.cluster.local"))
    );
    assert_eq!(zone.lookup("web.default.svc", "other"), Some(web(full)));
    assert_eq!(zone.lookup(full, "other"), Some(web(full)));
    assert_eq!(
        zone.lookup("web.default.svc.cluster.local.", "other"),
        Some(web(full))
    );
    // Not a cluster name: the system resolver's.
    assert_eq!(zone.lookup("web", "other"), None);
    assert_eq!(zone.lookup("example.com", "default"), None);
    assert_eq!(zone.lookup("", "default"), None);
    // Only a cluster name, and it has no address.
    assert_eq!(
        zone.lookup("nope.default.svc.cluster.local", "default"),
        Some(ZoneAnswer::NotFound)
    );
    assert_eq!(zone.lookup("empty", "default"), Some(ZoneAnswer::NotFound));
    assert_eq!(
        zone.lookup("ext", "default"),
        Some(ZoneAnswer::Alias {
            name: "ext.default.svc.cluster.local".into(),
            target: "db.example.test".into(),
        })
    );
    assert_eq!(
        zone.lookup("10-244-1-5.ns.pod", "default"),
        Some(ZoneAnswer::Addrs {
            name: "10-244-1-5.ns.pod.cluster.local".into(),
            addrs: vec![Ipv4Addr::new(10, 244, 1, 5)],
        })
    );
}

#[test]
fn other_domains_and_invalid_objects() {
    let services = vec![
        service("default", "web", json!({"clusterIP": "10.96.0.10"})),
        service(
            "default",
            "Not_A_Label!",
            json!({"clusterIP": "10.96.0.11"}),
        ),
    ];
    let zone = ClusterZone::build("example.internal", &services, &[]);
    assert_eq!(zone.domain().to_ascii(), "example.internal.");
    let a = answer(&zone, "web.default.svc.example.internal.", RecordType::A);
    assert_eq!(ipv4s(&a), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    assert!(ask(&zone, "web.default.svc.cluster.local.", RecordType::A).is_none());
    // An unusable domain falls back to the default one.
    let zone = ClusterZone::build("", &services, &[]);
    assert_eq!(zone.domain().to_ascii(), "cluster.local.");
}
