//! Node, Namespace, Service, ConfigMap, Secret, Event and the other kinds.

use super::common;

use common::{ago, assert_cells, cells, columns};
use serde_json::{json, Value};

fn meta(name: &str, age_secs: i64) -> Value {
    json!({"name": name, "creationTimestamp": ago(age_secs)})
}

fn node(labels: Value, unschedulable: bool, conditions: Value) -> Value {
    json!({
        "metadata": {"name": "node-a", "labels": labels, "creationTimestamp": ago(400 * 86400)},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.32.2", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}
        }
    })
}

#[test]
fn nodes() {
    let (all, wide) = columns("Node");
    assert_eq!(all[..5], ["Name", "Status", "Roles", "Age", "Version"]);
    assert_eq!(
        wide,
        [
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    let ready = node(
        json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true", "kubernetes.io/os": "linux"}),
        false,
        json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]),
    );
    assert_cells(
        "Node",
        ready,
        json!([
            "node-a",
            "Ready",
            "control-plane,etcd",
            "400d",
            "v1.32.2",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "containerd://1.7.13"
        ]),
    );
    let cordoned = node(
        json!({"kubernetes.io/role": "worker"}),
        true,
        json!([{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]),
    );
    let c = cells("Node", cordoned);
    assert_eq!(
        c[1..3],
        [json!("NotReady,SchedulingDisabled"), json!("worker")]
    );
    let unknown = node(
        json!({}),
        false,
        json!([{"type": "Ready", "status": "Unknown"}]),
    );
    assert_eq!(cells("Node", unknown)[1], json!("NotReady"));
    let bare = json!({"metadata": {"name": "n"}});
    assert_cells(
        "Node",
        bare,
        json!([
            "n",
            "Unknown",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]),
    );
}

#[test]
fn namespaces() {
    assert_cells(
        "Namespace",
        json!({"metadata": meta("default", 2 * 365 * 86400 + 86400), "status": {"phase": "Active"}}),
        json!(["default", "Active", "2y1d"]),
    );
    let mut gone = json!({"metadata": meta("old", 30), "status": {"phase": "Terminating"}});
    gone["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_cells("Namespace", gone, json!(["old", "Terminating", "30s"]));
}

fn service(spec: Value, status: Value) -> Value {
    json!({"metadata": meta("web", 300), "spec": spec, "status": status})
}

#[test]
fn services() {
    let (all, wide) = columns("Service");
    assert_eq!(
        all,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(wide, ["Selector"]);
    let cluster_ip = service(
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
               "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"port": 53, "protocol": "UDP"}],
               "selector": {"tier": "frontend", "app": "web"}}),
        json!({}),
    );
    assert_cells(
        "Service",
        cluster_ip,
        json!([
            "web",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "80/TCP,53/UDP",
            "5m",
            "app=web,tier=frontend"
        ]),
    );
    let node_port = service(
        json!({"type": "NodePort", "clusterIP": "10.96.12.1", "ports": [{"port": 80, "nodePort": 30080}],
               "externalIPs": ["203.0.113.9"]}),
        json!({}),
    );
    assert_cells(
        "Service",
        node_port,
        json!([
            "web",
            "NodePort",
            "10.96.12.1",
            "203.0.113.9",
            "80:30080/TCP",
            "5m",
            "<none>"
        ]),
    );
    let pending = service(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.3.3"], "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}),
        json!({"loadBalancer": {}}),
    );
    assert_eq!(cells("Service", pending)[3], json!("<pending>"));
    let lb = service(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.3.3"], "externalIPs": ["198.51.100.1"]}),
        json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "203.0.113.7"}, {"ip": "203.0.113.7"}]}}),
    );
    let c = cells("Service", lb);
    assert_eq!(c[3], json!("203.0.113.7,lb.example.com,198.51.100.1"));
    assert_eq!(c[4], json!("<none>"));
    let external = service(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    let c = cells("Service", external);
    assert_eq!(
        c[1..4],
        [
            json!("ExternalName"),
            json!("<none>"),
            json!("db.example.com")
        ]
    );
    let headless = service(
        json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        json!({}),
    );
    let c = cells("Service", headless);
    assert_eq!(
        c[1..5],
        [
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("5432/TCP")
        ]
    );
}

#[test]
fn config_maps_and_secrets() {
    assert_eq!(columns("ConfigMap").0, ["Name", "Data", "Age"]);
    assert_cells(
        "ConfigMap",
        json!({"metadata": meta("settings", 45), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}}),
        json!(["settings", 3, "45s"]),
    );
    assert_cells(
        "ConfigMap",
        json!({"metadata": meta("empty", 45)}),
        json!(["empty", 0, "45s"]),
    );
    assert_eq!(columns("Secret").0, ["Name", "Type", "Data", "Age"]);
    assert_cells(
        "Secret",
        json!({"metadata": meta("tls", 7200), "type": "kubernetes.io/tls",
               "data": {"tls.crt": "", "tls.key": ""}}),
        json!(["tls", "kubernetes.io/tls", 2, "120m"]),
    );
    assert_cells(
        "Secret",
        json!({"metadata": meta("creds", 1), "stringData": {"password": "x"}}),
        json!(["creds", "Opaque", 1, "1s"]),
    );
}

