//! Server-side apply of the project's objects, as `kubectl apply --server-side
//! --force-conflicts --field-manager skiff-deploy` would: `skiff deploy` owns what the project's
//! YAML says. A Job whose pod template changed cannot be updated, so it is replaced.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::Value;

use super::{Cluster, FIELD_MANAGER};

/// How long a replaced Job may take to disappear (its pods stop first: foreground deletion).
const DEFAULT_REPLACE_TIMEOUT: Duration = Duration::from_secs(60);

/// An object as applied.
pub struct Applied {
    pub kind: String,
    pub name: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub resource: ApiResource,
}

impl Applied {
    /// `deployment.apps/demo`, `service/demo`: kubectl's way.
    pub fn display(&self) -> String {
        display(&self.kind, &self.resource, &self.name)
    }

    /// An `Api` for this object's resource in its namespace.
    pub fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        api_for(client, &self.resource, self.namespace.as_deref())
    }
}

fn display(kind: &str, resource: &ApiResource, name: &str) -> String {
    let group = if resource.group.is_empty() {
        String::new()
    } else {
        format!(".{}", resource.group)
    };
    format!("{}{group}/{name}", kind.to_ascii_lowercase())
}

fn api_for(client: &kube::Client, resource: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

pub async fn apply_all(cluster: &Cluster, objects: &[Value]) -> Result<Vec<Applied>> {
    let mut applied = Vec::new();
    for object in objects {
        applied.push(apply_one(cluster, object).await?);
    }
    Ok(applied)
}

async fn apply_one(cluster: &Cluster, object: &Value) -> Result<Applied> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (resource, caps) = kube::discovery::pinned_kind(&cluster.client, &gvk)
        .await
        .with_context(|| format!("the cluster does not serve {kind} in {api_version} ({name})"))?;
    let namespace = match caps.scope {
        Scope::Namespaced => Some(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(&cluster.namespace)
                .to_string(),
        ),
        Scope::Cluster => None,
    };
    let api = api_for(&cluster.client, &resource, namespace.as_deref());
    let display = display(&kind, &resource, &name);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&name, &params, &Patch::Apply(object)).await {
        Err(kube::Error::Api(status))
            if kind == "Job" && status.code == 422 && status.message.contains("immutable") =>
        {
            eprintln!("replacing {display} (a Job's pod template cannot change)");
            replace(&api, &name).await?;
            api.patch(&name, &params, &Patch::Apply(object))
                .await
                .with_context(|| format!("applying {display}"))?;
        }
        Err(kube::Error::Api(status)) => bail!("applying {display}: {}", status.message),
        Err(e) => return Err(e).with_context(|| format!("applying {display}")),
        Ok(_) => {}
    }
    Ok(Applied {
        kind,
        name,
        namespace,
        resource,
    })
}

/// Deletes `name` with its pods (foreground) and waits until it is gone.
async fn replace(api: &Api<DynamicObject>, name: &str) -> Result<()> {
    api.delete(name, &DeleteParams::foreground())
        .await
        .with_context(|| format!("deleting the old {name}"))?;
    let deadline = tokio::time::Instant::now() + DEFAULT_REPLACE_TIMEOUT;
    while api.get_opt(name).await?.is_some() {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the old {name} was not deleted within {}s",
                DEFAULT_REPLACE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
