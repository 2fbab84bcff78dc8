//! HorizontalPodAutoscaler (`autoscaling/v2`), as Kubernetes' `pkg/controller/podautoscaler`:
//! every sync period each HPA reads its target's scale (Deployments, StatefulSets,
//! ReplicaSets), the running pods its selector picks and their usage from
//! [`crate::usage::UsageStore`] (the node agents' readings), computes each metric's
//! recommendation (`calc.rs`: Resource cpu/memory as utilization of requests or average value;
//! Pods `requests_per_second` and `concurrency`, which Skiff's nodes measure for Wasm HTTP
//! components), takes the largest, keeps it within min/max, stabilises and rate-limits it by
//! `behavior`, writes the target's `spec.replicas`, and records an Event and the status
//! (`currentMetrics`, conditions AbleToScale / ScalingActive / ScalingLimited).

mod calc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::runner::{served, Action, ReconcileError, Reconciler, Trigger};
use crate::api::handlers::{Objects, Subresource};
use crate::api::object;
use crate::api::selectors::LabelSelector;
use crate::events::{EventRecorder, EventType};
use crate::store::ObjectKey;
use crate::usage::UsageStore;
use calc::{History, MetricSpec, PodMetric, PodSample, Resource, Rules, Usage};

/// One worker: each sync is a few reads and at most two writes.
pub const DEFAULT_WORKERS: usize = 1;
const HPAS: &str = "autoscaling/horizontalpodautoscalers";

pub struct HpaController {
    objects: Objects,
    usage: UsageStore,
    recorder: EventRecorder,
    /// How often each HPA is re-evaluated: the metrics resolution (new usage arrives no faster).
    sync_period: Duration,
    history: Mutex<HashMap<ObjectKey, History>>,
}

impl HpaController {
    pub fn new(objects: Objects, sync_period: Duration) -> Self {
        let st = objects.state();
        let recorder = EventRecorder::new(st.store.clone(), "horizontal-pod-autoscaler");
        HpaController {
            usage: st.usage.clone(),
            objects,
            recorder,
            sync_period,
            history: Mutex::default(),
        }
    }

    async fn event(&self, obj: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.recorder.record(obj, kind, reason, message).await {
            tracing::debug!(error = %e, "cannot record event");
        }
    }
}

/// What one sync concluded, for the status.
struct Outcome {
    current: u32,
    desired: u32,
    metrics: Vec<Value>,
    conditions: Vec<(&'static str, bool, &'static str, String)>,
    scaled: bool,
}

fn condition(
    kind: &'static str,
    ok: bool,
    reason: &'static str,
    msg: impl Into<String>,
) -> (&'static str, bool, &'static str, String) {
    (kind, ok, reason, msg.into())
}

impl Reconciler for HpaController {
    fn name(&self) -> &'static str {
        "horizontal-pod-autoscaler"
    }

    fn triggers(&self) -> Vec<Trigger> {
        vec![Trigger::own(HPAS)]
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let def = crate::api::resources::find("autoscaling", "v2", "horizontalpodautoscalers")
            .ok_or_else(|| ReconcileError::Invalid("autoscaling/v2 is not served".into()))?;
        let Some(hpa) = self.objects.get(def, &key.namespace, &key.name).await? else {
            self.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            return Ok(Action::Done);
        };
        if hpa.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Action::Done);
        }
        let outcome = self.sync(key, &hpa).await?;
        self.write_status(def, &hpa, outcome).await?;
        Ok(Action::RequeueAfter(self.sync_period))
    }
}

