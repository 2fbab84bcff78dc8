//! Bodies built with the k8s-pb structs the way kubectl (Go, gogo-protobuf) sends
//! them: every non-pointer Go field is on the wire, zero or not, so the structs
//! below set `Some("")` / `Some(0)` / `Some(false)` for those fields.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::networking::v1 as networking;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{json, Value};
use skiff_control_plane::api::protobuf::{decode_k8s_protobuf, ProtobufError};

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The `k8s\0` + runtime.Unknown envelope, as Go's protobuf serializer writes it.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = b"k8s\0".to_vec();
    unknown.encode(&mut body).expect("Vec has room");
    body
}

fn body_of<M: Message>(api_version: &str, kind: &str, msg: &M) -> Vec<u8> {
    envelope(api_version, kind, msg.encode_to_vec())
}

fn decode(body: &[u8]) -> Value {
    match decode_k8s_protobuf(body) {
        Ok(v) => v,
        Err(e) => panic!("decode failed: {e}"),
    }
}

/// ObjectMeta as Go writes it for a new object: all value fields present and empty,
/// `creationTimestamp` an empty (zero) Time.
fn go_meta(name: &str, lbls: &[(&str, &str)]) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: labels(lbls),
        ..Default::default()
    }
}

/// A container as `kubectl create deployment --image=nginx` builds it.
fn go_container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: s(name),
        image: s(image),
        working_dir: s(""),
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: s(""),
        termination_message_policy: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn go_pod_spec(containers: Vec<core::Container>) -> core::PodSpec {
    core::PodSpec {
        containers,
        restart_policy: s(""),
        dns_policy: s(""),
        service_account_name: s(""),
        service_account: s(""),
        node_name: s(""),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        hostname: s(""),
        subdomain: s(""),
        scheduler_name: s(""),
        priority_class_name: s(""),
        ..Default::default()
    }
}

/// `kubectl create deployment web --image=nginx --replicas=2`
fn kubectl_deployment(replicas: i32) -> apps::Deployment {
    let app = [("app", "web")];
    apps::Deployment {
        metadata: Some(go_meta("web", &app)),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(replicas),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&app),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(go_meta("", &app)),
                spec: Some(go_pod_spec(vec![go_container("nginx", "nginx")])),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: None,
            paused: Some(false),
            progress_deadline_seconds: None,
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    }
}

#[test]
fn deployment_like_kubectl_create_deployment() {
    let body = body_of("apps/v1", "Deployment", &kubectl_deployment(2));
    assert_eq!(
        decode(&body),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "nginx", "image": "nginx", "resources": {}}]
                    }
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn pointer_scalars_keep_explicit_zero() {
    let mut d = kubectl_deployment(0);
    if let Some(spec) = d.spec.as_mut() {
        spec.revision_history_limit = Some(0);
        spec.paused = Some(true);
        spec.min_ready_seconds = Some(5);
    }
    let v = decode(&body_of("apps/v1", "Deployment", &d));
    assert_eq!(v["spec"]["replicas"], json!(0));
    assert_eq!(v["spec"]["revisionHistoryLimit"], json!(0));
    assert_eq!(v["spec"]["paused"], json!(true));
    assert_eq!(v["spec"]["minReadySeconds"], json!(5));
    assert!(v["spec"].get("progressDeadlineSeconds").is_none());
}

#[test]
fn configmap_like_kubectl_create_configmap() {
    let cm = core::ConfigMap {
        metadata: Some(go_meta("app-config", &[])),
        immutable: None,
        data: labels(&[("LOG_LEVEL", "debug"), ("config.yaml", "a: 1\nb: two\n")]),
        binary_data: BTreeMap::from([("blob".to_owned(), vec![0u8, 1, 2, 255])]),
    };
    assert_eq!(
        decode(&body_of("v1", "ConfigMap", &cm)),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config"},
            "data": {"LOG_LEVEL": "debug", "config.yaml": "a: 1\nb: two\n"},
            "binaryData": {"blob": "AAEC/w=="}
        })
    );
}

#[test]
fn secret_like_kubectl_create_secret_generic() {
    let secret = core::Secret {
        metadata: Some(go_meta("db", &[])),
        immutable: None,
        data: BTreeMap::from([
            ("password".to_owned(), b"s3cr3t".to_vec()),
            ("empty".to_owned(), Vec::new()),
        ]),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
    };
    assert_eq!(
        decode(&body_of("v1", "Secret", &secret)),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "data": {"password": "czNjcjN0", "empty": ""},
            "type": "Opaque"
        })
    );
}

