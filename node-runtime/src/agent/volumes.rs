//! What a container sees besides its image: environment variables (literal, from ConfigMaps
//! and Secrets, and the downward API) and volumes materialized on the node (emptyDir,
//! configMap, secret, hostPath, persistentVolumeClaim), mounted into the component as WASI
//! preopened directories. A persistentVolumeClaim is node-local storage: the directory
//! `<agent data dir>/volumes/<namespace>/<claimName>_<claim uid>/`, outside the pod's own
//! directory, so it outlives the pod and every pod of the same claim on this node sees the same
//! data; a claim deleted and created again under the same name starts empty (the old
//! directory is removed when the new claim is first mounted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolumeClaim, Pod, Secret};
use kube::api::Api;

/// A directory mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub guest_path: String,
    pub read_only: bool,
}

/// A container could not be configured; the message goes into `CreateContainerConfigError`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub(super) async fn config_map(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<ConfigMap>, ConfigError> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ConfigError(format!("cannot read configmap \"{name}\": {e}")))
}

pub(super) async fn secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<Secret>, ConfigError> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ConfigError(format!("cannot read secret \"{name}\": {e}")))
}

/// The node-local directory of claim `name` (uid `uid`) in `ns`, given the pod's directory
/// (`<data dir>/pods/<pod uid>`): `<data dir>/volumes/<ns>/<name>_<uid>`.
fn claim_dir(pod_dir: &Path, ns: &str, name: &str, uid: &str) -> Result<PathBuf, ConfigError> {
    let safe = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
    if !safe(ns) || !safe(name) || !safe(uid) {
        return Err(ConfigError(format!(
            "persistentVolumeClaim {name:?} in namespace {ns:?}: not a valid name"
        )));
    }
    let data_dir = pod_dir.parent().and_then(Path::parent).ok_or_else(|| {
        ConfigError(format!(
            "pod directory {} has no data dir",
            pod_dir.display()
        ))
    })?;
    Ok(data_dir
        .join("volumes")
        .join(ns)
        .join(format!("{name}_{uid}")))
}

/// Removes the directories of earlier claims named `name` (other uids) next to `current`.
fn remove_stale_claim_dirs(current: &Path, name: &str) {
    let (Some(parent), Some(keep)) = (current.parent(), current.file_name()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!("{name}_");
    for e in entries.flatten() {
        let file = e.file_name();
        let stale = file != keep
            && file
                .to_str()
                .and_then(|f| f.strip_prefix(&prefix))
                .is_some_and(|uid| !uid.contains('_'));
        if stale {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove an old claim's directory");
            }
        }
    }
}

/// Checks that claim `name` exists (and is not being deleted) and creates its directory.
async fn claim_volume(
    client: &kube::Client,
    pod_dir: &Path,
    ns: &str,
    name: &str,
) -> Result<PathBuf, ConfigError> {
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ConfigError(format!("cannot read persistentvolumeclaim \"{name}\": {e}")))?;
    let uid = match claim {
        None => {
            return Err(ConfigError(format!(
                "persistentvolumeclaim \"{name}\" not found"
            )))
        }
        Some(c) if c.metadata.deletion_timestamp.is_some() => {
            return Err(ConfigError(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )))
        }
        Some(c) => c.metadata.uid.unwrap_or_default(),
    };
    let dir = claim_dir(pod_dir, ns, name, &uid)?;
    remove_stale_claim_dirs(&dir, name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        ConfigError(format!(
            "persistentVolumeClaim {name}: {}: {e}",
            dir.display()
        ))
    })?;
    Ok(dir)
}

pub(super) fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .as_ref()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default();
    if let Some(sd) = &s.string_data {
        for (k, v) in sd {
            out.insert(k.clone(), v.clone().into_bytes());
        }
    }
    out
}

pub(super) fn config_map_data(c: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = c
        .data
        .as_ref()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(b) = &c.binary_data {
        for (k, v) in b {
            out.insert(k.clone(), v.0.clone());
        }
    }
    out
}

