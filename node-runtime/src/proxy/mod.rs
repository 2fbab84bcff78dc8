//! The Service data path of a node, in nftables, as kube-proxy's nftables mode does it:
//! ClusterIP, NodePort and LoadBalancer traffic DNATed to the endpoints of EndpointSlices,
//! refused at once when there is none, with ClientIP session affinity, traffic policies,
//! hairpin and masquerading.
//!
//! The agent keeps reflectors of Services and EndpointSlices and calls
//! [`ServiceProxy::sync`] with all of them whenever something changed; the proxy computes
//! the desired table ([`model`] → [`rules`]) and writes only the difference to what it wrote
//! last ([`tx`]), in one `nft -j -f -` transaction.
//!
//! Hooks: `prerouting` (pods on the bridge, other nodes) and `output` (the node itself,
//! including Wasm pods, which are processes of the agent: their connections to a ClusterIP
//! take the output path, and a DNAT to a Wasm pod's address is a local delivery).
//!
//! Pod → ClusterIP → pod on the same bridge: the reply is bridged, not routed, so it would
//! skip conntrack's un-DNAT and reach the client from the wrong address. [`ServiceProxy::new`]
//! makes sure `br_netfilter` is loaded and `net.bridge.bridge-nf-call-iptables` is 1 (what
//! Kubernetes nodes require); when that cannot be had it falls back to masquerading pod
//! traffic to this node's endpoints (the reply then comes back to the node and is routed),
//! which costs those connections their client address. See [`BridgeMode`].

pub mod model;
mod nft;
pub mod rules;
pub mod tx;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::{debug, info, warn};

pub use model::{ServicePortName, DEFAULT_AFFINITY_TIMEOUT_SECONDS};
pub use rules::DEFAULT_MASQUERADE_MARK;

/// Longest wait for one `nft` run. A transaction for thousands of service ports takes well
/// under a second; a run still going after this is stuck (e.g. on the netlink lock).
pub const DEFAULT_NFT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for `modprobe br_netfilter` (a module load is milliseconds).
pub const DEFAULT_MODPROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The nft table Skiff owns on a node.
pub const DEFAULT_TABLE: &str = "skiff";

const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// How the proxy is set up on this node.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub node_name: String,
    /// NodePort / LoadBalancer traffic is accepted on these addresses (the node's addresses).
    pub node_ips: Vec<Ipv4Addr>,
    /// The whole cluster pod range (e.g. 10.42.0.0/16): traffic from outside it to a
    /// ClusterIP is masqueraded.
    pub cluster_cidr: String,
    /// The nft table Skiff owns ([`DEFAULT_TABLE`]; tests use their own name).
    pub table: String,
    /// The node's own DNS server: traffic to the kube-system/kube-dns Service's ClusterIP
    /// (port 53, UDP and TCP) is DNATed here instead of to endpoints. It must be an address
    /// pods can reach (e.g. the bridge's), not loopback.
    pub local_dns: Option<SocketAddr>,
    /// The node's activator (`crate::activator`): activated Services' VIPs and node ports
    /// are DNATed here while they have no ready endpoint. Reachable by pods and other nodes
    /// (the bridge's address).
    pub activator: Option<std::net::SocketAddrV4>,
}

/// How a pod's connection through a Service to a pod on the same bridge gets its reply
/// un-DNATed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeMode {
    /// `br_netfilter` passes bridged frames through the IP hooks, so conntrack sees the
    /// bridged reply. Client addresses are kept.
    BrNetfilter,
    /// No `br_netfilter`: such connections are masqueraded so the reply is routed through
    /// the node. Works everywhere; the endpoint sees the node's address as the client.
    Masquerade,
}

/// What one [`ServiceProxy::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// The first sync: the table's whole content was replaced.
    pub full: bool,
    /// Service ports with rules.
    pub service_ports: usize,
    /// Distinct endpoints (address and port) rules lead to.
    pub endpoints: usize,
    pub chains_written: usize,
    pub chains_deleted: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
    /// Whether nft ran at all (nothing changed: no transaction).
    pub applied: bool,
}

