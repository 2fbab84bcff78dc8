//! The request-driven autoscaling annotations (`autoscaling.skiff.dev/*`) on a Deployment or
//! its pod template, parsed and validated: each error names the annotation and says what it
//! takes. Knative's meanings and defaults.

use std::time::Duration;

use serde_json::Value;

use super::FieldError;

pub const PREFIX: &str = "autoscaling.skiff.dev/";
pub const MIN_SCALE: &str = "autoscaling.skiff.dev/min-scale";
pub const MAX_SCALE: &str = "autoscaling.skiff.dev/max-scale";
pub const TARGET_CONCURRENCY: &str = "autoscaling.skiff.dev/target-concurrency";
pub const TARGET_RPS: &str = "autoscaling.skiff.dev/target-rps";
pub const SCALE_DOWN_DELAY: &str = "autoscaling.skiff.dev/scale-down-delay";
pub const INITIAL_SCALE: &str = "autoscaling.skiff.dev/initial-scale";
const KNOWN: &[&str] = &[
    MIN_SCALE,
    MAX_SCALE,
    TARGET_CONCURRENCY,
    TARGET_RPS,
    SCALE_DOWN_DELAY,
    INITIAL_SCALE,
];

/// In-flight requests per pod the autoscaler aims for when none is set (Knative's default).
pub const DEFAULT_TARGET_CONCURRENCY: f64 = 100.0;
/// Idle time before a scale-to-zero workload goes to zero when none is set.
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);
/// The longest scale-down delay accepted (as Knative's).
pub const MAX_SCALE_DOWN_DELAY: Duration = Duration::from_secs(3600);

/// A workload's autoscaling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleAnnotations {
    /// `0`: scale to zero when idle.
    pub min_scale: u32,
    /// `None`: no upper bound.
    pub max_scale: Option<u32>,
    pub target_concurrency: f64,
    /// Set: scale on requests per second instead of concurrency.
    pub target_rps: Option<f64>,
    pub scale_down_delay: Duration,
    pub initial_scale: u32,
}

