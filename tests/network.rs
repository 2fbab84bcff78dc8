//! The pod network, end to end: pod IPs for Wasm pods on the node bridge, the default HTTP
//! port, Services through the kernel data path, cluster DNS. Each test runs its cluster in a
//! network namespace of its own and sends traffic only inside it.

mod common;

use anyhow::{Context, Result};
use common::net::{cluster_ip, fetch, pod_ip};
use common::{guest, wait_for, Skiff};

#[test]
fn a_wasm_pod_gets_an_address_on_the_node_bridge_and_serves_8080_there() -> Result<()> {
    let Some(s) = hello_cluster()? else {
        return Ok(());
    };
    // No containerPort: the component serves 8080 and gets PORT=8080.
    run_hello(&s, "web")?;
    let ip = pod_ip(&s, "web")?;
    assert!(
        ip.starts_with("10.42.0."),
        "pod IP {ip} is in the node's range"
    );
    let body = fetch(&s, &format!("http://{ip}:8080/"))?;
    assert!(body.contains("Hello from Skiff!"), "{body}");
    assert_eq!(fetch(&s, &format!("http://{ip}:8080/env/PORT"))?, "8080");
    assert_eq!(fetch(&s, &format!("http://{ip}:8080/env/HOSTNAME"))?, "web");
    let addrs = s.in_netns("ip", &["-4", "addr", "show", "dev", "skiff0"])?;
    assert!(addrs.contains(&format!("{ip}/32")), "{addrs}");
    assert!(addrs.contains("10.42.0.1/24"), "{addrs}");
    let store = s.data_dir().join("agent/cni/ipam/skiff").join(&ip);
    let owner = std::fs::read_to_string(&store).context("the address is reserved")?;
    assert!(owner.starts_with("skiff-wasm-"), "{owner}");

    // A second pod gets another address; both answer.
    run_hello(&s, "web2")?;
    let ip2 = pod_ip(&s, "web2")?;
    assert_ne!(ip, ip2);
    assert!(fetch(&s, &format!("http://{ip2}:8080/"))?.contains("Hello"));
    // A Wasm pod's outgoing request reaches another pod by its address.
    let via = fetch(
        &s,
        &format!("http://{ip2}:8080/fetch?url=http://{ip}:8080/env/HOSTNAME"),
    )?;
    assert_eq!(via, "web");

    // Deleting the pod takes its address off the bridge and gives it back.
    s.ok(&["delete", "pod", "web", "--wait=true"])?;
    wait_for("the address to be gone", || {
        let addrs = s.in_netns("ip", &["-4", "addr", "show", "dev", "skiff0"])?;
        Ok((!addrs.contains(&format!("{ip}/32")) && !store.exists()).then_some(()))
    })?;
    Ok(())
}

/// A networked cluster with the hello component imported (`None`: no containerd here, the
/// tests skip; CI requires it).
fn hello_cluster() -> Result<Option<Skiff>> {
    if !common::containerd_available() {
        return Ok(None);
    }
    let s = Skiff::start_networked()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    Ok(Some(s))
}

/// `kubectl run NAME --image=hello-wasm:v1`: a Wasm pod serving 8080.
fn run_hello(s: &Skiff, name: &str) -> Result<()> {
    s.ok(&[
        "run",
        name,
        "--image=hello-wasm:v1",
        "--image-pull-policy=IfNotPresent",
    ])?;
    Ok(())
}

