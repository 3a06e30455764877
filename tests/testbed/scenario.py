"""The typed model of a testbed scenario (what runs, who talks to whom).

The YAML schema is documented at the top of `scenarios/small.yaml`; `scenario_load.py`
parses and validates it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from discover.errors import ConfigurationError

POD_RANGE = IPv4Network("10.244.0.0/16")
SERVICE_RANGE = IPv4Network("10.96.0.0/12")
DOCUMENTATION_RANGES = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# The API server, off the node like a managed control plane's: a test host at a
# documentation address behind the default/kubernetes Service, in every scenario.
API_SERVER_IP = IPv4Address("203.0.113.200")
API_SERVER_PORT = 6443
API_SERVICE_IP = IPv4Address("10.96.0.1")
API_SERVICE = "default/kubernetes"
# Objects every cluster has, which traffic may name besides the scenario's own.
SYSTEM_WORKLOADS = ("kube-system/coredns",)
SYSTEM_SERVICES = (API_SERVICE, "kube-system/kube-dns")
API_SERVER_SOURCE = "api-server"  # a traffic source: the API server host (webhook calls)


class ScenarioError(ConfigurationError):
    """A scenario file that can't be run; `path` and `where` say which and where."""

    def __init__(self, path: str, where: str, message: str) -> None:
        self.path = path
        self.where = where
        self.message = message
        super().__init__(f"{path}: {where}: {message}")


@dataclass(frozen=True, slots=True)
class PortSpec:
    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    namespace: str
    kind: str
    name: str
    labels: Mapping[str, str]
    replicas: int = 1
    ports: tuple[PortSpec, ...] = ()
    image: str = "registry.example.com/testbed/app:1.0"
    delete_at: float | None = None  # seconds after the traffic starts: workload deleted
    create_at: float | None = None  # seconds after the traffic starts: workload created
    reuse_ip_of: str | None = None  # "ns/name" of a deleted workload whose pod IP it takes
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServicePortSpec:
    name: str | None
    port: int
    target_port: int | str
    protocol: str = "TCP"
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    namespace: str
    name: str
    type: str  # ClusterIP, LoadBalancer; headless is ClusterIP with cluster_ip None
    cluster_ip: IPv4Address | None
    selector: Mapping[str, str]
    ports: tuple[ServicePortSpec, ...]
    load_balancer_ip: IPv4Address | None = None
    external_traffic_policy: str | None = None
    # A Service without selector whose EndpointSlice names these addresses (the API
    # server's default/kubernetes); DNAT sends its ClusterIP there.
    endpoint_ips: tuple[IPv4Address, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True, slots=True)
class IngressSpec:
    namespace: str
    name: str
    ingress_class: str
    host: str
    service: str  # Service name in the same namespace
    service_port: int | str


@dataclass(frozen=True, slots=True)
class ExternalSpec:
    """An external service. `name` is None for one reached by IP only. `rotation` holds
    the address sets the DNS answers with, one set a phase, in turn."""

    name: str | None
    rotation: tuple[tuple[IPv4Address, ...], ...]
    ports: tuple[PortSpec, ...]
    cname_chain: tuple[str, ...] = ()  # CNAME targets from `name` to the name with addresses
    drop: bool = False  # a firewall silently drops every packet sent to it (SYNs unanswered)

    @property
    def all_addresses(self) -> tuple[IPv4Address, ...]:
        return tuple(sorted({a for phase in self.rotation for a in phase}))


@dataclass(frozen=True, slots=True)
class ExternalClientSpec:
    name: str
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """Where a traffic item goes: exactly one of the reference fields is set."""

    port: int | str  # a Service port (number or name), a container port name, or a number
    service: str | None = None  # "ns/name" of a Service (ClusterIP, or headless pods)
    workload: str | None = None  # "ns/name": every pod of it, by pod IP
    external: str | None = None  # an external name, resolved through the cluster DNS
    ip: IPv4Address | None = None  # a literal address, no DNS
    load_balancer: str | None = None  # "ns/name" of a LoadBalancer Service, by its LB IP
    every_pod: bool = False  # all pods (but the client's own) that declare the named port
    resolve: str | None = None  # the name the client asks for (search-list style)
    dns_tcp: bool = False  # resolve over TCP (as after a truncated UDP answer)


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    source: str  # "ns/name" of a workload, "external:NAME" (external client), or "node"
    target: TargetSpec
    protocol: str
    every: float  # seconds between connections
    start: float = 0.0
    stop: float | None = None
    hold: float | None = None  # seconds the client keeps the connection open (a watch)

    @property
    def from_external(self) -> str | None:
        return self.source.removeprefix("external:") if self.source.startswith("external:") \
            else None


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """A ValidatingWebhookConfiguration whose one webhook the API server calls at the
    Service `service` ("ns/name") on `port` (a Service port)."""

    name: str
    service: str
    port: int = 443
    path: str = "/validate"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    ip: IPv4Address
    pod_cidr: IPv4Network
    provider_id: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    path: str
    duration: float
    rotate_every: float
    node: NodeSpec
    namespaces: Mapping[str, Mapping[str, str]]
    workloads: tuple[WorkloadSpec, ...]
    services: tuple[ServiceSpec, ...]
    ingresses: tuple[IngressSpec, ...]
    externals: tuple[ExternalSpec, ...]
    external_clients: tuple[ExternalClientSpec, ...]
    traffic: tuple[TrafficSpec, ...]
    dns_ip: IPv4Address
    dns_replicas: int
    capture_pod: str | None = None  # "ns/name": its first pod's eth0 is captured too
    webhooks: tuple[WebhookSpec, ...] = ()
    # The resolver the cluster DNS forwards what is not cluster.local to (a second
    # dnsmasq there, in the coredns ConfigMap's `forward .`); None: it answers alone.
    upstream_dns: IPv4Address | None = None
    snaplen: int = 512
    notes: tuple[str, ...] = field(default_factory=tuple)

    def workload(self, key: str) -> WorkloadSpec:
        for workload in self.workloads:
            if workload.key == key:
                return workload
        raise KeyError(key)

    def service(self, key: str) -> ServiceSpec:
        for service in self.services:
            if service.key == key:
                return service
        raise KeyError(key)

    def external(self, name: str) -> ExternalSpec:
        for external in self.externals:
            if external.name == name:
                return external
        raise KeyError(name)


def in_documentation_range(address: IPv4Address) -> bool:
    return any(address in network for network in DOCUMENTATION_RANGES)


def as_ipv4(value: Any, path: str, where: str) -> IPv4Address:
    try:
        return IPv4Address(str(value))
    except ipaddress.AddressValueError as error:
        raise ScenarioError(path, where, f"not an IPv4 address: {value!r}") from error
