"""The official Kubernetes Python client against Skiff: every step prints `OK <step>`.

Run by tests/python_client.rs with KUBECONFIG pointing at a fresh server. Any model
validation error, API error or wrong answer raises, which fails the test.
"""

import json
import os
import re
import threading
import time

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

NS = "pyflow"


def ok(step):
    print(f"OK {step}", flush=True)


def snake(kind):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def api_class(group, version):
    """CoreV1Api, AppsV1Api, NetworkingV1Api, ApiextensionsV1Api, ..."""
    name = group.split(".")[0].capitalize() if group else "Core"
    return getattr(client, f"{name}{version.capitalize()}Api")


POD_TEMPLATE = {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SELECTOR = {"matchLabels": {"app": "x"}}

# One minimal object per served kind: (apiVersion, kind, body without apiVersion/kind/metadata.name).
OBJECTS = [
    ("v1", "Pod", {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    ("v1", "Service", {"spec": {"ports": [{"port": 80}]}}),
    ("v1", "Endpoints", {"subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}),
    ("v1", "ConfigMap", {"data": {"k": "v"}}),
    ("v1", "Secret", {"stringData": {"k": "v"}}),
    ("v1", "PersistentVolumeClaim", {"spec": {"accessModes": ["ReadWriteOnce"],
                                               "resources": {"requests": {"storage": "1Gi"}}}}),
    ("v1", "ServiceAccount", {}),
    ("v1", "Event", {"involvedObject": {"kind": "Pod", "name": "x", "namespace": NS},
                     "reason": "Test", "message": "hello", "type": "Normal"}),
    ("apps/v1", "Deployment", {"spec": {"replicas": 0, "selector": SELECTOR, "template": POD_TEMPLATE}}),
    ("apps/v1", "ReplicaSet", {"spec": {"replicas": 0, "selector": SELECTOR, "template": POD_TEMPLATE}}),
    ("apps/v1", "StatefulSet", {"spec": {"replicas": 0, "serviceName": "x", "selector": SELECTOR,
                                         "template": POD_TEMPLATE}}),
    ("apps/v1", "DaemonSet", {"spec": {"selector": SELECTOR, "template": POD_TEMPLATE}}),
    ("apps/v1", "ControllerRevision", {"revision": 1, "data": {"a": 1}}),
    ("batch/v1", "Job", {"spec": {"suspend": True, "template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
    ("batch/v1", "CronJob", {"spec": {"schedule": "*/5 * * * *", "suspend": True, "jobTemplate": {"spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
    ("coordination.k8s.io/v1", "Lease", {"spec": {"holderIdentity": "me"}}),
    ("discovery.k8s.io/v1", "EndpointSlice", {"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}],
                                              "ports": [{"port": 80}]}),
    ("autoscaling/v2", "HorizontalPodAutoscaler", {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pyobj-deployment"},
        "minReplicas": 1, "maxReplicas": 2}}),
    ("autoscaling/v1", "HorizontalPodAutoscaler", {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pyobj-deployment"},
        "minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 50}}),
    ("policy/v1", "PodDisruptionBudget", {"spec": {"minAvailable": 1, "selector": SELECTOR}}),
    ("networking.k8s.io/v1", "Ingress", {"spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}}),
    ("networking.k8s.io/v1", "IngressClass", {"spec": {"controller": "example.com/x"}}),
    ("node.k8s.io/v1", "RuntimeClass", {"handler": "py"}),
    ("v1", "Namespace", {}),
    ("v1", "Node", {}),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", None),
]

CRD = {"spec": {"group": "py.example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": {"type": "object", "properties": {
                        "size": {"type": "integer"}}}}}}}]},
       "metadata": {"name": "widgets.py.example.com"}}


def served_kinds(api_client):
    """(apiVersion, kind) of every served resource, from discovery."""
    kinds = set()
    core = client.CoreApi(api_client).get_api_versions()
    for v in core.versions:
        for r in client.CoreV1Api(api_client).get_api_resources().resources:
            if "/" not in r.name:
                kinds.add((v, r.kind))
    for g in client.ApisApi(api_client).get_api_versions().groups:
        for gv in g.versions:
            params = api_client.param_serialize("GET", f"/apis/{gv.group_version}",
                                                auth_settings=["BearerToken"])
            raw = api_client.call_api(*params)
            raw.read()
            for r in json.loads(raw.data)["resources"]:
                if "/" not in r["name"]:
                    kinds.add((gv.group_version, r["kind"]))
    return kinds


def every_kind(api_client):
    dyn = dynamic.DynamicClient(api_client)
    served = served_kinds(api_client)
    covered = set()
    for api_version, kind, body in OBJECTS:
        if (api_version, kind) not in served:
            if kind == "CustomResourceDefinition":
                continue
            raise AssertionError(f"{api_version} {kind} is not served")
        name = f"pyobj-{kind.lower()}" if api_version != "autoscaling/v1" else "pyobj-hpa-v1"
        obj = dict(CRD if body is None else body)
        obj = {**obj, "apiVersion": api_version, "kind": kind,
               "metadata": {**obj.get("metadata", {}), "name": obj.get("metadata", {}).get("name", name)}}
        res = dyn.resources.get(api_version=api_version, kind=kind)
        ns = NS if res.namespaced else None
        res.create(body=obj, namespace=ns)
        group, _, version = api_version.rpartition("/")
        api = api_class(group, version)(api_client)
        scope = "namespaced_" if res.namespaced else ""
        read = getattr(api, f"read_{scope}{snake(kind)}")
        args = (obj["metadata"]["name"], ns) if ns else (obj["metadata"]["name"],)
        typed = read(*args)  # deserialized into the typed model: raises on a missing required field
        assert typed.metadata.name == obj["metadata"]["name"], typed.metadata
        lister = getattr(api, f"list_{scope}{snake(kind)}")
        listed = lister(ns) if ns else lister()
        assert any(i.metadata.name == obj["metadata"]["name"] for i in listed.items), kind
        covered.add((api_version, kind))
    missing = {k for k in served if k not in covered and not k[0].startswith("metrics.k8s.io")
               and k[0] != "py.example.com/v1"}
    assert not missing, f"served kinds the flow does not read: {sorted(missing)}"
    ok(f"every served kind ({len(covered)}) created and read as typed models")


def main():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    api_client = client.ApiClient()
    code = client.VersionApi(api_client).get_code()
    assert code.major == "1", code
    ok("version")

    v1 = client.CoreV1Api(api_client)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    cm = v1.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cm", labels={"a": "1"}), data={"k": "v"}))
    assert cm.data == {"k": "v"}
    got = v1.read_namespaced_config_map("cm", NS)
    got.data["k2"] = "v2"
    replaced = v1.replace_namespaced_config_map("cm", NS, got)
    assert replaced.data == {"k": "v", "k2": "v2"}, replaced.data
    ok("crud")

    p = v1.patch_namespaced_config_map("cm", NS, {"data": {"m": "merge"}},
                                       _content_type="application/merge-patch+json")
    assert p.data["m"] == "merge"
    p = v1.patch_namespaced_config_map("cm", NS, {"metadata": {"labels": {"b": "2"}}},
                                       _content_type="application/strategic-merge-patch+json")
    assert p.metadata.labels == {"a": "1", "b": "2"}, p.metadata.labels
    p = v1.patch_namespaced_config_map("cm", NS, [{"op": "remove", "path": "/data/m"}],
                                       _content_type="application/json-patch+json")
    assert "m" not in p.data
    ok("patch types")

    # Server-side apply through the dynamic client.
    dyn = dynamic.DynamicClient(api_client)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    applied = cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "applied", "namespace": NS},
                                          "data": {"x": "1"}}, field_manager="py", namespace=NS)
    assert applied.data.x == "1"
    assert any(m.manager == "py" and m.operation == "Apply" for m in applied.metadata.managedFields)
    try:
        cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "applied", "namespace": NS},
                                    "data": {"x": "2"}}, field_manager="other", namespace=NS)
        raise AssertionError("conflicting apply must fail")
    except dynamic.exceptions.ConflictError:
        pass
    ok("dynamic client and server-side apply")

    # Watch: an ADDED event for a ConfigMap created while watching.
    w = watch.Watch()
    seen = []

    def create_later():
        time.sleep(1)
        v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched")))

    t = threading.Thread(target=create_later)
    t.start()
    for ev in w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=20):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["object"].metadata.name == "watched":
            w.stop()
    t.join()
    assert ("ADDED", "watched") in seen, seen
    ok("watch")

    # Pagination.
    for i in range(25):
        v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(
            name=f"page-{i:02}", labels={"paged": "yes"})))
    names, token, pages = [], None, 0
    while True:
        kw = {"limit": 10}
        if token:
            kw["_continue"] = token
        page = v1.list_namespaced_config_map(NS, **kw)
        pages += 1
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if pages == 1:
            total = len(page.items) + (page.metadata.remaining_item_count or 0)
        if not token:
            break
    assert len(names) == len(set(names)) == total, (len(names), total)
    assert all(f"page-{i:02}" in names for i in range(25))
    try:
        v1.list_namespaced_config_map(NS, limit=10, _continue="garbage")
        raise AssertionError("a garbage continue token must be refused")
    except ApiException as e:
        assert e.status in (400, 410), e.status
    ok(f"pagination ({pages} pages)")

    every_kind(api_client)

    v1.delete_namespaced_config_map("cm", NS)
    try:
        v1.read_namespaced_config_map("cm", NS)
        raise AssertionError("deleted")
    except ApiException as e:
        assert e.status == 404
    ok("delete")


if __name__ == "__main__":
    main()