impl ScaleAnnotations {
    /// The settings of `obj` (a Deployment): its own annotations over its pod template's.
    /// `None` when it has no `autoscaling.skiff.dev/` annotation (not request-autoscaled).
    pub fn of(obj: &Value) -> Result<Option<ScaleAnnotations>, Vec<FieldError>> {
        let mut errs = Vec::new();
        let found = collect(obj, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(found)
    }
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<(&'static str, &'a str)> {
    for (path, ptr) in [
        ("metadata.annotations", "/metadata/annotations"),
        (
            "spec.template.metadata.annotations",
            "/spec/template/metadata/annotations",
        ),
    ] {
        if let Some(v) = obj.pointer(ptr).and_then(|a| a.get(key)) {
            return Some((path, v.as_str().unwrap_or("")));
        }
    }
    None
}

fn collect(obj: &Value, errs: &mut Vec<FieldError>) -> Option<ScaleAnnotations> {
    let mut any = false;
    for ptr in [
        "/metadata/annotations",
        "/spec/template/metadata/annotations",
    ] {
        if let Some(map) = obj.pointer(ptr).and_then(Value::as_object) {
            for key in map.keys().filter(|k| k.starts_with(PREFIX)) {
                any = true;
                if !KNOWN.contains(&key.as_str()) {
                    let path = ptr.trim_start_matches('/').replace('/', ".");
                    errs.push(FieldError::invalid(
                        &format!("{path}[{key}]"),
                        key.as_str(),
                        &format!(
                            "unknown autoscaling annotation; the supported ones are {}",
                            KNOWN.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    if !any {
        return None;
    }
    let field = |path: &str, key: &str| format!("{path}[{key}]");
    // The annotation `key` read by `parse`; a value it refuses is an error saying `detail`.
    fn parsed<T>(
        obj: &Value,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
        detail: &str,
        errs: &mut Vec<FieldError>,
    ) -> Option<T> {
        let (path, v) = annotation(obj, key)?;
        let out = parse(v);
        if out.is_none() {
            errs.push(FieldError::invalid(&format!("{path}[{key}]"), v, detail));
        }
        out
    }
    let count = |key: &str, errs: &mut Vec<FieldError>| {
        parsed(
            obj,
            key,
            |v| v.parse::<u32>().ok(),
            "must be a whole number (0 or more)",
            errs,
        )
    };
    let rate = |key: &str, errs: &mut Vec<FieldError>| {
        let positive = |v: &str| v.parse::<f64>().ok().filter(|n| *n > 0.0 && n.is_finite());
        parsed(obj, key, positive, "must be a number greater than 0", errs)
    };
    let min_scale = count(MIN_SCALE, errs).unwrap_or(1);
    // Knative's meaning: 0 is no upper bound.
    let max_scale = count(MAX_SCALE, errs).filter(|m| *m > 0);
    // min-scale and initial-scale stay within max-scale.
    let within_max = |key: &str, value: u32, errs: &mut Vec<FieldError>| {
        if let (Some(max), Some((path, _))) = (max_scale, annotation(obj, key)) {
            if value > max {
                errs.push(FieldError::invalid(
                    &field(path, key),
                    value.to_string().as_str(),
                    &format!("must not be greater than {MAX_SCALE} ({max})"),
                ));
            }
        }
    };
    within_max(MIN_SCALE, min_scale, errs);
    let target_concurrency = rate(TARGET_CONCURRENCY, errs).unwrap_or(DEFAULT_TARGET_CONCURRENCY);
    let target_rps = rate(TARGET_RPS, errs);
    let scale_down_delay = parsed(
        obj,
        SCALE_DOWN_DELAY,
        parse_delay,
        "must be a duration between 0s and 1h, like 30s or 5m",
        errs,
    )
    .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    let initial_scale = count(INITIAL_SCALE, errs).unwrap_or(1);
    within_max(INITIAL_SCALE, initial_scale, errs);
    Some(ScaleAnnotations {
        min_scale,
        max_scale,
        target_concurrency,
        target_rps,
        scale_down_delay,
        initial_scale,
    })
}

fn parse_delay(v: &str) -> Option<Duration> {
    let d: jiff::SignedDuration = v.parse().ok()?;
    Duration::try_from(d)
        .ok()
        .filter(|d| *d <= MAX_SCALE_DOWN_DELAY)
}

/// Admission: every problem with `obj`'s autoscaling annotations.
pub fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    collect(obj, errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(annotations: Value) -> Value {
        json!({"metadata": {"name": "web", "annotations": annotations},
               "spec": {"template": {"metadata": {}}}})
    }

    #[test]
    fn parses_with_defaults() {
        let d = deployment(json!({MIN_SCALE: "0", MAX_SCALE: "5", SCALE_DOWN_DELAY: "5s"}));
        let a = ScaleAnnotations::of(&d).unwrap().unwrap();
        assert_eq!(a.min_scale, 0);
        assert_eq!(a.max_scale, Some(5));
        assert_eq!(a.scale_down_delay, Duration::from_secs(5));
        assert_eq!(a.target_concurrency, DEFAULT_TARGET_CONCURRENCY);
        assert_eq!(a.initial_scale, 1);
        assert_eq!(ScaleAnnotations::of(&deployment(json!({}))).unwrap(), None);
        // On the pod template too.
        let t = json!({"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"annotations": {TARGET_RPS: "50"}}}}});
        assert_eq!(
            ScaleAnnotations::of(&t).unwrap().unwrap().target_rps,
            Some(50.0)
        );
    }

    #[test]
    fn errors_name_the_annotation() {
        let d = deployment(
            json!({MIN_SCALE: "3", MAX_SCALE: "2", SCALE_DOWN_DELAY: "soon",
                                  TARGET_CONCURRENCY: "-1", "autoscaling.skiff.dev/minscale": "1"}),
        );
        let errs = ScaleAnnotations::of(&d).unwrap_err();
        let text: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        let all = text.join("\n");
        assert!(
            all.contains("metadata.annotations[autoscaling.skiff.dev/min-scale]"),
            "{all}"
        );
        assert!(
            all.contains("must not be greater than autoscaling.skiff.dev/max-scale (2)"),
            "{all}"
        );
        assert!(
            all.contains("[autoscaling.skiff.dev/scale-down-delay]"),
            "{all}"
        );
        assert!(
            all.contains("[autoscaling.skiff.dev/target-concurrency]"),
            "{all}"
        );
        assert!(all.contains("unknown autoscaling annotation"), "{all}");
        let neg = deployment(json!({MIN_SCALE: "-1"}));
        assert!(ScaleAnnotations::of(&neg).is_err());
        let long = deployment(json!({SCALE_DOWN_DELAY: "2h"}));
        assert!(ScaleAnnotations::of(&long).is_err());
    }
}
