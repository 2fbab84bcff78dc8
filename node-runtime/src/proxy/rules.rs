//! From service-port plans to the desired content of Skiff's nft table: chains with their
//! rules, affinity sets and verdict-map elements, as values that compare for equality, so
//! [`super::tx`] can rewrite only what changed.
//!
//! The layout is kube-proxy's nftables mode:
//!
//! - base chains `nat-prerouting` / `nat-output` (DNAT, priority dstnat) jump to `services`,
//!   which looks up `ip daddr . meta l4proto . th dport` in the `service-ips` verdict map
//!   (ClusterIPs and load-balancer IPs) and, for the node's addresses (`nodeport-ips`),
//!   `meta l4proto . th dport` in `service-nodeports`;
//! - a service port's chain (`service-…` for the Cluster policy, `local-…` for Local) picks an
//!   endpoint chain with `numgen random mod N vmap`, after the ClientIP-affinity lookups;
//! - an endpoint chain (`endpoint-…`) marks hairpin traffic for masquerade, records affinity
//!   and DNATs; `external-…` chains apply `externalTrafficPolicy` to NodePort/LB traffic;
//! - filter base chains on input/forward/output (before DNAT) send new connections to a VIP
//!   without endpoints through `no-endpoint-services` / `no-endpoint-nodeports`: reject (TCP
//!   reset, ICMP port-unreachable) or, for a Local policy without local endpoints, drop;
//! - a service port the activator stands in front of (`skiff.dev/activator`, see
//!   [`super::model::ActivatorMode`]) has its VIP and node port sent to the `activator` chain,
//!   which DNATs to the node's activator, instead of being rejected when no endpoint is ready
//!   (and always, in `proxy` mode);
//! - `nat-postrouting` masquerades what was marked, and pod traffic leaving the cluster
//!   network (a pure-Wasm pod's address is on the bridge, with no CNI masquerade rule of its
//!   own; container pods have CNI's, which matches first).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use nftables::expr::{
    BinaryOperation, Expression, MetaKey, NamedExpression, NgMode, Numgen, SetItem, Verdict,
};
use nftables::stmt::{JumpTarget, NATFlag, Operator, Reject, RejectType, SetOp, Statement, NAT};
use nftables::types::{NfChainType, NfHook, RejectCode};

use super::model::{ActivatorMode, Proto, ServicePortPlan};
pub use super::nft::{affinity_set_name, chain_name, endpoint_chain_name, is_service_chain};
use super::nft::{
    cidr, concat, ct, dnat, fib_saddr_type, goto, jump, matches, meta, payload, set_mark, set_ref,
    text, vmap,
};

/// The packet-mark bit that asks `nat-postrouting` to masquerade. kube-proxy's default bit
/// (14), so tools that know kube-proxy read Skiff's marks the same way; it is cleared again
/// before the packet leaves.
pub const DEFAULT_MASQUERADE_MARK: u32 = 0x4000;

/// Priority of the DNAT base chains: netfilter's `dstnat` (-100), where kube-proxy sits.
const DSTNAT_PRIORITY: i32 = -100;
/// Priority of the filter base chains: before DNAT (`dstnat - 10`), so they still see the
/// VIP a packet was sent to.
const FILTER_PRIORITY: i32 = DSTNAT_PRIORITY - 10;
/// Priority of the masquerade base chain: netfilter's `srcnat` (100).
const SRCNAT_PRIORITY: i32 = 100;

pub const SERVICES_CHAIN: &str = "services";
pub const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
pub const MASQUERADING_CHAIN: &str = "masquerading";
pub const LOCAL_DNS_CHAIN: &str = "local-dns";
pub const ACTIVATOR_CHAIN: &str = "activator";
pub const NODEPORT_IPS_SET: &str = "nodeport-ips";

/// The verdict maps of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapName {
    ServiceIps,
    ServiceNodePorts,
    NoEndpointServices,
    NoEndpointNodePorts,
}

impl MapName {
    pub const ALL: [MapName; 4] = [
        MapName::ServiceIps,
        MapName::ServiceNodePorts,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodePorts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodePorts => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }

