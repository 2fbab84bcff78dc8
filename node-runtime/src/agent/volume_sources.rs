//! Volume sources beyond plain directories: `downwardAPI` and `projected` volumes (files made
//! from the pod's metadata, ConfigMaps and Secrets), and `emptyDir` with `medium: Memory` (a
//! tmpfs the agent mounts on the volume's directory and unmounts when the pod goes).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource};

use super::volumes::{config_map, config_map_data, field_ref, secret, secret_data, ConfigError};

/// `files` renamed by `items` (key → path), or all of them under their keys.
pub fn apply_items(
    files: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, ConfigError> {
    let Some(items) = items else {
        return Ok(files.clone());
    };
    let mut out = BTreeMap::new();
    for i in items {
        match files.get(&i.key) {
            Some(data) => {
                out.insert(i.path.clone(), data.clone());
            }
            None if optional => {}
            None => {
                return Err(ConfigError(format!(
                    "volume item key {:?} not found",
                    i.key
                )))
            }
        }
    }
    Ok(out)
}

/// The files of a `downwardAPI` volume (or projection): `fieldRef`s of the pod's metadata.
pub fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
) -> Result<BTreeMap<String, Vec<u8>>, ConfigError> {
    let mut out = BTreeMap::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" | "metadata.annotations" => {
                    let map = if f.field_path == "metadata.labels" {
                        pod.metadata.labels.clone()
                    } else {
                        pod.metadata.annotations.clone()
                    };
                    // One `key="value"` per line, sorted, as the kubelet writes them.
                    map.unwrap_or_default()
                        .iter()
                        .map(|(k, v)| format!("{k}={v:?}\n"))
                        .collect::<String>()
                }
                path => field_ref(pod, path, "")?,
            }
        } else {
            return Err(ConfigError(format!(
                "downwardAPI item {:?}: only fieldRef is supported (resourceFieldRef is not yet)",
                item.path
            )));
        };
        out.insert(item.path.clone(), value.into_bytes());
    }
    Ok(out)
}

/// The files of a `projected` volume, from all its sources.
pub async fn projected_files(
    client: &kube::Client,
    pod: &Pod,
    src: &ProjectedVolumeSource,
) -> Result<BTreeMap<String, Vec<u8>>, ConfigError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for s in src.sources.iter().flatten() {
        if let Some(cm) = &s.config_map {
            let optional = cm.optional == Some(true);
            match config_map(client, &ns, &cm.name).await? {
                Some(obj) => out.extend(apply_items(
                    &config_map_data(&obj),
                    cm.items.as_ref(),
                    optional,
                )?),
                None if optional => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", cm.name))),
            }
        } else if let Some(sec) = &s.secret {
            let optional = sec.optional == Some(true);
            match secret(client, &ns, &sec.name).await? {
                Some(obj) => out.extend(apply_items(
                    &secret_data(&obj),
                    sec.items.as_ref(),
                    optional,
                )?),
                None if optional => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", sec.name))),
            }
        } else if let Some(d) = &s.downward_api {
            out.extend(downward_files(pod, d.items.as_deref().unwrap_or_default())?);
        } else if s.service_account_token.is_some() {
            return Err(ConfigError(
                "projected serviceAccountToken sources are not supported yet: Skiff does not issue service-account tokens".into(),
            ));
        } else {
            return Err(ConfigError(
                "projected volume source is not supported (supported: configMap, secret, downwardAPI)".into(),
            ));
        }
    }
    Ok(out)
}

/// Mounts a tmpfs on `dir` (an `emptyDir` with `medium: Memory`), sized by `sizeLimit` when
/// given. A directory that already holds one is left as it is.
pub fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>) -> Result<(), ConfigError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let err = |what: String| {
        ConfigError(format!(
            "emptyDir with medium Memory at {}: {what} (the agent must run as root to mount tmpfs)",
            dir.display()
        ))
    };
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| err(e.to_string()))?;
    let data = match size_bytes {
        Some(b) => format!("mode=0777,size={b}"),
        None => "mode=0777".to_string(),
    };
    let data = std::ffi::CString::new(data).map_err(|e| err(e.to_string()))?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error().to_string()));
    }
    Ok(())
}

/// Whether `dir` is a mount point (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(Ok(parent))) = (dir.metadata(), dir.parent().map(|p| p.metadata())) else {
        return false;
    };
    me.dev() != parent.dev()
}

/// Unmounts every tmpfs the agent mounted under a pod's `volumes/` directory, so the pod's
/// directory can be removed.
pub fn unmount_volumes(pod_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pod_dir.join("volumes")) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if !is_mount_point(&dir) {
            continue;
        }
        let Ok(target) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            tracing::warn!(dir = %dir.display(), error = %std::io::Error::last_os_error(), "cannot unmount an emptyDir tmpfs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_volume_files() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": "1"}},
            "spec": {"containers": []}
        }))
        .expect("pod");
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(serde_json::json!([
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
        ]))
        .expect("items");
        let f = downward_files(&pod, &items).expect("files");
        assert_eq!(f["name"], b"p");
        assert_eq!(String::from_utf8_lossy(&f["labels"]), "a=\"1\"\nb=\"2\"\n");
    }

    #[test]
    fn items_rename_and_require_keys() {
        let files: BTreeMap<String, Vec<u8>> = [("k".to_string(), b"v".to_vec())].into();
        let items: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "k", "path": "dir/file"}]))
                .expect("items");
        assert_eq!(
            apply_items(&files, Some(&items), false).expect("ok")["dir/file"],
            b"v"
        );
        let missing: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "x", "path": "f"}])).expect("items");
        assert!(apply_items(&files, Some(&missing), false).is_err());
        assert!(apply_items(&files, Some(&missing), true)
            .expect("optional")
            .is_empty());
    }
}