#[test]
fn events() {
    let (all, wide) = columns("Event");
    assert_eq!(
        all,
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    assert_eq!(wide, ["Subobject", "Source", "First Seen", "Count", "Name"]);
    let pulled = json!({
        "metadata": {"name": "web-7d4b9c.17c1f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-7d4b9c", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "type": "Normal", "message": "Container image \"nginx\" already present on machine\n",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(3600), "lastTimestamp": ago(120), "count": 4
    });
    assert_cells(
        "Event",
        pulled,
        json!([
            "2m",
            "Normal",
            "Pulled",
            "pod/web-7d4b9c",
            "spec.containers{web}",
            "kubelet, node-a",
            "Container image \"nginx\" already present on machine",
            "60m",
            4,
            "web-7d4b9c.17c1f"
        ]),
    );
    // New-style event: eventTime, series, reportingController.
    let series = json!({
        "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Node"},
        "reason": "Rebooted", "type": "Warning", "message": "rebooted",
        "eventTime": "2024-05-01T11:00:00.000000Z",
        "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:30.500000Z"},
        "reportingComponent": "kubelet", "reportingInstance": "node-b"
    });
    assert_cells(
        "Event",
        series,
        json!([
            "29s",
            "Warning",
            "Rebooted",
            "node",
            "",
            "kubelet, node-b",
            "rebooted",
            "60m",
            7,
            "e2"
        ]),
    );
    // events.k8s.io/v1 field names.
    let v1 = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e3"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet", "type": "Normal", "note": "Scaled up replica set web-5f7c to 3",
        "eventTime": ago(30), "reportingController": "deployment-controller"
    });
    assert_cells(
        "Event",
        v1,
        json!([
            "30s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller",
            "Scaled up replica set web-5f7c to 3",
            "30s",
            1,
            "e3"
        ]),
    );
    assert_cells(
        "Event",
        json!({}),
        json!(["<unknown>", "", "", "", "", "", "", "<unknown>", 1, ""]),
    );
}

#[test]
fn other_core_kinds() {
    assert_cells(
        "ServiceAccount",
        json!({"metadata": meta("default", 86400), "secrets": [{"name": "t"}]}),
        json!(["default", 1, "24h"]),
    );
    assert_cells(
        "Endpoints",
        json!({"metadata": meta("web", 60), "subsets": [{"addresses": [{"ip": "10.244.0.7"}], "ports": [{"port": 8080}]}]}),
        json!(["web", "10.244.0.7:8080", "60s"]),
    );
    assert_cells(
        "PersistentVolumeClaim",
        json!({"metadata": meta("data", 60),
               "spec": {"volumeName": "pv-1", "storageClassName": "standard", "accessModes": ["ReadWriteOnce"]},
               "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        json!([
            "data",
            "Bound",
            "pv-1",
            "10Gi",
            "RWO",
            "standard",
            "<unset>",
            "60s",
            "Filesystem"
        ]),
    );
    assert_cells(
        "PersistentVolume",
        json!({"metadata": meta("pv-1", 60),
               "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                        "claimRef": {"namespace": "default", "name": "data"}},
               "status": {"phase": "Bound"}}),
        json!([
            "pv-1",
            "10Gi",
            "RWO",
            "Delete",
            "Bound",
            "default/data",
            "standard",
            "<unset>",
            "",
            "60s",
            "Filesystem"
        ]),
    );
}

#[test]
fn networking_rbac_and_friends() {
    assert_cells(
        "Ingress",
        json!({"metadata": meta("web", 60),
               "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com"}], "tls": [{}]},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.4"}]}}}),
        json!([
            "web",
            "nginx",
            "shop.example.com",
            "203.0.113.4",
            "80, 443",
            "60s"
        ]),
    );
    assert_cells(
        "ClusterRoleBinding",
        json!({"metadata": meta("admins", 60), "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "Group", "name": "system:masters"},
                            {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                            {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}]}),
        json!([
            "admins",
            "ClusterRole/cluster-admin",
            "60s",
            "alice, bob",
            "system:masters",
            "tools/ci"
        ]),
    );
    assert_cells(
        "StorageClass",
        json!({"metadata": {"name": "standard", "creationTimestamp": ago(60),
                            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
        json!([
            "standard (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            false,
            "60s"
        ]),
    );
    assert_cells(
        "PodDisruptionBudget",
        json!({"metadata": meta("web", 60), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}),
        json!(["web", "50%", "N/A", 1, "60s"]),
    );
    assert_cells(
        "PriorityClass",
        json!({"metadata": meta("high", 60), "value": 1000000, "globalDefault": false}),
        json!(["high", 1000000, false, "60s", "PreemptLowerPriority"]),
    );
    assert_cells(
        "EndpointSlice",
        json!({"metadata": meta("web-abc", 60), "addressType": "IPv4",
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": ["10.244.0.7"]}, {"addresses": ["10.244.0.8"]}]}),
        json!(["web-abc", "IPv4", "8080", "10.244.0.7,10.244.0.8", "60s"]),
    );
    assert_cells(
        "NetworkPolicy",
        json!({"metadata": meta("deny", 60), "spec": {"podSelector": {}}}),
        json!(["deny", "<none>", "60s"]),
    );
    assert_cells(
        "Lease",
        json!({"metadata": meta("kube-scheduler", 60), "spec": {"holderIdentity": "cp-1_abc"}}),
        json!(["kube-scheduler", "cp-1_abc", "60s"]),
    );
}