/// `dig +short` against the node's cluster DNS (on the bridge address).
fn dig(s: &Skiff, args: &[&str]) -> Result<String> {
    let mut all = vec!["@10.42.0.1", "+short", "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    s.in_netns("dig", &all)
}

#[test]
fn cluster_dns_names_statefulset_pods_srv_ports_and_external_names() -> Result<()> {
    let Some(s) = hello_cluster()? else {
        return Ok(());
    };
    s.apply(
        "web.yaml",
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: hello-wasm:v1
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 8080}]
"#,
    )?;
    let ip0 = pod_ip(&s, "web-0")?;
    let ip1 = pod_ip(&s, "web-1")?;
    // Each StatefulSet pod has a name under the headless Service.
    let a = wait_for("web-0's DNS name", || {
        let out = dig(&s, &["web-0.web.default.svc.cluster.local"])?;
        Ok((!out.trim().is_empty()).then_some(out))
    })?;
    assert_eq!(a.trim(), ip0);
    // The headless Service's name answers all ready pods (once the node's zone has the
    // second pod's endpoint: it follows the EndpointSlice within moments).
    let all = wait_for("both pods in web's DNS answer", || {
        let out = dig(&s, &["web.default.svc.cluster.local"])?;
        Ok((out.contains(&ip0) && out.contains(&ip1)).then_some(out))
    })
    .or_else(|_| dig(&s, &["web.default.svc.cluster.local"]))?;
    assert!(all.contains(&ip0) && all.contains(&ip1), "{all}");
    // SRV for the named port lists each pod by name, port 8080.
    let srv = dig(&s, &["SRV", "_http._tcp.web.default.svc.cluster.local"])?;
    assert!(
        srv.contains("8080 web-0.web.default.svc.cluster.local."),
        "{srv}"
    );
    assert!(
        srv.contains("8080 web-1.web.default.svc.cluster.local."),
        "{srv}"
    );
    // ExternalName: a CNAME.
    let cname = dig(&s, &["CNAME", "ext.default.svc.cluster.local"])?;
    assert_eq!(cname.trim(), "web.default.svc.cluster.local.");
    // PTR of a pod address behind the headless Service.
    let ptr = dig(&s, &["-x", &ip1])?;
    assert!(
        ptr.contains("web-1.web.default.svc.cluster.local."),
        "{ptr}"
    );
    // Unknown cluster names: NXDOMAIN.
    let nx = s.in_netns(
        "dig",
        &[
            "@10.42.0.1",
            "+time=2",
            "+tries=1",
            "nope.default.svc.cluster.local",
        ],
    )?;
    assert!(nx.contains("NXDOMAIN"), "{nx}");
    // A Wasm guest resolves short names through its namespace's search list.
    let via = fetch(
        &s,
        &format!("http://{ip0}:8080/fetch?url=http://web-1.web:8080/env/HOSTNAME"),
    )?;
    assert_eq!(via, "web-1");
    let via_alias = fetch(
        &s,
        &format!("http://{ip0}:8080/fetch?url=http://ext:8080/env/HOSTNAME"),
    )?;
    assert!(via_alias == "web-0" || via_alias == "web-1", "{via_alias}");
    Ok(())
}

#[test]
fn kubectl_run_and_expose_serve_a_component() -> Result<()> {
    let Some(s) = hello_cluster()? else {
        return Ok(());
    };
    run_hello(&s, "web")?;
    pod_ip(&s, "web")?;
    s.ok(&["expose", "pod", "web", "--port=80", "--target-port=8080"])?;
    let vip = cluster_ip(&s, "web")?;
    let body = wait_for("the Service to answer", || {
        Ok(fetch(&s, &format!("http://{vip}/")).ok())
    })?;
    assert!(body.contains("Hello from Skiff!"), "{body}");
    // The API server's proxy subresources reach the pod and the Service's endpoint.
    let via_pod = s.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:8080/proxy/x",
    ])?;
    assert!(
        via_pod.contains("Hello from Skiff!") && via_pod.contains("path=/x"),
        "{via_pod}"
    );
    let via_svc = s.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/http:web:80/proxy/",
    ])?;
    assert!(via_svc.contains("path=/"), "{via_svc}");
    // A Service with no ready endpoint refuses at once.
    s.ok(&["create", "service", "clusterip", "empty", "--tcp=80:8080"])?;
    let err = s.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/empty/proxy/",
    ])?;
    assert!(err.contains("no endpoints available"), "{err}");
    let empty = cluster_ip(&s, "empty")?;
    wait_for("the empty Service to be programmed", || {
        let rules = s.in_netns("nft", &["list", "table", "ip", "skiff"])?;
        Ok(rules.contains(&empty).then_some(()))
    })?;
    let started = std::time::Instant::now();
    let out = s
        .command("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{empty}/")])
        .output()?;
    // curl's exit 7: the connection was refused (a silently dropped one would be 28, timeout).
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{err}"
    );
    // Deleting the Services and the pod leaves no rule and no address behind.
    s.ok(&["delete", "svc", "web", "empty"])?;
    s.ok(&["delete", "pod", "web", "--wait=true"])?;
    wait_for("rules and address gone", || {
        let rules = s.in_netns("nft", &["list", "table", "ip", "skiff"])?;
        let addrs = s.in_netns("ip", &["-4", "addr", "show", "dev", "skiff0"])?;
        Ok(
            (!rules.contains(&vip) && !rules.contains(&empty) && !addrs.contains("/32"))
                .then_some(()),
        )
    })?;
    let gone = s.in_netns(
        "dig",
        &[
            "@10.42.0.1",
            "+time=2",
            "+tries=1",
            "web.default.svc.cluster.local",
        ],
    )?;
    assert!(gone.contains("NXDOMAIN"), "no DNS record is left: {gone}");
    Ok(())
}

