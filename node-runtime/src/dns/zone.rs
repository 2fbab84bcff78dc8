//! The cluster zone: the records of the Kubernetes DNS specification computed from Services and
//! EndpointSlices. Pure and immutable once built; the server swaps in a new one on every change.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// TTL of every cluster record, and the SOA minimum (how long a resolver caches NXDOMAIN). 5 s is
/// CoreDNS's default for its kubernetes plugin: endpoints come and go with pods, so a short TTL
/// bounds how long a client keeps a dead pod's address while still absorbing the bursts of
/// identical lookups that search-list expansion produces.
pub const DEFAULT_TTL: u32 = 5;

/// The cluster domain when none (or an invalid one) is given: Kubernetes' own default.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// The `ndots` of a pod's resolv.conf (kubelet writes `options ndots:5`): a name with fewer dots
/// is tried against the search list before being tried as an absolute name.
pub const DEFAULT_NDOTS: usize = 5;

/// The label that links an EndpointSlice to its Service (in the same namespace).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What [`ClusterZone::lookup`] found for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneAnswer {
    /// The name (absolute, without the trailing dot) has these IPv4 addresses.
    Addrs { name: String, addrs: Vec<Ipv4Addr> },
    /// The name is an alias (an ExternalName Service): resolve `target` (absolute, without the
    /// trailing dot) instead, through `lookup` again or the system resolver.
    Alias { name: String, target: String },
    /// The name can only mean a cluster name, and that name has no address (it does not exist,
    /// or e.g. a headless Service has no ready endpoint): the lookup fails.
    NotFound,
}

/// The answer of the zone to one question, as the server sends it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ZoneResponse {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA, for NXDOMAIN and NODATA answers (negative caching, RFC 2308).
    pub authority: Vec<Record>,
    /// Addresses of SRV targets.
    pub additionals: Vec<Record>,
}

/// The cluster zone computed from the API objects (pure, cheap to rebuild, immutable once built).
#[derive(Debug, Clone)]
pub struct ClusterZone {
    domain: Name,
    domain_lower: LowerName,
    soa: Record,
    /// Records by owner name: the names under the domain, and the PTRs under in-addr.arpa.
    records: HashMap<LowerName, Vec<Record>>,
    /// Every name of the domain that exists: owners of records and their ancestors up to the domain
    /// (empty non-terminals such as `_tcp.web.default.svc.cluster.local`). These answer NODATA,
    /// everything else in the domain NXDOMAIN.
    names: HashSet<LowerName>,
}

/// The records of one owner name while the zone is built (sets: the same address may come from
/// several slices).
#[derive(Default)]
struct Node {
    a: BTreeSet<Ipv4Addr>,
    cname: Option<Name>,
    srv: BTreeSet<(u16, Name)>,
    ptr: BTreeSet<Name>,
}

