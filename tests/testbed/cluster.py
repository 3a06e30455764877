"""The cluster a scenario describes, made concrete: every pod with its name, IP, labels,
owner and lifetime, plus the objects a real cluster has (CoreDNS behind the kube-dns
Service, a calico-node DaemonSet pod on the host network, the API server's
default/kubernetes Service, off the node at API_SERVER_IP like a managed control plane).

Pure: no I/O. Names and hashes are derived from the scenario, so two runs of one scenario
give the same pod names and IPs (times differ, of course).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from tests.testbed.scenario import (
    API_SERVER_IP,
    API_SERVER_PORT,
    API_SERVICE_IP,
    PortSpec,
    Scenario,
    ServicePortSpec,
    ServiceSpec,
    WorkloadSpec,
)
from tests.testbed.scenario_load import selects

# The alphabet Kubernetes uses for generated name suffixes and pod-template-hash.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DNS_NAMESPACE = "kube-system"
DNS_WORKLOAD = "coredns"
CNI_WORKLOAD = "calico-node"
# A pod counts as alive for traffic this long after its creation and until this long before
# its deletion, so that no planned connection races its pod's netns coming or going (or
# its program starting: a Python start takes most of a second on a busy machine).
ALIVE_AFTER_CREATE = 1.0
ALIVE_BEFORE_DELETE = 0.6


def k8s_suffix(seed: str, length: int) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def k8s_uid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"netpol-discover-testbed/{seed}"))


@dataclass(frozen=True, slots=True)
class PodPlan:
    namespace: str
    name: str
    uid: str
    workload: WorkloadSpec
    ip: IPv4Address
    labels: Mapping[str, str]
    owner_kind: str  # ReplicaSet, StatefulSet, DaemonSet
    owner_name: str
    created_at: float | None = None  # seconds after traffic start; None: before it
    deleted_at: float | None = None
    runs_dns: bool = False

    @property
    def host_network(self) -> bool:
        return self.workload.host_network

    @property
    def ports(self) -> tuple[PortSpec, ...]:
        return self.workload.ports

    def alive(self, t: float) -> bool:
        if self.created_at is not None and t < self.created_at + ALIVE_AFTER_CREATE:
            return False
        return self.deleted_at is None or t < self.deleted_at - ALIVE_BEFORE_DELETE

    def port_named(self, name: str) -> PortSpec | None:
        return next((p for p in self.ports if p.name == name), None)


@dataclass(frozen=True, slots=True)
class Cluster:
    scenario: Scenario
    namespaces: Mapping[str, Mapping[str, str]]
    workloads: tuple[WorkloadSpec, ...]
    services: tuple[ServiceSpec, ...]
    pods: tuple[PodPlan, ...]
    template_hashes: Mapping[str, str]  # workload key -> pod-template-hash / revision

    def pods_of(self, workload_key: str) -> list[PodPlan]:
        return [p for p in self.pods if p.workload.key == workload_key]

    def service(self, key: str) -> ServiceSpec:
        return next(s for s in self.services if s.key == key)

    def endpoints(self, service: ServiceSpec, at: float | None = None) -> list[PodPlan]:
        """Pods backing a Service (alive at `at`, or all that ever existed)."""
        return [
            p for p in self.pods
            if p.namespace == service.namespace and selects(service.selector, p.labels)
            and (at is None or p.alive(at))
        ]

    def pod_by_ip(self, ip: IPv4Address, at: float) -> PodPlan | None:
        for pod in self.pods:
            started = pod.created_at is None or pod.created_at <= at
            if pod.ip == ip and started and (pod.deleted_at is None or at < pod.deleted_at):
                return pod
        return None


def target_port_of(port: ServicePortSpec, pod: PodPlan) -> int | None:
    """The container port a Service port lands on in this pod (named or numeric)."""
    if isinstance(port.target_port, int):
        return port.target_port
    found = pod.port_named(port.target_port)
    return None if found is None else found.port


def system_workloads(scenario: Scenario) -> tuple[WorkloadSpec, ...]:
    coredns = WorkloadSpec(
        namespace=DNS_NAMESPACE, kind="Deployment", name=DNS_WORKLOAD,
        labels={"k8s-app": "kube-dns"}, replicas=scenario.dns_replicas,
        ports=(PortSpec("dns", 53, "UDP"), PortSpec("dns-tcp", 53, "TCP"),
               PortSpec("metrics", 9153, "TCP")),
        image="registry.k8s.io/coredns/coredns:v1.11.1",
    )
    calico = WorkloadSpec(
        namespace=DNS_NAMESPACE, kind="DaemonSet", name=CNI_WORKLOAD,
        labels={"k8s-app": "calico-node"}, replicas=1,
        image="docker.io/calico/node:v3.27.3", host_network=True,
    )
    return coredns, calico


def kube_dns_service(scenario: Scenario) -> ServiceSpec:
    return ServiceSpec(
        namespace=DNS_NAMESPACE, name="kube-dns", type="ClusterIP",
        cluster_ip=scenario.dns_ip, selector={"k8s-app": "kube-dns"},
        ports=(ServicePortSpec("dns", 53, "dns", "UDP"),
               ServicePortSpec("dns-tcp", 53, "dns-tcp", "TCP"),
               ServicePortSpec("metrics", 9153, "metrics", "TCP")),
    )


def api_service() -> ServiceSpec:
    """default/kubernetes: 443 on its ClusterIP, the API server's 6443 behind it."""
    return ServiceSpec(
        namespace="default", name="kubernetes", type="ClusterIP", cluster_ip=API_SERVICE_IP,
        selector={}, ports=(ServicePortSpec("https", 443, API_SERVER_PORT, "TCP"),),
        endpoint_ips=(API_SERVER_IP,),
    )


