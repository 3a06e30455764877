"""What an IP address is, at the time it was seen: the records enrichment produces."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from discover.flows.events import IPAddress, Outcome, Protocol
from discover.inventory.model import WorkloadRef


class PeerKind(enum.StrEnum):
    WORKLOAD = "workload"  # a pod, identified by its workload
    NODE = "node"  # a node address: kubelet probes, host-network pods
    LOAD_BALANCER = "load-balancer"  # a LoadBalancer Service's ingress IP
    CLUSTER_UNKNOWN = "cluster-unknown"  # inside a pod/service CIDR, no object holds it
    EARLIER_POD = "earlier-pod"  # the IP's current pod was created after the flow
    EXTERNAL = "external"  # outside the cluster


@dataclass(frozen=True, slots=True)
class ServiceRef:
    namespace: str
    name: str
    port: int  # the Service port the client used
    target_port: int  # the port the pod really listens on
    port_name: str | None = None  # the container port's name, when declared


@dataclass(frozen=True, slots=True)
class Peer:
    """One side of an edge.

    For WORKLOAD, `workload` is set. `ip` is the address seen on the wire when the peer
    is not a workload (or for evidence). `fqdn` and `cname_chain` are set for an external
    destination that this client resolved shortly before. `via_service` is set when a
    destination was reached through a Service ClusterIP. `note` explains unsure cases.
    """

    kind: PeerKind
    workload: WorkloadRef | None = None
    pod_name: str | None = None  # the very pod, for WORKLOAD peers resolved from an IP
    ip: IPAddress | None = None
    node_name: str | None = None
    host_network: bool = False
    fqdn: str | None = None
    cname_chain: tuple[str, ...] = ()
    via_service: ServiceRef | None = None
    is_cluster_dns: bool = False
    note: str = ""

    def label(self) -> str:
        """A short human name: `ns/kind/name`, `fqdn (ip)`, `node/NAME`, or the IP."""
        if self.workload is not None:
            return str(self.workload)
        if self.fqdn:
            return f"{self.fqdn} ({self.ip})" if self.ip else self.fqdn
        if self.kind is PeerKind.NODE and self.node_name:
            return f"node/{self.node_name}"
        return str(self.ip) if self.ip is not None else self.kind.value


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
