"""What an IP address is, at the time it was seen: the records enrichment produces.

A peer is one of six frozen types, one for each thing an address can turn out to be;
code that cares which asks with `isinstance` (or `match`). Each type's `kind` is the word
flows.csv, the graph and the findings write for it, never a thing to dispatch on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, TypeAlias

from discover.flows.events import IPAddress, Outcome, Protocol
from discover.inventory.model import WorkloadRef


@dataclass(frozen=True, slots=True)
class ServiceRef:
    namespace: str
    name: str
    port: int  # the Service port the client used
    target_port: int  # the port the pod really listens on
    port_name: str | None = None  # the container port's name, when declared


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reached:
    """How an address was reached, whatever it turned out to be: `via_service` when a
    destination was reached through a Service ClusterIP (an EndpointSlice may point a
    Service at a node or an external address too), `is_cluster_dns` when it serves the
    cluster DNS, `note` explaining unsure cases."""

    via_service: ServiceRef | None = None
    is_cluster_dns: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class WorkloadPeer(_Reached):
    """A pod in the pod network, identified by its workload. `pod_name`, `ip` and
    `node_name` name the very pod when it was resolved from its IP; a Service backend is
    the workload alone."""

    kind: ClassVar[str] = "workload"
    workload: WorkloadRef
    pod_name: str | None = None
    ip: IPAddress | None = None
    node_name: str | None = None

    def label(self) -> str:
        return str(self.workload)


@dataclass(frozen=True, slots=True)
class NodePeer(_Reached):
    """A node's address: kubelet probes, the API server, host-network pods, NodeLocal
    DNSCache. `workload` and `pod_name` name the pod that serves the port on that
    address (a host-network pod, or the NodeLocal DNSCache pod), when one does."""

    kind: ClassVar[str] = "node"
    ip: IPAddress
    node_name: str | None = None
    workload: WorkloadRef | None = None
    pod_name: str | None = None

    def label(self) -> str:
        if self.workload is not None:
            return str(self.workload)
        return f"node/{self.node_name}" if self.node_name else str(self.ip)


@dataclass(frozen=True, slots=True)
class LoadBalancerPeer(_Reached):
    """A LoadBalancer Service's ingress (or external) IP, with no backend to expand to,
    or as the client of a proxying load balancer."""

    kind: ClassVar[str] = "load-balancer"
    ip: IPAddress

    def label(self) -> str:
        return str(self.ip)


@dataclass(frozen=True, slots=True)
class ClusterUnknownPeer(_Reached):
    """Inside a pod or service range (or a Service without the port or a backend), but no
    inventory object holds the address; `note` says which case."""

    kind: ClassVar[str] = "cluster-unknown"
    ip: IPAddress

    def label(self) -> str:
        return str(self.ip)


@dataclass(frozen=True, slots=True)
class EarlierPodPeer(_Reached):
    """A pod IP at a time no pod of the inventory held it (its current pod was created
    after the flow, or the holder had gone)."""

    kind: ClassVar[str] = "earlier-pod"
    ip: IPAddress

    def label(self) -> str:
        return str(self.ip)


@dataclass(frozen=True, slots=True)
class ExternalPeer(_Reached):
    """Outside the cluster. `fqdn` and `cname_chain`: the name this client resolved to
    the address shortly before, when it did."""

    kind: ClassVar[str] = "external"
    ip: IPAddress
    fqdn: str | None = None
    cname_chain: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.fqdn} ({self.ip})" if self.fqdn else str(self.ip)


Peer: TypeAlias = (WorkloadPeer | NodePeer | LoadBalancerPeer | ClusterUnknownPeer
                   | EarlierPodPeer | ExternalPeer)
# addresses in the cluster that no object explains (evaluated as bare IPs)
UNRESOLVED = (ClusterUnknownPeer, EarlierPodPeer)


def workload_of(peer: Peer) -> WorkloadRef | None:
    """The workload behind a peer: a pod's, or the one serving a node address."""
    return peer.workload if isinstance(peer, WorkloadPeer | NodePeer) else None


def node_name_of(peer: Peer) -> str | None:
    return peer.node_name if isinstance(peer, WorkloadPeer | NodePeer) else None


@dataclass(frozen=True, slots=True)
class FlowKey:
    """One row of the flow table, as seen on the wire: the evidence behind a graph edge."""

    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol
    dst_port: int


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """Who talks to whom, on which port, why we think so.

    `port` is the destination pod's port (the Service's targetPort resolved), `port_name`
    the container port's name when the pod declares one.
    """

    source: Peer
    destination: Peer
    protocol: Protocol
    port: int
    port_name: str | None
    connections: int
    packets: int
    first_seen: datetime
    last_seen: datetime
    evidence: tuple[FlowKey, ...] = field(default=())
    # The most telling outcome of its flows (OUTCOME_ORDER): synthesis allows completed
    # edges, not attempts (discover/synthesis/attempts.py).
    outcome: Outcome = Outcome.UNKNOWN
