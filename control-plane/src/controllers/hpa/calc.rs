//! The HorizontalPodAutoscaler's arithmetic, as Kubernetes' replica calculator and behavior
//! normalisation do it, on plain values: one metric's replica recommendation from the pods'
//! usage, then stabilisation windows and scaling policies.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::admission::quantity::Quantity;

/// Within this ratio of the target nothing changes (`--horizontal-pod-autoscaler-tolerance`).
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// A metric an HPA scales on.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSpec {
    /// `type: Resource` with `target.type: Utilization`: percent of the pods' requests.
    Utilization { resource: Resource, percent: f64 },
    /// `type: Resource` with `target.type: AverageValue` (cores, bytes).
    ResourceAverage { resource: Resource, value: f64 },
    /// `type: Pods`: a per-pod metric's average.
    PodsAverage { metric: PodMetric, value: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
        }
    }
}

/// The per-pod metrics Skiff's nodes measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodMetric {
    /// HTTP requests per second.
    RequestsPerSecond,
    /// HTTP requests in flight.
    Concurrency,
}

impl PodMetric {
    pub fn parse(name: &str) -> Option<PodMetric> {
        match name {
            "requests_per_second" | "requests-per-second" => Some(PodMetric::RequestsPerSecond),
            "concurrency" => Some(PodMetric::Concurrency),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PodMetric::RequestsPerSecond => "requests_per_second",
            PodMetric::Concurrency => "concurrency",
        }
    }
}

/// What one running pod of the target uses and requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSample {
    pub name: String,
    /// Sum of the containers' requests (millicores, bytes); `None` when a container has none.
    pub cpu_request_millis: Option<f64>,
    pub memory_request_bytes: Option<f64>,
    /// Usage over the last window; `None`: no reading yet.
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_millis: f64,
    pub memory_bytes: f64,
    pub requests_per_second: f64,
    pub concurrency: f64,
}

/// One metric's outcome: the replicas it asks for and its `status.currentMetrics` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub replicas: u32,
    pub current: Value,
    /// For the rescale Event: "cpu resource utilization (percentage of request) above target".
    pub what: String,
}

/// The replicas `metric` recommends for `pods` (running, not terminating) of a target now at
/// `current` replicas. `Err`: why the metric cannot be computed (a condition message).
pub fn recommend(
    metric: &MetricSpec,
    pods: &[PodSample],
    current: u32,
) -> Result<Recommendation, String> {
    let measured: Vec<(&PodSample, Usage)> =
        pods.iter().filter_map(|p| Some((p, p.usage?))).collect();
    if measured.is_empty() {
        return Err(format!(
            "unable to get metrics for {}: no metrics returned for the target's pods yet",
            describe(metric)
        ));
    }
    let n = measured.len() as f64;
    // Pods without a reading yet (just started, or their node did not answer) count as
    // Kubernetes counts them, against the move: at the target when scaling down, idle when
    // scaling up; if that reverses the direction or lands within tolerance, nothing changes.
    let missing = (pods.len() - measured.len()) as f64;
    let scale = |ratio: f64| -> u32 {
        let within = |r: f64| (r - 1.0).abs() <= DEFAULT_TOLERANCE;
        if within(ratio) {
            return current;
        }
        let (ratio, count) = if missing == 0.0 {
            (ratio, n)
        } else {
            let assumed = if ratio < 1.0 { 1.0 } else { 0.0 };
            let adjusted = (ratio * n + assumed * missing) / (n + missing);
            if within(adjusted) || (adjusted > 1.0) != (ratio > 1.0) {
                return current;
            }
            (adjusted, n + missing)
        };
        (ratio * count).ceil().clamp(0.0, u32::MAX as f64) as u32
    };
    match metric {
        MetricSpec::Utilization { resource, percent } => {
            let mut used = 0.0;
            let mut requested = 0.0;
            for (p, u) in &measured {
                let (req, use_) = match resource {
                    Resource::Cpu => (p.cpu_request_millis, u.cpu_millis),
                    Resource::Memory => (p.memory_request_bytes, u.memory_bytes),
                };
                let Some(req) = req.filter(|r| *r > 0.0) else {
                    return Err(format!(
                        "failed to get {} utilization: missing request for {} in pod {}",
                        resource.name(),
                        resource.name(),
                        p.name
                    ));
                };
                used += use_;
                requested += req;
            }
            let utilization = used / requested * 100.0;
            let average = used / n;
            Ok(Recommendation {
                replicas: scale(utilization / percent),
                current: json!({"type": "Resource", "resource": {"name": resource.name(),
                    "current": {"averageUtilization": utilization.round() as i64,
                                "averageValue": resource_quantity(*resource, average)}}}),
                what: format!(
                    "{} resource utilization (percentage of request) {} target",
                    resource.name(),
                    above_below(utilization, *percent)
                ),
            })
        }
        MetricSpec::ResourceAverage { resource, value } => {
            let total: f64 = measured
                .iter()
                .map(|(_, u)| match resource {
                    Resource::Cpu => u.cpu_millis,
                    Resource::Memory => u.memory_bytes,
                })
                .sum();
            let average = total / n;
            Ok(Recommendation {
                replicas: scale(average / value),
                current: json!({"type": "Resource", "resource": {"name": resource.name(),
                    "current": {"averageValue": resource_quantity(*resource, average)}}}),
                what: format!(
                    "{} resource {} target",
                    resource.name(),
                    above_below(average, *value)
                ),
            })
        }
        MetricSpec::PodsAverage { metric, value } => {
            let total: f64 = measured
                .iter()
                .map(|(_, u)| match metric {
                    PodMetric::RequestsPerSecond => u.requests_per_second,
                    PodMetric::Concurrency => u.concurrency,
                })
                .sum();
            let average = total / n;
            Ok(Recommendation {
                replicas: scale(average / value),
                current: json!({"type": "Pods", "pods": {"metric": {"name": metric.name()},
                    "current": {"averageValue": milli_quantity(average)}}}),
                what: format!(
                    "pods metric {} {} target",
                    metric.name(),
                    above_below(average, *value)
                ),
            })
        }
    }
}

