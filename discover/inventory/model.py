"""Typed, immutable records of the Kubernetes objects the tool needs.

Loaders (`files.py`, `live.py`) build these; nothing downstream reads raw API JSON except
`NetworkPolicy.spec`, which is kept as the API's own dict so the evaluator and the audit
see exactly what the cluster has. Times are timezone-aware UTC `datetime`s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from discover.flows.events import Protocol

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True, order=True)
class WorkloadRef:
    """What owns a pod at the top of its owner chain (Deployment via ReplicaSet, StatefulSet,
    DaemonSet, CronJob via Job, Job, or the Pod itself when it has no owner)."""

    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind.lower()}/{self.name}"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    addresses: tuple[IPAddress, ...] = ()
    provider_id: str | None = None
    pod_cidrs: tuple[IPNetwork, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerPort:
    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None
    container: str = ""


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    ips: tuple[IPAddress, ...]
    workload: WorkloadRef
    node_name: str | None = None
    host_network: bool = False
    ports: tuple[ContainerPort, ...] = ()
    created: datetime | None = None
    deleted: datetime | None = None  # deletionTimestamp, or when a watch saw it go
    # Succeeded/Failed pods: when the last container terminated; the IP is free from then.
    finished: datetime | None = None
    phase: str | None = None
    images: tuple[str, ...] = ()  # container images: CNI detection reads them
    service_account: str = "default"
    # automountServiceAccountToken is not false: the pod holds an API-server token
    token_mounted: bool = True
    probes: tuple[ProbePort, ...] = ()  # the kubelet's liveness/readiness/startup probes


@dataclass(frozen=True, slots=True)
class ProbePort:
    """A port the kubelet probes (httpGet, tcpSocket or grpc), resolved to a number when
    the container names it; `port` stays the name when no container port has it."""

    kind: str  # liveness | readiness | startup
    port: int | str
    container: str = ""


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None
    target_port: int | str | None = None  # int, a container port name, or None (= port)
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    selector: Mapping[str, str] | None = None
    cluster_ips: tuple[IPAddress, ...] = ()  # empty for headless
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str | None = None
    load_balancer_ips: tuple[IPAddress, ...] = ()
    load_balancer_hostnames: tuple[str, ...] = ()
    external_ips: tuple[IPAddress, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointPort:
    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[IPAddress, ...]
    pod_name: str | None = None
    node_name: str | None = None
    ready: bool = True


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str | None
    ports: tuple[EndpointPort, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressBackend:
    service_name: str
    port: int | str | None = None  # number or the Service port's name


@dataclass(frozen=True, slots=True)
class Ingress:
    namespace: str
    name: str
    ingress_class: str | None = None
    backends: tuple[IngressBackend, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    namespace: str
    name: str
    spec: Mapping[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class CalledService:
    """A Service the API server calls: a webhook's or an aggregated API's backend.
    `port` is the Service port (a webhook's clientConfig.service.port, 443 by default)."""

    namespace: str
    name: str
    port: int = 443


@dataclass(frozen=True, slots=True)
class ApiCallback:
    """A ValidatingWebhookConfiguration, MutatingWebhookConfiguration or APIService, and
    the in-cluster Services it makes the API server call (a webhook by URL names none)."""

    kind: str
    name: str
    services: tuple[CalledService, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A RoleBinding (namespace set) or ClusterRoleBinding (namespace None) and the
    ServiceAccounts ((namespace, name)) and groups it grants its role to."""

    namespace: str | None
    name: str
    role: str  # "ClusterRole/view", "Role/leader-election"
    service_accounts: tuple[tuple[str, str], ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsForwarding:
    """What the cluster DNS forwards to, from its ConfigMap's Corefile (`forward . ADDR...`).
    `to_resolv_conf`: it forwards to the node's /etc/resolv.conf (addresses unknown here)."""

    config_map: str  # "kube-system/coredns"
    upstreams: tuple[IPAddress, ...] = ()
    ports: tuple[int, ...] = ()  # the upstreams' ports (53 unless given, 853 for tls://)
    to_resolv_conf: bool = False


@dataclass(frozen=True, slots=True)
class WorkloadTemplate:
    """A controller object (Deployment, StatefulSet, ...) when the inventory has it: its
    pod template labels and selector are what policy selectors are chosen from."""

    ref: WorkloadRef
    template_labels: Mapping[str, str]
    selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inventory:
    namespaces: tuple[Namespace, ...] = ()
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    ingresses: tuple[Ingress, ...] = ()
    network_policies: tuple[NetworkPolicy, ...] = ()
    workloads: tuple[WorkloadTemplate, ...] = ()
    api_callbacks: tuple[ApiCallback, ...] = ()
    role_bindings: tuple[RoleBinding, ...] = ()
    # the inventory listed RoleBindings/ClusterRoleBindings (even none): RBAC is known
    has_rbac: bool = False
    dns_forwarding: tuple[DnsForwarding, ...] = ()
    collected_at: datetime | None = None  # when a snapshot was taken (None: unknown)
    sources: tuple[str, ...] = ()  # files or API server the objects came from
    notes: tuple[str, ...] = ()  # ignored kinds, partial reads: shown in the report