fn go_service_port(name: &str, port: i32, target: IntOrString) -> core::ServicePort {
    core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        app_protocol: None,
        port: Some(port),
        target_port: Some(target),
        node_port: Some(0),
    }
}

#[test]
fn service_like_kubectl_create_service_clusterip() {
    // kubectl create service clusterip web --tcp=80:8080 --clusterip=None
    let svc = core::Service {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(core::ServiceSpec {
            ports: vec![
                go_service_port(
                    "80-8080",
                    80,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    },
                ),
                go_service_port(
                    "metrics",
                    9090,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("metrics"),
                    },
                ),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("None"),
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decode(&body_of("v1", "Service", &svc)),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics"}
                ],
                "selector": {"app": "web"},
                "clusterIP": "None",
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn namespace_like_kubectl_create_namespace() {
    let ns = core::Namespace {
        metadata: Some(go_meta("team-a", &[])),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decode(&body_of("v1", "Namespace", &ns)),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a"},
            "spec": {},
            "status": {}
        })
    );
}

/// `kubectl create ingress web --rule="shop.example/cart*=cart:8080,tls=shop-tls"
/// --rule="/=web:http"`: no class, a Prefix and an Exact path, a numbered and a named port.
#[test]
fn ingress_like_kubectl_create_ingress() {
    let backend = |name: &str, number: i32, port_name: &str| networking::IngressBackend {
        service: Some(networking::IngressServiceBackend {
            name: s(name),
            port: Some(networking::ServiceBackendPort {
                name: s(port_name),
                number: Some(number),
            }),
        }),
        resource: None,
    };
    let rule = |host: &str, path: &str, path_type: &str, b: networking::IngressBackend| {
        networking::IngressRule {
            host: s(host),
            ingress_rule_value: Some(networking::IngressRuleValue {
                http: Some(networking::HttpIngressRuleValue {
                    paths: vec![networking::HttpIngressPath {
                        path: s(path),
                        path_type: s(path_type),
                        backend: Some(b),
                    }],
                }),
            }),
        }
    };
    let ing = networking::Ingress {
        metadata: Some(go_meta("web", &[])),
        spec: Some(networking::IngressSpec {
            ingress_class_name: None,
            default_backend: None,
            tls: vec![networking::IngressTls {
                hosts: vec!["shop.example".to_owned()],
                secret_name: s("shop-tls"),
            }],
            rules: vec![
                rule("shop.example", "/cart", "Prefix", backend("cart", 8080, "")),
                rule("", "/", "Exact", backend("web", 0, "http")),
            ],
        }),
        status: Some(networking::IngressStatus {
            load_balancer: Some(networking::IngressLoadBalancerStatus::default()),
        }),
    };
    assert_eq!(
        decode(&body_of("networking.k8s.io/v1", "Ingress", &ing)),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {
                "tls": [{"hosts": ["shop.example"], "secretName": "shop-tls"}],
                "rules": [
                    {"host": "shop.example", "http": {"paths": [{"path": "/cart", "pathType": "Prefix",
                        "backend": {"service": {"name": "cart", "port": {"number": 8080}}}}]}},
                    {"http": {"paths": [{"path": "/", "pathType": "Exact",
                        "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}
                ]
            },
            "status": {"loadBalancer": {}}
        })
    );
}

fn quantity(q: &str) -> Quantity {
    Quantity { string: s(q) }
}

#[test]
fn pod_special_types_inline_fields_and_acronyms() {
    let mut metadata = go_meta("p", &[]);
    metadata.namespace = s("default");
    metadata.creation_timestamp = Some(meta::Time {
        seconds: Some(1_704_164_645),
        nanos: Some(0),
    });
    metadata.deletion_grace_period_seconds = Some(0);
    metadata.owner_references = vec![meta::OwnerReference {
        api_version: s("apps/v1"),
        kind: s("ReplicaSet"),
        name: s("web-abc"),
        uid: s("1234"),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }];
    metadata.managed_fields = vec![meta::ManagedFieldsEntry {
        manager: s("kubectl-create"),
        operation: s("Update"),
        api_version: s("v1"),
        time: Some(meta::Time {
            seconds: Some(1_704_164_645),
            nanos: Some(999_999_999),
        }),
        fields_type: s("FieldsV1"),
        fields_v1: Some(meta::FieldsV1 {
            raw: Some(br#"{"f:spec":{"f:containers":{}}}"#.to_vec()),
        }),
        subresource: s(""),
    }];
    let mut container = go_container("app", "nginx:1.27");
    container.ports = vec![core::ContainerPort {
        name: s("http"),
        host_port: Some(0),
        container_port: Some(8080),
        protocol: s("TCP"),
        host_ip: s("127.0.0.1"),
    }];
    container.resources = Some(core::ResourceRequirements {
        limits: BTreeMap::from([
            ("cpu".to_owned(), quantity("500m")),
            ("memory".to_owned(), quantity("128Mi")),
        ]),
        requests: BTreeMap::from([("cpu".to_owned(), Quantity { string: None })]),
        claims: vec![],
    });
    container.env = vec![core::EnvVar {
        name: s("PASSWORD"),
        value: s(""),
        value_from: Some(core::EnvVarSource {
            secret_key_ref: Some(core::SecretKeySelector {
                local_object_reference: Some(core::LocalObjectReference { name: s("db") }),
                key: s("password"),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }];
    container.liveness_probe = Some(core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: Some(IntOrString {
                    r#type: Some(1),
                    int_val: Some(0),
                    str_val: s("http"),
                }),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(10),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    });
    container.security_context = Some(core::SecurityContext {
        run_as_user: Some(0),
        run_as_non_root: Some(false),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    });
    container.volume_mounts = vec![core::VolumeMount {
        name: s("cfg"),
        read_only: Some(true),
        mount_path: s("/etc/app"),
        sub_path: s(""),
        mount_propagation: None,
        sub_path_expr: s(""),
        recursive_read_only: None,
    }];
    let mut spec = go_pod_spec(vec![container]);
    spec.termination_grace_period_seconds = Some(0);
    spec.automount_service_account_token = Some(false);
    spec.node_selector = labels(&[("kubernetes.io/os", "linux")]);
    spec.volumes = vec![core::Volume {
        name: s("cfg"),
        volume_source: Some(core::VolumeSource {
            config_map: Some(core::ConfigMapVolumeSource {
                local_object_reference: Some(core::LocalObjectReference {
                    name: s("app-config"),
                }),
                items: vec![],
                default_mode: Some(0o644),
                optional: None,
            }),
            ..Default::default()
        }),
    }];
    let pod = core::Pod {
        metadata: Some(metadata),
        spec: Some(spec),
        status: None,
    };
    assert_eq!(
        decode(&body_of("v1", "Pod", &pod)),
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": "default",
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "deletionGracePeriodSeconds": 0,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                    "uid": "1234", "controller": true, "blockOwnerDeletion": false
                }],
                "managedFields": [{
                    "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                    "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": {}}}
                }]
            },
            "spec": {
                "volumes": [{"name": "cfg", "configMap": {"name": "app-config", "defaultMode": 420}}],
                "containers": [{
                    "name": "app",
                    "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP", "hostIP": "127.0.0.1"}],
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": false}}}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0"}},
                    "volumeMounts": [{"name": "cfg", "readOnly": true, "mountPath": "/etc/app"}],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
                    },
                    "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false}
                }],
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
                "nodeSelector": {"kubernetes.io/os": "linux"}
            }
        })
    );
}

