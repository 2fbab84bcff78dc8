//! The HorizontalPodAutoscaler printer (`kubectl get hpa`), as Kubernetes prints it.

use serde_json::{json, Value};

use super::access::{arr_at, created, int_at, name, opt_int, str_at};
use super::duration::since;
use super::{col, Printer, AGE, NAME};

pub(crate) static HORIZONTAL_POD_AUTOSCALER: Printer = Printer {
    kinds: &["HorizontalPodAutoscaler"],
    columns: &[
        NAME,
        col("Reference", "string", "Reference to the target resource"),
        col("Targets", "string", "The current and target metrics"),
        col("MinPods", "string", "Lower limit of replicas"),
        col("MaxPods", "integer", "Upper limit of replicas"),
        col("Replicas", "integer", "Current number of replicas"),
        AGE,
    ],
    row: |h, now| {
        let reference = format!(
            "{}/{}",
            str_at(h, &["spec", "scaleTargetRef", "kind"]),
            str_at(h, &["spec", "scaleTargetRef", "name"])
        );
        let min = opt_int(h, &["spec", "minReplicas"])
            .map(|m| m.to_string())
            .unwrap_or_else(|| "<unset>".into());
        vec![
            json!(name(h)),
            json!(reference),
            json!(targets(h)),
            json!(min),
            json!(int_at(h, &["spec", "maxReplicas"])),
            json!(int_at(h, &["status", "currentReplicas"])),
            json!(since(created(h), now)),
        ]
        .into()
    },
};

fn targets(h: &Value) -> String {
    let specs = arr_at(h, &["spec", "metrics"]);
    if specs.is_empty() {
        return "<none>".into();
    }
    let current = arr_at(h, &["status", "currentMetrics"]);
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<unknown>".into(),
    };
    let mut out: Vec<String> = specs
        .iter()
        .take(3)
        .map(|m| match m.get("type").and_then(Value::as_str) {
            Some("Resource") => {
                let res = m
                    .pointer("/resource/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let cur = current
                    .iter()
                    .find(|c| c.pointer("/resource/name").and_then(Value::as_str) == Some(res));
                match m.pointer("/resource/target/averageUtilization") {
                    Some(target) => format!(
                        "{res}: {}/{}%",
                        cur.and_then(|c| c.pointer("/resource/current/averageUtilization"))
                            .map(|u| format!("{}%", text(Some(u))))
                            .unwrap_or_else(|| "<unknown>".into()),
                        text(Some(target))
                    ),
                    None => format!(
                        "{res}: {}/{}",
                        text(cur.and_then(|c| c.pointer("/resource/current/averageValue"))),
                        text(m.pointer("/resource/target/averageValue"))
                    ),
                }
            }
            Some("Pods") => {
                let metric = m
                    .pointer("/pods/metric/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let cur = current.iter().find(|c| {
                    c.pointer("/pods/metric/name").and_then(Value::as_str) == Some(metric)
                });
                format!(
                    "{}/{}",
                    text(cur.and_then(|c| c.pointer("/pods/current/averageValue"))),
                    text(m.pointer("/pods/target/averageValue"))
                )
            }
            _ => "<unknown>/<unknown>".into(),
        })
        .collect();
    if specs.len() > 3 {
        out.push(format!("+ {} more...", specs.len() - 3));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_show_current_over_target() {
        let h = json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Pods", "pods": {"metric": {"name": "concurrency"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
        ]}, "status": {"currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 250}}}
        ]}});
        assert_eq!(targets(&h), "cpu: 250%/50%, <unknown>/10");
        assert_eq!(targets(&json!({"spec": {}})), "<none>");
    }
}