#[test]
fn a_wasm_guest_s_sockets_leave_from_its_pod_address_and_resolve_cluster_names() -> Result<()> {
    let Some(s) = hello_cluster()? else {
        return Ok(());
    };
    for pod in ["client", "server"] {
        run_hello(&s, pod)?;
    }
    let client = pod_ip(&s, "client")?;
    let server = pod_ip(&s, "server")?;
    s.ok(&["expose", "pod", "server", "--port=80", "--target-port=8080"])?;
    let vip = cluster_ip(&s, "server")?;
    // TCP through wasi:sockets: the Service's short name resolves through the cluster zone
    // (ip-name-lookup), the connection reaches the server and leaves from the client's address.
    let body = wait_for("the Service by name over wasi:sockets", || {
        Ok(fetch(
            &s,
            &format!("http://{client}:8080/tcp?addr=server:80&path=/env/HOSTNAME"),
        )
        .ok())
    })?;
    assert_eq!(body, format!("local={client}\nserver"));
    // Straight to the server pod's address.
    let direct = fetch(
        &s,
        &format!("http://{client}:8080/tcp?addr={server}:8080&path=/env/HOSTNAME"),
    )?;
    assert_eq!(direct, format!("local={client}\nserver"));
    // UDP: a DNS query to the kube-dns Service's address, from the client's address.
    let dns = fetch(
        &s,
        &format!(
            "http://{client}:8080/dns?server=10.43.0.10:53&name=server.default.svc.cluster.local"
        ),
    )?;
    assert_eq!(dns, format!("local={client}\n{vip}\n"));
    // A name that does not exist fails the lookup instead of reaching anything.
    let missing = s.in_netns(
        "curl",
        &[
            "-sS",
            "--max-time",
            "5",
            &format!("http://{client}:8080/tcp?addr=nope.default.svc.cluster.local:80"),
        ],
    )?;
    assert!(
        missing.starts_with("nope.default.svc.cluster.local:80:"),
        "{missing}"
    );
    Ok(())
}

/// GETs `url` `n` times from the node; the bodies of the requests that succeeded.
fn fetch_n(s: &Skiff, url: &str, n: usize) -> Result<Vec<String>> {
    let script = format!("for i in $(seq {n}); do curl -s --max-time 2 {url}; echo; done");
    Ok(s.in_netns("sh", &["-c", &script])?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[test]
fn nodeports_follow_readiness_and_termination() -> Result<()> {
    let Some(s) = hello_cluster()? else {
        return Ok(());
    };
    // Each pod is ready while its file exists on the node (hostPath), so the test can make
    // one fail its readiness probe.
    let ready_dir = s.data_dir().join("ready");
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: r}\nspec:\n  type: NodePort\n  selector: {app: r}\n  ports: [{port: 80, targetPort: 8080}]\n",
    );
    for pod in ["a", "b"] {
        std::fs::create_dir_all(ready_dir.join(pod))?;
        std::fs::write(ready_dir.join(pod).join("ok"), "ok")?;
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: {pod}, labels: {{app: r}}}}
spec:
  terminationGracePeriodSeconds: 30
  volumes: [{{name: ready, hostPath: {{path: {dir}}}}}]
  containers:
  - name: app
    image: hello-wasm:v1
    imagePullPolicy: IfNotPresent
    volumeMounts: [{{name: ready, mountPath: /ready}}]
    readinessProbe: {{httpGet: {{path: "/file?path=/ready/ok", port: 8080}}, periodSeconds: 1, failureThreshold: 1}}