#[test]
fn job_and_cronjob() {
    let job_spec = batch::JobSpec {
        backoff_limit: Some(0),
        suspend: Some(false),
        completions: Some(1),
        template: Some(core::PodTemplateSpec {
            metadata: Some(go_meta("", &[])),
            spec: Some({
                let mut s = go_pod_spec(vec![go_container("pi", "perl")]);
                s.restart_policy = Some("Never".to_owned());
                s
            }),
        }),
        pod_failure_policy: Some(batch::PodFailurePolicy {
            rules: vec![batch::PodFailurePolicyRule {
                action: s("FailJob"),
                on_exit_codes: Some(batch::PodFailurePolicyOnExitCodesRequirement {
                    container_name: None,
                    operator: s("In"),
                    values: vec![1, 42, -1],
                }),
                on_pod_conditions: vec![],
            }],
        }),
        ..Default::default()
    };
    let job = batch::Job {
        metadata: Some(go_meta("pi", &[])),
        spec: Some(job_spec.clone()),
        status: Some(batch::JobStatus {
            active: Some(0),
            succeeded: Some(0),
            failed: Some(0),
            completed_indexes: s(""),
            ..Default::default()
        }),
    };
    let v = decode(&body_of("batch/v1", "Job", &job));
    assert_eq!(
        v["spec"],
        json!({
            "backoffLimit": 0,
            "suspend": false,
            "completions": 1,
            "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 42, -1]}}]},
            // Go would add `"creationTimestamp": null` to the empty template metadata.
            "template": {
                "metadata": {},
                "spec": {"containers": [{"name": "pi", "image": "perl", "resources": {}}], "restartPolicy": "Never"}
            }
        })
    );
    assert_eq!(v["status"], json!({}));

    let cron = batch::CronJob {
        metadata: Some(go_meta("nightly", &[])),
        spec: Some(batch::CronJobSpec {
            schedule: s("0 3 * * *"),
            time_zone: None,
            starting_deadline_seconds: None,
            concurrency_policy: s(""),
            suspend: None,
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(go_meta("nightly", &[])),
                spec: Some(job_spec),
            }),
            successful_jobs_history_limit: Some(0),
            failed_jobs_history_limit: None,
        }),
        status: Some(batch::CronJobStatus::default()),
    };
    let v = decode(&body_of("batch/v1", "CronJob", &cron));
    assert_eq!(v["kind"], json!("CronJob"));
    assert_eq!(v["spec"]["schedule"], json!("0 3 * * *"));
    assert_eq!(v["spec"]["successfulJobsHistoryLimit"], json!(0));
    assert!(v["spec"].get("concurrencyPolicy").is_none());
    assert_eq!(
        v["spec"]["jobTemplate"]["metadata"],
        json!({"name": "nightly"})
    );
    assert_eq!(v["spec"]["jobTemplate"]["spec"]["backoffLimit"], json!(0));
}

