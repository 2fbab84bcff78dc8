//! Probes and lifecycle handlers.

use super::common::{nonneg, port_num_or_name, Errs, NEGATIVE_MSG};
use crate::api::admission::field::{child, FieldError};
use crate::api::admission::names;
use crate::api::admission::util::{arr, present, s};
use serde_json::Value;

/// `validateProbe`; `must_be_one` enforces successThreshold == 1
/// (liveness/startup probes).
pub(crate) fn probe(pr: &Value, p: &str, must_be_one: bool, errs: &mut Errs) {
    handler(pr, p, errs);
    for k in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonneg(pr.get(k), &child(p, k), errs);
    }
    if must_be_one {
        if let Some(st) = pr.get("successThreshold").and_then(Value::as_i64) {
            if st != 1 {
                errs.push(FieldError::invalid(
                    &child(p, "successThreshold"),
                    st,
                    "must be 1",
                ));
            }
        }
    }
    if let Some(t) = pr
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        if t <= 0 {
            errs.push(FieldError::invalid(
                &child(p, "terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
}

/// `validateHandler`: exactly one of exec/httpGet/tcpSocket/grpc (sleep for lifecycle).
pub(crate) fn handler(h: &Value, p: &str, errs: &mut Errs) {
    let kinds: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc", "sleep"]
        .into_iter()
        .filter(|k| present(h, k).is_some())
        .collect();
    match kinds.as_slice() {
        [] => errs.push(FieldError::required(p, "must specify a handler type")),
        [_] => {}
        [_, rest @ ..] => {
            for k in rest {
                errs.push(FieldError::forbidden(
                    &child(p, k),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    if let Some(e) = present(h, "exec") {
        if arr(e, "command").is_empty() {
            errs.push(FieldError::required(
                &child(&child(p, "exec"), "command"),
                "",
            ));
        }
    }
    if let Some(g) = present(h, "httpGet") {
        let gp = child(p, "httpGet");
        if let Some(path) = s(g, "path") {
            if path.is_empty() {
                errs.push(FieldError::required(&child(&gp, "path"), ""));
            }
        }
        port_num_or_name(g.get("port"), &child(&gp, "port"), errs);
        if let Some(sc) = s(g, "scheme") {
            if !matches!(sc, "HTTP" | "HTTPS") {
                errs.push(FieldError::not_supported(
                    &child(&gp, "scheme"),
                    sc,
                    &["HTTP", "HTTPS"],
                ));
            }
        }
    }
    if let Some(t) = present(h, "tcpSocket") {
        port_num_or_name(t.get("port"), &child(&child(p, "tcpSocket"), "port"), errs);
    }
    if let Some(g) = present(h, "grpc") {
        let port = g.get("port").and_then(Value::as_i64).unwrap_or(0);
        for m in names::port_num(port) {
            errs.push(FieldError::invalid(
                &child(&child(p, "grpc"), "port"),
                port,
                &m,
            ));
        }
    }
    if let Some(sl) = present(h, "sleep") {
        if let Some(sec) = sl.get("seconds").and_then(Value::as_i64) {
            if sec < 0 {
                errs.push(FieldError::invalid(
                    &child(&child(p, "sleep"), "seconds"),
                    sec,
                    NEGATIVE_MSG,
                ));
            }
        }
    }
}
