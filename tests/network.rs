//! The pod network, end to end: pod IPs for Wasm pods on the node bridge, the default HTTP
//! port, Services through the kernel data path, cluster DNS. Each test runs its cluster in a
//! network namespace of its own and sends traffic only inside it.

mod common;

use anyhow::{Context, Result};
use common::{guest, wait_for, Skiff};

/// GET `url` from the node (inside the cluster's network namespace); fails unless 2xx.
fn fetch(s: &Skiff, url: &str) -> Result<String> {
    s.in_netns("curl", &["-sSf", "--max-time", "5", url])
}

fn pod_ip(s: &Skiff, pod: &str) -> Result<String> {
    wait_for(&format!("pod {pod} Running with an IP"), || {
        let p = s.json(&["get", "pod", pod, "-o", "json"])?;
        let ready = common::is_ready(&p);
        let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
        Ok((ready && !ip.is_empty()).then_some(ip))
    })
}

#[test]
fn a_wasm_pod_gets_an_address_on_the_node_bridge_and_serves_8080_there() -> Result<()> {
    if !common::containerd_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    // No containerPort: the component serves 8080 and gets PORT=8080.
    s.ok(&[
        "run",
        "web",
        "--image=hello-wasm:v1",
        "--image-pull-policy=IfNotPresent",
    ])?;
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
    s.ok(&[
        "run",
        "web2",
        "--image=hello-wasm:v1",
        "--image-pull-policy=IfNotPresent",
    ])?;
    let ip2 = pod_ip(&s, "web2")?;
    assert_ne!(ip, ip2);
    assert!(fetch(&s, &format!("http://{ip2}:8080/"))?.contains("Hello"));

    // Deleting the pod takes its address off the bridge and gives it back.
    s.ok(&["delete", "pod", "web", "--wait=true"])?;
    wait_for("the address to be gone", || {
        let addrs = s.in_netns("ip", &["-4", "addr", "show", "dev", "skiff0"])?;
        Ok((!addrs.contains(&format!("{ip}/32")) && !store.exists()).then_some(()))
    })?;
    Ok(())
}
