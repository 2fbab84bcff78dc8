//! The nft transaction that takes the table from what was last written to the desired
//! [`Ruleset`]: only changed chains are flushed and rewritten, only changed map elements are
//! deleted and added, stale chains and sets are removed. The first sync after
//! [`super::ServiceProxy::new`] is a full one: it takes over whatever the table holds (a
//! previous agent's rules) by flushing and rewriting all of it in the same transaction, so
//! the kernel never sees a table without rules and established connections keep flowing
//! (their NAT lives in conntrack, not in the rules).

use std::borrow::Cow;
use std::collections::BTreeSet;

use nftables::expr::{Expression, NamedExpression, Verdict};
use nftables::schema::{self, FlushObject, NfCmd, NfListObject, NfObject, SetType, SetTypeValue};
use nftables::stmt::JumpTarget;
use nftables::types::{NfChainPolicy, NfFamily};
use serde_json::Value;

use super::rules::{
    is_service_chain, ChainSpec, ElemKey, ElemVerdict, MapName, Ruleset, NODEPORT_IPS_SET,
};

/// What a previous writer left in the table, read once by `new` (names only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
    pub maps: BTreeSet<String>,
}

/// One sync's commands. Chain deletions are kept apart: kernels before 6.2 may still count a
/// chain as referenced by a map element deleted in the same transaction, so a failed
/// transaction is retried without them (the chains stay flushed and go next time).
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    pub commands: Vec<Value>,
    pub chain_deletions: Vec<Value>,
    pub deleted_chains: Vec<String>,
    pub chains_written: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.chain_deletions.is_empty()
    }

    /// The `nft -j -f -` document, with or without the chain deletions.
    pub fn to_json(&self, with_deletions: bool) -> String {
        let mut all = self.commands.clone();
        if with_deletions {
            all.extend(self.chain_deletions.iter().cloned());
        }
        serde_json::json!({ "nftables": all }).to_string()
    }
}

