//! The protobuf encoder: JSON -> encode -> the decoder gives the same JSON back, the bytes
//! decode with k8s-pb's generated types (and are what prost writes for them), and what
//! cannot be encoded is an error, never a panic.

use base64::Engine as _;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{json, Value};

use super::encode::parse_go_duration;
use super::*;

/// Encodes `object`, checks the envelope, decodes it back with the decoder and compares;
/// returns the `raw` bytes (the object's own message).
fn round_trip(object: &Value, expected_back: &Value) -> Vec<u8> {
    let body = encode_k8s_protobuf(object).expect("encodes");
    assert_eq!(&body[..4], b"k8s\0");
    let unknown = Unknown::decode(&body[4..]).expect("runtime.Unknown");
    let type_meta = unknown.type_meta.clone().expect("typeMeta");
    assert_eq!(
        type_meta.api_version.as_deref(),
        object["apiVersion"].as_str()
    );
    assert_eq!(type_meta.kind.as_deref(), object["kind"].as_str());
    assert_eq!(unknown.content_encoding.as_deref(), Some(""));
    assert_eq!(unknown.content_type.as_deref(), Some(""));
    // The envelope is written as Kubernetes writes it: fields 1..4 in order, prost agrees.
    assert_eq!(unknown.encode_to_vec(), body[4..].to_vec());
    let back = decode_k8s_protobuf(&body).expect("decodes");
    assert_eq!(&back, expected_back, "round trip");
    unknown.raw.unwrap_or_default()
}

/// Decodes `raw` as the k8s-pb type and checks prost writes exactly the same bytes (same
/// field order, map order, unpacked repeated scalars).
fn via_k8s_pb<M: Message + Default>(raw: &[u8]) -> M {
    let msg = M::decode(raw).expect("k8s-pb decodes the raw object");
    assert_eq!(msg.encode_to_vec(), raw, "prost re-encodes the same bytes");
    msg
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "uid": "6c1f6e0a-8c7e-4a1f-9d55-3d2b1f4e5a6b",
            "resourceVersion": "42",
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "protobuf"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                "uid": "11111111-2222-3333-4444-555555555555",
                "controller": true, "blockOwnerDeletion": true
            }],
            "finalizers": ["example.com/keep"],
            "managedFields": [{
                "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
            }]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "hello:1.0",
                "command": ["/bin/web", "--port=8080"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b", "optional": false}}}
                ],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m", "memory": "64Mi"}
                },
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
                    "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3
                },
                "livenessProbe": {
                    "tcpSocket": {"port": 8080},
                    "initialDelaySeconds": 10
                },
                "startupProbe": {"exec": {"command": ["true"]}},
                "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}],
                "terminationMessagePath": "/dev/termination-log",
                "imagePullPolicy": "IfNotPresent"
            }],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
                {"name": "scratch", "emptyDir": {}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "securityContext": {"supplementalGroups": [1000, 2000]},
            "tolerations": [{
                "key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 300
            }],
            "enableServiceLinks": true
        },
        "status": {
            "phase": "Running",
            "podIP": "10.42.0.7",
            "podIPs": [{"ip": "10.42.0.7"}],
            "conditions": [{
                "type": "Ready", "status": "True",
                "lastTransitionTime": "2024-01-02T03:04:06Z"
            }],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "image": "hello:1.0",
                "imageID": "", "started": true,
                "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}}
            }]
        }
    })
}