impl ClusterZone {
    /// Computes the zone of `domain` (e.g. "cluster.local") from all Services and EndpointSlices.
    /// Objects whose names do not make valid DNS names are skipped.
    pub fn build(domain: &str, services: &[Service], slices: &[EndpointSlice]) -> ClusterZone {
        let domain = parse_domain(domain);
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
            let labels = slice.metadata.labels.as_ref();
            if let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                by_service
                    .entry((ns, svc.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        let mut nodes: HashMap<Name, Node> = HashMap::new();
        for svc in services {
            let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
            let Some(name) = svc.metadata.name.as_deref() else {
                continue;
            };
            let Ok(fqdn) = Name::from_ascii(format!("{name}.{ns}.svc.{domain}")) else {
                tracing::debug!(
                    namespace = ns,
                    service = name,
                    "service name is no DNS name"
                );
                continue;
            };
            let slices = by_service.remove(&(ns, name)).unwrap_or_default();
            add_service(&mut nodes, svc, &fqdn, &slices);
        }
        Self::from_nodes(domain, nodes)
    }

    fn from_nodes(domain: Name, nodes: HashMap<Name, Node>) -> ClusterZone {
        let domain_lower = LowerName::new(&domain);
        let mut names: HashSet<LowerName> = HashSet::new();
        for sub in ["svc", "pod"] {
            if let Ok(n) = domain.prepend_label(sub) {
                names.insert(LowerName::new(&n));
            }
        }
        names.insert(domain_lower.clone());
        let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
        for (owner, node) in nodes {
            let lower = LowerName::new(&owner);
            let mut up = lower.clone();
            while domain_lower.zone_of(&up) && names.insert(up.clone()) {
                up = up.base_name();
            }
            let set = records.entry(lower).or_default();
            let rr = |data: RData| Record::from_rdata(owner.clone(), DEFAULT_TTL, data);
            set.extend(node.cname.map(|t| rr(RData::CNAME(CNAME(t)))));
            set.extend(node.a.iter().map(|ip| rr(RData::A(A(*ip)))));
            // Equal weights that add up to about 100, as CoreDNS gives them.
            let weight = u16::try_from(100 / node.srv.len().max(1))
                .unwrap_or(1)
                .max(1);
            set.extend(
                node.srv
                    .into_iter()
                    .map(|(port, target)| rr(RData::SRV(SRV::new(0, weight, port, target)))),
            );
            set.extend(node.ptr.into_iter().map(|t| rr(RData::PTR(PTR(t)))));
        }
        let soa = soa_record(&domain, serial(&records));
        ClusterZone {
            domain,
            domain_lower,
            soa,
            records,
            names,
        }
    }

    /// The (absolute) domain this zone serves.
    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// In-process lookup for Wasm guests' outgoing HTTP: resolves `name` as a pod's resolver would
    /// with search list `<ns>.svc.<domain> svc.<domain> <domain>` and ndots:5 semantics; None when
    /// the name is not in the cluster zone (the caller then uses the system resolver). CNAMEs
    /// (ExternalName) are returned as the target name so the caller can resolve it.
    pub fn lookup(&self, name: &str, namespace: &str) -> Option<ZoneAnswer> {
        let name = name.trim();
        if name.is_empty() || name == "." {
            return None;
        }
        let domain = self.domain.to_ascii();
        let domain = domain.trim_end_matches('.');
        let absolute = format!("{}.", name.trim_end_matches('.'));
        let mut candidates = Vec::with_capacity(4);
        if name.ends_with('.') {
            candidates.push(absolute.clone());
        } else {
            let search = [
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            let expanded = search.iter().map(|s| format!("{name}.{s}."));
            if name.matches('.').count() >= DEFAULT_NDOTS {
                candidates.push(absolute.clone());
                candidates.extend(expanded);
            } else {
                candidates.extend(expanded);
                candidates.push(absolute.clone());
            }
        }
        let mut exists = false;
        for candidate in &candidates {
            let Ok(parsed) = Name::from_ascii(candidate) else {
                continue;
            };
            let Some(resp) = self.query(&LowerName::new(&parsed), RecordType::A) else {
                continue;
            };
            if resp.rcode != ResponseCode::NoError {
                continue;
            }
            exists = true;
            let found = candidate.trim_end_matches('.').to_string();
            if let Some(RData::CNAME(target)) = resp.answers.first().map(|r| &r.data) {
                let target = target.0.to_ascii();
                let target = target.trim_end_matches('.').to_string();
                return Some(ZoneAnswer::Alias {
                    name: found,
                    target,
                });
            }
            let addrs: Vec<Ipv4Addr> = resp.answers.iter().filter_map(record_ipv4).collect();
            if !addrs.is_empty() {
                return Some(ZoneAnswer::Addrs { name: found, addrs });
            }
        }
        let in_domain = Name::from_ascii(&absolute)
            .map(|n| self.domain.zone_of(&n))
            .unwrap_or(false);
        (exists || in_domain).then_some(ZoneAnswer::NotFound)
    }

    /// Answers one question; None when the name is not the zone's to answer (outside the domain,
    /// or a reverse name of no cluster address): the server forwards those.
    pub(crate) fn query(&self, name: &LowerName, qtype: RecordType) -> Option<ZoneResponse> {
        if let Some(set) = self.records.get(name) {
            return Some(self.answer_from(set, qtype));
        }
        if !self.domain_lower.zone_of(name) {
            return None;
        }
        if *name == self.domain_lower && matches!(qtype, RecordType::SOA | RecordType::ANY) {
            return Some(self.response(ResponseCode::NoError, vec![self.soa.clone()], vec![]));
        }
        if self.names.contains(name) {
            return Some(self.nodata());
        }
        if let Some(ip) = self.pod_address(name) {
            if matches!(qtype, RecordType::A | RecordType::ANY) {
                let rec = Record::from_rdata(Name::from(name), DEFAULT_TTL, RData::A(A(ip)));
                return Some(self.response(ResponseCode::NoError, vec![rec], vec![]));
            }
            return Some(self.nodata());
        }
        Some(ZoneResponse {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authority: vec![self.soa.clone()],
            additionals: vec![],
        })
    }

    fn answer_from(&self, set: &[Record], qtype: RecordType) -> ZoneResponse {
        let cname = set.iter().find(|r| r.record_type() == RecordType::CNAME);
        if let Some(cname) = cname.filter(|_| qtype != RecordType::CNAME) {
            let mut answers = vec![cname.clone()];
            // An alias to another cluster name: follow it once, as CoreDNS does.
            if let RData::CNAME(CNAME(target)) = &cname.data {
                let target = LowerName::new(target);
                if let Some(more) = self.records.get(&target) {
                    answers.extend(more.iter().filter(|r| matches(r, qtype)).cloned());
                }
            }
            return self.response(ResponseCode::NoError, answers, vec![]);
        }
        let answers: Vec<Record> = set.iter().filter(|r| matches(r, qtype)).cloned().collect();
        if answers.is_empty() {
            return self.nodata();
        }
        let mut additionals = Vec::new();
        let mut seen = HashSet::new();
        for record in &answers {
            if let RData::SRV(srv) = &record.data {
                let target = LowerName::new(&srv.target);
                if let (true, Some(set)) = (seen.insert(target.clone()), self.records.get(&target))
                {
                    let addrs = set.iter().filter(|r| r.record_type() == RecordType::A);
                    additionals.extend(addrs.cloned());
                }
            }
        }
        self.response(ResponseCode::NoError, answers, additionals)
    }

    fn response(
        &self,
        rcode: ResponseCode,
        answers: Vec<Record>,
        adds: Vec<Record>,
    ) -> ZoneResponse {
        ZoneResponse {
            rcode,
            answers,
            authority: vec![],
            additionals: adds,
        }
    }

    fn nodata(&self) -> ZoneResponse {
        ZoneResponse {
            rcode: ResponseCode::NoError,
            answers: vec![],
            authority: vec![self.soa.clone()],
            additionals: vec![],
        }
    }

    /// `a-b-c-d.<ns>.pod.<domain>` → a.b.c.d, for any namespace (CoreDNS's `pods insecure`).
    fn pod_address(&self, name: &LowerName) -> Option<Ipv4Addr> {
        if name.num_labels() != self.domain.num_labels() + 3 {
            return None;
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        if labels.get(2) != Some(&b"pod".as_slice()) {
            return None;
        }
        let first = std::str::from_utf8(labels.first()?).ok()?;
        let mut octets = [0u8; 4];
        let mut parts = first.split('-');
        for octet in &mut octets {
            *octet = parts.next()?.parse().ok()?;
        }
        parts.next().is_none().then_some(Ipv4Addr::from(octets))
    }
}

/// The records of one Service and of its endpoints.
fn add_service(
    nodes: &mut HashMap<Name, Node>,
    svc: &Service,
    fqdn: &Name,
    slices: &[&EndpointSlice],
) {
    nodes.entry(fqdn.clone()).or_default();
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        // Only the alias itself: like CoreDNS, no port names or endpoints under it, and an IP
        // address is no name to alias.
        let target = spec.external_name.as_deref().unwrap_or_default();
        if target.parse::<std::net::IpAddr>().is_err() {
            nodes.entry(fqdn.clone()).or_default().cname = absolute_name(target);
        }
        return;
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let all = spec.publish_not_ready_addresses.unwrap_or(false);
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        add_slice(nodes, fqdn, slice, headless, all);
    }
    if headless {
        return;
    }
    // ClusterIPs: IPv4 only, this cluster has no IPv6 service network.
    let ips = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter());
    let ips: BTreeSet<Ipv4Addr> = ips.filter_map(|ip| ip.parse().ok()).collect();
    if ips.is_empty() {
        return;
    }
    for ip in &ips {
        nodes.entry(fqdn.clone()).or_default().a.insert(*ip);
        nodes
            .entry(reverse_name(*ip))
            .or_default()
            .ptr
            .insert(fqdn.clone());
    }
    for port in spec.ports.iter().flatten() {
        let Ok(p) = u16::try_from(port.port) else {
            continue;
        };
        nodes
            .entry(fqdn.clone())
            .or_default()
            .srv
            .insert((p, fqdn.clone()));
        let port_name = port.name.as_deref().unwrap_or_default();
        if let Some(owner) = srv_owner(fqdn, port_name, port.protocol.as_deref()) {
            nodes
                .entry(owner)
                .or_default()
                .srv
                .insert((p, fqdn.clone()));
        }
    }
}

/// The endpoints of one slice: each endpoint's host name (its `hostname`, else its address with
/// dashes, as CoreDNS names it) gets an A record and the PTR back to it, whatever the Service's
/// kind (as CoreDNS answers them). For a headless Service the endpoints are also its own A
/// records, and the SRV targets of its ports.
fn add_slice(
    nodes: &mut HashMap<Name, Node>,
    fqdn: &Name,
    slice: &EndpointSlice,
    headless: bool,
    all: bool,
) {
    let ports: Vec<(u16, Option<Name>)> = slice
        .ports
        .iter()
        .flatten()
        .filter(|_| headless)
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok()?;
            let name = p.name.as_deref().unwrap_or_default();
            Some((port, srv_owner(fqdn, name, p.protocol.as_deref())))
        })
        .collect();
    for endpoint in &slice.endpoints {
        // A nil `ready` is "unknown", which consumers interpret as ready.
        let ready = endpoint
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true);
        if !ready && !all {
            continue;
        }
        for ip in endpoint
            .addresses
            .iter()
            .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        {
            let label = match endpoint.hostname.as_deref() {
                Some(h) if !h.is_empty() => h.to_string(),
                _ => ip.to_string().replace('.', "-"),
            };
            let Ok(host) = fqdn.prepend_label(label.as_str()) else {
                continue;
            };
            nodes.entry(host.clone()).or_default().a.insert(ip);
            nodes
                .entry(reverse_name(ip))
                .or_default()
                .ptr
                .insert(host.clone());
            if !headless {
                continue;
            }
            nodes.entry(fqdn.clone()).or_default().a.insert(ip);
            for (port, owner) in &ports {
                let srv = (*port, host.clone());
                nodes
                    .entry(fqdn.clone())
                    .or_default()
                    .srv
                    .insert(srv.clone());
                if let Some(owner) = owner {
                    nodes.entry(owner.clone()).or_default().srv.insert(srv);
                }
            }
        }
    }
}