/// Errors of the Service proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the nft command was not found: install nftables (e.g. `apt-get install nftables`)")]
    NftMissing(#[source] std::io::Error),
    #[error("nft is not permitted to {action} (the agent needs CAP_NET_ADMIN): {stderr}")]
    NotPermitted {
        action: &'static str,
        stderr: String,
    },
    #[error("nft failed to {action}: {stderr}")]
    Nft {
        action: &'static str,
        stderr: String,
    },
    #[error("nft did not {action} within {after:?}")]
    Timeout {
        action: &'static str,
        after: Duration,
    },
    #[error("running nft to {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid proxy configuration: {0}")]
    Config(String),
}

/// Keeps a node's nft table in line with the cluster's Services and EndpointSlices.
#[derive(Debug)]
pub struct ServiceProxy {
    cfg: ProxyConfig,
    ctx: rules::RuleContext,
    bridge: BridgeMode,
    /// What this process last wrote; `None` until the first sync succeeded.
    last: Option<rules::Ruleset>,
    /// What a previous writer left, taken over by the first sync.
    existing: tx::Existing,
    /// Stale chains already flushed whose deletion has to wait for a later sync.
    pending: BTreeSet<String>,
    last_ports: BTreeSet<ServicePortName>,
}

impl ServiceProxy {
    /// Creates the table, or takes it over after an agent restart: its content is left in
    /// place (connections keep flowing) until the first [`sync`](Self::sync) replaces it in
    /// one transaction. Fails clearly when nft is missing or not permitted.
    pub async fn new(cfg: ProxyConfig) -> Result<Self, ProxyError> {
        validate_table(&cfg.table)?;
        let cluster_cidr = parse_cidr(&cfg.cluster_cidr)?;
        let existing = list_table(&cfg.table).await?;
        let add_table = serde_json::json!({"nftables": [{"add": {"table": {
            "family": "ip", "name": cfg.table}}}]});
        run_nft(
            &["-j", "-f", "-"],
            Some(add_table.to_string()),
            "create the table",
        )
        .await?;
        let bridge = ensure_bridge_netfilter().await;
        info!(
            table = %cfg.table,
            taken_over_chains = existing.chains.len(),
            bridge = ?bridge,
            "service proxy ready"
        );
        Ok(ServiceProxy {
            ctx: rules::RuleContext {
                cluster_cidr,
                node_ips: cfg.node_ips.clone(),
                masquerade_same_node: bridge == BridgeMode::Masquerade,
                activator: cfg.activator,
            },
            cfg,
            bridge,
            last: None,
            existing,
            pending: BTreeSet::new(),
            last_ports: BTreeSet::new(),
        })
    }

    /// How same-bridge pod traffic through a Service is handled on this node.
    pub fn bridge_mode(&self) -> BridgeMode {
        self.bridge
    }

