//! Several nodes on one machine, end to end: each "host" is a network namespace on a LAN (a
//! bridge in a namespace of its own, `LAN_PREFIX.0/24`); the server (control plane and its
//! embedded agent, node-a) runs on host A, `skiff agent`s on B and C. Each node gets a pod
//! range of the cluster's, routes to the others' ranges through their addresses (host-gw,
//! `proto 115`), and pods and hosts reach pods on other nodes. Traffic goes only to addresses
//! inside the namespaces a test creates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use common::{guest, wait_for, Agent, Host, Lan, Skiff};

/// The route protocol the agent marks its routes to other nodes' pod ranges with.
const ROUTE_PROTO: &str = "115";

/// Three nodes are nine processes' worth of work for a small machine: one cluster at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A cluster on a LAN: the server on host node-a, agents on other hosts. Fields drop in order:
/// agents, server, then the LAN.
struct Cluster {
    agents: BTreeMap<String, Agent>,
    s: Skiff,
    lan: Lan,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// A server on host node-a and agents on node-b and node-c, all three nodes Ready with
    /// their pod ranges; `None` (test skipped) when this machine cannot run network tests.
    fn start() -> Result<Option<Cluster>> {
        let Some(mut k) = Cluster::server_on(&["node-a", "node-b", "node-c"])? else {
            return Ok(None);
        };
        k.join("node-b")?;
        k.join("node-c")?;
        k.wait_ready(3)?;
        Ok(Some(k))
    }

    /// A LAN of `hosts` with the server (node-a, Ready with its range) on the first; no agents yet.
    fn server_on(hosts: &[&str]) -> Result<Option<Cluster>> {
        if !common::network_available() {
            return Ok(None);
        }
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let lan = Lan::new(hosts)?;
        let s = Skiff::start_in_host(&lan.hosts[0])?;
        let k = Cluster {
            agents: BTreeMap::new(),
            s,
            lan,
            _serial: serial,
        };
        k.wait_ready(1)?;
        Ok(Some(k))
    }

    /// Starts an agent on host `name` (node `name`).
    fn join(&mut self, name: &str) -> Result<()> {
        let agent = self.s.spawn_agent_in(self.lan.host(name))?;
        self.agents.insert(name.to_string(), agent);
        Ok(())
    }

    fn agent(&mut self, name: &str) -> &mut Agent {
        self.agents.get_mut(name).expect("an agent on that host")
    }

    /// Waits for `n` nodes Ready with pod ranges.
    fn wait_ready(&self, n: usize) -> Result<()> {
        wait_for(&format!("{n} nodes Ready with pod ranges"), || {
            Ok((self.pod_cidrs()?.len() == n).then_some(()))
        })
        .map_err(|e| self.explain(e))
    }

    fn host(&self, name: &str) -> &Host {
        self.lan.host(name)
    }

    /// Ready nodes with a pod range: name → podCIDR.
    fn pod_cidrs(&self) -> Result<BTreeMap<String, String>> {
        let nodes = self.s.json(&["get", "nodes"])?;
        Ok(nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| common::is_ready(n))
            .filter_map(|n| {
                let name = n["metadata"]["name"].as_str()?;
                let cidr = n["spec"]["podCIDR"].as_str()?;
                Some((name.to_string(), cidr.to_string()))
            })
            .collect())
    }

    /// `err` with the three nodes' logs, for a failure that needs them.
    fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        let mut msg = format!("{err:#}\n--- server (node-a) log:\n{}", tail(&self.s.log()));
        for (name, agent) in &self.agents {
            msg.push_str(&format!("\n--- {name} log:\n{}", tail(&agent.log())));
        }
        anyhow::anyhow!(msg)
    }

    /// A hello-wasm pod named `name` on node `node`; returns its IP once it is Ready.
    fn wasm_pod_on(&self, name: &str, node: &str) -> Result<String> {
        self.s.apply(
            &format!("{name}.yaml"),
            &format!(
                r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: app
    image: hello-wasm:v1
    imagePullPolicy: IfNotPresent
"#
            ),
        )?;
        let (ip, on) = wait_for(&format!("pod {name} Ready with an IP"), || {
            let p = self.s.json(&["get", "pod", name])?;
            let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
            let on = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
            Ok((common::is_ready(&p) && !ip.is_empty()).then_some((ip, on)))
        })
        .map_err(|e| self.explain(e))?;
        assert_eq!(on, node, "pod {name} runs where it was pinned");
        Ok(ip)
    }
}