#[test]
fn packed_and_unpacked_repeated_ints_agree() {
    // PodFailurePolicyOnExitCodesRequirement.values is `packed = "false"` in k8s-pb;
    // a packed encoding of the same field must decode identically.
    let unpacked = batch::PodFailurePolicyOnExitCodesRequirement {
        container_name: s("main"),
        operator: s("NotIn"),
        values: vec![0, 3, 300],
    }
    .encode_to_vec();
    let mut packed = Vec::new();
    // field 1 containerName, field 2 operator, field 3 values (packed)
    packed.extend_from_slice(&[0x0a, 4]);
    packed.extend_from_slice(b"main");
    packed.extend_from_slice(&[0x12, 5]);
    packed.extend_from_slice(b"NotIn");
    packed.extend_from_slice(&[0x1a, 4, 0, 3, 0xac, 0x02]);
    let rule = |inner: Vec<u8>| {
        batch::PodFailurePolicyRule {
            action: s("Ignore"),
            on_exit_codes: None,
            on_pod_conditions: vec![],
        }
        .encode_to_vec()
        .into_iter()
        // on_exit_codes is field 2 of the rule
        .chain([0x12, inner.len() as u8])
        .chain(inner)
        .collect::<Vec<u8>>()
    };
    let policy = |inner: Vec<u8>| {
        let rule = rule(inner);
        let mut p = vec![0x0a, rule.len() as u8];
        p.extend(rule);
        p
    };
    let spec = |inner: Vec<u8>| {
        // JobSpec.podFailurePolicy is field 11
        let p = policy(inner);
        let mut v = vec![0x5a, p.len() as u8];
        v.extend(p);
        v
    };
    let job = |inner: Vec<u8>| {
        let sp = spec(inner);
        let mut v = vec![0x12, sp.len() as u8];
        v.extend(sp);
        envelope("batch/v1", "Job", v)
    };
    let a = decode(&job(unpacked));
    let b = decode(&job(packed));
    assert_eq!(a, b);
    assert_eq!(
        a["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"],
        json!({"containerName": "main", "operator": "NotIn", "values": [0, 3, 300]})
    );
}

#[test]
fn lease_micro_time() {
    let lease = coordination::Lease {
        metadata: Some(go_meta("leader", &[])),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime::default()),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let v = decode(&body_of("coordination.k8s.io/v1", "Lease", &lease));
    assert_eq!(
        v["spec"],
        json!({
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-01-02T03:04:05.123456Z",
            "leaseTransitions": 0
        })
    );
}

