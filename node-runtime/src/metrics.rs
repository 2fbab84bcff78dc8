//! The node's Prometheus metrics, served by the agent endpoint at `/metrics`: the stages of
//! a cold start as histograms (`skiff_cold_start_stage_seconds{stage=...}`), so where the
//! time of a start from zero goes is visible: `pull` (the image: from the node's store or the
//! registry), `load` split by where the component's machine code came from (`compile`,
//! `disk_cache`, or `warm`: already loaded and pre-instantiated), `instantiate` (a server's
//! first instance), `first_byte` (at the activator: from holding a connection to the first
//! byte of the answer). The control plane's `/metrics` has the `schedule` stage.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A stage of a cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pull,
    Compile,
    DiskCache,
    Warm,
    Instantiate,
    FirstByte,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Pull => "pull",
            Stage::Compile => "compile",
            Stage::DiskCache => "disk_cache",
            Stage::Warm => "warm",
            Stage::Instantiate => "instantiate",
            Stage::FirstByte => "first_byte",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

struct NodeMetrics {
    registry: Mutex<Registry>,
    stages: Family<StageLabels, Histogram>,
}

static METRICS: LazyLock<NodeMetrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    // 50 µs to ~3 min: an instantiation is microseconds, a container pull seconds.
    let stages = Family::<StageLabels, Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.00005, 2.0, 22))
    });
    registry.register(
        "skiff_cold_start_stage_seconds",
        "Time spent in each stage of starting a pod's container (pull, load: compile / disk_cache / warm, instantiate, first_byte at the activator)",
        stages.clone(),
    );
    NodeMetrics {
        registry: Mutex::new(registry),
        stages,
    }
});

/// Records one stage's duration.
pub fn observe(stage: Stage, took: Duration) {
    METRICS
        .stages
        .get_or_create(&StageLabels {
            stage: stage.as_str().to_string(),
        })
        .observe(took.as_secs_f64());
}

/// The metrics in Prometheus' text format.
pub fn encode() -> String {
    let mut out = String::new();
    let registry = METRICS.registry.lock().unwrap_or_else(|p| p.into_inner());
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_histograms_by_name() {
        observe(Stage::Warm, Duration::from_micros(80));
        let text = encode();
        assert!(
            text.contains("skiff_cold_start_stage_seconds_count{stage=\"warm\"}"),
            "{text}"
        );
    }
}
