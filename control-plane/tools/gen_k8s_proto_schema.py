#!/usr/bin/env python3
"""Generate src/api/proto_schema.rs: the protobuf field table of the Kubernetes messages
Skiff accepts as `application/vnd.kubernetes.protobuf` request bodies.

Inputs (read-only, found by glob under ~/.cargo/registry/src/*/ unless given):
  * k8s-pb 0.9.x     - prost-generated structs: field tags and wire types from
                       `#[prost(...)]` attributes, message paths from the module tree.
  * k8s-openapi 0.29 - per struct the exact JSON field names (the Deserialize impl's
                       `"hostIP" => Field::Key_host_ip`) and which fields are required
                       (non-`Option`).  All version directories (v1_33..) are read,
                       newest first, so fields added in later releases are covered.

One thing neither crate knows is which Go fields are pointers.  Go's gogo-protobuf
marshaller (what kubectl uses) writes every non-pointer scalar even when it is the
zero value, and the API server's JSON encoder then drops those zeros again via
`omitempty`.  Pointer scalars (`replicas *int32`, `runAsUser *int64`, ...) are only on
the wire when set, and a set zero is meaningful.  `GO_POINTER_SCALARS` below lists
those pointer fields (transcribed from k8s.io/api zz_generated.deepcopy.go / types.go
and k8s.io/apimachinery types.go); together with "required" from k8s-openapi they get
the KEEP_ZERO flag.  Every other scalar is emitted only when non-zero, which is exactly
what `omitempty` does.

Usage:
  python3 tools/gen_k8s_proto_schema.py [--k8s-pb DIR] [--k8s-openapi DIR] [-o src/api/proto_schema.rs]
  python3 tools/gen_k8s_proto_schema.py --check   # exit 1 if the checked-in file is stale
Stdlib only (Python 3.11).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from dataclasses import dataclass, field

# k8s-pb module directories (relative to its src/) that Skiff serves, plus the
# apimachinery packages they use.  Messages referenced from outside this set are
# pulled in transitively (and reported).
SCOPE = [
    "api/core/v1",
    "api/apps/v1",
    "api/batch/v1",
    "api/autoscaling/v1",
    "api/autoscaling/v2",
    "api/coordination/v1",
    "api/discovery/v1",
    "api/node/v1",
    "api/policy/v1",
    "api/networking/v1",
    "apimachinery/pkg/apis/meta/v1",
    "apimachinery/pkg/util/intstr",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/runtime",
]

# Top-level kinds that MUST be decodable (the generator fails otherwise).
MUST_HAVE = [
    "k8s.io.api.apps.v1.Deployment",
    "k8s.io.api.apps.v1.ReplicaSet",
    "k8s.io.api.apps.v1.DaemonSet",
    "k8s.io.api.apps.v1.StatefulSet",
    "k8s.io.api.batch.v1.Job",
    "k8s.io.api.batch.v1.CronJob",
    "k8s.io.api.core.v1.Pod",
    "k8s.io.api.core.v1.Service",
    "k8s.io.api.core.v1.ConfigMap",
    "k8s.io.api.core.v1.Secret",
    "k8s.io.api.core.v1.Namespace",
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
]

# Go pointer scalars (and the few value scalars whose json tag has no `omitempty`
# but which k8s-openapi does not mark required).  Keys are protobuf message full
# names; values are Go field names.  Matching against the prost snake_case name is
# done case-insensitively with underscores removed (FSGroup == fs_group).
GO_POINTER_SCALARS: dict[str, str] = {
    # ---- k8s.io/api/core/v1 (zz_generated.deepcopy.go: `*out = new(<scalar>)`)
    "k8s.io.api.core.v1.AppArmorProfile": "LocalhostProfile",
    "k8s.io.api.core.v1.AzureDiskVolumeSource": "CachingMode FSType ReadOnly Kind",
    "k8s.io.api.core.v1.AzureFilePersistentVolumeSource": "SecretNamespace",
    "k8s.io.api.core.v1.CSIVolumeSource": "ReadOnly FSType",
    "k8s.io.api.core.v1.ClientIPConfig": "TimeoutSeconds",
    "k8s.io.api.core.v1.ClusterTrustBundleProjection": "Name SignerName Optional",
    "k8s.io.api.core.v1.ConfigMap": "Immutable",
    "k8s.io.api.core.v1.ConfigMapEnvSource": "Optional",
    "k8s.io.api.core.v1.ConfigMapKeySelector": "Optional",
    "k8s.io.api.core.v1.ConfigMapProjection": "Optional",
    "k8s.io.api.core.v1.ConfigMapVolumeSource": "DefaultMode Optional",
    "k8s.io.api.core.v1.Container": "RestartPolicy",
    "k8s.io.api.core.v1.ContainerStatus": "Started StopSignal",
    "k8s.io.api.core.v1.DownwardAPIVolumeFile": "Mode",
    "k8s.io.api.core.v1.DownwardAPIVolumeSource": "DefaultMode",
    "k8s.io.api.core.v1.EndpointAddress": "NodeName",
    "k8s.io.api.core.v1.EndpointPort": "AppProtocol",
    "k8s.io.api.core.v1.EphemeralContainerCommon": "RestartPolicy",
    "k8s.io.api.core.v1.FCVolumeSource": "Lun",
    "k8s.io.api.core.v1.FileKeySelector": "Optional",
    "k8s.io.api.core.v1.GRPCAction": "Service",
    "k8s.io.api.core.v1.GlusterfsPersistentVolumeSource": "EndpointsNamespace",
    "k8s.io.api.core.v1.HostPathVolumeSource": "Type",
    "k8s.io.api.core.v1.ISCSIPersistentVolumeSource": "InitiatorName",
    "k8s.io.api.core.v1.ISCSIVolumeSource": "InitiatorName",
    "k8s.io.api.core.v1.KeyToPath": "Mode",
    "k8s.io.api.core.v1.Lifecycle": "StopSignal",
    "k8s.io.api.core.v1.LoadBalancerIngress": "IPMode",
    "k8s.io.api.core.v1.LocalVolumeSource": "FSType",
    "k8s.io.api.core.v1.NodeFeatures": "SupplementalGroupsPolicy",
    "k8s.io.api.core.v1.NodeRuntimeHandlerFeatures": "RecursiveReadOnlyMounts UserNamespaces",
    "k8s.io.api.core.v1.NodeSwapStatus": "Capacity",
    "k8s.io.api.core.v1.PersistentVolumeClaimSpec": "StorageClassName VolumeMode VolumeAttributesClassName",
    "k8s.io.api.core.v1.PersistentVolumeClaimStatus": "CurrentVolumeAttributesClassName",
    "k8s.io.api.core.v1.PersistentVolumeSpec": "VolumeMode VolumeAttributesClassName",
    "k8s.io.api.core.v1.PodCertificateProjection": "MaxExpirationSeconds",
    "k8s.io.api.core.v1.PodDNSConfigOption": "Value",
    "k8s.io.api.core.v1.PodLogOptions": "SinceSeconds TailLines LimitBytes Stream",
    "k8s.io.api.core.v1.PodResourceClaim": "ResourceClaimName ResourceClaimTemplateName",
    "k8s.io.api.core.v1.PodResourceClaimStatus": "ResourceClaimName",
    "k8s.io.api.core.v1.PodSchedulingGroup": "PodGroupName",
    "k8s.io.api.core.v1.PodSecurityContext": (
        "RunAsUser RunAsGroup RunAsNonRoot SupplementalGroupsPolicy FSGroup "
        "FSGroupChangePolicy SELinuxChangePolicy"
    ),
    "k8s.io.api.core.v1.PodSpec": (
        "TerminationGracePeriodSeconds ActiveDeadlineSeconds AutomountServiceAccountToken "
        "ShareProcessNamespace Priority RuntimeClassName EnableServiceLinks PreemptionPolicy "
        "SetHostnameAsFQDN HostUsers HostnameOverride"
    ),
    "k8s.io.api.core.v1.PortStatus": "Error",
    "k8s.io.api.core.v1.Preconditions": "UID",
    "k8s.io.api.core.v1.Probe": "TerminationGracePeriodSeconds",
    "k8s.io.api.core.v1.ProjectedVolumeSource": "DefaultMode",
    "k8s.io.api.core.v1.ReplicationControllerSpec": "Replicas",
    "k8s.io.api.core.v1.ResourceHealth": "Message",
    "k8s.io.api.core.v1.SeccompProfile": "LocalhostProfile",
    "k8s.io.api.core.v1.Secret": "Immutable",
    "k8s.io.api.core.v1.SecretEnvSource": "Optional",
    "k8s.io.api.core.v1.SecretKeySelector": "Optional",
    "k8s.io.api.core.v1.SecretProjection": "Optional",
    "k8s.io.api.core.v1.SecretVolumeSource": "DefaultMode Optional",
    "k8s.io.api.core.v1.SecurityContext": (
        "Privileged RunAsUser RunAsGroup RunAsNonRoot ReadOnlyRootFilesystem "
        "AllowPrivilegeEscalation ProcMount"
    ),
    "k8s.io.api.core.v1.ServiceAccount": "AutomountServiceAccountToken",
    "k8s.io.api.core.v1.ServiceAccountTokenProjection": "ExpirationSeconds",
    "k8s.io.api.core.v1.ServicePort": "AppProtocol",
    "k8s.io.api.core.v1.ServiceSpec": (
        "IPFamilyPolicy AllocateLoadBalancerNodePorts LoadBalancerClass "
        "InternalTrafficPolicy TrafficDistribution"
    ),
    "k8s.io.api.core.v1.Toleration": "TolerationSeconds",
    "k8s.io.api.core.v1.TopologySpreadConstraint": "MinDomains NodeAffinityPolicy NodeTaintsPolicy",
    "k8s.io.api.core.v1.TypedLocalObjectReference": "APIGroup",
    "k8s.io.api.core.v1.TypedObjectReference": "APIGroup Namespace",
    "k8s.io.api.core.v1.VolumeMount": "RecursiveReadOnly MountPropagation",
    "k8s.io.api.core.v1.VolumeMountStatus": "RecursiveReadOnly",
    "k8s.io.api.core.v1.WindowsSecurityContextOptions": (
        "GMSACredentialSpecName GMSACredentialSpec RunAsUserName HostProcess"
    ),
    # ---- k8s.io/api/apps/v1 (types.go)
    "k8s.io.api.apps.v1.RollingUpdateStatefulSetStrategy": "Partition",
    "k8s.io.api.apps.v1.StatefulSetSpec": "Replicas RevisionHistoryLimit",
    # `availableReplicas` has no omitempty in Go.
    "k8s.io.api.apps.v1.StatefulSetStatus": "CollisionCount AvailableReplicas",
    # `start` has no omitempty in Go.
    "k8s.io.api.apps.v1.StatefulSetOrdinals": "Start",
    "k8s.io.api.apps.v1.DeploymentSpec": "Replicas RevisionHistoryLimit ProgressDeadlineSeconds",
    "k8s.io.api.apps.v1.DeploymentStatus": "TerminatingReplicas CollisionCount",
    "k8s.io.api.apps.v1.DaemonSetSpec": "RevisionHistoryLimit",
    "k8s.io.api.apps.v1.DaemonSetStatus": "CollisionCount",
    "k8s.io.api.apps.v1.ReplicaSetSpec": "Replicas",
    "k8s.io.api.apps.v1.ReplicaSetStatus": "TerminatingReplicas",
    # ---- k8s.io/api/batch/v1 (types.go)
    "k8s.io.api.batch.v1.PodFailurePolicyOnExitCodesRequirement": "ContainerName",
    "k8s.io.api.batch.v1.JobSpec": (
        "Parallelism Completions ActiveDeadlineSeconds BackoffLimit BackoffLimitPerIndex "
        "MaxFailedIndexes ManualSelector TTLSecondsAfterFinished CompletionMode Suspend "
        "PodReplacementPolicy ManagedBy"
    ),
    "k8s.io.api.batch.v1.JobStatus": "Ready Terminating FailedIndexes",
    "k8s.io.api.batch.v1.SuccessPolicyRule": "SucceededIndexes SucceededCount",
    "k8s.io.api.batch.v1.CronJobSpec": (
        "TimeZone StartingDeadlineSeconds Suspend SuccessfulJobsHistoryLimit FailedJobsHistoryLimit"
    ),
    # ---- k8s.io/api/autoscaling
    "k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerSpec": "MinReplicas TargetCPUUtilizationPercentage",
    "k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerStatus": "ObservedGeneration CurrentCPUUtilizationPercentage",
    "k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerSpec": "MinReplicas",
    "k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerStatus": "ObservedGeneration",
    "k8s.io.api.autoscaling.v2.HPAScalingRules": "StabilizationWindowSeconds SelectPolicy",
    "k8s.io.api.autoscaling.v2.MetricTarget": "AverageUtilization",
    "k8s.io.api.autoscaling.v2.MetricValueStatus": "AverageUtilization",
    # ---- k8s.io/api/coordination/v1
    "k8s.io.api.coordination.v1.LeaseSpec": (
        "HolderIdentity LeaseDurationSeconds LeaseTransitions Strategy PreferredHolder"
    ),
    # ---- k8s.io/api/discovery/v1
    "k8s.io.api.discovery.v1.Endpoint": "Hostname NodeName Zone",
    "k8s.io.api.discovery.v1.EndpointConditions": "Ready Serving Terminating",
    "k8s.io.api.discovery.v1.EndpointPort": "Name Protocol Port AppProtocol",
    # ---- k8s.io/api/policy/v1
    "k8s.io.api.policy.v1.PodDisruptionBudgetSpec": "UnhealthyPodEvictionPolicy",
    # ---- k8s.io/api/networking/v1 (types.go)
    "k8s.io.api.networking.v1.HTTPIngressPath": "PathType",
    "k8s.io.api.networking.v1.IngressSpec": "IngressClassName",
    "k8s.io.api.networking.v1.IngressPortStatus": "Error",
    "k8s.io.api.networking.v1.IngressClassParametersReference": "APIGroup Scope Namespace",
    "k8s.io.api.networking.v1.NetworkPolicyPort": "Protocol EndPort",
    # ---- k8s.io/apimachinery/pkg/apis/meta/v1 (types.go)
    "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta": "DeletionGracePeriodSeconds",
    "k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference": "Controller BlockOwnerDeletion",
    "k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta": "RemainingItemCount",
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions": (
        "GracePeriodSeconds OrphanDependents PropagationPolicy "
        "IgnoreStoreReadErrorWithClusterBreakingPotential"
    ),
    "k8s.io.apimachinery.pkg.apis.meta.v1.Preconditions": "UID ResourceVersion",
    "k8s.io.apimachinery.pkg.apis.meta.v1.ListOptions": "TimeoutSeconds SendInitialEvents",
    "k8s.io.apimachinery.pkg.apis.meta.v1.PatchOptions": "Force",
}

# Special messages with a non-object JSON form (handled by hand in protobuf.rs);
# listed here only so the generator can check they exist.
SPECIAL = [
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
]

ACRONYMS = {
    "ip": "IP", "ips": "IPs", "uid": "UID", "url": "URL", "cidr": "CIDR",
    "cidrs": "CIDRs", "id": "ID", "api": "API", "tls": "TLS", "dns": "DNS",
}

SCALAR_KINDS = {
    "string": "Str",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "I32",
    "sint32": "I32",  # (not used by Kubernetes; zigzag is not supported)
    "int64": "I64",
    "uint32": "U32",
    "uint64": "U64",
    "double": "F64",
    "float": "F32",
    "enumeration": "I32",
}


@dataclass
class PbField:
    rust: str
    tag: int
    kind: str  # Str/Bytes/.../Msg
    card: str  # One/Rep/Map
    msg: str | None = None  # full message name for Msg


@dataclass
class PbMessage:
    name: str
    module: str
    fields: list[PbField] = field(default_factory=list)


def fail(msg: str) -> None:
    print(f"gen_k8s_proto_schema: error: {msg}", file=sys.stderr)
    sys.exit(2)


def find_crate(prefix: str, want: str) -> str:
    home = os.path.expanduser("~")
    cands = sorted(glob.glob(os.path.join(home, ".cargo/registry/src/*", f"{prefix}-{want}*", "src")))
    if not cands:
        fail(
            f"crate {prefix} {want}* not found under ~/.cargo/registry/src; run `cargo fetch` "
            f"in a crate depending on it (see this script's docstring)"
        )
    return cands[-1]


def module_to_package(module: str) -> str:
    return "k8s.io." + module.replace("/", ".")


def resolve_path(module: str, path: str) -> str:
    """Resolve a prost type path (relative `super::` form) to a full message name."""
    path = path.strip()
    path = re.sub(r"\s+", "", path).rstrip(",")
    parts = path.split("::")
    mod_parts = module.split("/")
    if parts[0] == "super":
        while parts and parts[0] == "super":
            parts.pop(0)
            if not mod_parts:
                fail(f"path {path} escapes crate root from {module}")
            mod_parts.pop()
        return "k8s.io." + ".".join(mod_parts + parts)
    if parts[0] == "crate":
        return "k8s.io." + ".".join(parts[1:])
    if len(parts) == 1:
        return module_to_package(module) + "." + parts[0]
    fail(f"cannot resolve type path {path} in {module}")
    return ""


def strip_generic(ty: str, wrapper: str) -> str | None:
    ty = re.sub(r"\s+", "", ty)
    for pre in (f"::core::option::{wrapper}<", f"::prost::alloc::vec::{wrapper}<", f"{wrapper}<"):
        if ty.startswith(pre) and ty.endswith(">"):
            return ty[len(pre) : -1]
    return None


def parse_pb_module(src: str, module: str) -> dict[str, PbMessage]:
    path = os.path.join(src, module, "mod.rs")
    if not os.path.exists(path):
        fail(f"k8s-pb module {module} not found at {path}")
    text = open(path, encoding="utf-8").read()
    out: dict[str, PbMessage] = {}
    for m in re.finditer(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.S | re.M):
        name, body = m.group(1), m.group(2)
        msg = PbMessage(module_to_package(module) + "." + name, module)
        # attribute then (after optional doc lines) `pub name: TYPE,` possibly multi-line
        for fm in re.finditer(
            r"#\[prost\(([^\]]*)\)\]\s*\n\s*pub (?:r#)?(\w+):\s*(.*?),\s*\n(?=\s*(?:///|#\[|pub |$))",
            body + "\n",
            re.S,
        ):
            attr, rust, ty = fm.group(1), fm.group(2), fm.group(3)
            tag_m = re.search(r'tag\s*=\s*"(\d+)"', attr)
            if not tag_m:
                fail(f"{msg.name}.{rust}: no tag in #[prost({attr})]")
            tag = int(tag_m.group(1))
            head = attr.split(",")[0].strip()
            if "oneof" in attr:
                fail(f"{msg.name}.{rust}: oneof not supported")
            if head.startswith("btree_map") or head.startswith("map") or head.startswith("hash_map"):
                kv = re.search(r'map\s*=\s*"([^"]*)"', attr)
                if not kv:
                    fail(f"{msg.name}.{rust}: bad map attr {attr}")
                key, val = [s.strip() for s in kv.group(1).split(",", 1)]
                if key != "string":
                    fail(f"{msg.name}.{rust}: map key {key} unsupported")
                if val.startswith("message"):
                    inner = re.sub(r"\s+", "", ty)
                    vm = re.match(r".*BTreeMap<::prost::alloc::string::String,(.*)>$", inner)
                    if not vm:
                        fail(f"{msg.name}.{rust}: cannot parse map type {ty}")
                    msg.fields.append(PbField(rust, tag, "Msg", "Map", resolve_path(module, vm.group(1))))
                else:
                    base = val.split("(")[0].strip()
                    if base not in SCALAR_KINDS:
                        fail(f"{msg.name}.{rust}: map value {val} unsupported")
                    msg.fields.append(PbField(rust, tag, SCALAR_KINDS[base], "Map"))
                continue
            repeated = "repeated" in [a.strip() for a in attr.split(",")]
            base = re.split(r"[\s=,]", head)[0]
            if base == "message":
                inner = strip_generic(ty, "Vec") if repeated else strip_generic(ty, "Option")
                if inner is None:
                    fail(f"{msg.name}.{rust}: cannot parse message type {ty}")
                bm = re.match(r"::prost::alloc::boxed::Box<(.*)>$", inner)
                if bm:
                    inner = bm.group(1)
                msg.fields.append(
                    PbField(rust, tag, "Msg", "Rep" if repeated else "One", resolve_path(module, inner))
                )
            elif base in SCALAR_KINDS:
                msg.fields.append(PbField(rust, tag, SCALAR_KINDS[base], "Rep" if repeated else "One"))
            elif base == "group":
                fail(f"{msg.name}.{rust}: groups unsupported")
            else:
                fail(f"{msg.name}.{rust}: unknown prost kind {head}")
        nattr = body.count("#[prost(")
        if nattr != len(msg.fields):
            fail(f"{msg.name}: parsed {len(msg.fields)} fields but saw {nattr} #[prost] attributes")
        msg.fields.sort(key=lambda f: f.tag)
        out[msg.name] = msg
    return out


@dataclass
class OaStruct:
    # normalized rust name (no underscores, lower case) -> (json name, required).
    # Normalizing makes k8s-pb `pod_cid_rs` meet k8s-openapi `pod_cidrs`.
    fields: dict[str, tuple[str, bool]]


def parse_openapi(src: str) -> tuple[dict[str, OaStruct], list[str]]:
    versions = sorted(
        (d for d in os.listdir(src) if re.fullmatch(r"v1_\d+", d)),
        key=lambda d: int(d.split("_")[1]),
        reverse=True,
    )
    if not versions:
        fail(f"no v1_XX directories in {src}")
    defs: dict[str, OaStruct] = {}
    for ver in versions:  # newest first: first one seen wins, older ones add fields
        for root, _dirs, files in os.walk(os.path.join(src, ver)):
            for fn in files:
                if not fn.endswith(".rs") or fn == "mod.rs":
                    continue
                text = open(os.path.join(root, fn), encoding="utf-8").read()
                dm = re.match(r"// Generated from definition (\S+)", text)
                if not dm:
                    continue
                dname = dm.group(1)
                sm = re.search(r"^pub struct \w+ \{\n(.*?)^\}", text, re.S | re.M)
                rust_fields: dict[str, bool] = {}
                if sm:
                    for fm in re.finditer(r"^\s*pub (?:r#)?(\w+): (.*),\s*$", sm.group(1), re.M):
                        rust_fields[fm.group(1)] = not fm.group(2).startswith("Option<")
                # k8s-openapi escapes keywords with a trailing underscore (`type_`).
                mapping = dict(
                    (k, v) for v, k in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text)
                )
                st = defs.setdefault(dname, OaStruct({}))
                for rust, req in rust_fields.items():
                    json = mapping.get(rust)
                    if json is None:
                        continue
                    prev = st.fields.get(norm(rust))
                    # JSON names never change between releases.  A field counts as
                    # required if any release marks it so: Go json tags keep their
                    # (missing) omitempty, while later releases sometimes relax the
                    # OpenAPI "required" list (ControllerRevision.revision).
                    st.fields[norm(rust)] = (prev[0] if prev else json, req or bool(prev and prev[1]))
    return defs, versions


def camel(rust: str) -> str:
    parts = rust.split("_")
    out = [parts[0]]
    for p in parts[1:]:
        out.append(ACRONYMS.get(p, p[:1].upper() + p[1:]))
    return "".join(out)


def norm(s: str) -> str:
    return s.replace("_", "").lower()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k8s-pb", help="k8s-pb src/ directory (default: newest k8s-pb-0.9.* in ~/.cargo/registry)")
    ap.add_argument("--k8s-openapi", help="k8s-openapi src/ directory (default: newest k8s-openapi-0.29.*)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("-o", "--output", default=os.path.join(here, "..", "src", "api", "proto_schema.rs"))
    ap.add_argument("--check", action="store_true", help="do not write; fail if the output is out of date")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    pb_src = args.k8s_pb or find_crate("k8s-pb", "0.9.")
    oa_src = args.k8s_openapi or find_crate("k8s-openapi", "0.29.")

    # ---- k8s-pb: parse the scope, then pull in referenced modules transitively
    messages: dict[str, PbMessage] = {}
    parsed_modules: set[str] = set()
    pending = list(SCOPE)
    extra_modules: list[str] = []
    while pending:
        mod = pending.pop(0)
        if mod in parsed_modules:
            continue
        parsed_modules.add(mod)
        messages.update(parse_pb_module(pb_src, mod))
        for msg in list(messages.values()):
            for f in msg.fields:
                if f.msg and f.msg not in messages:
                    tmod = "/".join(f.msg[len("k8s.io.") :].split(".")[:-1])
                    if tmod not in parsed_modules and tmod not in pending:
                        pending.append(tmod)
                        extra_modules.append(tmod)
    for msg in messages.values():
        for f in msg.fields:
            if f.msg and f.msg not in messages:
                fail(f"{msg.name}.{f.rust} references unknown message {f.msg}")
    # ---- k8s-openapi JSON names
    defs, versions = parse_openapi(oa_src)

    # prost renames messages to UpperCamelCase (ClientIPConfig -> ClientIpConfig); restore
    # the protobuf names from k8s-openapi definitions that differ only in case.
    by_lower: dict[str, str] = {}
    for d in defs:
        if d.startswith("io.k8s."):
            by_lower.setdefault(("k8s.io." + d[len("io.k8s.") :]).lower(), "k8s.io." + d[len("io.k8s.") :])
    rename: dict[str, str] = {}
    for n in messages:
        canon = by_lower.get(n.lower())
        if canon and canon != n:
            rename[n] = canon
    if rename:
        renamed: dict[str, PbMessage] = {}
        for n, msg in messages.items():
            msg.name = rename.get(n, n)
            for f in msg.fields:
                if f.msg:
                    f.msg = rename.get(f.msg, f.msg)
            renamed[msg.name] = msg
        messages = renamed

    for name in MUST_HAVE + SPECIAL:
        if name not in messages:
            fail(f"required message {name} missing from k8s-pb")

    warnings: list[str] = []
    fallback_names: list[str] = []
    inline_fields: list[str] = []

    oa_fields: dict[str, dict[str, tuple[str, bool]]] = {}
    for n in messages:
        d = defs.get("io.k8s." + n[len("k8s.io.") :])
        if d is not None:
            oa_fields[n] = d.fields

    # Inline embeddings (Go `json:",inline"`): a message field of the parent that
    # k8s-openapi does not have, whose sub-message's fields all appear in the parent.
    inline: set[tuple[str, str]] = set()
    changed = True
    while changed:
        changed = False
        for n, msg in messages.items():
            parent = oa_fields.get(n)
            if parent is None:
                continue
            for f in msg.fields:
                if f.kind != "Msg" or f.card != "One" or norm(f.rust) in parent or (n, f.rust) in inline:
                    continue
                sub = messages[f.msg]
                if sub.fields and all(norm(sf.rust) in parent for sf in sub.fields):
                    inline.add((n, f.rust))
                    inline_fields.append(f"{n}.{f.rust} -> {f.msg}")
                    # a sub-message without its own definition takes the parent's names
                    if f.msg not in oa_fields:
                        oa_fields[f.msg] = {
                            norm(sf.rust): parent[norm(sf.rust)] for sf in sub.fields
                        }
                        changed = True

    # pointer list sanity
    pointer_sets: dict[str, set[str]] = {}
    for mname, gnames in GO_POINTER_SCALARS.items():
        if mname not in messages:
            warnings.append(f"pointer list: message {mname} not in k8s-pb (ignored)")
            continue
        by_norm = {norm(f.rust): f for f in messages[mname].fields}
        s = set()
        for gname in gnames.split():
            f = by_norm.get(norm(gname))
            if f is None:
                warnings.append(f"pointer list: {mname}.{gname} not in k8s-pb (ignored)")
                continue
            if f.kind == "Msg" or f.card != "One":
                warnings.append(f"pointer list: {mname}.{gname} is not a singular scalar (ignored)")
                continue
            s.add(f.rust)
        pointer_sets[mname] = s

    # ---- resolve JSON names / flags
    names = sorted(messages)
    index = {n: i for i, n in enumerate(names)}
    if len(names) > 65535:
        fail("too many messages for u16 indices")
    rows: list[str] = []
    nfields = 0
    for n in names:
        msg = messages[n]
        oa = oa_fields.get(n)
        frows = []
        for f in msg.fields:
            flags = []
            json = None
            required = False
            if (n, f.rust) in inline:
                flags.append("INLINE")
                json = ""
            elif oa is not None and norm(f.rust) in oa:
                json, required = oa[norm(f.rust)]
            if json is None:
                json = camel(f.rust)
                if n not in SPECIAL:
                    fallback_names.append(f"{n}.{f.rust} -> {json}" + ("" if oa else " (no openapi definition)"))
            if f.kind != "Msg" and f.card == "One":
                if required or f.rust in pointer_sets.get(n, set()):
                    flags.append("KEEP_ZERO")
            kind = f"M({index[f.msg]})" if f.kind == "Msg" else f.kind
            flag_s = "|".join(flags) if flags else "0"
            frows.append(f"        f({f.tag}, {rust_str(json)}, {kind}, {f.card}, {flag_s}),")
            nfields += 1
        if frows:
            rows.append(f"    // {index[n]}\n    m({rust_str(n)}, &[\n" + "\n".join(frows) + "\n    ]),")
        else:
            rows.append(f"    // {index[n]}\n    m({rust_str(n)}, &[]),")

    used_kinds = set(re.findall(r"^        f\(\d+, \"[^\"]*\", (\w+)", "\n".join(rows), re.M))
    used_cards = set(re.findall(r"^        f\(\d+, \"[^\"]*\", [\w()]+, (\w+)", "\n".join(rows), re.M))
    kinds = sorted(used_kinds - {"M"}) + ["Msg as M"]
    uses = (
        "#[rustfmt::skip]\nuse Card::{" + ", ".join(sorted(used_cards)) + "};\n"
        "#[rustfmt::skip]\nuse Kind::{" + ", ".join(kinds) + "};"
    )
    header = f"""// @generated by tools/gen_k8s_proto_schema.py -- DO NOT EDIT BY HAND.