/// The downward API fields Skiff supports in `fieldRef`.
pub(super) fn field_ref(pod: &Pod, path: &str, pod_ip: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => pod_ip.to_string(),
        other => {
            if let Some(key) = other
                .strip_prefix("metadata.labels['")
                .and_then(|k| k.strip_suffix("']"))
            {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = other
                .strip_prefix("metadata.annotations['")
                .and_then(|k| k.strip_suffix("']"))
            {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(ConfigError(format!("fieldRef {other:?} is not supported (supported: metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP)")));
            }
        }
    })
}

/// The container's environment, in Kubernetes' order: envFrom first, then env (later wins).
pub async fn environment(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |k: String, v: String, env: &mut Vec<(String, String)>| {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match config_map(client, &ns, &r.name).await? {
                Some(cm) => {
                    for (k, v) in config_map_data(&cm) {
                        set(
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                            &mut env,
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secret(client, &ns, &r.name).await? {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        set(
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                            &mut env,
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            v.clone()
        } else if let Some(src) = &e.value_from {
            if let Some(r) = &src.config_map_key_ref {
                let cm = config_map(client, &ns, &r.name).await?;
                match cm
                    .as_ref()
                    .and_then(|cm| config_map_data(cm).remove(&r.key))
                {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {ns}/{}",
                            r.key, r.name
                        )))
                    }
                }
            } else if let Some(r) = &src.secret_key_ref {
                let s = secret(client, &ns, &r.name).await?;
                match s.as_ref().and_then(|s| secret_data(s).remove(&r.key)) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {ns}/{}",
                            r.key, r.name
                        )))
                    }
                }
            } else if let Some(f) = &src.field_ref {
                field_ref(pod, &f.field_path, pod_ip)?
            } else if src.resource_field_ref.is_some() {
                return Err(ConfigError(format!(
                    "env {}: resourceFieldRef is not supported yet",
                    e.name
                )));
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(e.name.clone(), value, &mut env);
    }
    Ok(env)
}

fn write_files(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| {
        ConfigError(format!(
            "cannot write volume files in {}: {e}",
            dir.display()
        ))
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let pairs: Vec<(String, String)> = match items {
        Some(items) => items
            .iter()
            .map(|i| (i.key.clone(), i.path.clone()))
            .collect(),
        None => files.keys().map(|k| (k.clone(), k.clone())).collect(),
    };
    for (key, rel) in pairs {
        if rel.contains("..") || rel.starts_with('/') {
            return Err(ConfigError(format!(
                "volume item path {rel:?} must be relative without '..'"
            )));
        }
        let Some(data) = files.get(&key) else {
            return Err(ConfigError(format!("volume item key {key:?} not found")));
        };
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, data).map_err(io)?;
    }
    Ok(())
}