/// The last lines of a log, without its colours (a whole one drowns the failure).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut chars = lines[lines.len().saturating_sub(40)..]
        .join("\n")
        .into_bytes()
        .into_iter();
    let mut kept = Vec::new();
    // Drop ANSI escapes (`ESC [ … letter`).
    while let Some(b) = chars.next() {
        if b == 0x1b {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            kept.push(b);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// `ip -4 route show proto 115` on `host`: destination → gateway.
fn agent_routes(host: &Host) -> Result<BTreeMap<String, String>> {
    let out = host.run("ip", &["-4", "route", "show", "proto", ROUTE_PROTO])?;
    let mut routes = BTreeMap::new();
    for line in out.lines() {
        // `10.42.1.0/24 via 192.168.77.2 dev eth0`
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [dst, "via", gw, "dev", "eth0", ..] => {
                routes.insert(dst.to_string(), gw.to_string());
            }
            _ => bail!("unexpected route on {}: {line:?}", host.name),
        }
    }
    Ok(routes)
}

/// Whether IPv4 address `ip` is inside `cidr` (`a.b.c.d/n`).
fn in_range(ip: &str, cidr: &str) -> Result<bool> {
    let (net, len) = cidr.split_once('/').context("a CIDR")?;
    let len: u32 = len.parse()?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    let ip = u32::from(ip.parse::<std::net::Ipv4Addr>()?);
    let net = u32::from(net.parse::<std::net::Ipv4Addr>()?);
    Ok(ip & mask == net & mask)
}

/// GET `url` on `host` with curl; fails unless 2xx.
fn curl(host: &Host, url: &str) -> Result<String> {
    host.run("curl", &["-sSf", "--max-time", "5", url])
        .with_context(|| format!("GET {url} on {}", host.name))
}

/// The pod at `via` fetches `url` itself (its Wasm component's outgoing request).
fn fetch_through(host: &Host, via: &str, url: &str) -> Result<String> {
    curl(host, &format!("http://{via}:8080/fetch?url={url}"))
}

#[test]
fn three_nodes_get_distinct_pod_ranges_and_routes_to_each_other() -> Result<()> {
    let Some(k) = Cluster::start()? else {
        return Ok(());
    };
    let cidrs = k.pod_cidrs()?;
    let distinct: BTreeSet<&String> = cidrs.values().collect();
    assert_eq!(
        distinct.len(),
        3,
        "each node has a range of its own: {cidrs:?}"
    );
    for cidr in cidrs.values() {
        assert!(
            cidr.starts_with("10.42.") && cidr.ends_with(".0/24"),
            "{cidr} is a /24 of the cluster CIDR"
        );
    }
    let ip_of = |node: &str| k.host(node).ip.clone();
    for host in &k.lan.hosts {
        // The node's bridge holds the first address of its own range.
        let own = &cidrs[&host.name];
        let gateway = own.replace(".0/24", ".1/24");
        let addrs = host.run("ip", &["-4", "addr", "show", "dev", "skiff0"])?;
        assert!(addrs.contains(&gateway), "{}: {addrs}", host.name);
        // Routes to the two other ranges, through the other nodes' addresses, and nothing else.
        let want: BTreeMap<String, String> = cidrs
            .iter()
            .filter(|(node, _)| **node != host.name)
            .map(|(node, cidr)| (cidr.clone(), ip_of(node)))
            .collect();
        wait_for(&format!("routes on {}", host.name), || {
            Ok((agent_routes(host)? == want).then_some(()))
        })
        .map_err(|e| {
            k.explain(anyhow::anyhow!(
                "{e}: {} has {:?}, wants {want:?}",
                host.name,
                agent_routes(host)
            ))
        })?;
    }
    Ok(())
}

#[test]
fn pods_and_hosts_reach_wasm_pods_on_other_nodes() -> Result<()> {
    let Some(k) = Cluster::start()? else {
        return Ok(());
    };
    k.s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    let cidrs = k.pod_cidrs()?;
    let mut ips = BTreeMap::new();
    for (pod, node) in [
        ("web-a", "node-a"),
        ("web-b", "node-b"),
        ("web-c", "node-c"),
    ] {
        let ip = k.wasm_pod_on(pod, node)?;
        let range = &cidrs[node];
        assert!(
            in_range(&ip, range)?,
            "{pod}'s address {ip} is in {node}'s range {range}"
        );
        ips.insert(node, ip);
    }
    let (a, b, c) = (k.host("node-a"), k.host("node-b"), k.host("node-c"));
    // Pod to pod across nodes, both ways: the pod on A fetches from B's and C's, theirs from A's,
    // and C's from B's (a path A is not on).
    for (host, from, to, answer) in [
        (a, "node-a", "node-b", "web-b"),
        (a, "node-a", "node-c", "web-c"),
        (b, "node-b", "node-a", "web-a"),
        (c, "node-c", "node-a", "web-a"),
        (c, "node-c", "node-b", "web-b"),
    ] {
        let url = format!("http://{}:8080/env/HOSTNAME", ips[to]);
        let got = fetch_through(host, &ips[from], &url)
            .map_err(|e| k.explain(e.context(format!("the pod on {from} fetching {url}"))))?;
        assert_eq!(got, answer, "the pod on {from} reached the pod on {to}");
    }
    // Each host reaches the pods on the two other nodes (through its routes).
    for host in [a, b, c] {
        for (node, ip) in &ips {
            if **node == host.name {
                continue;
            }
            let url = format!("http://{ip}:8080/env/HOSTNAME");
            let got = curl(host, &url).map_err(|e| k.explain(e))?;
            assert_eq!(got, format!("web-{}", &node[5..]), "{} → {url}", host.name);
        }
    }
    Ok(())
}

#[test]
fn a_deleted_node_loses_its_routes_and_a_stopped_agent_cleans_up_its_host() -> Result<()> {
    let Some(mut k) = Cluster::start()? else {
        return Ok(());
    };
    k.s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    let cidrs = k.pod_cidrs()?;
    let c_range = cidrs["node-c"].clone();
    // A pod on C, so C's bridge holds a /32 the agent must take away with it.
    let ip = k.wasm_pod_on("web-c", "node-c")?;
    let c = k.host("node-c");
    let addrs = c.run("ip", &["-4", "addr", "show", "dev", "skiff0"])?;
    assert!(addrs.contains(&format!("{ip}/32")), "{addrs}");
    for node in ["node-a", "node-b"] {
        let host = k.host(node);
        wait_for(&format!("{node}'s route to node-c's pods"), || {
            Ok(agent_routes(host)?.contains_key(&c_range).then_some(()))
        })
        .map_err(|e| k.explain(e))?;
    }
    wait_for("node-c's routes to the others", || {
        Ok((agent_routes(k.host("node-c"))?.len() == 2).then_some(()))
    })
    .map_err(|e| k.explain(e))?;

    // Stopping C's agent leaves nothing of the pod network on C.
    k.agent("node-c").stop().map_err(|e| k.explain(e))?;
    let c = k.host("node-c");
    let links = c.run("ip", &["-o", "link", "show"])?;
    assert!(!links.contains("skiff0"), "the bridge is gone: {links}");
    let addrs = c.run("ip", &["-4", "-o", "addr", "show"])?;
    assert!(
        !addrs.contains("10.42."),
        "no pod addresses are left: {addrs}"
    );
    assert_eq!(
        agent_routes(c)?,
        BTreeMap::new(),
        "no routes to other nodes are left"
    );

    // The others keep routing to C while its Node exists (its pods may come back), and drop
    // the route once the Node is deleted; their routes to each other stay.
    assert!(agent_routes(k.host("node-a"))?.contains_key(&c_range));
    k.s.ok(&["delete", "node", "node-c"])?;
    for (node, other) in [("node-a", "node-b"), ("node-b", "node-a")] {
        let host = k.host(node);
        let want: BTreeMap<String, String> =
            [(cidrs[other].clone(), k.host(other).ip.clone())].into();
        wait_for(
            &format!("{node} to drop the route to node-c's pods"),
            || Ok((agent_routes(host)? == want).then_some(())),
        )
        .map_err(|e| k.explain(e))?;
    }

    // Stopping the server takes its embedded agent's pod network off host A too.
    k.s.stop()?;
    let a = k.host("node-a");
    let links = a.run("ip", &["-o", "link", "show"])?;
    assert!(!links.contains("skiff0"), "the bridge is gone: {links}");
    assert_eq!(agent_routes(a)?, BTreeMap::new());
    Ok(())
}

#[test]
fn a_node_that_cannot_be_routed_to_does_not_hold_up_routes_to_the_others() -> Result<()> {
    let Some(mut k) = Cluster::server_on(&["node-a", "node-b"])? else {
        return Ok(());
    };
    // A Node no agent runs, at an address off the LAN (no host has a route to it, so the
    // kernel refuses a route through it; no packet is ever sent there). It gets its range
    // before node-b joins, so its range sorts before node-b's.
    k.s.apply(
        "ghost.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: ghost}\n",
    )?;
    let ghost_range = wait_for("a range for the ghost node", || {
        let n = k.s.json(&["get", "node", "ghost"])?;
        Ok(n["spec"]["podCIDR"].as_str().map(str::to_string))
    })?;
    k.s.ok(&[
        "patch",
        "node",
        "ghost",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"addresses":[{"type":"InternalIP","address":"192.168.78.9"}]}}"#,
    ])?;
    k.join("node-b")?;
    k.wait_ready(2)?;
    let cidrs = k.pod_cidrs()?;
    let (a, b) = (k.host("node-a"), k.host("node-b"));
    assert!(
        ghost_range < cidrs["node-b"],
        "{ghost_range} sorts before node-b's {}",
        cidrs["node-b"]
    );
    for (host, other) in [(a, b), (b, a)] {
        let want: BTreeMap<String, String> =
            [(cidrs[&other.name].clone(), other.ip.clone())].into();
        wait_for(
            &format!("{}'s route to {}'s pods", host.name, other.name),
            || Ok((agent_routes(host)? == want).then_some(())),
        )
        .map_err(|e| {
            k.explain(anyhow::anyhow!(
                "{e}: {} has {:?}",
                host.name,
                agent_routes(host)
            ))
        })?;
    }
    Ok(())
}

