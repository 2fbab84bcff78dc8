//! PersistentVolume and PersistentVolumeClaim printers.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::access::{arr_at, at, created, deleting, name, opt_str, str_at, str_or};
use super::duration::since;
use super::{col, wide, Printer, AGE, NAME};

fn age(v: &Value, now: Timestamp) -> Value {
    json!(since(created(v), now))
}

/// `GetAccessModesAsString`.
fn access_modes(v: &Value, path: &[&str]) -> String {
    let modes: Vec<&str> = arr_at(v, path).iter().filter_map(Value::as_str).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The beta storage-class annotation, else `spec.storageClassName`.
fn storage_class(v: &Value) -> &str {
    match opt_str(
        v,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    ) {
        Some(class) => class,
        None => str_at(v, &["spec", "storageClassName"]),
    }
}

/// A `resource.Quantity` as stored; Go prints a missing one as `0`.
fn quantity(v: &Value, path: &[&str]) -> String {
    match at(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

pub(crate) static PERSISTENT_VOLUME: Printer = Printer {
    kinds: &["PersistentVolume"],
    columns: &[
        NAME,
        col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", "reason is a brief CamelCase string that describes any failure."),
        AGE,
        wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
    ],
    row: |pv, now| {
        let claim = match at(pv, &["spec", "claimRef"]) {
            Some(c) => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
            None => String::new(),
        };
        let phase = if deleting(pv) {
            "Terminating"
        } else {
            str_or(pv, &["status", "phase"], "Pending")
        };
        vec![
            json!(name(pv)),
            json!(quantity(pv, &["spec", "capacity", "storage"])),
            json!(access_modes(pv, &["spec", "accessModes"])),
            json!(str_or(pv, &["spec", "persistentVolumeReclaimPolicy"], "Retain")),
            json!(phase),
            json!(claim),
            json!(storage_class(pv)),
            json!(opt_str(pv, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
            json!(str_at(pv, &["status", "reason"])),
            age(pv, now),
            json!(str_or(pv, &["spec", "volumeMode"], "Filesystem")),
        ]
        .into()
    },
};

pub(crate) static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    kinds: &["PersistentVolumeClaim"],
    columns: &[
        NAME,
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ],
    row: |pvc, now| {
        let phase = if deleting(pvc) {
            "Terminating"
        } else {
            str_or(pvc, &["status", "phase"], "Pending")
        };
        let volume = str_at(pvc, &["spec", "volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity(pvc, &["status", "capacity", "storage"]),
                access_modes(pvc, &["status", "accessModes"]),
            )
        };
        vec![
            json!(name(pvc)),
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(storage_class(pvc)),
            json!(opt_str(pvc, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
            age(pvc, now),
            json!(str_or(pvc, &["spec", "volumeMode"], "Filesystem")),
        ]
        .into()
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_mode_order() {
        let pv =
            json!({"spec": {"accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"]}});
        assert_eq!(access_modes(&pv, &["spec", "accessModes"]), "RWO,RWX");
    }
}
