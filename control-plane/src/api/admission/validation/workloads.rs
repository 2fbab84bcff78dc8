//! apps/v1 and batch/v1 workload validation.

use super::common::{
    immutable, int_or_percent, int_or_percent_value, label_selector, nonneg, selector_is_empty,
    selector_matches_template, Errs,
};
use super::pod::pod_template;
use crate::api::admission::field::{child, Bad, FieldError};
use crate::api::admission::util::{present, s};
use serde_json::Value;

fn spec_of(obj: &Value) -> &Value {
    static NULL: Value = Value::Null;
    obj.get("spec").unwrap_or(&NULL)
}

/// Selector presence/syntax/non-emptiness + template match, for the
/// Deployment/ReplicaSet/DaemonSet/StatefulSet family.
fn selector_and_template(spec: &Value, what: &str, errs: &mut Errs) {
    match present(spec, "selector") {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            label_selector(Some(sel), "spec.selector", errs);
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    Bad::label_selector(Some(sel)),
                    &format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
    selector_matches_template(spec, "spec", errs);
    pod_template(spec.get("template"), "spec.template", errs);
    let rp = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
}

fn active_deadline_forbidden(spec: &Value, what: &str, errs: &mut Errs) {
    if spec
        .pointer("/template/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {what} is not Supported"),
        ));
    }
}

fn selector_immutable(new: &Value, old: Option<&Value>, errs: &mut Errs) {
    let Some(old) = old else {
        return;
    };
    let n = spec_of(new).get("selector");
    let o = spec_of(old).get("selector");
    let norm = |v: Option<&Value>| v.filter(|x| !x.is_null()).cloned();
    if norm(n) != norm(o) {
        errs.push(FieldError::invalid(
            "spec.selector",
            Bad::label_selector(n),
            "field is immutable",
        ));
    }
}