    /// Keyed by address, protocol and port (else by protocol and port).
    pub fn keyed_by_address(self) -> bool {
        matches!(self, MapName::ServiceIps | MapName::NoEndpointServices)
    }
}

/// The key of a verdict-map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElemKey {
    /// `ip daddr . meta l4proto . th dport`.
    Vip(Ipv4Addr, Proto, u16),
    /// `meta l4proto . th dport` (on the node's addresses).
    NodePort(Proto, u16),
}

/// The verdict of a verdict-map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElemVerdict {
    Goto(String),
    Drop,
}

/// A netfilter hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseHook {
    pub kind: NfChainType,
    pub hook: NfHook,
    pub priority: i32,
}

/// One chain: its hook when it is a base chain, and its rules in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub base: Option<BaseHook>,
    pub rules: Vec<Vec<Statement<'static>>>,
}

/// Everything Skiff's table should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, ChainSpec>,
    /// Affinity set name → element timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    pub elements: BTreeMap<(MapName, ElemKey), ElemVerdict>,
    pub node_ips: BTreeSet<Ipv4Addr>,
}

/// What the rules need beyond the plans.
#[derive(Debug, Clone)]
pub struct RuleContext {
    /// The cluster pod range: address and prefix length.
    pub cluster_cidr: (Ipv4Addr, u8),
    pub node_ips: Vec<Ipv4Addr>,
    /// Masquerade pod traffic to this node's endpoints, because without br_netfilter the
    /// reply of a pod on the same bridge would be bridged past conntrack's un-DNAT.
    pub masquerade_same_node: bool,
    /// Where this node's activator listens (see `crate::activator`); `None`: no activator,
    /// activated Services are treated as any other.
    pub activator: Option<std::net::SocketAddrV4>,
}

/// Builds the whole desired table content.
pub fn build(plans: &[ServicePortPlan], ctx: &RuleContext) -> Ruleset {
    let mut out = Ruleset {
        node_ips: ctx.node_ips.iter().copied().collect(),
        ..Ruleset::default()
    };
    static_chains(
        &mut out,
        plans.iter().any(|p| p.local_dns.is_some()),
        ctx.cluster_cidr,
    );
    if let Some(activator) = ctx.activator {
        out.chains.insert(
            ACTIVATOR_CHAIN.into(),
            chain(vec![vec![
                matches(meta(MetaKey::L4proto), Operator::EQ, text("tcp")),
                dnat(*activator.ip(), activator.port()),
            ]]),
        );
    }
    for plan in plans {
        service_port(&mut out, plan, ctx);
    }
    out
}

fn chain(rules: Vec<Vec<Statement<'static>>>) -> ChainSpec {
    ChainSpec { base: None, rules }
}

fn base(
    kind: NfChainType,
    hook: NfHook,
    priority: i32,
    rules: Vec<Vec<Statement<'static>>>,
) -> ChainSpec {
    ChainSpec {
        base: Some(BaseHook {
            kind,
            hook,
            priority,
        }),
        rules,
    }
}