#[test]
fn controller_revision_raw_extension_json_and_nested_protobuf() {
    let rev = apps::ControllerRevision {
        metadata: Some(go_meta("web-1", &[])),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"x":1}}}"#.to_vec()),
        }),
        revision: Some(0),
    };
    let v = decode(&body_of("apps/v1", "ControllerRevision", &rev));
    assert_eq!(v["data"], json!({"spec": {"template": {"x": 1}}}));
    // `revision` has no omitempty in Go (required): a zero stays.
    assert_eq!(v["revision"], json!(0));

    let nested = body_of(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: Some(go_meta("inner", &[])),
            data: labels(&[("k", "v")]),
            ..Default::default()
        },
    );
    let rev = apps::ControllerRevision {
        metadata: Some(go_meta("web-2", &[])),
        data: Some(RawExtension { raw: Some(nested) }),
        revision: Some(2),
    };
    let v = decode(&body_of("apps/v1", "ControllerRevision", &rev));
    assert_eq!(
        v["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"}, "data": {"k": "v"}})
    );

    let bad = apps::ControllerRevision {
        metadata: None,
        data: Some(RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        revision: None,
    };
    let err = decode_k8s_protobuf(&body_of("apps/v1", "ControllerRevision", &bad));
    assert!(
        matches!(err, Err(ProtobufError::InvalidEmbeddedJson { .. })),
        "{err:?}"
    );
}

#[test]
fn delete_options_in_any_group_version() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".to_owned()],
        ..Default::default()
    };
    assert_eq!(
        decode(&body_of("apps/v1", "DeleteOptions", &opts)),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"]
        })
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = core::ConfigMap {
        metadata: Some(go_meta("cm", &[])),
        ..Default::default()
    }
    .encode_to_vec();
    // field 99, varint; field 100, fixed64; field 101, bytes; field 102, fixed32
    raw.extend_from_slice(&[0x98, 0x06, 0x07]);
    raw.extend_from_slice(&[0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend_from_slice(&[0xaa, 0x06, 2, b'h', b'i']);
    raw.extend_from_slice(&[0xb5, 0x06, 1, 2, 3, 4]);
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", raw)),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    );
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn wrong_magic_is_an_error() {
    let mut body = body_of("v1", "Namespace", &core::Namespace::default());
    body[3] = b'!';
    let err = decode_k8s_protobuf(&body);
    assert_eq!(err, Err(ProtobufError::MissingMagic));
    let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("missing k8s\\0 magic"), "{msg}");
    assert_eq!(decode_k8s_protobuf(b""), Err(ProtobufError::MissingMagic));
    assert_eq!(
        decode_k8s_protobuf(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::MissingMagic)
    );
}

#[test]
fn unknown_kind_is_an_error() {
    let body = envelope("apps/v1", "Foo", vec![]);
    let err = decode_k8s_protobuf(&body).err();
    assert_eq!(
        err,
        Some(ProtobufError::UnsupportedKind {
            api_version: "apps/v1".to_owned(),
            kind: "Foo".to_owned()
        })
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.starts_with("protobuf body: unsupported kind apps/v1 Foo: send JSON instead"),
        "{msg}"
    );
    // a group Skiff does not serve
    let body = envelope("rbac.authorization.k8s.io/v1", "Role", vec![]);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::UnsupportedKind { .. })
    ));
}

#[test]
fn missing_type_meta_and_content_encoding() {
    let mut body = b"k8s\0".to_vec();
    Unknown {
        type_meta: None,
        raw: Some(vec![]),
        content_encoding: None,
        content_type: None,
    }
    .encode(&mut body)
    .expect("vec");
    assert_eq!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::MissingTypeMeta)
    );

    let mut body = b"k8s\0".to_vec();
    Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(vec![]),
        content_encoding: s("gzip"),
        content_type: None,
    }
    .encode(&mut body)
    .expect("vec");
    assert_eq!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::UnsupportedContentEncoding("gzip".to_owned()))
    );
}

#[test]
fn truncated_varint_reports_its_offset() {
    // magic (0..4), Unknown field 1 key at byte 4, length varint at 5 never ends
    let body = b"k8s\0\x0a\xff\xff";
    assert_eq!(
        decode_k8s_protobuf(body),
        Err(ProtobufError::Truncated {
            what: "length",
            offset: 5
        })
    );
    let msg = decode_k8s_protobuf(body)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(msg, "protobuf body: truncated length at byte 5");

    // a truncated scalar varint inside the object
    let mut raw = Vec::new();
    raw.extend_from_slice(&[0x12, 0x02, 0x08, 0x80]); // DeploymentSpec{replicas: <unterminated>}
    let body = envelope("apps/v1", "Deployment", raw);
    let err = decode_k8s_protobuf(&body).err();
    let at = body.iter().rposition(|&b| b == 0x80).unwrap_or(0);
    assert_eq!(
        err,
        Some(ProtobufError::Truncated {
            what: "varint",
            offset: at
        })
    );
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        format!("protobuf body: truncated varint at byte {at}")
    );
}