def build_cluster(scenario: Scenario) -> Cluster:
    workloads = system_workloads(scenario) + scenario.workloads
    hashes = {
        w.key: k8s_suffix(f"{scenario.name}/{w.key}/template", 10)
        for w in workloads
    }
    free = (ip for ip in scenario.node.pod_cidr.hosts() if int(ip) & 0xFF >= 2)
    pods: list[PodPlan] = []
    for workload in workloads:
        for ordinal in range(workload.replicas):
            if workload.host_network:
                ip = scenario.node.ip
            elif workload.reuse_ip_of is not None:
                ip = next(p.ip for p in pods if p.workload.key == workload.reuse_ip_of)
            else:
                ip = next(free)
            pods.append(_pod(scenario, workload, ordinal, ip, hashes[workload.key]))
    declared: dict[str, Mapping[str, str]] = {"default": {}, DNS_NAMESPACE: {}} | dict(
        scenario.namespaces)
    namespaces = {
        name: {"kubernetes.io/metadata.name": name} | dict(labels)
        for name, labels in declared.items()
    }
    return Cluster(
        scenario=scenario,
        namespaces=namespaces,
        workloads=workloads,
        services=(api_service(), kube_dns_service(scenario)) + scenario.services,
        pods=tuple(pods),
        template_hashes=hashes,
    )


def _pod(scenario: Scenario, workload: WorkloadSpec, ordinal: int, ip: IPv4Address,
         template_hash: str) -> PodPlan:
    labels = dict(workload.labels)
    seed = f"{scenario.name}/{workload.key}/{ordinal}"
    if workload.kind == "Deployment":
        owner_kind, owner_name = "ReplicaSet", f"{workload.name}-{template_hash}"
        name = f"{owner_name}-{k8s_suffix(seed, 5)}"
        labels["pod-template-hash"] = template_hash
    elif workload.kind == "StatefulSet":
        owner_kind, owner_name = "StatefulSet", workload.name
        name = f"{workload.name}-{ordinal}"
        labels["controller-revision-hash"] = f"{workload.name}-{template_hash}"
        labels["statefulset.kubernetes.io/pod-name"] = name
        labels["apps.kubernetes.io/pod-index"] = str(ordinal)
    else:
        owner_kind, owner_name = "DaemonSet", workload.name
        name = f"{workload.name}-{k8s_suffix(seed, 5)}"
        labels["controller-revision-hash"] = template_hash
        labels["pod-template-generation"] = "1"
    return PodPlan(
        namespace=workload.namespace,
        name=name,
        uid=k8s_uid(f"pod/{seed}"),
        workload=workload,
        ip=ip,
        labels=labels,
        owner_kind=owner_kind,
        owner_name=owner_name,
        created_at=workload.create_at,
        deleted_at=workload.delete_at,
        runs_dns=workload.key == f"{DNS_NAMESPACE}/{DNS_WORKLOAD}",
    )