fn static_chains(out: &mut Ruleset, local_dns: bool, cluster: (Ipv4Addr, u8)) {
    let new_conn = || {
        vec![vec![
            matches(ct("state"), Operator::IN, text("new")),
            jump(ENDPOINTS_CHECK_CHAIN),
        ]]
    };
    let to = |target: &str| vec![vec![jump(target)]];
    let chains = &mut out.chains;
    chains.insert(
        "filter-input".into(),
        base(
            NfChainType::Filter,
            NfHook::Input,
            FILTER_PRIORITY,
            new_conn(),
        ),
    );
    chains.insert(
        "filter-forward".into(),
        base(
            NfChainType::Filter,
            NfHook::Forward,
            FILTER_PRIORITY,
            new_conn(),
        ),
    );
    chains.insert(
        "filter-output".into(),
        base(
            NfChainType::Filter,
            NfHook::Output,
            FILTER_PRIORITY,
            new_conn(),
        ),
    );
    chains.insert(
        "nat-prerouting".into(),
        base(
            NfChainType::NAT,
            NfHook::Prerouting,
            DSTNAT_PRIORITY,
            to(SERVICES_CHAIN),
        ),
    );
    chains.insert(
        "nat-output".into(),
        base(
            NfChainType::NAT,
            NfHook::Output,
            DSTNAT_PRIORITY,
            to(SERVICES_CHAIN),
        ),
    );
    chains.insert(
        "nat-postrouting".into(),
        base(
            NfChainType::NAT,
            NfHook::Postrouting,
            SRCNAT_PRIORITY,
            vec![
                vec![jump(MASQUERADING_CHAIN)],
                vec![
                    matches(payload("ip", "saddr"), Operator::EQ, cidr(cluster)),
                    matches(payload("ip", "daddr"), Operator::NEQ, cidr(cluster)),
                    matches(meta(MetaKey::Oifname), Operator::NEQ, text("lo")),
                    Statement::Masquerade(Some(NAT {
                        addr: None,
                        family: None,
                        port: None,
                        flags: Some(HashSet::from([NATFlag::FullyRandom])),
                    })),
                ],
            ],
        ),
    );

    let by_vip = || {
        concat(vec![
            payload("ip", "daddr"),
            meta(MetaKey::L4proto),
            payload("th", "dport"),
        ])
    };
    let by_port = || concat(vec![meta(MetaKey::L4proto), payload("th", "dport")]);
    let on_node = || {
        matches(
            payload("ip", "daddr"),
            Operator::EQ,
            set_ref(NODEPORT_IPS_SET),
        )
    };
    chains.insert(
        ENDPOINTS_CHECK_CHAIN.into(),
        chain(vec![
            vec![vmap(
                by_vip(),
                set_ref(MapName::NoEndpointServices.as_str()),
            )],
            vec![
                on_node(),
                vmap(by_port(), set_ref(MapName::NoEndpointNodePorts.as_str())),
            ],
        ]),
    );
    chains.insert(
        SERVICES_CHAIN.into(),
        chain(vec![
            vec![vmap(by_vip(), set_ref(MapName::ServiceIps.as_str()))],
            vec![
                on_node(),
                vmap(by_port(), set_ref(MapName::ServiceNodePorts.as_str())),
            ],
        ]),
    );
    chains.insert(
        REJECT_CHAIN.into(),
        chain(vec![
            vec![
                matches(meta(MetaKey::L4proto), Operator::EQ, text("tcp")),
                Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
            ],
            vec![Statement::Reject(Some(Reject::new(
                Some(RejectType::ICMP),
                Some(RejectCode::PortUnreach),
            )))],
        ]),
    );
    let mark = || meta(MetaKey::Mark);
    let bits = Expression::Number(DEFAULT_MASQUERADE_MARK);
    chains.insert(
        MARK_MASQ_CHAIN.into(),
        chain(vec![vec![set_mark(Expression::BinaryOperation(Box::new(
            BinaryOperation::OR(vec![mark(), bits.clone()]),
        )))]]),
    );
    chains.insert(
        MASQUERADING_CHAIN.into(),
        chain(vec![
            vec![
                matches(
                    Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                        mark(),
                        bits.clone(),
                    ))),
                    Operator::EQ,
                    Expression::Number(0),
                ),
                Statement::Return(None),
            ],
            vec![set_mark(Expression::BinaryOperation(Box::new(
                BinaryOperation::XOR(mark(), bits),
            )))],
            // Locally delivered after a DNAT in output (a Wasm pod's address is a local
            // address): never leaves the node, and masquerading onto `lo` has no usable
            // source address.
            vec![
                matches(meta(MetaKey::Oifname), Operator::EQ, text("lo")),
                Statement::Return(None),
            ],
            vec![Statement::Masquerade(Some(NAT {
                addr: None,
                family: None,
                port: None,
                flags: Some(HashSet::from([NATFlag::FullyRandom])),
            }))],
        ]),
    );
    if local_dns {
        // Filled per plan: one DNAT rule per protocol.
        chains.insert(LOCAL_DNS_CHAIN.into(), chain(Vec::new()));
    }
}

