//! Prometheus metrics at `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::ApiState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<VerbLabels, Histogram>,
    pub watches: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<VerbLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let watches = Gauge::default();
        registry.register(
            "skiff_apiserver_requests",
            "API requests by HTTP method and response code",
            requests.clone(),
        );
        registry.register(
            "skiff_apiserver_request_duration_seconds",
            "API request latency by HTTP method (watches excluded)",
            latency.clone(),
        );
        registry.register(
            "skiff_apiserver_watches",
            "Open watch streams",
            watches.clone(),
        );
        // One stage here, shared with the scheduler (which observes it).
        let stages = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            crate::controllers::scheduler::SCHEDULE_STAGE.clone()
        });
        drop(stages.get_or_create(&StageLabels {
            stage: "schedule".into(),
        }));
        registry.register(
            "skiff_cold_start_stage_seconds",
            "Time spent in each stage of starting a pod that the control plane sees (schedule: from the scheduler's first sight of the pod to its bind); the nodes' /metrics have the others",
            stages,
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            watches,
        }
    }

    pub fn record_request(&self, method: &str, path: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: method.to_string(),
                code: code.to_string(),
            })
            .inc();
        if !path.contains("watch") {
            self.latency
                .get_or_create(&VerbLabels {
                    verb: method.to_string(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(reg) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        }
        out
    }
}

pub async fn serve(State(st): State<ApiState>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}
