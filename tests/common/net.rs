//! Helpers for the network tests (tests/network.rs, tests/network_mixed.rs): requests and
//! lookups made from the node, inside the cluster's network namespace.

use anyhow::Result;

use super::{wait_for, Skiff};

/// GET `url` from the node (inside the cluster's network namespace); fails unless 2xx.
pub fn fetch(s: &Skiff, url: &str) -> Result<String> {
    s.in_netns("curl", &["-sSf", "--max-time", "5", url])
}

/// GET `url` from the node until it answers `expected` (a Service's rules follow its endpoints
/// within moments of a rollout; an old pod may answer until then). Returns the last answer
/// seen in the error when it never does.
pub fn fetch_until(s: &Skiff, url: &str, expected: &str) -> Result<()> {
    let mut last = String::new();
    let seen = wait_for(&format!("{url} to answer {expected:?}"), || {
        match fetch(s, url) {
            Ok(body) if body == expected => return Ok(Some(())),
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        Ok(None)
    });
    seen.map_err(|e| e.context(format!("last answer: {last}")))
}

/// The IP of `pod` once it is Ready.
pub fn pod_ip(s: &Skiff, pod: &str) -> Result<String> {
    wait_for(&format!("pod {pod} Running with an IP"), || {
        // Not there yet (a controller creates it): keep waiting.
        let Ok(p) = s.json(&["get", "pod", pod, "-o", "json"]) else {
            return Ok(None);
        };
        let ready = super::is_ready(&p);
        let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
        Ok((ready && !ip.is_empty()).then_some(ip))
    })
}

/// The cluster IP of Service `svc`.
pub fn cluster_ip(s: &Skiff, svc: &str) -> Result<String> {
    let v = s.json(&["get", "svc", svc, "-o", "json"])?;
    Ok(v["spec"]["clusterIP"].as_str().unwrap_or("").to_string())
}
