//! How objects are addressed in the store.

/// One object: `resource` is `group/plural` (`core/pods`, `apps/deployments`); cluster-scoped
/// objects have an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// `group/plural/namespace/name`: names and namespaces never contain `/`, so prefixes of
    /// this form select one resource, or one resource in one namespace.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.resource, self.namespace, self.name)
    }

    pub fn decode(s: &str) -> Option<ObjectKey> {
        let mut parts = s.splitn(4, '/');
        let group = parts.next()?;
        let plural = parts.next()?;
        let namespace = parts.next()?;
        let name = parts.next()?;
        Some(ObjectKey {
            resource: format!("{group}/{plural}"),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// A set of objects of one resource: all of them, or those of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScope {
    pub resource: String,
    pub namespace: Option<String>,
}

impl ListScope {
    pub fn new(resource: &str, namespace: Option<&str>) -> Self {
        ListScope {
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
        }
    }

    pub fn prefix(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/", self.resource, ns),
            None => format!("{}/", self.resource),
        }
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.resource == self.resource
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}
