//! The nft vocabulary of [`super::rules`]: names of service chains and sets, and small
//! constructors of expressions and statements over the `nftables` crate's types, so the
//! rules read like the rules they write.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, CT,
};
use nftables::stmt::{JumpTarget, Mangle, Match, Operator, Statement, VerdictMap, NAT};
use sha2::{Digest, Sha256};

use super::model::{Endpoint, ServicePortName};

/// Longest chain or set name nft accepts (NFT_NAME_MAXLEN - 1).
pub const NAME_MAX: usize = 255;

/// `PREFIX-HASH-ns/name/proto/port`: the hash keeps names distinct and recognisable; `/`
/// marks service chains (no fixed chain has one).
pub fn chain_name(prefix: &str, name: &ServicePortName, suffix: Option<&str>) -> String {
    let base = match suffix {
        Some(suffix) => format!("{name}__{suffix}"),
        None => name.to_string(),
    };
    let hash = Sha256::digest(base.as_bytes());
    let mut out = format!(
        "{prefix}-{:02X}{:02X}{:02X}{:02X}-{base}",
        hash[0], hash[1], hash[2], hash[3]
    );
    if out.len() > NAME_MAX {
        // Names are ASCII (Kubernetes names, digits, dots), so any cut is on a boundary.
        out.truncate(NAME_MAX);
    }
    out
}

pub fn endpoint_chain_name(name: &ServicePortName, endpoint: &Endpoint) -> String {
    chain_name(
        "endpoint",
        name,
        Some(&format!("{}/{}", endpoint.addr.ip(), endpoint.addr.port())),
    )
}

/// The timeout is part of the name: a changed timeout is a new set, and the old one goes as
/// a stale one (a set's timeout cannot be changed in place).
pub fn affinity_set_name(name: &ServicePortName, endpoint: &Endpoint, timeout: u32) -> String {
    chain_name(
        "affinity",
        name,
        Some(&format!(
            "{}/{}/{timeout}s",
            endpoint.addr.ip(),
            endpoint.addr.port()
        )),
    )
}

/// A service chain (as opposed to a fixed one) by its name.
pub fn is_service_chain(name: &str) -> bool {
    name.contains('/')
}

pub fn text(value: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(value.to_owned()))
}

pub fn set_ref(name: &str) -> Expression<'static> {
    text(&format!("@{name}"))
}

pub fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(protocol.to_owned()),
            field: Cow::Owned(field.to_owned()),
        },
    )))
}

pub fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub fn ct(key: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Owned(key.to_owned()),
        family: None,
        dir: None,
    }))
}

pub fn fib_saddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Saddr]),
    }))
}

pub fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

pub fn cidr((addr, len): (Ipv4Addr, u8)) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(text(&addr.to_string())),
        len: len.into(),
    }))
}

pub fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

pub fn jump(target: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: Cow::Owned(target.to_owned()),
    })
}

pub fn goto(target: &str) -> Statement<'static> {
    Statement::Goto(JumpTarget {
        target: Cow::Owned(target.to_owned()),
    })
}

pub fn vmap(key: Expression<'static>, data: Expression<'static>) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap { key, data })
}

pub fn set_mark(value: Expression<'static>) -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value,
    })
}

pub fn dnat(addr: Ipv4Addr, port: u16) -> Statement<'static> {
    Statement::DNAT(Some(NAT {
        addr: Some(text(&addr.to_string())),
        family: None,
        port: Some(Expression::Number(port.into())),
        flags: None,
    }))
}
