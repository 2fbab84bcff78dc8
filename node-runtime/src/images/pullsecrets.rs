//! Registry credentials from a pod's `imagePullSecrets`, as the kubelet reads them: Secrets of
//! type `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`: `{"auths": {host: …}}`) or
//! `kubernetes.io/dockercfg` (`.dockercfg`: `{host: …}`), each entry with `username` +
//! `password` or a base64 `auth` of `user:password`. Keys may be `host`, `host:port`,
//! `https://host/v1/`, or a `*.domain` wildcard; the first secret (in the pod's order) with a
//! matching entry wins, as in the kubelet's keyring.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// A username and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Registry entries of one pull secret's data (`.dockerconfigjson` or `.dockercfg` bytes).
pub fn entries(data: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Credentials)> {
    let parsed = |key: &str| {
        data.get(key)
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
    };
    let auths = match (parsed(".dockerconfigjson"), parsed(".dockercfg")) {
        (Some(v), _) => v.get("auths").cloned().unwrap_or(Value::Null),
        (None, Some(v)) => v,
        (None, None) => Value::Null,
    };
    let Some(map) = auths.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(host, e)| credentials(e).map(|c| (host.clone(), c)))
        .collect()
}

fn credentials(e: &Value) -> Option<Credentials> {
    let field = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let (Some(u), Some(p)) = (field("username"), field("password")) {
        return Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(field("auth")?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
    })
}

/// The host (with port) a config key names: `https://r.example.com/v1/` → `r.example.com`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Whether config key `key` applies to registry `host` (`name[:port]`).
pub fn matches(key: &str, host: &str) -> bool {
    let k = key_host(key);
    if k.eq_ignore_ascii_case(host) {
        return true;
    }
    // Docker Hub is configured under its legacy index name.
    if host == "docker.io" && k == "index.docker.io" {
        return true;
    }
    let (k_name, k_port) = k.split_once(':').unwrap_or((k, ""));
    let (h_name, h_port) = host.split_once(':').unwrap_or((host, ""));
    if k_port != h_port {
        return false;
    }
    match k_name.strip_prefix("*.") {
        // A wildcard matches exactly one more label, as the kubelet's URL glob does.
        Some(domain) => h_name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(domain)),
        None => false,
    }
}

/// The credentials for `host` among the pod's secrets' entries (in order), if any.
pub fn for_host<'a>(
    secrets: impl IntoIterator<Item = &'a [(String, Credentials)]>,
    host: &str,
) -> Option<Credentials> {
    secrets
        .into_iter()
        .flat_map(|entries| entries.iter())
        .find(|(key, _)| matches(key, host))
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &str, json: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_string(), json.as_bytes().to_vec())])
    }

    #[test]
    fn reads_dockerconfigjson_and_dockercfg() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
        let e = entries(&data(
            ".dockerconfigjson",
            &format!(
                r#"{{"auths": {{"r.example.com": {{"auth": "{auth}"}}, "b.io": {{"username": "u", "password": "p"}}}}}}"#
            ),
        ));
        assert_eq!(e.len(), 2);
        let bob = e.iter().find(|(k, _)| k == "r.example.com").unwrap();
        assert_eq!(bob.1.username, "bob");
        assert_eq!(bob.1.password, "s3cret");
        let legacy = entries(&data(
            ".dockercfg",
            r#"{"https://old.io/v1/": {"username": "a", "password": "b"}}"#,
        ));
        assert_eq!(legacy[0].0, "https://old.io/v1/");
        assert!(entries(&data(".dockerconfigjson", "not json")).is_empty());
        assert!(entries(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn matches_hosts_ports_urls_and_wildcards() {
        assert!(matches("r.example.com", "r.example.com"));
        assert!(matches("https://r.example.com/v1/", "r.example.com"));
        assert!(matches("localhost:5000", "localhost:5000"));
        assert!(!matches("localhost", "localhost:5000"));
        assert!(matches("*.example.com", "r.example.com"));
        assert!(!matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("index.docker.io", "docker.io"));
        assert!(!matches("other.io", "r.example.com"));
    }

    #[test]
    fn first_matching_secret_wins() {
        let c = |u: &str| Credentials {
            username: u.into(),
            password: "x".into(),
        };
        let first = [("other.io".to_string(), c("a"))];
        let second = [("*.example.com".to_string(), c("b"))];
        let third = [("r.example.com".to_string(), c("c"))];
        let got = for_host([&first[..], &second[..], &third[..]], "r.example.com").unwrap();
        assert_eq!(got.username, "b");
        assert!(for_host([&first[..]], "r.example.com").is_none());
    }
}