#[test]
fn a_pod_on_one_node_reaches_a_service_whose_pods_run_on_the_others() -> Result<()> {
    let Some(k) = Cluster::start()? else {
        return Ok(());
    };
    k.s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    // Two replicas, one on B and one on C (never A, never both on one node).
    k.s.apply(
        "web.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: kubernetes.io/hostname, operator: In, values: [node-b, node-c]}
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: app
        image: hello-wasm:v1
        imagePullPolicy: IfNotPresent
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#,
    )?;
    let web_pods = wait_for("both web pods Ready on node-b and node-c", || {
        let pods = k.s.json(&["get", "pods", "-l", "app=web"])?;
        let ready: BTreeMap<String, String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| common::is_ready(p))
            .filter_map(|p| {
                Some((
                    p["spec"]["nodeName"].as_str()?.to_string(),
                    p["metadata"]["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        Ok((ready.len() == 2).then_some(ready))
    })
    .map_err(|e| k.explain(e))?;
    assert_eq!(
        web_pods.keys().map(String::as_str).collect::<Vec<_>>(),
        ["node-b", "node-c"]
    );
    let client = k.wasm_pod_on("client", "node-a")?;
    let a = k.host("node-a");
    let url = "http://web.default.svc.cluster.local/env/HOSTNAME";
    // The nodes' Service rules, routes and DNS follow the endpoints within moments of the pods
    // becoming Ready: the first answer may take that long.
    wait_for("the Service answering through node-a", || {
        Ok(fetch_through(a, &client, url).ok())
    })
    .map_err(|e| k.explain(e))?;
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let got = fetch_through(a, &client, url).map_err(|e| k.explain(e))?;
        assert!(
            web_pods.values().any(|p| *p == got),
            "{got:?} is one of the Service's pods {web_pods:?}"
        );
        seen.insert(got);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "both of the Service's pods (on node-b and node-c) answered: {seen:?}"
    );
    Ok(())
}