#[test]
fn protobuf_pod_round_trips_and_decodes_with_k8s_pb() {
    let object = pod();
    // `imageID: ""` is a required string: the decoder keeps it, as the API server would.
    let raw = round_trip(&object, &object);
    let pod: core::Pod = via_k8s_pb(&raw);
    let metadata = pod.metadata.expect("metadata");
    assert_eq!(metadata.name.as_deref(), Some("web-0"));
    assert_eq!(
        metadata.labels.get("tier").map(String::as_str),
        Some("front")
    );
    assert_eq!(
        metadata.creation_timestamp.and_then(|t| t.seconds),
        Some(1_704_164_645)
    );
    let fields = metadata.managed_fields[0]
        .fields_v1
        .clone()
        .expect("fieldsV1");
    let fields: Value = serde_json::from_slice(&fields.raw.expect("raw")).expect("JSON");
    assert_eq!(fields, object["metadata"]["managedFields"][0]["fieldsV1"]);
    let spec = pod.spec.expect("spec");
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("hello:1.0"));
    let resources = c.resources.clone().expect("resources");
    assert_eq!(
        resources
            .limits
            .get("cpu")
            .and_then(|q| q.string.as_deref()),
        Some("500m")
    );
    assert_eq!(
        resources
            .requests
            .get("memory")
            .and_then(|q| q.string.as_deref()),
        Some("64Mi")
    );
    // Inline ProbeHandler: httpGet with a named port (IntOrString type 1).
    let ready = c.readiness_probe.clone().expect("readinessProbe");
    let get = ready.handler.and_then(|h| h.http_get).expect("httpGet");
    assert_eq!(get.path.as_deref(), Some("/ready"));
    let port = get.port.expect("port");
    assert_eq!(
        (port.r#type, port.str_val.as_deref()),
        (Some(1), Some("http"))
    );
    let live = c.liveness_probe.clone().expect("livenessProbe");
    let tcp = live.handler.and_then(|h| h.tcp_socket).expect("tcpSocket");
    assert_eq!(tcp.port.and_then(|p| p.int_val), Some(8080));
    let startup = c
        .startup_probe
        .clone()
        .and_then(|p| p.handler)
        .and_then(|h| h.exec);
    assert_eq!(startup.map(|e| e.command), Some(vec!["true".to_string()]));
    // A pointer int set to 0 is on the wire.
    assert_eq!(
        c.security_context.clone().and_then(|s| s.run_as_user),
        Some(0)
    );
    // Inline embeddings: LocalObjectReference in the key selector, VolumeSource in Volume.
    let selector = c.env[1]
        .value_from
        .clone()
        .and_then(|v| v.config_map_key_ref)
        .expect("configMapKeyRef");
    assert_eq!(
        selector
            .local_object_reference
            .and_then(|r| r.name)
            .as_deref(),
        Some("cfg")
    );
    assert_eq!(selector.optional, Some(false));
    let source = spec.volumes[0].volume_source.clone().expect("volumeSource");
    assert_eq!(source.config_map.and_then(|c| c.default_mode), Some(420));
    assert!(spec.volumes[1]
        .volume_source
        .as_ref()
        .is_some_and(|s| s.empty_dir.is_some()));
    assert_eq!(
        spec.security_context.map(|s| s.supplemental_groups),
        Some(vec![1000, 2000])
    );
    assert_eq!(spec.tolerations[0].toleration_seconds, Some(300));
    let status = pod.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.container_statuses[0].restart_count, Some(0));
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "generation": 2, "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "hello:1.0",
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}},
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": 8080},
                            "periodSeconds": 10
                        },
                        "readinessProbe": {"grpc": {"port": 9090, "service": ""}}
                    }]
                }
            }
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "unavailableReplicas": 1,
            "conditions": [{
                "type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
                "lastUpdateTime": "2024-01-02T03:04:05Z", "lastTransitionTime": "2024-01-02T03:04:05Z"
            }]
        }
    })
}

#[test]
fn protobuf_deployment_int_or_string_quantities_and_probes() {
    let object = deployment();
    let raw = round_trip(&object, &object);
    let d: apps::Deployment = via_k8s_pb(&raw);
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let rolling = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .expect("rollingUpdate");
    let surge = rolling.max_surge.expect("maxSurge");
    assert_eq!(
        (surge.r#type, surge.int_val, surge.str_val.as_deref()),
        (Some(1), Some(0), Some("25%"))
    );
    let unavailable = rolling.max_unavailable.expect("maxUnavailable");
    assert_eq!(
        (
            unavailable.r#type,
            unavailable.int_val,
            unavailable.str_val.as_deref()
        ),
        (Some(0), Some(1), Some(""))
    );
    let container = &spec
        .template
        .and_then(|t| t.spec)
        .expect("pod spec")
        .containers[0];
    let limits = &container.resources.as_ref().expect("resources").limits;
    assert_eq!(
        limits.get("memory").and_then(|q| q.string.as_deref()),
        Some("1Gi")
    );
    let probe = container.liveness_probe.clone().expect("livenessProbe");
    assert_eq!(probe.period_seconds, Some(10));
    let get = probe.handler.and_then(|h| h.http_get).expect("httpGet");
    assert_eq!(get.port.and_then(|p| p.int_val), Some(8080));
    let grpc = container
        .readiness_probe
        .clone()
        .and_then(|p| p.handler)
        .and_then(|h| h.grpc)
        .expect("grpc");
    // GRPCAction.service is a Go pointer: its set "" is written.
    assert_eq!((grpc.port, grpc.service.as_deref()), (Some(9090), Some("")));
    let status = d.status.expect("status");
    assert_eq!(status.unavailable_replicas, Some(1));

    // The other way round: maxSurge 1, maxUnavailable "25%".
    let mut other = deployment();
    other["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": "25%"});
    let raw = round_trip(&other, &other);
    let d: apps::Deployment = via_k8s_pb(&raw);
    let rolling = d
        .spec
        .and_then(|s| s.strategy)
        .and_then(|s| s.rolling_update)
        .expect("rollingUpdate");
    assert_eq!(rolling.max_surge.and_then(|s| s.int_val), Some(1));
    assert_eq!(
        rolling.max_unavailable.and_then(|s| s.str_val).as_deref(),
        Some("25%")
    );
}