fn service_port(out: &mut Ruleset, plan: &ServicePortPlan, ctx: &RuleContext) {
    let proto = plan.name.proto;
    let vip = ElemKey::Vip(plan.cluster_ip, proto, plan.port);

    if let Some(dns) = plan.local_dns {
        let rule = vec![
            matches(meta(MetaKey::L4proto), Operator::EQ, text(proto.as_str())),
            dnat(*dns.ip(), dns.port()),
        ];
        if let Some(dns_chain) = out.chains.get_mut(LOCAL_DNS_CHAIN) {
            if !dns_chain.rules.contains(&rule) {
                dns_chain.rules.push(rule);
            }
        }
        out.elements.insert(
            (MapName::ServiceIps, vip),
            ElemVerdict::Goto(LOCAL_DNS_CHAIN.into()),
        );
        return;
    }

    let cluster_chain = chain_name("service", &plan.name, None);
    let local_chain = chain_name("local", &plan.name, None);
    let external_chain = chain_name("external", &plan.name, None);
    let has_endpoints = !plan.cluster_endpoints.is_empty() || !plan.local_endpoints.is_empty();
    let has_local = !plan.local_endpoints.is_empty();

    // Endpoint chains and their affinity sets.
    for endpoint in plan.all_endpoints() {
        let name = endpoint_chain_name(&plan.name, endpoint);
        let mut rules = vec![vec![
            matches(
                payload("ip", "saddr"),
                Operator::EQ,
                text(&endpoint.addr.ip().to_string()),
            ),
            jump(MARK_MASQ_CHAIN),
        ]];
        if ctx.masquerade_same_node && endpoint.local {
            rules.push(vec![
                matches(payload("ip", "saddr"), Operator::EQ, cidr(ctx.cluster_cidr)),
                jump(MARK_MASQ_CHAIN),
            ]);
        }
        if let Some(timeout) = plan.affinity_timeout {
            let set = affinity_set_name(&plan.name, endpoint, timeout);
            rules.push(vec![Statement::Set(nftables::stmt::Set {
                op: SetOp::Update,
                elem: payload("ip", "saddr"),
                set: Cow::Owned(format!("@{set}")),
            })]);
            out.affinity_sets.insert(set, timeout);
        }
        rules.push(vec![
            matches(meta(MetaKey::L4proto), Operator::EQ, text(proto.as_str())),
            dnat(*endpoint.addr.ip(), endpoint.addr.port()),
        ]);
        out.chains.insert(name, chain(rules));
    }

    // Policy chains: pick an endpoint.
    for (name, endpoints) in [
        (&cluster_chain, &plan.cluster_endpoints),
        (&local_chain, &plan.local_endpoints),
    ] {
        if endpoints.is_empty() {
            continue;
        }
        // ClusterIP traffic from outside the pod network is masqueraded, so the reply comes
        // back through this node whatever node the endpoint is on.
        let mut rules = vec![vec![
            matches(
                payload("ip", "daddr"),
                Operator::EQ,
                text(&plan.cluster_ip.to_string()),
            ),
            matches(
                payload(proto.as_str(), "dport"),
                Operator::EQ,
                Expression::Number(plan.port.into()),
            ),
            matches(
                payload("ip", "saddr"),
                Operator::NEQ,
                cidr(ctx.cluster_cidr),
            ),
            jump(MARK_MASQ_CHAIN),
        ]];
        if let Some(timeout) = plan.affinity_timeout {
            for endpoint in endpoints {
                rules.push(vec![
                    matches(
                        payload("ip", "saddr"),
                        Operator::EQ,
                        set_ref(&affinity_set_name(&plan.name, endpoint, timeout)),
                    ),
                    goto(&endpoint_chain_name(&plan.name, endpoint)),
                ]);
            }
        }
        let targets = endpoints
            .iter()
            .enumerate()
            .map(|(i, endpoint)| {
                SetItem::Mapping(
                    Expression::Number(i as u32),
                    Expression::Verdict(Verdict::Goto(JumpTarget {
                        target: Cow::Owned(endpoint_chain_name(&plan.name, endpoint)),
                    })),
                )
            })
            .collect();
        rules.push(vec![vmap(
            Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: endpoints.len() as u32,
                offset: None,
            })),
            Expression::Named(NamedExpression::Set(targets)),
        )]);
        out.chains.insert(name.clone(), chain(rules));
    }

    // The activator, where it stands in front of this port: always (`proxy`), or while the
    // port has no endpoint to send to (`serve`).
    let activated = |ok: bool| match (ctx.activator, plan.activator) {
        (Some(_), Some(ActivatorMode::Proxy)) => true,
        (Some(_), Some(ActivatorMode::Serve)) => !ok,
        _ => false,
    };

    // ClusterIP.
    let (internal_chain, internal_ok) = if plan.internal_local {
        (&local_chain, has_local)
    } else {
        (&cluster_chain, !plan.cluster_endpoints.is_empty())
    };
    if activated(internal_ok) {
        out.elements.insert(
            (MapName::ServiceIps, vip),
            ElemVerdict::Goto(ACTIVATOR_CHAIN.into()),
        );
    } else if internal_ok {
        out.elements.insert(
            (MapName::ServiceIps, vip.clone()),
            ElemVerdict::Goto(internal_chain.clone()),
        );
    } else {
        out.elements.insert(
            (MapName::NoEndpointServices, vip),
            no_endpoint_verdict(has_endpoints),
        );
    }

    // NodePort and load-balancer addresses.
    if !plan.externally_accessible() {
        return;
    }
    let external_ok = if plan.external_local {
        has_local
    } else {
        has_endpoints
    };
    if has_endpoints {
        let mut rules = Vec::new();
        if plan.external_local {
            // kube-proxy's short-circuits: pods of the cluster and the node itself reach an
            // external address as if through the load balancer, with the Cluster policy.
            if !plan.cluster_endpoints.is_empty() {
                rules.push(vec![
                    matches(payload("ip", "saddr"), Operator::EQ, cidr(ctx.cluster_cidr)),
                    goto(&cluster_chain),
                ]);
                rules.push(vec![
                    matches(fib_saddr_type(), Operator::EQ, text("local")),
                    jump(MARK_MASQ_CHAIN),
                ]);
                rules.push(vec![
                    matches(fib_saddr_type(), Operator::EQ, text("local")),
                    goto(&cluster_chain),
                ]);
            }
            if has_local {
                rules.push(vec![goto(&local_chain)]);
            }
        } else {
            rules.push(vec![jump(MARK_MASQ_CHAIN)]);
            rules.push(vec![goto(&cluster_chain)]);
        }
        out.chains.insert(external_chain.clone(), chain(rules));
    }
    let mut external_keys: Vec<(MapName, MapName, ElemKey)> = plan
        .lb_ips
        .iter()
        .map(|ip| {
            (
                MapName::ServiceIps,
                MapName::NoEndpointServices,
                ElemKey::Vip(*ip, proto, plan.port),
            )
        })
        .collect();
    if let Some(node_port) = plan.node_port {
        external_keys.push((
            MapName::ServiceNodePorts,
            MapName::NoEndpointNodePorts,
            ElemKey::NodePort(proto, node_port),
        ));
    }
    for (map, no_endpoint_map, key) in external_keys {
        if activated(external_ok) {
            out.elements
                .insert((map, key), ElemVerdict::Goto(ACTIVATOR_CHAIN.into()));
            continue;
        }
        if has_endpoints {
            out.elements.insert(
                (map, key.clone()),
                ElemVerdict::Goto(external_chain.clone()),
            );
        }
        if !external_ok {
            out.elements
                .insert((no_endpoint_map, key), no_endpoint_verdict(has_endpoints));
        }
    }
}

/// No endpoint anywhere: refuse at once. Endpoints elsewhere but none for a Local policy:
/// drop, as kube-proxy does (the client may retry through another node).
fn no_endpoint_verdict(has_endpoints: bool) -> ElemVerdict {
    if has_endpoints {
        ElemVerdict::Drop
    } else {
        ElemVerdict::Goto(REJECT_CHAIN.into())
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
