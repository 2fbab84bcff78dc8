//! A container's `workingDir` for a Wasm component. A component has no root filesystem, only
//! preopened directories, and today's wasi-libc starts every program in `/` whatever
//! `wasi:cli/environment.initial-cwd` says (the runtime offers it too). So the working
//! directory is also preopened as `.`, the preopen wasi-libc resolves relative paths against:
//! `open("data.txt")` then reads `<workingDir>/data.txt`, as in a container.
//!
//! Where it lives: inside a volume mount when `workingDir` is at or below one (created there,
//! as runc creates a missing working directory, unless the volume is read-only); otherwise a
//! directory of the pod's own (`<pod dir>/workdir/<container>`), preopened at `workingDir` too.

use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::volumes::{ConfigError, Mount};

/// The extra preopens `c.workingDir` needs, given the container's volume `mounts`.
pub fn mounts(c: &Container, mounts: &[Mount], pod_dir: &Path) -> Result<Vec<Mount>, ConfigError> {
    let Some(wd) = c.working_dir.as_deref().filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    if !wd.starts_with('/') {
        return Err(ConfigError(format!(
            "workingDir {wd:?} must be an absolute path"
        )));
    }
    let inside = mounts
        .iter()
        .filter_map(|m| below(wd, &m.guest_path).map(|rel| (m, rel)))
        .max_by_key(|(m, _)| m.guest_path.len());
    let Some((mount, rel)) = inside else {
        let host = pod_dir.join("workdir").join(&c.name);
        std::fs::create_dir_all(&host).map_err(|e| ConfigError(format!("workingDir {wd}: {e}")))?;
        return Ok(vec![
            Mount {
                host_path: host.clone(),
                guest_path: wd.to_string(),
                read_only: false,
            },
            Mount {
                host_path: host,
                guest_path: ".".into(),
                read_only: false,
            },
        ]);
    };
    let host = mount.host_path.join(&rel);
    if !host.is_dir() {
        if mount.read_only {
            return Err(ConfigError(format!(
                "workingDir {wd} does not exist in the read-only volume mounted at {}",
                mount.guest_path
            )));
        }
        std::fs::create_dir_all(&host).map_err(|e| ConfigError(format!("workingDir {wd}: {e}")))?;
    }
    Ok(vec![Mount {
        host_path: host,
        guest_path: ".".into(),
        read_only: mount.read_only,
    }])
}

/// `path` relative to `base` when it is `base` or below it (whole components only; no `..`).
fn below(path: &str, base: &str) -> Option<PathBuf> {
    let rel = Path::new(path).strip_prefix(Path::new(base)).ok()?;
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| rel.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(wd: Option<&str>) -> Container {
        Container {
            name: "main".into(),
            working_dir: wd.map(str::to_string),
            ..Default::default()
        }
    }

    fn mount(host: &Path, guest: &str, read_only: bool) -> Mount {
        Mount {
            host_path: host.to_path_buf(),
            guest_path: guest.into(),
            read_only,
        }
    }

    #[test]
    fn no_working_dir_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(mounts(&container(None), &[], dir.path())
            .unwrap()
            .is_empty());
        assert!(mounts(&container(Some("")), &[], dir.path())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn inside_a_volume_it_is_that_directory_as_dot() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        std::fs::create_dir_all(vol.join("app")).unwrap();
        let ms = [mount(&vol, "/data", false), mount(dir.path(), "/", true)];
        let extra = mounts(&container(Some("/data/app")), &ms, dir.path()).unwrap();
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].host_path, vol.join("app"));
        assert_eq!(extra[0].guest_path, ".");
        // A missing directory in a writable volume is created.
        let extra = mounts(&container(Some("/data/new/sub")), &ms, dir.path()).unwrap();
        assert!(vol.join("new/sub").is_dir());
        assert_eq!(extra[0].host_path, vol.join("new/sub"));
    }

    #[test]
    fn a_missing_directory_in_a_read_only_volume_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ms = [mount(dir.path(), "/config", true)];
        let err = mounts(&container(Some("/config/nope")), &ms, dir.path()).unwrap_err();
        assert!(err.0.contains("read-only"), "{err}");
    }

    #[test]
    fn outside_volumes_the_pod_gets_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ms = [mount(dir.path(), "/data", false)];
        // "/database" is not below "/data".
        let extra = mounts(&container(Some("/database")), &ms, dir.path()).unwrap();
        let own = dir.path().join("workdir/main");
        assert!(own.is_dir());
        assert_eq!(
            extra
                .iter()
                .map(|m| (m.host_path.clone(), m.guest_path.as_str()))
                .collect::<Vec<_>>(),
            vec![(own.clone(), "/database"), (own, ".")]
        );
    }

    #[test]
    fn relative_or_escaping_paths_are_rejected_or_not_matched() {
        let dir = tempfile::tempdir().unwrap();
        assert!(mounts(&container(Some("app")), &[], dir.path()).is_err());
        assert!(below("/data/../etc", "/data").is_none());
    }
}