/// Builds the transaction from `last` (what this process wrote; `None` for the first sync,
/// which then takes over `existing`) to `desired`. `pending` are chains flushed earlier whose
/// deletion had to wait.
pub fn diff(
    table: &str,
    last: Option<&Ruleset>,
    existing: &Existing,
    pending: &BTreeSet<String>,
    desired: &Ruleset,
) -> Transaction {
    let b = Builder { table };
    let mut tx = Transaction::default();
    let empty = Ruleset::default();
    let full = last.is_none();
    let last = last.unwrap_or(&empty);

    if full {
        tx.commands
            .push(b.cmd(NfCmd::Add(NfListObject::Table(b.table()))));
        for map in MapName::ALL {
            tx.commands.push(b.verdict_map(map));
        }
        tx.commands
            .push(b.cmd(NfCmd::Add(b.set(NODEPORT_IPS_SET, None))));
        // Every rule of every chain goes; then the maps and sets that will be refilled.
        tx.commands
            .push(b.cmd(NfCmd::Flush(FlushObject::Table(b.table()))));
        for map in MapName::ALL {
            tx.commands.push(b.flush_map(map));
        }
        tx.commands
            .push(b.cmd(NfCmd::Flush(FlushObject::Set(Box::new(
                b.set_obj(NODEPORT_IPS_SET, None),
            )))));
        for ip in &desired.node_ips {
            tx.commands
                .push(b.cmd(NfCmd::Add(NfListObject::Element(schema::Element {
                    family: NfFamily::IP,
                    table: b.owned(table),
                    name: b.owned(NODEPORT_IPS_SET),
                    elem: Cow::Owned(vec![Expression::String(Cow::Owned(ip.to_string()))]),
                }))));
        }
    }

    // Affinity sets before the rules that use them. A set that already exists (taken over)
    // keeps its elements: clients stay on their endpoint across an agent restart.
    for (name, timeout) in &desired.affinity_sets {
        if last.affinity_sets.get(name) != Some(timeout) {
            tx.commands
                .push(b.cmd(NfCmd::Add(b.set(name, Some(*timeout)))));
        }
    }

    // Declare every new or changed chain first, so rules can jump to any of them.
    let changed: Vec<(&String, &ChainSpec)> = desired
        .chains
        .iter()
        .filter(|(name, spec)| last.chains.get(*name) != Some(*spec))
        .collect();
    for (name, spec) in &changed {
        tx.commands
            .push(b.cmd(NfCmd::Add(NfListObject::Chain(b.chain(name, spec)))));
    }

    // Elements removed or changed (an element's verdict cannot be replaced in place).
    for (key, verdict) in &last.elements {
        if desired.elements.get(key) != Some(verdict) {
            tx.commands.push(b.element(false, key, verdict));
            tx.elements_deleted += 1;
        }
    }

    for (name, spec) in &changed {
        if !full {
            tx.commands
                .push(b.cmd(NfCmd::Flush(FlushObject::Chain(b.chain(
                    name,
                    &ChainSpec {
                        base: None,
                        rules: Vec::new(),
                    },
                )))));
        }
        for rule in &spec.rules {
            tx.commands
                .push(b.cmd(NfCmd::Add(NfListObject::Rule(schema::Rule {
                    family: NfFamily::IP,
                    table: b.owned(table),
                    chain: b.owned(name),
                    expr: Cow::Owned(rule.clone()),
                    handle: None,
                    index: None,
                    comment: None,
                }))));
        }
    }
    tx.chains_written = changed.len();

    for (key, verdict) in &desired.elements {
        if last.elements.get(key) != Some(verdict) {
            tx.commands.push(b.element(true, key, verdict));
            tx.elements_added += 1;
        }
    }

    // Stale chains: ours from last time, a previous writer's, and those still pending.
    let stale: BTreeSet<&String> = last
        .chains
        .keys()
        .chain(existing.chains.iter().filter(|_| full))
        .chain(pending.iter())
        .filter(|name| !desired.chains.contains_key(*name))
        .collect();
    for name in &stale {
        // Everything referring to them is flushed above (a full sync flushed the table).
        if !full && is_service_chain(name) {
            tx.commands
                .push(b.cmd(NfCmd::Flush(FlushObject::Chain(b.plain_chain(name)))));
        }
    }
    for name in &stale {
        tx.chain_deletions
            .push(b.cmd(NfCmd::Delete(NfListObject::Chain(b.plain_chain(name)))));
        tx.deleted_chains.push((*name).clone());
    }

    // Stale sets, after the rules that used them are gone.
    let mut stale_sets: BTreeSet<&String> = last
        .affinity_sets
        .keys()
        .filter(|name| !desired.affinity_sets.contains_key(*name))
        .collect();
    if full {
        stale_sets.extend(existing.sets.iter().filter(|name| {
            name.as_str() != NODEPORT_IPS_SET && !desired.affinity_sets.contains_key(*name)
        }));
    }
    for name in stale_sets {
        tx.commands.push(b.cmd(NfCmd::Delete(b.set(name, None))));
    }
    if full {
        for name in &existing.maps {
            if !MapName::ALL.iter().any(|map| map.as_str() == name) {
                tx.commands.push(serde_json::json!({"delete": {"map": {
                    "family": "ip", "table": table, "name": name}}}));
            }
        }
    }
    tx
}

struct Builder<'t> {
    table: &'t str,
}