fn describe(m: &MetricSpec) -> String {
    match m {
        MetricSpec::Utilization { resource, .. } | MetricSpec::ResourceAverage { resource, .. } => {
            format!("resource {}", resource.name())
        }
        MetricSpec::PodsAverage { metric, .. } => format!("pods metric {}", metric.name()),
    }
}

fn above_below(v: f64, target: f64) -> &'static str {
    if v > target {
        "above"
    } else {
        "below"
    }
}

/// CPU millicores as `250m`, bytes as a plain integer.
fn resource_quantity(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => format!("{}m", v.round() as i64),
        Resource::Memory => format!("{}", v.round() as i64),
    }
}

/// A value as a quantity in thousandths (`1500m` = 1.5), as Kubernetes writes averages.
fn milli_quantity(v: f64) -> String {
    format!("{}m", (v * 1000.0).round() as i64)
}

/// Parses a target's quantity (`averageValue: "500m"`, `"10"`), in units (cores, bytes).
pub fn quantity_value(v: &Value) -> Option<f64> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Quantity::parse(&s)
        .ok()
        .map(|q| q.nanos() as f64 / 1_000_000_000.0)
}

/// `behavior.scaleUp` / `scaleDown`, with Kubernetes' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization: Duration,
    /// `Max` (the default), `Min` or `Disabled`.
    pub select: String,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `Pods` or `Percent`.
    pub kind: String,
    pub value: u32,
    pub period: Duration,
}

impl Rules {
    pub fn default_up() -> Rules {
        Rules {
            stabilization: Duration::ZERO,
            select: "Max".into(),
            policies: vec![
                Policy {
                    kind: "Pods".into(),
                    value: 4,
                    period: Duration::from_secs(15),
                },
                Policy {
                    kind: "Percent".into(),
                    value: 100,
                    period: Duration::from_secs(15),
                },
            ],
        }
    }

    pub fn default_down() -> Rules {
        Rules {
            stabilization: Duration::from_secs(300),
            select: "Max".into(),
            policies: vec![Policy {
                kind: "Percent".into(),
                value: 100,
                period: Duration::from_secs(15),
            }],
        }
    }