    /// Brings the kernel to the desired state for these objects, incrementally: only the
    /// chains and map elements that changed are rewritten, in one nft transaction. On
    /// error the kernel keeps its previous state and the next sync retries the difference.
    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.cfg.table))]
    pub async fn sync(
        &mut self,
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> Result<SyncStats, ProxyError> {
        let plans = model::plan(services, slices, &self.cfg.node_name, self.cfg.local_dns);
        let desired = rules::build(&plans, &self.ctx);
        let tx = tx::diff(
            &self.cfg.table,
            self.last.as_ref(),
            &self.existing,
            &self.pending,
            &desired,
        );
        let mut stats = SyncStats {
            full: self.last.is_none(),
            service_ports: plans.len(),
            endpoints: plans
                .iter()
                .flat_map(|p| p.all_endpoints())
                .map(|e| e.addr)
                .collect::<BTreeSet<_>>()
                .len(),
            chains_written: tx.chains_written,
            chains_deleted: tx.deleted_chains.len(),
            elements_added: tx.elements_added,
            elements_deleted: tx.elements_deleted,
            applied: false,
        };
        if tx.is_empty() {
            debug!("nothing changed");
            return Ok(stats);
        }
        let result = run_nft(
            &["-j", "-f", "-"],
            Some(tx.to_json(true)),
            "apply the rules",
        )
        .await;
        self.pending = match result {
            Ok(_) => BTreeSet::new(),
            Err(err @ ProxyError::Nft { .. }) if !tx.chain_deletions.is_empty() => {
                // Maybe a kernel that still counts the chains as referenced (before 6.2):
                // apply without the deletions, delete them next time.
                debug!(error = %err, "retrying without deleting stale chains");
                run_nft(
                    &["-j", "-f", "-"],
                    Some(tx.to_json(false)),
                    "apply the rules",
                )
                .await?;
                stats.chains_deleted = 0;
                tx.deleted_chains.iter().cloned().collect()
            }
            Err(err) => return Err(err),
        };
        stats.applied = true;
        self.last = Some(desired);
        self.existing = tx::Existing::default();

        let ports: BTreeSet<ServicePortName> = plans.into_iter().map(|p| p.name).collect();
        if ports != self.last_ports {
            info!(
                service_ports = ports.len(),
                added = ports.difference(&self.last_ports).count(),
                removed = self.last_ports.difference(&ports).count(),
                "proxied service ports changed"
            );
            self.last_ports = ports;
        }
        debug!(?stats, "synced");
        Ok(stats)
    }

    /// Deletes the table (agent shutdown). Nothing else on the host is touched.
    pub async fn shutdown(self) -> Result<(), ProxyError> {
        let delete = serde_json::json!({"nftables": [{"delete": {"table": {
            "family": "ip", "name": self.cfg.table}}}]});
        match run_nft(
            &["-j", "-f", "-"],
            Some(delete.to_string()),
            "delete the table",
        )
        .await
        {
            Err(ProxyError::Nft { stderr, .. }) if is_not_found(&stderr) => Ok(()),
            Err(err) => Err(err),
            Ok(_) => {
                info!(table = %self.cfg.table, "service proxy table deleted");
                Ok(())
            }
        }
    }
}

fn validate_table(name: &str) -> Result<(), ProxyError> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ProxyError::Config(format!(
            "table name {name:?}: a letter, then letters, digits, '-' or '_' (at most 64)"
        )))
    }
}