impl HpaController {
    async fn sync(&self, key: &ObjectKey, hpa: &Value) -> Result<Outcome, ReconcileError> {
        let spec = hpa.get("spec").cloned().unwrap_or(Value::Null);
        let target_kind = spec
            .pointer("/scaleTargetRef/kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let target_name = spec
            .pointer("/scaleTargetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let plural = match target_kind {
            "Deployment" => "deployments",
            "StatefulSet" => "statefulsets",
            "ReplicaSet" => "replicasets",
            other => {
                let msg = format!(
                    "the HPA controller was unable to get the target's current scale: Skiff scales \
                     Deployments, StatefulSets and ReplicaSets, not {other:?}"
                );
                self.event(hpa, EventType::Warning, "FailedGetScale", &msg)
                    .await;
                return Ok(failed(hpa, "FailedGetScale", msg));
            }
        };
        let target_def = served("apps", plural)?;
        let Some(target) = self
            .objects
            .get(target_def, &key.namespace, target_name)
            .await?
        else {
            let msg = format!(
                "the HPA controller was unable to get the target's current scale: {plural}.apps \"{target_name}\" not found"
            );
            self.event(hpa, EventType::Warning, "FailedGetScale", &msg)
                .await;
            return Ok(failed(hpa, "FailedGetScale", msg));
        };
        let current = target
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1) as u32;
        let min = spec.get("minReplicas").and_then(Value::as_u64).unwrap_or(1) as u32;
        let max = spec.get("maxReplicas").and_then(Value::as_u64).unwrap_or(1) as u32;
        let mut out = Outcome {
            current,
            desired: current,
            metrics: Vec::new(),
            conditions: vec![condition(
                "AbleToScale",
                true,
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale",
            )],
            scaled: false,
        };
        if current == 0 {
            out.conditions.push(condition(
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            ));
            return Ok(out);
        }
        let pods = self.samples(&key.namespace, &target).await?;
        let specs = metric_specs(&spec);
        let mut best: Option<(u32, String)> = None;
        let mut errors = Vec::new();
        for m in &specs {
            match m {
                Ok(m) => match calc::recommend(m, &pods, current) {
                    Ok(r) => {
                        out.metrics.push(r.current);
                        if best.as_ref().is_none_or(|(n, _)| r.replicas > *n) {
                            best = Some((r.replicas, r.what));
                        }
                    }
                    Err(e) => errors.push(e),
                },
                Err(e) => errors.push(e.clone()),
            }
        }
        let Some((wanted, what)) = best else {
            let msg = errors.join("; ");
            self.event(hpa, EventType::Warning, "FailedGetResourceMetric", &msg)
                .await;
            out.conditions.push(condition(
                "ScalingActive",
                false,
                "FailedGetResourceMetric",
                msg,
            ));
            return Ok(out);
        };
        out.conditions.push(condition(
            "ScalingActive",
            true,
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from the metrics",
        ));
        let (bounded, limited) = if wanted > max {
            (
                max,
                condition(
                    "ScalingLimited",
                    true,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        } else if wanted < min {
            (
                min,
                condition(
                    "ScalingLimited",
                    true,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        } else {
            (
                wanted,
                condition(
                    "ScalingLimited",
                    false,
                    "DesiredWithinRange",
                    "the desired count is within the acceptable range",
                ),
            )
        };
        let up = Rules::parse(spec.pointer("/behavior/scaleUp"), Rules::default_up());
        let down = Rules::parse(spec.pointer("/behavior/scaleDown"), Rules::default_down());
        let now = Instant::now();
        let (desired, rate_limited) = {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            calc::normalize(
                bounded,
                current,
                &up,
                &down,
                h.entry(key.clone()).or_default(),
                now,
            )
        };
        out.conditions.push(match rate_limited {
            Some(reason) => condition(
                "ScalingLimited",
                true,
                reason,
                "the desired replica count is limited by the scaling policies",
            ),
            None => limited,
        });
        out.desired = desired;
        if desired != current {
            let changed = self
                .objects
                .modify(
                    target_def,
                    &key.namespace,
                    target_name,
                    Subresource::Main,
                    |t| {
                        t["spec"]["replicas"] = json!(desired);
                        Ok(())
                    },
                )
                .await?;
            if changed.is_some() {
                self.history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key.clone())
                    .or_default()
                    .record_change(now, i64::from(desired) - i64::from(current));
                out.scaled = true;
                let msg = format!("New size: {desired}; reason: {what}");
                self.event(hpa, EventType::Normal, "SuccessfulRescale", &msg)
                    .await;
            }
        }
        Ok(out)
    }

    /// The target's running pods with their requests and usage.
    async fn samples(&self, ns: &str, target: &Value) -> Result<Vec<PodSample>, ReconcileError> {
        let selector = target
            .pointer("/spec/selector")
            .map(LabelSelector::from_k8s)
            .transpose()
            .map_err(|e| ReconcileError::Invalid(e.to_string()))?
            .unwrap_or_else(LabelSelector::nothing);
        let pods = self.objects.list(served("", "pods")?, ns, None).await?;
        Ok(pods
            .iter()
            .filter(|p| selector.matches_object(p))
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .filter(|p| {
                let phase = p
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                phase != "Failed" && phase != "Succeeded"
            })
            .map(|p| self.sample(ns, p))
            .collect())
    }

    fn sample(&self, ns: &str, pod: &Value) -> PodSample {
        let name = object::name(pod).to_string();
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let request = |res: &str| -> Option<f64> {
            containers
                .iter()
                .map(|c| {
                    c.pointer(&format!("/resources/requests/{res}"))
                        .and_then(calc::quantity_value)
                })
                .sum::<Option<f64>>()
        };
        let usage = self.usage.pod(ns, &name).map(|u| Usage {
            cpu_millis: u.cpu_nanocores() as f64 / 1e6,
            memory_bytes: u.memory_bytes() as f64,
            requests_per_second: u
                .containers
                .iter()
                .filter_map(|c| c.requests_per_second)
                .sum(),
            concurrency: u.containers.iter().filter_map(|c| c.in_flight).sum::<u64>() as f64,
        });
        PodSample {
            name,
            cpu_request_millis: request("cpu").map(|cores| cores * 1000.0),
            memory_request_bytes: request("memory"),
            usage,
        }
    }

    async fn write_status(
        &self,
        def: &'static crate::api::resources::ResourceDef,
        hpa: &Value,
        out: Outcome,
    ) -> Result<(), ReconcileError> {
        let now = jiff::Timestamp::now().to_string();
        let generation = hpa
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let old_conditions = hpa
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let conditions: Vec<Value> = out
            .conditions
            .iter()
            .map(|(kind, ok, reason, msg)| {
                let status = if *ok { "True" } else { "False" };
                let since = old_conditions
                    .iter()
                    .find(|c| c["type"] == *kind && c["status"] == status)
                    .and_then(|c| c.get("lastTransitionTime").cloned())
                    .unwrap_or(json!(now));
                json!({"type": kind, "status": status, "lastTransitionTime": since,
                       "reason": reason, "message": msg})
            })
            .collect();
        let last_scale = if out.scaled {
            json!(now)
        } else {
            hpa.pointer("/status/lastScaleTime")
                .cloned()
                .unwrap_or(Value::Null)
        };
        let status = json!({
            "observedGeneration": generation,
            "currentReplicas": out.current,
            "desiredReplicas": out.desired,
            "currentMetrics": out.metrics,
            "conditions": conditions,
            "lastScaleTime": last_scale,
        });
        if hpa.get("status") == Some(&status) {
            return Ok(());
        }
        self.objects
            .modify(
                def,
                object::namespace(hpa),
                object::name(hpa),
                Subresource::Status,
                |h| {
                    h["status"] = status.clone();
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }
}

/// A sync that could not read the target: the last known replica counts stay.
fn failed(hpa: &Value, reason: &'static str, msg: String) -> Outcome {
    let last = |k: &str| {
        hpa.pointer(&format!("/status/{k}"))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32
    };
    Outcome {
        current: last("currentReplicas"),
        desired: last("desiredReplicas"),
        metrics: Vec::new(),
        conditions: vec![condition("AbleToScale", false, reason, msg)],
        scaled: false,
    }
}

/// `spec.metrics`, or cpu at 80 % utilization when there are none (Kubernetes' default).
fn metric_specs(spec: &Value) -> Vec<Result<MetricSpec, String>> {
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if metrics.is_empty() {
        return vec![Ok(MetricSpec::Utilization {
            resource: Resource::Cpu,
            percent: 80.0,
        })];
    }
    metrics.iter().map(metric_spec).collect()
}

fn metric_spec(m: &Value) -> Result<MetricSpec, String> {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Resource" => {
            let r = m.get("resource").cloned().unwrap_or(Value::Null);
            let resource = match r.get("name").and_then(Value::as_str) {
                Some("cpu") => Resource::Cpu,
                Some("memory") => Resource::Memory,
                other => return Err(format!("resource metric {other:?} is not supported: use cpu or memory")),
            };
            let target = r.get("target").cloned().unwrap_or(Value::Null);
            match target.get("type").and_then(Value::as_str) {
                Some("Utilization") => Ok(MetricSpec::Utilization {
                    resource,
                    percent: target
                        .get("averageUtilization")
                        .and_then(Value::as_f64)
                        .filter(|p| *p > 0.0)
                        .ok_or("target.averageUtilization must be a positive percentage")?,
                }),
                Some("AverageValue") => Ok(MetricSpec::ResourceAverage {
                    resource,
                    value: target
                        .get("averageValue")
                        .and_then(calc::quantity_value)
                        .filter(|v| *v > 0.0)
                        .map(|v| if resource == Resource::Cpu { v * 1000.0 } else { v })
                        .ok_or("target.averageValue must be a positive quantity")?,
                }),
                other => Err(format!("resource target type {other:?} is not supported: use Utilization or AverageValue")),
            }
        }
        "Pods" => {
            let p = m.get("pods").cloned().unwrap_or(Value::Null);
            let name = p.pointer("/metric/name").and_then(Value::as_str).unwrap_or("");
            let metric = PodMetric::parse(name).ok_or_else(|| {
                format!("pods metric {name:?} is not measured by Skiff's nodes: use requests_per_second or concurrency")
            })?;
            let value = p
                .pointer("/target/averageValue")
                .and_then(calc::quantity_value)
                .filter(|v| *v > 0.0)
                .ok_or("pods target.averageValue must be a positive quantity")?;
            Ok(MetricSpec::PodsAverage { metric, value })
        }
        other => Err(format!(
            "metric type {other:?} is not supported: Skiff's HPA scales on Resource (cpu, memory) and Pods (requests_per_second, concurrency) metrics"
        )),
    }
}

/// Starts the controller.
pub fn spawn(
    objects: Objects,
    sync_period: Duration,
    store: crate::store::Store,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    super::runner::spawn(
        Arc::new(HpaController::new(objects, sync_period)),
        store,
        DEFAULT_WORKERS,
        shutdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_specs_parse_with_defaults_and_clear_errors() {
        let none = metric_specs(&json!({}));
        assert_eq!(
            none,
            vec![Ok(MetricSpec::Utilization {
                resource: Resource::Cpu,
                percent: 80.0
            })]
        );
        let specs = metric_specs(&json!({"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "500m"}}},
            {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {}},
            {"type": "Pods", "pods": {"metric": {"name": "queue_depth"}, "target": {"type": "AverageValue", "averageValue": "1"}}},
        ]}));
        assert_eq!(
            specs[0],
            Ok(MetricSpec::ResourceAverage {
                resource: Resource::Cpu,
                value: 500.0
            })
        );
        assert_eq!(
            specs[1],
            Ok(MetricSpec::PodsAverage {
                metric: PodMetric::RequestsPerSecond,
                value: 10.0
            })
        );
        assert!(specs[2]
            .as_ref()
            .unwrap_err()
            .contains("\"External\" is not supported"));
        assert!(specs[3].as_ref().unwrap_err().contains("queue_depth"));
    }
}