//
// Protobuf field table for the Kubernetes messages Skiff decodes from
// `application/vnd.kubernetes.protobuf` bodies (see src/protobuf.rs).
// Sources: k8s-pb ({os.path.basename(os.path.dirname(pb_src))}) for tags and wire types,
// k8s-openapi ({os.path.basename(os.path.dirname(oa_src))}, {", ".join(versions)}) for JSON names
// and required fields, plus the script's list of Go pointer scalars.
// Modules: {", ".join(SCOPE + extra_modules)}.
// {len(names)} messages, {nfields} fields.
// Regenerate: python3 tools/gen_k8s_proto_schema.py
"""
    body = f"""
/// Protobuf value kind of a field (for maps: of the map value; keys are always strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {{
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    U32,
    U64,
    F64,
    F32,
    /// Embedded message: index into [`MESSAGES`].
    Msg(u16),
}}

/// Cardinality of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {{
    One,
    Rep,
    /// `map<string, V>`: repeated entry messages {{key = 1, value = 2}}.
    Map,
}}

/// Emit this singular scalar even when it is the zero value (Go pointer field, or a
/// field whose JSON tag has no `omitempty`).
pub const KEEP_ZERO: u8 = 1;
/// Embedded message whose fields are inlined into the parent JSON object
/// (Go `json:",inline"`, e.g. `Volume.VolumeSource`, `Probe.ProbeHandler`).
pub const INLINE: u8 = 2;