pub(crate) fn deployment(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    nonneg(spec.get("replicas"), "spec.replicas", errs);
    selector_and_template(spec, "deployment", errs);
    active_deadline_forbidden(spec, "ReplicaSet", errs);
    let strategy = spec.get("strategy");
    let ty = strategy
        .and_then(|st| s(st, "type"))
        .unwrap_or("RollingUpdate");
    let ru = strategy.and_then(|st| present(st, "rollingUpdate"));
    match ty {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                let p = "spec.strategy.rollingUpdate";
                int_or_percent(
                    ru.get("maxUnavailable"),
                    &child(p, "maxUnavailable"),
                    true,
                    errs,
                );
                int_or_percent(ru.get("maxSurge"), &child(p, "maxSurge"), false, errs);
                if int_or_percent_value(ru.get("maxUnavailable")) == 0
                    && int_or_percent_value(ru.get("maxSurge")) == 0
                {
                    errs.push(FieldError::invalid(
                        &child(p, "maxUnavailable"),
                        ru.get("maxUnavailable")
                            .map_or(Bad::Raw("0".into()), Bad::from),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonneg(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        nonneg(
            spec.get("progressDeadlineSeconds"),
            "spec.progressDeadlineSeconds",
            errs,
        );
        let mrs = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pds <= mrs {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(obj, old, errs);
}

pub(crate) fn replica_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    nonneg(spec.get("replicas"), "spec.replicas", errs);
    nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    // Kubernetes really says "deployment" here.
    selector_and_template(spec, "deployment", errs);
    active_deadline_forbidden(spec, "ReplicaSet", errs);
    selector_immutable(obj, old, errs);
}

pub(crate) fn daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    selector_and_template(spec, "daemonset", errs);
    if spec
        .pointer("/template/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            spec.pointer("/template/spec/activeDeadlineSeconds")
                .map_or(Bad::Raw("null".into()), Bad::from),
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonneg(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    let us = spec.get("updateStrategy");
    let ty = us.and_then(|u| s(u, "type")).unwrap_or("RollingUpdate");
    match ty {
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(ru) = us.and_then(|u| present(u, "rollingUpdate")) {
                let p = "spec.updateStrategy.rollingUpdate";
                int_or_percent(
                    ru.get("maxUnavailable"),
                    &child(p, "maxUnavailable"),
                    true,
                    errs,
                );
                int_or_percent(ru.get("maxSurge"), &child(p, "maxSurge"), true, errs);
                let unavailable = int_or_percent_value(ru.get("maxUnavailable")) != 0;
                let surge = int_or_percent_value(ru.get("maxSurge")) != 0;
                if unavailable && surge {
                    errs.push(FieldError::invalid(
                        &child(p, "maxSurge"),
                        ru.get("maxSurge").map_or(Bad::Raw("0".into()), Bad::from),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !unavailable && !surge {
                    errs.push(FieldError::required(
                        &child(p, "maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["RollingUpdate", "OnDelete"],
        )),
    }
    selector_immutable(obj, old, errs);
}

pub(crate) fn stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    if let Some(pmp) = s(spec, "podManagementPolicy") {
        if !matches!(pmp, "OrderedReady" | "Parallel") {
            errs.push(FieldError::invalid(
                "spec.podManagementPolicy",
                pmp,
                "must be 'OrderedReady' or 'Parallel'",
            ));
        }
    }
    let us = spec.get("updateStrategy");
    match us.and_then(|u| s(u, "type")) {
        None | Some("RollingUpdate") => {
            if let Some(ru) = us.and_then(|u| present(u, "rollingUpdate")) {
                nonneg(
                    ru.get("partition"),
                    "spec.updateStrategy.rollingUpdate.partition",
                    errs,
                );
            }
        }
        Some("OnDelete") => {
            if us.and_then(|u| present(u, "rollingUpdate")).is_some() {
                errs.push(FieldError::forbidden(
                    "spec.updateStrategy.rollingUpdate",
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        Some(other) => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            other,
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(p) = spec.get("persistentVolumeClaimRetentionPolicy") {
        for k in ["whenDeleted", "whenScaled"] {
            if let Some(v) = s(p, k) {
                if !matches!(v, "Retain" | "Delete") {
                    errs.push(FieldError::not_supported(
                        &format!("spec.persistentVolumeClaimRetentionPolicy.{k}"),
                        v,
                        &["Retain", "Delete"],
                    ));
                }
            }
        }
    }
    nonneg(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    nonneg(spec.get("replicas"), "spec.replicas", errs);
    nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    if let Some(o) = spec.get("ordinals") {
        nonneg(o.get("start"), "spec.ordinals.start", errs);
    }
    // Mounts may name volumeClaimTemplates: the controller adds those volumes to each pod.
    selector_and_template(&super::pvc::with_claim_volumes(spec), "statefulset", errs);
    super::pvc::claim_templates(spec, errs);
    active_deadline_forbidden(spec, "StatefulSet", errs);
    if let Some(old) = old {
        let strip = |o: &Value| -> Value {
            let mut s = spec_of(o).clone();
            if let Some(m) = s.as_object_mut() {
                for k in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "revisionHistoryLimit",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    m.remove(k);
                }
            }
            s
        };
        if strip(obj) != strip(old) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

/// `validateJobSpec` (shared by Job and CronJob job templates).
fn job_spec(spec: &Value, path: &str, is_template: bool, errs: &mut Errs) {
    for k in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonneg(spec.get(k), &child(path, k), errs);
    }
    if let Some(cm) = s(spec, "completionMode") {
        if !matches!(cm, "NonIndexed" | "Indexed") {
            errs.push(FieldError::not_supported(
                &child(path, "completionMode"),
                cm,
                &["NonIndexed", "Indexed"],
            ));
        }
        if cm == "Indexed" && present(spec, "completions").is_none() {
            errs.push(FieldError::required(
                &child(path, "completions"),
                "when completion mode is Indexed",
            ));
        }
    }
    if present(spec, "backoffLimitPerIndex").is_some()
        && s(spec, "completionMode") != Some("Indexed")
    {
        errs.push(FieldError::forbidden(
            &child(path, "backoffLimitPerIndex"),
            "requires indexed completion mode",
        ));
    } else if present(spec, "backoffLimitPerIndex").is_some() {
        errs.push(FieldError::forbidden(
            &child(path, "backoffLimitPerIndex"),
            "is not supported yet by Skiff (Indexed Jobs count failed pods against backoffLimit)",
        ));
    }
    if let Some(prp) = s(spec, "podReplacementPolicy") {
        if !matches!(prp, "TerminatingOrFailed" | "Failed") {
            errs.push(FieldError::not_supported(
                &child(path, "podReplacementPolicy"),
                prp,
                &["TerminatingOrFailed", "Failed"],
            ));
        }
    }
    if !is_template {
        if let Some(sel) = present(spec, "selector") {
            label_selector(Some(sel), &child(path, "selector"), errs);
        }
        selector_matches_template(spec, path, errs);
    }
    let tpath = child(path, "template");
    pod_template(spec.get("template"), &tpath, errs);
    let rp = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            &child(&tpath, "spec.restartPolicy"),
            rp,
            &["OnFailure", "Never"],
        ));
    }
}

pub(crate) fn job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    job_spec(spec, "spec", false, errs);
    if let Some(old) = old {
        let os = spec_of(old);
        immutable(
            spec.get("selector"),
            os.get("selector"),
            "spec.selector",
            errs,
        );
        immutable(
            spec.get("completionMode"),
            os.get("completionMode"),
            "spec.completionMode",
            errs,
        );
        let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
        if !suspended && spec.get("template") != os.get("template") {
            errs.push(FieldError::invalid(
                "spec.template",
                spec.get("template")
                    .map_or(Bad::Raw("null".into()), Bad::from),
                "field is immutable",
            ));
        }
    }
}

pub(crate) fn cron_job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    let schedule = s(spec, "schedule").unwrap_or("");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        let allow_tz = old
            .and_then(|o| o.pointer("/spec/schedule"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("TZ"));
        if let Err(msg) = super::cron::validate_schedule(schedule, allow_tz) {
            errs.push(FieldError::invalid("spec.schedule", schedule, &msg));
        }
    }
    if let Some(tz) = s(spec, "timeZone") {
        if tz.is_empty() || tz.contains(' ') || tz.starts_with('/') || tz.contains("..") {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                tz,
                "unknown time zone",
            ));
        }
    }
    nonneg(
        spec.get("startingDeadlineSeconds"),
        "spec.startingDeadlineSeconds",
        errs,
    );
    match s(spec, "concurrencyPolicy") {
        None | Some("Allow" | "Forbid" | "Replace") => {}
        Some("") => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let null = Value::Null;
    let jt = spec.get("jobTemplate").unwrap_or(&null);
    let js = jt.get("spec").unwrap_or(&null);
    super::meta::template_meta(jt, "spec.jobTemplate", errs);
    job_spec(js, "spec.jobTemplate.spec", true, errs);
    if let Some(sel) = present(js, "selector") {
        errs.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            Bad::label_selector(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if js.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            true,
            &["nil", "false"],
        ));
    }
    nonneg(
        spec.get("successfulJobsHistoryLimit"),
        "spec.successfulJobsHistoryLimit",
        errs,
    );
    nonneg(
        spec.get("failedJobsHistoryLimit"),
        "spec.failedJobsHistoryLimit",
        errs,
    );
}

pub(crate) fn controller_revision(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    if present(obj, "data").is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    nonneg(obj.get("revision"), "revision", errs);
    if let Some(old) = old {
        immutable(obj.get("data"), old.get("data"), "data", errs);
    }
}
