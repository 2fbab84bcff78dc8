//! PATCH bodies: `parse_patch` + `apply_patch` for JSON patch, merge patch, strategic merge
//! patch and apply (YAML), on a fuzzed current object of one of several kinds.
//!
//! Input layout: byte 0 picks the patch type, byte 1 the kind, then the current object as JSON,
//! a 0xFF byte (never part of UTF-8 text), and the patch body.
//! Invariant: merge and strategic merge patches are idempotent (applying the same patch to its
//! own result changes nothing), which `kubectl apply` run twice relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_control_plane::api::patch::{apply_patch, parse_patch, PatchType};
use skiff_control_plane::api::request::decode_json;

const TYPES: [PatchType; 4] = [
    PatchType::Json,
    PatchType::Merge,
    PatchType::StrategicMerge,
    PatchType::Apply,
];

/// Kinds with a built-in strategic merge schema of each shape, plus one without (a custom
/// resource: maps merge, lists are replaced).
const KINDS: [&str; 10] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "Service",
    "Node",
    "ServiceAccount",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Widget",
];

fuzz_target!(|data: &[u8]| {
    let [t, k, rest @ ..] = data else {
        return;
    };
    let pt = TYPES[usize::from(*t) % TYPES.len()];
    let kind = KINDS[usize::from(*k) % KINDS.len()];
    let Some(split) = rest.iter().position(|&b| b == 0xFF) else {
        return;
    };
    let (current, patch_body) = (&rest[..split], &rest[split + 1..]);
    let Ok(current) = decode_json(current) else {
        return;
    };
    if !current.is_object() {
        return;
    }
    let Ok(patch) = parse_patch(pt, patch_body) else {
        return;
    };
    let Ok(patched) = apply_patch(pt, &current, &patch, kind) else {
        return;
    };
    if matches!(
        pt,
        PatchType::Merge | PatchType::StrategicMerge | PatchType::Apply
    ) {
        match apply_patch(pt, &patched, &patch, kind) {
            Ok(again) => assert_eq!(again, patched, "{pt:?} patch on {kind} is not idempotent"),
            Err(e) => panic!("{pt:?} patch on {kind} applied once but not twice: {e:?}"),
        }
    }
});