#[test]
fn protobuf_configmap_binary_data_and_immutable() {
    let binary: Vec<u8> = vec![0, 159, 146, 150, 255, b'\n'];
    let encoded = base64::engine::general_purpose::STANDARD.encode(&binary);
    let object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"greeting": "hello", "empty": "", "z-last": "z"},
        "binaryData": {"blob": encoded, "nothing": ""},
        "immutable": false
    });
    let raw = round_trip(&object, &object);
    // Go writes an empty map value (`{1: "empty", 2: ""}`), as the encoder does; prost
    // leaves it out, so only the decoded values are compared here.
    let cm = core::ConfigMap::decode(raw.as_slice()).expect("k8s-pb decodes");
    assert_eq!(cm.binary_data.get("blob"), Some(&binary));
    assert_eq!(cm.binary_data.get("nothing"), Some(&Vec::new()));
    assert_eq!(cm.data.get("empty").map(String::as_str), Some(""));
    assert_eq!(cm.immutable, Some(false));
    // Unpadded base64 (some clients write it) reads the same.
    let mut unpadded = object.clone();
    unpadded["binaryData"]["blob"] = json!(encoded.trim_end_matches('='));
    assert_eq!(encode_k8s_protobuf(&unpadded), encode_k8s_protobuf(&object));
}

#[test]
fn protobuf_service_ports_and_target_ports() {
    let object = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "clusterIP": "10.43.0.10",
            "clusterIPs": ["10.43.0.10"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP", "nodePort": 30090}
            ],
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {}}
    });
    let raw = round_trip(&object, &object);
    let svc: core::Service = via_k8s_pb(&raw);
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.r#type.as_deref(), Some("NodePort"));
    assert_eq!(spec.ports[0].node_port, Some(30080));
    assert_eq!(
        spec.ports[0].target_port.clone().and_then(|p| p.int_val),
        Some(8080)
    );
    assert_eq!(
        spec.ports[1]
            .target_port
            .clone()
            .and_then(|p| p.str_val)
            .as_deref(),
        Some("metrics")
    );
    assert!(svc.status.and_then(|s| s.load_balancer).is_some());
}

#[test]
fn protobuf_list_drops_item_type_meta() {
    let mut item = pod();
    let mut second = pod();
    second["metadata"]["name"] = json!("web-1");
    let list = json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "77", "continue": "abc"},
        "items": [item.clone(), second.clone()]
    });
    // Items carry no apiVersion/kind in protobuf (as from a Kubernetes list).
    for i in [&mut item, &mut second] {
        let o = i.as_object_mut().expect("object");
        o.remove("apiVersion");
        o.remove("kind");
    }
    let expected = json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "77", "continue": "abc"},
        "items": [item, second]
    });
    let raw = round_trip(&list, &expected);
    let decoded: core::PodList = via_k8s_pb(&raw);
    assert_eq!(decoded.items.len(), 2);
    assert_eq!(
        decoded.metadata.and_then(|m| m.resource_version).as_deref(),
        Some("77")
    );
    assert_eq!(
        decoded.items[1]
            .metadata
            .as_ref()
            .and_then(|m| m.name.as_deref()),
        Some("web-1")
    );
    // An empty list.
    let empty = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "5"}, "items": []});
    let expected = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "5"}});
    let raw = round_trip(&empty, &expected);
    let decoded: apps::DeploymentList = via_k8s_pb(&raw);
    assert!(decoded.items.is_empty());
}