"#,
            dir = ready_dir.join(pod).display()
        ));
    }
    s.apply("r.yaml", &yaml)?;
    pod_ip(&s, "a")?;
    pod_ip(&s, "b")?;
    let svc = s.json(&["get", "svc", "r", "-o", "json"])?;
    let node_port = svc["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .context("nodePort")?;
    let url = format!("http://{}:{node_port}/env/HOSTNAME", common::NODE_IP);
    // Through the NodePort on the node's address, both pods answer.
    let both = wait_for("both pods behind the NodePort", || {
        let seen = fetch_n(&s, &url, 20)?;
        Ok((seen.iter().any(|h| h == "a") && seen.iter().any(|h| h == "b")).then_some(seen))
    })?;
    assert!(both.iter().all(|h| h == "a" || h == "b"), "{both:?}");
    // b fails its readiness probe: it stops getting traffic.
    std::fs::remove_file(ready_dir.join("b").join("ok"))?;
    let started = std::time::Instant::now();
    wait_for("traffic to leave the unready pod", || {
        let seen = fetch_n(&s, &url, 10)?;
        Ok((seen.len() == 10 && seen.iter().all(|h| h == "a")).then_some(()))
    })?;
    eprintln!("unready pod out of rotation after {:?}", started.elapsed());
    // Ready again, then a is deleted: while it terminates it gets no new connections.
    std::fs::write(ready_dir.join("b").join("ok"), "ok")?;
    wait_for("b back in rotation", || {
        Ok(fetch_n(&s, &url, 20)?
            .iter()
            .any(|h| h == "b")
            .then_some(()))
    })?;
    s.ok(&["delete", "pod", "a", "--wait=false"])?;
    wait_for("new connections to go to b only", || {
        let seen = fetch_n(&s, &url, 10)?;
        Ok((seen.len() == 10 && seen.iter().all(|h| h == "b")).then_some(()))
    })?;
    let p = s.json(&["get", "pod", "a", "-o", "json"]);
    if let Ok(p) = p {
        assert!(
            p["metadata"]["deletionTimestamp"].is_string(),
            "a is terminating"
        );
    }
    Ok(())
}

#[test]
fn without_net_admin_wasm_pods_serve_on_host_ports_and_the_node_says_why() -> Result<()> {
    if !common::containerd_available() {
        return Ok(());
    }
    let s = Skiff::start_without_net_admin()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    s.apply(
        "hp.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hp}
spec:
  containers:
  - name: app
    image: hello-wasm:v1
    imagePullPolicy: IfNotPresent
    ports: [{containerPort: 8080, hostPort: 18080}]
"#,
    )?;
    wait_for("hp Ready", || {
        Ok(common::is_ready(&s.json(&["get", "pod", "hp", "-o", "json"])?).then_some(()))
    })?;
    let body = fetch(&s, &format!("http://{}:18080/", common::NODE_IP))?;
    assert!(body.contains("Hello from Skiff!"), "{body}");
    let node = &s.json(&["get", "nodes", "-o", "json"])?["items"][0];
    let cond = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "NetworkUnavailable"))
        .cloned()
        .context("a NetworkUnavailable condition")?;
    assert_eq!(cond["status"], "True");
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or("")
            .contains("CAP_NET_ADMIN"),
        "{cond}"
    );
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .context("Ready")?;
    assert_eq!(ready["status"], "True", "the node still runs Wasm pods");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=NetworkUnavailable",
    ])?;
    assert!(events.contains("CAP_NET_ADMIN"), "{events}");
    assert!(s.log().contains("CAP_NET_ADMIN"));
    Ok(())
}
