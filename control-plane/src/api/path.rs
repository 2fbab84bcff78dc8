//! Parses `/api/v1/...` and `/apis/<group>/<version>/...` into the resource a request is about.

use super::resources::{self, ResourceDef};
use super::status::{ApiError, ApiResult};

/// What one request addresses.
#[derive(Debug)]
pub struct ResourcePath {
    pub def: &'static ResourceDef,
    /// The namespace in the path; `None` for cluster-scoped kinds and all-namespace lists.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// What follows `nodes/NAME/proxy/` (the node agent's path) or a pod's or Service's
    /// `proxy/` (the path requested from the pod).
    pub proxy_path: Option<String>,
}

/// `segments` are the path parts after `/api/v1` or `/apis/<group>/<version>`.
pub fn parse(group: &str, version: &str, segments: &[&str]) -> ApiResult<ResourcePath> {
    let unknown = |what: &str| {
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        ApiError::new(
            http::StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({what} in {gv})"),
        )
    };
    // `namespaces/NS/pods|services/NAME/proxy/PATH`: PATH may be anything, trailing `/` too.
    let proxied = segments.len() >= 5
        && segments[0] == "namespaces"
        && matches!(segments[2], "pods" | "services")
        && segments[4] == "proxy"
        && group.is_empty();
    let checked = if proxied { &segments[..5] } else { segments };
    if segments.is_empty() || checked.iter().any(|s| s.is_empty()) {
        return Err(unknown("empty path segment"));
    }
    if proxied {
        if let Some(def) = resources::find(group, version, segments[2]) {
            return Ok(ResourcePath {
                def,
                namespace: Some(segments[1].to_string()),
                name: Some(segments[3].to_string()),
                subresource: Some("proxy".into()),
                proxy_path: Some(segments[5..].join("/")),
            });
        }
    }
    if segments[0] == "namespaces" && segments.len() >= 3 {
        if let Some(def) = resources::find(group, version, segments[2]) {
            if def.namespaced {
                if segments.len() > 5 {
                    return Err(unknown(&segments.join("/")));
                }
                return Ok(ResourcePath {
                    def,
                    namespace: Some(segments[1].to_string()),
                    name: segments.get(3).map(|s| s.to_string()),
                    subresource: segments.get(4).map(|s| s.to_string()),
                    proxy_path: None,
                });
            }
        }
    }
    let def = resources::find(group, version, segments[0])
        .ok_or_else(|| unknown(&format!("resource {:?}", segments[0])))?;
    if def.plural == "nodes" && segments.len() >= 3 && segments[2] == "proxy" {
        return Ok(ResourcePath {
            def,
            namespace: None,
            name: Some(segments[1].to_string()),
            subresource: Some("proxy".into()),
            proxy_path: Some(segments[3..].join("/")),
        });
    }
    if segments.len() > 3 || (def.namespaced && segments.len() > 1) {
        return Err(unknown(&segments.join("/")));
    }
    Ok(ResourcePath {
        def,
        namespace: None,
        name: segments.get(1).map(|s| s.to_string()),
        subresource: segments.get(2).map(|s| s.to_string()),
        proxy_path: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_and_cluster_paths() {
        let p = parse("", "v1", &["namespaces", "default", "pods", "web", "log"]).unwrap();
        assert_eq!(p.def.plural, "pods");
        assert_eq!(p.namespace.as_deref(), Some("default"));
        assert_eq!(p.name.as_deref(), Some("web"));
        assert_eq!(p.subresource.as_deref(), Some("log"));
        let p = parse("", "v1", &["namespaces", "default", "status"]).unwrap();
        assert_eq!(p.def.plural, "namespaces");
        assert_eq!(p.name.as_deref(), Some("default"));
        assert_eq!(p.subresource.as_deref(), Some("status"));
        let p = parse("", "v1", &["pods"]).unwrap();
        assert!(p.namespace.is_none() && p.name.is_none());
        let p = parse("apps", "v1", &["namespaces", "x", "deployments"]).unwrap();
        assert_eq!(p.def.kind, "Deployment");
        assert!(parse("", "v1", &["pods", "x"]).is_err());
        assert!(parse("", "v1", &["nope"]).is_err());
        assert!(parse("apps", "v1", &["pods"]).is_err());
    }
}