#[test]
fn protobuf_status_success_and_failure() {
    let failure = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "pods \"nope\" not found", "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods", "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "spec"}], "retryAfterSeconds": 3},
        "code": 404
    });
    let raw = round_trip(&failure, &failure);
    let status: meta::Status = via_k8s_pb(&raw);
    assert_eq!(status.code, Some(404));
    assert_eq!(status.reason.as_deref(), Some("NotFound"));
    let details = status.details.expect("details");
    assert_eq!(details.causes[0].field.as_deref(), Some("spec"));
    assert_eq!(details.retry_after_seconds, Some(3));
    // A Status answered in a group's path keeps that group's apiVersion in typeMeta.
    let success = json!({"kind": "Status", "apiVersion": "apps/v1", "metadata": {}, "status": "Success",
        "details": {"name": "web", "group": "apps", "kind": "deployments", "uid": "u-1"}});
    let raw = round_trip(&success, &success);
    let status: meta::Status = via_k8s_pb(&raw);
    assert_eq!(status.status.as_deref(), Some("Success"));
}

#[test]
fn protobuf_micro_time_and_durations() {
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "renewTime": "2024-01-02T03:04:05.123456Z",
            "acquireTime": "1969-12-31T23:59:59.500000Z"
        }
    });
    let raw = round_trip(&lease, &lease);
    let decoded: coordination::Lease = via_k8s_pb(&raw);
    let spec = decoded.spec.expect("spec");
    let renew = spec.renew_time.expect("renewTime");
    assert_eq!(
        (renew.seconds, renew.nanos),
        (Some(1_704_164_645), Some(123_456_000))
    );
    let acquire = spec.acquire_time.expect("acquireTime");
    assert_eq!(
        (acquire.seconds, acquire.nanos),
        (Some(-1), Some(500_000_000))
    );

    for nanos in [
        0i64,
        1,
        1_100,
        2_200_000,
        1_000_000_000,
        90_000_000_000,
        3_723_500_000_000,
        -1_500_000_000,
        i64::MIN,
        i64::MAX,
    ] {
        assert_eq!(
            parse_go_duration(&go_duration(nanos)),
            Some(nanos),
            "{nanos}"
        );
    }
    assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
    assert_eq!(parse_go_duration("1.5us"), Some(1_500));
    assert_eq!(parse_go_duration("+.5s"), Some(500_000_000));
    for bad in [
        "",
        "-",
        "1",
        "1x",
        "h",
        ".s",
        "9223372036854775808ns",
        "3000000h",
    ] {
        assert_eq!(parse_go_duration(bad), None, "{bad:?}");
    }
    assert_eq!(parse_go_duration("-9223372036854775808ns"), Some(i64::MIN));
}

#[test]
fn protobuf_watch_frames_decode_as_watch_events() {
    let object = pod();
    let frame = watch_frame("ADDED", &object).expect("frame");
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(len, frame.len() - 4);
    let event: meta::WatchEvent = via_k8s_pb(&frame[4..]);
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let raw = event.object.and_then(|o| o.raw).expect("object.raw");
    assert_eq!(decode_k8s_protobuf(&raw).expect("envelope"), object);
    let bookmark = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"resourceVersion": "9",
        "annotations": {"k8s.io/initial-events-end": "true"}}});
    let frame = watch_frame("BOOKMARK", &bookmark).expect("bookmark");
    let event = meta::WatchEvent::decode(&frame[4..]).expect("event");
    let raw = event.object.and_then(|o| o.raw).expect("raw");
    assert_eq!(
        decode_k8s_protobuf(&raw).expect("bookmark object"),
        bookmark
    );
}

