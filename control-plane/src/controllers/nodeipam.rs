//! Node IPAM: gives every Node a pod range of its own (`spec.podCIDR`/`podCIDRs`), a /24
//! (`--node-cidr-mask-size`) from the cluster CIDR (`--cluster-cidr`, default `10.42.0.0/16`, as k3s), the lowest one no
//! other node holds. A node's range is never changed once set; a deleted node's range is free
//! again. One worker, so two nodes never get the same range.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::runner::{served, Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{Objects, Subresource};
use crate::store::ObjectKey;

/// The cluster's pod network when none is configured (k3s's default).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// The prefix length of each node's pod range (a /24: 253 pods, Wasm or container, and the
/// kubelet's 110 fit; a node holding 1,000 Wasm pods needs a /22).
pub const DEFAULT_NODE_CIDR_MASK_SIZE: u32 = 24;

/// An IPv4 cluster CIDR, split into node ranges of one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    base: u32,
    prefix: u32,
    node_prefix: u32,
}

impl ClusterCidr {
    /// The cluster CIDR with /24 node ranges.
    pub fn parse(cidr: &str) -> Result<ClusterCidr, String> {
        Self::with_node_mask(cidr, DEFAULT_NODE_CIDR_MASK_SIZE)
    }

    /// The cluster CIDR with node ranges of prefix length `node_prefix` (16 to 28).
    pub fn with_node_mask(cidr: &str, node_prefix: u32) -> Result<ClusterCidr, String> {
        if !(16..=28).contains(&node_prefix) {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix}: must be 16 to 28 (24 gives each node 253 pod addresses)"
            ));
        }
        let bad = |why: &str| format!("--cluster-cidr {cidr:?}: {why}");
        let (addr, len) = cidr
            .split_once('/')
            .ok_or_else(|| bad("must look like 10.42.0.0/16"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("only IPv4 ranges are supported"))?;
        let prefix: u32 = len
            .parse()
            .ok()
            .filter(|p| (8..=node_prefix).contains(p))
            .ok_or_else(|| {
                bad(&format!(
                    "the prefix length must be 8 to {node_prefix} (each node takes a /{node_prefix})"
                ))
            })?;
        let base = u32::from(addr);
        let mask = u32::MAX << (32 - prefix);
        if base & mask != base {
            return Err(bad(&format!(
                "host bits are set; did you mean {}/{prefix}?",
                Ipv4Addr::from(base & mask)
            )));
        }
        Ok(ClusterCidr {
            base,
            prefix,
            node_prefix,
        })
    }

    /// How many node ranges the cluster CIDR holds.
    pub fn ranges(&self) -> u32 {
        1 << (self.node_prefix - self.prefix)
    }

    /// The `i`th node range, like `10.42.3.0/24`.
    pub fn range(&self, i: u32) -> String {
        let net = self.base + (i << (32 - self.node_prefix));
        format!("{}/{}", Ipv4Addr::from(net), self.node_prefix)
    }

    /// The lowest range not in `used`.
    pub fn first_free(&self, used: &[String]) -> Option<String> {
        (0..self.ranges())
            .map(|i| self.range(i))
            .find(|r| !used.iter().any(|u| u == r))
    }
}

pub struct NodeIpamController {
    objects: Objects,
    cidr: ClusterCidr,
}

impl NodeIpamController {
    pub fn new(objects: Objects, cidr: ClusterCidr) -> Self {
        NodeIpamController { objects, cidr }
    }
}

fn pod_cidr(node: &Value) -> Option<&str> {
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
}

impl Reconciler for NodeIpamController {
    fn name(&self) -> &'static str {
        "nodeipam"
    }

    fn triggers(&self) -> Vec<Trigger> {
        vec![Trigger::own("core/nodes")]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let def = served("", "nodes")?;
        let Some(node) = self.objects.get(def, "", &key.name).await? else {
            return Ok(Action::Done);
        };
        if pod_cidr(&node).is_some() {
            return Ok(Action::Done);
        }
        let used: Vec<String> = self
            .objects
            .list(def, "", None)
            .await?
            .iter()
            .filter_map(|n| pod_cidr(n).map(str::to_string))
            .collect();
        let Some(range) = self.cidr.first_free(&used) else {
            return Err(ReconcileError::Invalid(format!(
                "no pod range left for node {}: all {} /{} ranges of the cluster CIDR are taken",
                key.name,
                self.cidr.ranges(),
                self.cidr.node_prefix
            )));
        };
        self.objects
            .modify(def, "", &key.name, Subresource::Main, |n| {
                if pod_cidr(n).is_none() {
                    n["spec"]["podCIDR"] = json!(range);
                    n["spec"]["podCIDRs"] = json!([range]);
                }
                Ok(())
            })
            .await?;
        tracing::info!(node = %key.name, %range, "pod range allocated");
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_handed_out_lowest_first() {
        let c = ClusterCidr::parse("10.42.0.0/16").expect("cidr");
        assert_eq!(c.ranges(), 256);
        assert_eq!(c.first_free(&[]).as_deref(), Some("10.42.0.0/24"));
        let used = vec!["10.42.0.0/24".to_string(), "10.42.2.0/24".to_string()];
        assert_eq!(c.first_free(&used).as_deref(), Some("10.42.1.0/24"));
        let small = ClusterCidr::parse("10.42.0.0/24").expect("cidr");
        assert_eq!(small.first_free(&["10.42.0.0/24".to_string()]), None);
        let wide = ClusterCidr::with_node_mask("10.42.0.0/16", 22).expect("cidr");
        assert_eq!(wide.ranges(), 64);
        assert_eq!(wide.range(1), "10.42.4.0/22");
        assert!(ClusterCidr::with_node_mask("10.42.0.0/16", 30).is_err());
    }

    #[test]
    fn bad_cluster_cidrs_say_why() {
        assert!(ClusterCidr::parse("10.42.0.1/16")
            .unwrap_err()
            .contains("10.42.0.0/16"));
        assert!(ClusterCidr::parse("fd00::/48")
            .unwrap_err()
            .contains("IPv4"));
        assert!(ClusterCidr::parse("10.0.0.0/25")
            .unwrap_err()
            .contains("8 to 24"));
    }
}