impl Builder<'_> {
    fn owned(&self, value: &str) -> Cow<'static, str> {
        Cow::Owned(value.to_owned())
    }

    fn cmd(&self, cmd: NfCmd<'static>) -> Value {
        // The crate's types serialize infallibly to JSON values (no maps with non-string
        // keys); a failure would be a bug in them, shown to nft as an empty command.
        serde_json::to_value(NfObject::CmdObject(cmd)).unwrap_or(Value::Null)
    }

    fn table(&self) -> schema::Table<'static> {
        schema::Table {
            family: NfFamily::IP,
            name: self.owned(self.table),
            handle: None,
        }
    }

    fn plain_chain(&self, name: &str) -> schema::Chain<'static> {
        schema::Chain {
            family: NfFamily::IP,
            table: self.owned(self.table),
            name: self.owned(name),
            ..schema::Chain::default()
        }
    }

    fn chain(&self, name: &str, spec: &ChainSpec) -> schema::Chain<'static> {
        let mut chain = self.plain_chain(name);
        if let Some(base) = spec.base {
            chain._type = Some(base.kind);
            chain.hook = Some(base.hook);
            chain.prio = Some(base.priority);
            chain.policy = Some(NfChainPolicy::Accept);
        }
        chain
    }

    fn set_obj(&self, name: &str, timeout: Option<u32>) -> schema::Set<'static> {
        schema::Set {
            family: NfFamily::IP,
            table: self.owned(self.table),
            name: self.owned(name),
            handle: None,
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            policy: None,
            // Affinity sets are filled from the data path (`update @set`) with a timeout.
            flags: timeout.map(|_| {
                [schema::SetFlag::Dynamic, schema::SetFlag::Timeout]
                    .into_iter()
                    .collect()
            }),
            elem: None,
            timeout,
            gc_interval: None,
            size: None,
            comment: None,
        }
    }

    fn set(&self, name: &str, timeout: Option<u32>) -> NfListObject<'static> {
        NfListObject::Set(Box::new(self.set_obj(name, timeout)))
    }

    fn map_obj(&self, map: MapName) -> schema::Map<'static> {
        let set_type = if map.keyed_by_address() {
            SetTypeValue::Concatenated(Cow::Owned(vec![
                SetType::Ipv4Addr,
                SetType::InetProto,
                SetType::InetService,
            ]))
        } else {
            SetTypeValue::Concatenated(Cow::Owned(vec![SetType::InetProto, SetType::InetService]))
        };
        schema::Map {
            family: NfFamily::IP,
            table: self.owned(self.table),
            name: self.owned(map.as_str()),
            set_type,
            // Placeholder: replaced by "verdict" below.
            map: SetTypeValue::Single(SetType::Mark),
            ..schema::Map::default()
        }
    }

    /// `add map … { type … : verdict }`. The crate has no `verdict` map type yet
    /// (nftables-rs issue #237), so its JSON gets that one field patched.
    fn verdict_map(&self, map: MapName) -> Value {
        let mut value = self.cmd(NfCmd::Add(NfListObject::Map(Box::new(self.map_obj(map)))));
        if let Some(obj) = value.pointer_mut("/add/map") {
            obj["map"] = Value::String("verdict".into());
        }
        value
    }

    fn flush_map(&self, map: MapName) -> Value {
        let mut value = self.cmd(NfCmd::Flush(FlushObject::Map(Box::new(self.map_obj(map)))));
        if let Some(obj) = value.pointer_mut("/flush/map") {
            obj["map"] = Value::String("verdict".into());
        }
        value
    }

    fn element(&self, add: bool, (map, key): &(MapName, ElemKey), verdict: &ElemVerdict) -> Value {
        let key = match key {
            ElemKey::Vip(ip, proto, port) => vec![
                Expression::String(Cow::Owned(ip.to_string())),
                Expression::String(Cow::Borrowed(proto.as_str())),
                Expression::Number((*port).into()),
            ],
            ElemKey::NodePort(proto, port) => vec![
                Expression::String(Cow::Borrowed(proto.as_str())),
                Expression::Number((*port).into()),
            ],
        };
        let key = Expression::Named(NamedExpression::Concat(key));
        let elem = if add {
            let verdict = match verdict {
                ElemVerdict::Goto(target) => Verdict::Goto(JumpTarget {
                    target: self.owned(target),
                }),
                ElemVerdict::Drop => Verdict::Drop,
            };
            Expression::List(vec![key, Expression::Verdict(verdict)])
        } else {
            key
        };
        let element = NfListObject::Element(schema::Element {
            family: NfFamily::IP,
            table: self.owned(self.table),
            name: self.owned(map.as_str()),
            elem: Cow::Owned(vec![elem]),
        });
        self.cmd(if add {
            NfCmd::Add(element)
        } else {
            NfCmd::Delete(element)
        })
    }
}

#[cfg(test)]
#[path = "tx_tests.rs"]
mod tests;