/// Materializes the pod's volumes under `pod_dir` and returns each container's mounts.
/// `files_ok`: the runtime can mount single files (Linux containers), not only directories
/// (Wasm preopens).
pub async fn mounts(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
    files_ok: bool,
) -> Result<Vec<Mount>, ConfigError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == vm.name) else {
            return Err(ConfigError(format!(
                "volumeMount {:?} names no volume of the pod",
                vm.name
            )));
        };
        let dir = pod_dir.join("volumes").join(&v.name);
        let (host_path, forced_ro) = if let Some(ed) = &v.empty_dir {
            std::fs::create_dir_all(&dir)
                .map_err(|e| ConfigError(format!("emptyDir {}: {e}", v.name)))?;
            if ed.medium.as_deref() == Some("Memory") {
                let size = ed
                    .size_limit
                    .as_ref()
                    .and_then(|q| crate::runtime::memory_bytes(&q.0));
                super::volume_sources::mount_tmpfs(&dir, size)?;
            }
            (dir, false)
        } else if let Some(src) = &v.downward_api {
            let files = super::volume_sources::downward_files(
                pod,
                src.items.as_deref().unwrap_or_default(),
            )?;
            write_files(&dir, &files, None)?;
            (dir, true)
        } else if let Some(src) = &v.projected {
            let files = super::volume_sources::projected_files(client, pod, src).await?;
            write_files(&dir, &files, None)?;
            (dir, true)
        } else if let Some(src) = &v.config_map {
            match config_map(client, &ns, &src.name).await? {
                Some(cm) => write_files(&dir, &config_map_data(&cm), src.items.as_ref())?,
                None if src.optional == Some(true) => write_files(&dir, &BTreeMap::new(), None)?,
                None => return Err(ConfigError(format!("configmap \"{}\" not found", src.name))),
            }
            (dir, true)
        } else if let Some(src) = &v.secret {
            let name = src.secret_name.clone().unwrap_or_default();
            match secret(client, &ns, &name).await? {
                Some(s) => write_files(&dir, &secret_data(&s), src.items.as_ref())?,
                None if src.optional == Some(true) => write_files(&dir, &BTreeMap::new(), None)?,
                None => return Err(ConfigError(format!("secret \"{name}\" not found"))),
            }
            (dir, true)
        } else if let Some(src) = &v.persistent_volume_claim {
            let dir = claim_volume(client, pod_dir, &ns, &src.claim_name).await?;
            (dir, src.read_only == Some(true))
        } else if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            if hp.type_.as_deref() == Some("DirectoryOrCreate") {
                std::fs::create_dir_all(&p)
                    .map_err(|e| ConfigError(format!("hostPath {}: {e}", hp.path)))?;
            }
            let usable = p.is_dir() || (files_ok && p.exists());
            if !usable {
                return Err(ConfigError(if files_ok {
                    format!("hostPath {} does not exist on the node", hp.path)
                } else {
                    format!("hostPath {} is not a directory on the node (Wasm components mount directories)", hp.path)
                }));
            }
            (p, false)
        } else {
            return Err(ConfigError(format!("volume {:?}: only emptyDir, configMap, secret, downwardAPI, projected, hostPath and persistentVolumeClaim volumes are supported", v.name)));
        };
        let host_path = match &vm.sub_path {
            Some(sub) if !sub.is_empty() => {
                if sub.contains("..") {
                    return Err(ConfigError(format!(
                        "subPath {sub:?} must not contain '..'"
                    )));
                }
                host_path.join(sub)
            }
            _ => host_path,
        };
        out.push(Mount {
            host_path,
            guest_path: vm.mount_path.clone(),
            read_only: forced_ro || vm.read_only == Some(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_api_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap();
        assert_eq!(field_ref(&pod, "metadata.name", "").unwrap(), "p");
        assert_eq!(field_ref(&pod, "spec.nodeName", "").unwrap(), "n1");
        assert_eq!(
            field_ref(&pod, "status.podIP", "10.0.0.1").unwrap(),
            "10.0.0.1"
        );
        assert_eq!(
            field_ref(&pod, "metadata.labels['app']", "").unwrap(),
            "web"
        );
        assert!(field_ref(&pod, "spec.bogus", "").is_err());
    }

    #[test]
    fn claim_directories_live_outside_the_pod() {
        let pod_dir = Path::new("/data/agent/pods/uid-1");
        assert_eq!(
            claim_dir(pod_dir, "default", "data-web-0", "u1").unwrap(),
            Path::new("/data/agent/volumes/default/data-web-0_u1")
        );
        assert!(claim_dir(pod_dir, "default", "../x", "u1").is_err());
        assert!(claim_dir(pod_dir, "..", "x", "u1").is_err());
        assert!(claim_dir(pod_dir, "default", "", "u1").is_err());
        assert!(claim_dir(pod_dir, "default", "x", "").is_err());
    }

    #[test]
    fn a_new_claim_of_the_same_name_does_not_see_the_old_data() {
        let root = tempfile::tempdir().unwrap();
        let ns = root.path().join("default");
        for d in ["data_old", "data_new", "data-web_old", "other_x"] {
            std::fs::create_dir_all(ns.join(d)).unwrap();
        }
        remove_stale_claim_dirs(&ns.join("data_new"), "data");
        let mut left: Vec<String> = std::fs::read_dir(&ns)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["data-web_old", "data_new", "other_x"]);
    }

    #[test]
    fn volume_files_respect_items_and_reject_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let files: BTreeMap<String, Vec<u8>> = [("a".to_string(), b"1".to_vec())].into();
        write_files(dir.path(), &files, None).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"1");
        let items = vec![k8s_openapi::api::core::v1::KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(write_files(&dir.path().join("v"), &files, Some(&items)).is_err());
    }
}