#[test]
fn protobuf_encoding_refuses_what_it_cannot_write() {
    // Kinds without a protobuf form.
    for (api_version, kind) in [
        ("example.com/v1", "Widget"),
        ("apps.example.com/v1", "Deployment"),
        ("metrics.k8s.io/v1beta1", "NodeMetrics"),
        ("meta.k8s.io/v1", "Table"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ] {
        let err = encode_k8s_protobuf(&json!({"apiVersion": api_version, "kind": kind}));
        assert!(
            matches!(err, Err(EncodeError::UnsupportedKind { .. })),
            "{api_version} {kind}: {err:?}"
        );
        assert!(!has_protobuf(api_version, kind));
    }
    assert!(has_protobuf("v1", "Pod") && has_protobuf("v1", "Status"));
    assert_eq!(
        encode_k8s_protobuf(&json!({"metadata": {}})),
        Err(EncodeError::MissingTypeMeta)
    );
    assert_eq!(
        encode_k8s_protobuf(&json!([1])),
        Err(EncodeError::MissingTypeMeta)
    );
    // Fields the table does not know, and values of the wrong JSON type, name their path.
    let mut unknown = pod();
    unknown["spec"]["containers"][0]["bogus"] = json!(1);
    match encode_k8s_protobuf(&unknown) {
        Err(EncodeError::Field { path, reason, .. }) => {
            assert_eq!(path, "spec.containers[0].bogus");
            assert!(reason.contains("unknown field"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for (pointer, value, path) in [
        ("/spec/replicas", json!("three"), "spec.replicas"),
        ("/spec/replicas", json!(1.5), "spec.replicas"),
        ("/spec/replicas", json!(4_294_967_296_i64), "spec.replicas"),
        ("/spec/selector", json!([]), "spec.selector"),
        ("/metadata/labels", json!({"a": 1}), "metadata.labels.a"),
        (
            "/spec/strategy/rollingUpdate/maxSurge",
            json!(true),
            "spec.strategy.rollingUpdate.maxSurge",
        ),
        (
            "/status/conditions/0/lastUpdateTime",
            json!("yesterday"),
            "status.conditions[0].lastUpdateTime",
        ),
        (
            "/spec/template/spec/containers",
            json!({}),
            "spec.template.spec.containers",
        ),
    ] {
        let mut bad = deployment();
        *bad.pointer_mut(pointer).expect(pointer) = value;
        match encode_k8s_protobuf(&bad) {
            Err(EncodeError::Field { path: got, .. }) => assert_eq!(got, path),
            other => panic!("{pointer}: {other:?}"),
        }
    }
    let mut bad =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "binaryData": {"x": "!!not base64"}});
    assert!(encode_k8s_protobuf(&bad).is_err());
    bad["binaryData"] = json!(null);
    assert!(encode_k8s_protobuf(&bad).is_ok());
}

#[test]
fn protobuf_encoder_never_panics_on_odd_values() {
    let odd = [
        json!(null),
        json!(true),
        json!(-1),
        json!(u64::MAX),
        json!(-1.0e300),
        json!(""),
        json!("x"),
        json!([]),
        json!([null, 1, "a", {}]),
        json!({}),
        json!({"a": {"b": [1, {"c": null}]}}),
    ];
    let base = [pod(), deployment()];
    let mut pointers = Vec::new();
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    for (i, object) in base.iter().enumerate() {
        walk(object, String::new(), &mut pointers);
        for pointer in pointers.drain(..) {
            for value in &odd {
                let mut changed = base[i].clone();
                if let Some(slot) = changed.pointer_mut(&pointer) {
                    *slot = value.clone();
                }
                // Either outcome is fine; what is encoded decodes again.
                if let Ok(body) = encode_k8s_protobuf(&changed) {
                    decode_k8s_protobuf(&body).expect("what is encoded decodes");
                }
            }
        }
    }
}

#[test]
fn protobuf_group_versions() {
    assert!(group_version_has_protobuf("", "v1"));
    assert!(group_version_has_protobuf("apps", "v1"));
    assert!(group_version_has_protobuf("autoscaling", "v1"));
    assert!(group_version_has_protobuf("autoscaling", "v2"));
    assert!(group_version_has_protobuf("networking.k8s.io", "v1"));
    assert!(group_version_has_protobuf("coordination.k8s.io", "v1"));
    assert!(!group_version_has_protobuf("apps", "v9"));
    assert!(!group_version_has_protobuf("metrics.k8s.io", "v1beta1"));
    assert!(!group_version_has_protobuf("example.com", "v1"));
    assert!(!group_version_has_protobuf("apps.example.com", "v1"));
    assert!(!group_version_has_protobuf("meta.k8s.io", "v1"));
    assert!(!group_version_has_protobuf("", ""));
    assert!(!group_version_has_protobuf("", "v1."));
}
