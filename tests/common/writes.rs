//! What the durability tests' writers share (tests/crash_loop.rs, tests/power_loss.rs): each
//! cycles names through create → update (with its resourceVersion) → … → delete (with its
//! resourceVersion) and remembers what the server acknowledged.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

/// What a client knows of one name: absent, or present with its value and resourceVersion
/// (0 while a change toward it is not acknowledged yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    Absent,
    Present { value: u64, rv: u64 },
}

pub fn rv_of(c: &ConfigMap) -> u64 {
    c.metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn value_of(c: &ConfigMap) -> Option<u64> {
    c.data.as_ref()?.get("value")?.parse().ok()
}

/// The ConfigMap of a state (`value` in `data.value`), with `rv` as its resourceVersion.
pub fn config_map(name: &str, value: u64, rv: Option<u64>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            resource_version: rv.map(|r| r.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("value".to_string(), value.to_string())])),
        ..ConfigMap::default()
    }
}

/// The state the writer's `step`th change on a name in state `from` aims at: every
/// `delete_every`th step deletes a present name.
pub fn next_state(from: &Known, step: u64, delete_every: u64) -> Known {
    match from {
        Known::Absent => Known::Present { value: step, rv: 0 },
        Known::Present { .. } if step.is_multiple_of(delete_every) => Known::Absent,
        Known::Present { value, .. } => Known::Present {
            value: value + 1,
            rv: 0,
        },
    }
}

/// Applies the change from `from` to `to` on `name`; returns the acknowledged new state.
pub async fn apply(
    api: &Api<ConfigMap>,
    name: &str,
    from: &Known,
    to: &Known,
) -> kube::Result<Known> {
    match (from, to) {
        (Known::Absent, Known::Present { value, .. }) => {
            let created = api
                .create(&PostParams::default(), &config_map(name, *value, None))
                .await?;
            Ok(Known::Present {
                value: *value,
                rv: rv_of(&created),
            })
        }
        (Known::Present { rv, .. }, Known::Present { value, .. }) => {
            let cm = config_map(name, *value, Some(*rv));
            let replaced = api.replace(name, &PostParams::default(), &cm).await?;
            Ok(Known::Present {
                value: *value,
                rv: rv_of(&replaced),
            })
        }
        (Known::Present { rv, .. }, Known::Absent) => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(rv.to_string()),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            api.delete(name, &params).await?;
            Ok(Known::Absent)
        }
        (Known::Absent, Known::Absent) => Ok(Known::Absent),
    }
}

/// What the server holds for `name` now (a value that does not parse reads as `u64::MAX`).
pub async fn read(api: &Api<ConfigMap>, name: &str) -> kube::Result<Known> {
    Ok(match api.get_opt(name).await? {
        None => Known::Absent,
        Some(c) => Known::Present {
            value: value_of(&c).unwrap_or(u64::MAX),
            rv: rv_of(&c),
        },
    })
}