#[derive(Debug)]
pub struct Field {{
    pub tag: u32,
    /// JSON field name; empty for [`INLINE`] fields.
    pub json: &'static str,
    pub kind: Kind,
    pub card: Card,
    pub flags: u8,
}}

#[derive(Debug)]
pub struct Msg {{
    /// Protobuf full name, e.g. `k8s.io.api.apps.v1.Deployment`.
    pub name: &'static str,
    /// Sorted by tag.
    pub fields: &'static [Field],
}}

const fn f(tag: u32, json: &'static str, kind: Kind, card: Card, flags: u8) -> Field {{
    Field {{
        tag,
        json,
        kind,
        card,
        flags,
    }}
}}

const fn m(name: &'static str, fields: &'static [Field]) -> Msg {{
    Msg {{ name, fields }}
}}

/// Index of a message by full name.
pub fn message_index(name: &str) -> Option<u16> {{
    MESSAGES
        .binary_search_by(|msg| msg.name.cmp(name))
        .ok()
        .and_then(|i| u16::try_from(i).ok())
}}

/// Message by index (as found in [`Kind::Msg`]).
pub fn message(index: u16) -> Option<&'static Msg> {{
    MESSAGES.get(usize::from(index))
}}

impl Msg {{
    /// Field by tag.
    pub fn field(&self, tag: u32) -> Option<&'static Field> {{
        self.fields
            .binary_search_by(|fd| fd.tag.cmp(&tag))
            .ok()
            .and_then(|i| self.fields.get(i))
    }}
}}

{uses}

/// All messages, sorted by name.
#[rustfmt::skip]
pub static MESSAGES: [Msg; {len(names)}] = [
{chr(10).join(rows)}
];
"""
    content = header + body
    out = os.path.normpath(args.output)
    if args.check:
        cur = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
        if cur != content:
            print(f"{out} is out of date; run python3 tools/gen_k8s_proto_schema.py", file=sys.stderr)
            sys.exit(1)
    else:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(content)
    print(
        f"{out}: {len(names)} messages, {nfields} fields, {len(content)} bytes; "
        f"k8s-pb={pb_src} k8s-openapi={oa_src} ({', '.join(versions)})",
        file=sys.stderr,
    )
    if extra_modules:
        print(f"  pulled in transitively: {', '.join(extra_modules)}", file=sys.stderr)
    print(f"  inline fields: {len(inline_fields)}", file=sys.stderr)
    print(f"  JSON names by camelCase fallback: {len(fallback_names)}", file=sys.stderr)
    for w in warnings:
        print(f"  warning: {w}", file=sys.stderr)
    if args.verbose:
        for s in inline_fields:
            print(f"  inline: {s}", file=sys.stderr)
        for s in fallback_names:
            print(f"  fallback: {s}", file=sys.stderr)


def rust_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
