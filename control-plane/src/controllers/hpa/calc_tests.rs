use super::*;

fn pod(name: &str, request_millis: Option<f64>, cpu_millis: Option<f64>) -> PodSample {
    PodSample {
        name: name.into(),
        cpu_request_millis: request_millis,
        memory_request_bytes: None,
        usage: cpu_millis.map(|c| Usage {
            cpu_millis: c,
            ..Usage::default()
        }),
    }
}

fn cpu(percent: f64) -> MetricSpec {
    MetricSpec::Utilization {
        resource: Resource::Cpu,
        percent,
    }
}

#[test]
fn utilization_scales_to_the_target_ratio() {
    // Two pods at 200 % of a 100m request against a 50 % target: 4× → 8 replicas.
    let pods = [
        pod("a", Some(100.0), Some(200.0)),
        pod("b", Some(100.0), Some(200.0)),
    ];
    let r = recommend(&cpu(50.0), &pods, 2).unwrap();
    assert_eq!(r.replicas, 8);
    assert_eq!(r.current["resource"]["current"]["averageUtilization"], 200);
    assert!(r.what.contains("above target"), "{}", r.what);
    // Within the tolerance: unchanged.
    let pods = [pod("a", Some(100.0), Some(52.0))];
    assert_eq!(recommend(&cpu(50.0), &pods, 1).unwrap().replicas, 1);
    // Idle: down to what the usage needs (0 here; min replicas clamp later).
    let pods = [
        pod("a", Some(100.0), Some(0.0)),
        pod("b", Some(100.0), Some(0.0)),
    ];
    assert_eq!(recommend(&cpu(50.0), &pods, 2).unwrap().replicas, 0);
}

#[test]
fn missing_requests_and_metrics_are_errors() {
    let e = recommend(&cpu(50.0), &[pod("a", None, Some(10.0))], 1).unwrap_err();
    assert!(e.contains("missing request for cpu in pod a"), "{e}");
    let e = recommend(&cpu(50.0), &[pod("a", Some(100.0), None)], 1).unwrap_err();
    assert!(e.contains("no metrics"), "{e}");
}

#[test]
fn pods_metrics_average_over_pods() {
    let mut p = pod("a", None, Some(0.0));
    p.usage = Some(Usage {
        requests_per_second: 30.0,
        ..Usage::default()
    });
    let m = MetricSpec::PodsAverage {
        metric: PodMetric::RequestsPerSecond,
        value: 10.0,
    };
    let r = recommend(&m, &[p], 1).unwrap();
    assert_eq!(r.replicas, 3);
    assert_eq!(r.current["pods"]["current"]["averageValue"], "30000m");
}

#[test]
fn scale_down_waits_for_its_stabilization_window() {
    let up = Rules::default_up();
    let down = Rules::default_down();
    let mut h = History::default();
    let t0 = Instant::now();
    assert_eq!(normalize(5, 5, &up, &down, &mut h, t0).0, 5);
    // A lower recommendation within 5 minutes of a higher one does not scale down yet.
    assert_eq!(
        normalize(1, 5, &up, &down, &mut h, t0 + Duration::from_secs(60)).0,
        5
    );
    // Once the higher one is older than the window, it does.
    assert_eq!(
        normalize(1, 5, &up, &down, &mut h, t0 + Duration::from_secs(301)).0,
        1
    );
}

#[test]
fn policies_limit_scale_up() {
    let up = Rules::default_up();
    let down = Rules::parse(
        Some(&json!({"stabilizationWindowSeconds": 0})),
        Rules::default_down(),
    );
    assert_eq!(down.stabilization, Duration::ZERO);
    let mut h = History::default();
    let now = Instant::now();
    // From 1: max(1 + 4 pods, 1 × 200 %) = 5 per 15 s.
    assert_eq!(
        normalize(20, 1, &up, &down, &mut h, now),
        (5, Some("ScaleUpLimit"))
    );
    h.record_change(now, 4);
    // 5 replicas now, 4 added this period: the period started at 1 → still 5.
    assert_eq!(
        normalize(20, 5, &up, &down, &mut h, now + Duration::from_secs(5)),
        (5, Some("ScaleUpLimit"))
    );
    // A new period: from 5, max(9, 10) = 10.
    assert_eq!(
        normalize(20, 5, &up, &down, &mut h, now + Duration::from_secs(16)),
        (10, Some("ScaleUpLimit"))
    );
    let disabled = Rules::parse(
        Some(&json!({"selectPolicy": "Disabled"})),
        Rules::default_up(),
    );
    assert_eq!(normalize(9, 3, &disabled, &down, &mut h, now).0, 3);
}

#[test]
fn target_quantities_parse() {
    assert_eq!(quantity_value(&json!("500m")), Some(0.5));
    assert_eq!(quantity_value(&json!(10)), Some(10.0));
    assert_eq!(quantity_value(&json!("64Mi")), Some(64.0 * 1024.0 * 1024.0));
}

#[test]
fn pods_without_metrics_count_against_the_move() {
    // Scaling up: one measured pod at 200 % of a 50 % target, one without a reading (idle):
    // (4 + 0) / 2 = 2 × the target over two pods → 4 replicas.
    let pods = [
        pod("a", Some(100.0), Some(200.0)),
        pod("b", Some(100.0), None),
    ];
    assert_eq!(recommend(&cpu(50.0), &pods, 2).unwrap().replicas, 4);
    // Scaling down: one idle pod, one without a reading (at target): (0 + 1) / 2 = 0.5 → 1.
    let pods = [
        pod("a", Some(100.0), Some(0.0)),
        pod("b", Some(100.0), None),
    ];
    assert_eq!(recommend(&cpu(50.0), &pods, 2).unwrap().replicas, 1);
    // Scaling down a little: the assumed pods bring it within tolerance, nothing changes.
    let pods = [
        pod("a", Some(100.0), Some(40.0)),
        pod("b", Some(100.0), None),
        pod("c", Some(100.0), None),
    ];
    assert_eq!(recommend(&cpu(50.0), &pods, 3).unwrap().replicas, 3);
}