    /// `behavior.scaleUp`/`scaleDown` over `defaults`.
    pub fn parse(v: Option<&Value>, defaults: Rules) -> Rules {
        let Some(v) = v else { return defaults };
        let policies: Vec<Policy> = v
            .get("policies")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        Some(Policy {
                            kind: p.get("type")?.as_str()?.to_string(),
                            value: u32::try_from(p.get("value")?.as_u64()?).ok()?,
                            period: Duration::from_secs(p.get("periodSeconds")?.as_u64()?),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Rules {
            stabilization: v
                .get("stabilizationWindowSeconds")
                .and_then(Value::as_u64)
                .map(Duration::from_secs)
                .unwrap_or(defaults.stabilization),
            select: v
                .get("selectPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(defaults.select),
            policies: if policies.is_empty() {
                defaults.policies
            } else {
                policies
            },
        }
    }
}

/// What an HPA remembers between syncs: its recent recommendations and scale changes.
#[derive(Debug, Default, Clone)]
pub struct History {
    recommendations: Vec<(Instant, u32)>,
    /// (when, replicas added (+) or removed (−)).
    changes: Vec<(Instant, i64)>,
}

impl History {
    pub fn record_change(&mut self, now: Instant, delta: i64) {
        self.changes.push((now, delta));
    }
}

/// The replicas to set: `desired` (from the metrics, within min/max) stabilised over the
/// behavior's windows and limited by its policies, from `current`. The string says what
/// limited it, if anything did (a `ScalingLimited` reason).
pub fn normalize(
    desired: u32,
    current: u32,
    up: &Rules,
    down: &Rules,
    history: &mut History,
    now: Instant,
) -> (u32, Option<&'static str>) {
    let keep = up
        .stabilization
        .max(down.stabilization)
        .max(Duration::from_secs(600));
    history
        .recommendations
        .retain(|(t, _)| now.saturating_duration_since(*t) <= keep);
    history
        .changes
        .retain(|(t, _)| now.saturating_duration_since(*t) <= keep);
    history.recommendations.push((now, desired));
    let within = |w: Duration| {
        history
            .recommendations
            .iter()
            .filter(move |(t, _)| now.saturating_duration_since(*t) <= w)
            .map(|(_, r)| *r)
    };
    // Up: the lowest recommendation of the up window; down: the highest of the down window.
    let up_rec = within(up.stabilization).min().unwrap_or(desired);
    let down_rec = within(down.stabilization).max().unwrap_or(desired);
    let mut stabilized = current;
    if stabilized < up_rec {
        stabilized = up_rec;
    }
    if stabilized > down_rec {
        stabilized = down_rec;
    }
    if stabilized > current {
        let limit = limit(up, current, history, now, true);
        if stabilized > limit {
            return (limit, Some("ScaleUpLimit"));
        }
    } else if stabilized < current {
        let limit = limit(down, current, history, now, false);
        if stabilized < limit {
            return (limit, Some("ScaleDownLimit"));
        }
    }
    (stabilized, None)
}

/// The furthest the policies let replicas move from `current` now (`Disabled`: not at all).
fn limit(rules: &Rules, current: u32, history: &History, now: Instant, up: bool) -> u32 {
    if rules.select == "Disabled" {
        return current;
    }
    let bounds = rules.policies.iter().map(|p| {
        let moved: i64 = history
            .changes
            .iter()
            .filter(|(t, d)| now.saturating_duration_since(*t) <= p.period && (*d > 0) == up)
            .map(|(_, d)| *d)
            .sum();
        // Replicas at the start of the policy's period.
        let start = (i64::from(current) - moved).max(0) as f64;
        let bound = match (p.kind.as_str(), up) {
            ("Pods", true) => start + f64::from(p.value),
            ("Pods", false) => start - f64::from(p.value),
            (_, true) => (start * (1.0 + f64::from(p.value) / 100.0)).ceil(),
            (_, false) => (start * (1.0 - f64::from(p.value) / 100.0)).ceil(),
        };
        bound.max(0.0) as u32
    });
    let chosen = match (rules.select.as_str(), up) {
        ("Min", true) | ("Max", false) => bounds.min(),
        _ => bounds.max(),
    };
    chosen.unwrap_or(current)
}

#[cfg(test)]
#[path = "calc_tests.rs"]
mod tests;