/// `10.42.0.0/16` → (10.42.0.0, 16), host bits cleared.
fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), ProxyError> {
    let invalid = || {
        ProxyError::Config(format!(
            "cluster CIDR {cidr:?}: expected an IPv4 a.b.c.d/len"
        ))
    };
    let (addr, len) = cidr.split_once('/').ok_or_else(invalid)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
    let len: u8 = len.parse().map_err(|_| invalid())?;
    if len > 32 {
        return Err(invalid());
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ok((Ipv4Addr::from(u32::from(addr) & mask), len))
}

fn is_not_found(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

/// The names of the chains, sets and maps in the table (empty when there is no table).
async fn list_table(table: &str) -> Result<tx::Existing, ProxyError> {
    let out = match run_nft(
        &["-j", "list", "table", "ip", table],
        None,
        "list the table",
    )
    .await
    {
        Err(ProxyError::Nft { stderr, .. }) if is_not_found(&stderr) => {
            return Ok(tx::Existing::default())
        }
        other => other?,
    };
    let doc: serde_json::Value = serde_json::from_str(&out).map_err(|err| ProxyError::Nft {
        action: "list the table",
        stderr: format!("unreadable JSON: {err}"),
    })?;
    let mut existing = tx::Existing::default();
    for object in doc["nftables"].as_array().into_iter().flatten() {
        for (kind, names) in [
            ("chain", &mut existing.chains),
            ("set", &mut existing.sets),
            ("map", &mut existing.maps),
        ] {
            if let Some(name) = object[kind]["name"].as_str() {
                names.insert(name.to_owned());
            }
        }
    }
    Ok(existing)
}

/// Runs nft with `args`, feeding `stdin`, within [`DEFAULT_NFT_TIMEOUT`]; its stdout.
async fn run_nft(
    args: &[&str],
    stdin: Option<String>,
    action: &'static str,
) -> Result<String, ProxyError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ProxyError::NftMissing(source),
            _ => ProxyError::Io { action, source },
        })?;
    let input = child.stdin.take();
    let run = async move {
        let write = async move {
            if let (Some(mut pipe), Some(payload)) = (input, stdin) {
                pipe.write_all(payload.as_bytes()).await?;
                pipe.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (written, output) = tokio::join!(write, child.wait_with_output());
        let output = output?;
        // A write error with a failed nft is nft's error (it closed its input early).
        if output.status.success() {
            written?;
        }
        Ok::<_, std::io::Error>(output)
    };
    let output = tokio::time::timeout(DEFAULT_NFT_TIMEOUT, run)
        .await
        .map_err(|_| ProxyError::Timeout {
            action,
            after: DEFAULT_NFT_TIMEOUT,
        })?
        .map_err(|source| ProxyError::Io { action, source })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if stderr.contains("Operation not permitted") {
        Err(ProxyError::NotPermitted { action, stderr })
    } else {
        Err(ProxyError::Nft { action, stderr })
    }
}

/// Loads `br_netfilter` and turns `bridge-nf-call-iptables` on when possible; otherwise
/// says to masquerade (see [`BridgeMode`]).
async fn ensure_bridge_netfilter() -> BridgeMode {
    let path = Path::new(BRIDGE_NF_CALL_IPTABLES);
    if !path.exists() {
        let modprobe = Command::new("modprobe")
            .arg("br_netfilter")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(DEFAULT_MODPROBE_TIMEOUT, modprobe).await {
            Ok(Ok(status)) if status.success() => info!("loaded br_netfilter"),
            other => debug!(result = ?other, "could not load br_netfilter"),
        }
    }
    // Small sysctl files of the calling thread's network namespace: read and written in
    // place (a blocking-pool thread could sit in another namespace).
    match std::fs::read_to_string(path) {
        Ok(value) if value.trim() == "1" => BridgeMode::BrNetfilter,
        Ok(_) => match std::fs::write(path, "1") {
            Ok(()) => {
                info!("set net.bridge.bridge-nf-call-iptables=1");
                BridgeMode::BrNetfilter
            }
            Err(err) => {
                warn!(error = %err, "cannot enable bridge-nf-call-iptables: masquerading same-node pod traffic to Services");
                BridgeMode::Masquerade
            }
        },
        Err(err) => {
            warn!(error = %err, "no br_netfilter: masquerading same-node pod traffic to Services");
            BridgeMode::Masquerade
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_cidr_parses_and_clears_host_bits() {
        assert_eq!(
            parse_cidr("10.42.3.4/16").unwrap(),
            ("10.42.0.0".parse().unwrap(), 16)
        );
        assert_eq!(
            parse_cidr("0.0.0.0/0").unwrap(),
            ("0.0.0.0".parse().unwrap(), 0)
        );
        assert!(parse_cidr("10.42.0.0").is_err());
        assert!(parse_cidr("10.42.0.0/33").is_err());
        assert!(parse_cidr("fd00::/8").is_err());
    }

    #[test]
    fn table_names_are_checked() {
        assert!(validate_table("skiff").is_ok());
        assert!(validate_table("skiff-test_1").is_ok());
        assert!(validate_table("").is_err());
        assert!(validate_table("1abc").is_err());
        assert!(validate_table("a b").is_err());
    }
}