#[test]
fn groups_and_bad_wire_types_are_errors() {
    // start-group (wire type 3) for field 1 of the object
    let body = envelope("v1", "ConfigMap", vec![0x0b, 0x0c]);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::UnsupportedWireType { wire_type: 3, .. })
    ));
    // wire type 7
    let body = envelope("v1", "ConfigMap", vec![0x0f]);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::UnsupportedWireType { wire_type: 7, .. })
    ));
    // field number 0
    let body = envelope("v1", "ConfigMap", vec![0x00, 0x01]);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::InvalidFieldNumber { field: 0, .. })
    ));
    // metadata (a message) sent as a varint
    let body = envelope("v1", "ConfigMap", vec![0x08, 0x01]);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::WrongWireType {
            field: 1,
            got: 0,
            expected: 2,
            ..
        })
    ));
    // 11-byte varint
    let mut raw = vec![0x12, 11, 0x08];
    raw.extend_from_slice(&[0xff; 10]);
    let body = envelope("apps/v1", "Deployment", raw);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::VarintOverflow { .. })
    ));
    // length far beyond the body
    let body = envelope("v1", "ConfigMap", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::Truncated { .. })
    ));
    // IntOrString with an impossible type
    let port = core::ServicePort {
        target_port: Some(IntOrString {
            r#type: Some(7),
            int_val: None,
            str_val: None,
        }),
        ..Default::default()
    };
    let svc = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![port],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        decode_k8s_protobuf(&body_of("v1", "Service", &svc)),
        Err(ProtobufError::InvalidIntOrString { int_type: 7, .. })
    ));
}

#[test]
fn deep_nesting_is_bounded() {
    // RawExtension envelopes nested 200 deep must fail cleanly, not overflow the stack.
    let mut body = body_of("v1", "ConfigMap", &core::ConfigMap::default());
    for _ in 0..200 {
        let rev = apps::ControllerRevision {
            metadata: None,
            data: Some(RawExtension { raw: Some(body) }),
            revision: None,
        };
        body = body_of("apps/v1", "ControllerRevision", &rev);
    }
    assert!(matches!(
        decode_k8s_protobuf(&body),
        Err(ProtobufError::TooDeep { .. })
    ));
}

// ---------------------------------------------------------------------------
// Robustness: no input may panic.

fn sample_bodies() -> Vec<Vec<u8>> {
    let rev = apps::ControllerRevision {
        metadata: Some(go_meta("r", &[])),
        data: Some(RawExtension {
            raw: Some(body_of(
                "v1",
                "Secret",
                &core::Secret {
                    data: BTreeMap::from([("k".to_owned(), b"v".to_vec())]),
                    ..Default::default()
                },
            )),
        }),
        revision: Some(1),
    };
    vec![
        body_of("apps/v1", "Deployment", &kubectl_deployment(3)),
        body_of(
            "v1",
            "Secret",
            &core::Secret {
                metadata: Some(go_meta("s", &[("a", "b")])),
                data: BTreeMap::from([("k".to_owned(), b"value".to_vec())]),
                r#type: s("Opaque"),
                ..Default::default()
            },
        ),
        body_of("apps/v1", "ControllerRevision", &rev),
    ]
}

#[test]
fn every_prefix_of_a_valid_body_is_handled() {
    for body in sample_bodies() {
        assert!(decode_k8s_protobuf(&body).is_ok());
        for len in 0..body.len() {
            // Ok (a prefix can end on a field boundary) or Err, never a panic.
            let _ = decode_k8s_protobuf(&body[..len]);
        }
    }
}

#[test]
fn mutated_bodies_never_panic() {
    // Deterministic xorshift so failures are reproducible.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for body in sample_bodies() {
        for i in 4..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut m = body.clone();
                m[i] ^= flip;
                let _ = decode_k8s_protobuf(&m);
            }
        }
        for _ in 0..3000 {
            let mut m = body.clone();
            let edits = 1 + (next() % 4) as usize;
            for _ in 0..edits {
                let i = 4 + (next() as usize) % (m.len() - 4);
                match next() % 3 {
                    0 => m[i] = next() as u8,
                    1 => {
                        m.insert(i, next() as u8);
                    }
                    _ => {
                        m.remove(i);
                    }
                }
                if m.len() <= 4 {
                    break;
                }
            }
            let _ = decode_k8s_protobuf(&m);
        }
    }
}