/// `_<port>._<proto>.<service fqdn>`, for named ports only.
fn srv_owner(fqdn: &Name, port_name: &str, protocol: Option<&str>) -> Option<Name> {
    if port_name.is_empty() {
        return None;
    }
    let proto = protocol.unwrap_or("TCP").to_ascii_lowercase();
    let proto_name = fqdn.prepend_label(format!("_{proto}")).ok()?;
    proto_name
        .prepend_label(format!("_{}", port_name.to_ascii_lowercase()))
        .ok()
}

/// `d.c.b.a.in-addr.arpa.`
fn reverse_name(ip: Ipv4Addr) -> Name {
    Name::from(std::net::IpAddr::V4(ip))
}

fn absolute_name(name: &str) -> Option<Name> {
    let name = name.trim().trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    Name::from_ascii(format!("{name}.")).ok()
}

fn parse_domain(domain: &str) -> Name {
    absolute_name(domain)
        .filter(|n| !n.is_root())
        .or_else(|| {
            tracing::warn!(domain, "invalid cluster domain, using {DEFAULT_DOMAIN}");
            absolute_name(DEFAULT_DOMAIN)
        })
        .unwrap_or_else(Name::root)
        .to_lowercase()
}

fn matches(record: &Record, qtype: RecordType) -> bool {
    qtype == RecordType::ANY || record.record_type() == qtype
}

fn record_ipv4(record: &Record) -> Option<Ipv4Addr> {
    match record.data {
        RData::A(A(ip)) => Some(ip),
        _ => None,
    }
}

fn soa_record(domain: &Name, serial: u32) -> Record {
    let mname = domain
        .prepend_label("dns")
        .and_then(|n| n.prepend_label("ns"));
    let rname = domain.prepend_label("hostmaster");
    let soa = SOA::new(
        mname.unwrap_or_else(|_| domain.clone()),
        rname.unwrap_or_else(|_| domain.clone()),
        serial,
        7200,
        1800,
        86400,
        DEFAULT_TTL,
    );
    Record::from_rdata(domain.clone(), DEFAULT_TTL, RData::SOA(soa))
}

/// A serial that changes when the records change (and only then), so two builds of the same
/// objects are equal.
fn serial(records: &HashMap<LowerName, Vec<Record>>) -> u32 {
    let mut all: Vec<String> = records.values().flatten().map(|r| r.to_string()).collect();
    all.sort_unstable();
    let mut hasher = DefaultHasher::new();
    all.hash(&mut hasher);
    (hasher.finish() & u64::from(u32::MAX)) as u32
}

#[cfg(test)]
#[path = "zone_tests.rs"]
pub(super) mod tests;
