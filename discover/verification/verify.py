"""Verification: would these NetworkPolicies allow the flows that were observed?

Each flow's addresses are resolved to endpoints at the flow's time with the enrichment
Resolver (`discover/enrichment/resolver.py`): a pod IP becomes the pod (its labels,
namespace labels, container ports), anything else an IP endpoint. A flow to a Service
ClusterIP is a flow to the Service's backing pods on the targetPort, and is allowed only
if allowed for every backend.

Two exemptions the Kubernetes docs state and the evaluator can't see on its own:
traffic between a pod and the node it runs on is always allowed, and host-network pods
share their node's address, so they are treated as that IP (policies don't select them).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from discover.enrichment.peers import (
    UNRESOLVED,
    ExternalPeer,
    NodePeer,
    Peer,
    WorkloadPeer,
    node_name_of,
)
from discover.flows.events import IPAddress, Protocol
from discover.flows.flowtable import FlowRow, utc_time
from discover.inventory.model import Inventory, Pod
from discover.netpol import IpEndpoint, PodEndpoint, PolicyEvaluator, Verdict
from discover.netpol.endpoints import namespace_labels, pod_endpoint
from discover.netpol.evaluate import Endpoint


class EndpointResolver(typing.Protocol):
    """What verification needs of the enrichment Resolver: the peer an address was at a
    time, as a source and as a destination on a protocol and port."""

    def resolve_source(self, ip: IPAddress, when: datetime) -> Peer: ...

    def resolve_destination(
        self,
        ip: IPAddress,
        protocol: Protocol,
        port: int,
        when: datetime,
        client_ip: IPAddress | None = None,
    ) -> list[tuple[Peer, int, str | None]]: ...

    def pod_for(self, peer: Peer) -> Pod | None: ...


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol
    dst_port: int
    allowed: bool
    reason: str
    source: str  # who the source was, as a person reads it
    destinations: tuple[str, ...]  # what was checked: the pod, or every Service backend
    time: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `verify --format json` record."""
        return {
            "src_ip": str(self.src_ip),
            "dst_ip": str(self.dst_ip),
            "protocol": self.protocol.value,
            "dst_port": self.dst_port,
            "allowed": self.allowed,
            "reason": self.reason,
        }


def default_resolver(inventory: Inventory) -> EndpointResolver:
    from discover.enrichment.resolver import Resolver  # loaded when used: `verify --help`

    resolver: EndpointResolver = Resolver(inventory)
    return resolver


def verify_flows(
    flows: Sequence[FlowRow],
    evaluator: PolicyEvaluator,
    inventory: Inventory,
    *,
    resolver: EndpointResolver | None = None,
) -> list[FlowVerdict]:
    """A verdict for every flow, in order. IPs are resolved at the flow's first_seen; a
    flow without times (a flows file may have none) at the inventory's time, else now."""
    resolver = resolver if resolver is not None else default_resolver(inventory)
    endpoints = _EndpointBuilder(inventory, resolver)
    default_time = inventory.collected_at or datetime.now(UTC)
    return [
        _verify_one(
            evaluator,
            resolver,
            endpoints,
            flow.src_ip,
            flow.dst_ip,
            flow.protocol,
            flow.dst_port,
            default_time if flow.first_seen is None else utc_time(flow.first_seen),
        )
        for flow in flows
    ]


def _verify_one(
    evaluator: PolicyEvaluator,
    resolver: EndpointResolver,
    endpoints: _EndpointBuilder,
    src_ip: IPAddress,
    dst_ip: IPAddress,
    protocol: Protocol,
    port: int,
    when: datetime,
) -> FlowVerdict:
    source_peer = resolver.resolve_source(src_ip, when)
    # the resolver's address is canonical (an IPv4-mapped source comes back as IPv4)
    source_ip = source_peer.ip if source_peer.ip is not None else src_ip
    source = endpoints.endpoint(source_peer, source_ip)
    targets = resolver.resolve_destination(dst_ip, protocol, port, when, client_ip=src_ip)
    checks: list[tuple[str, Verdict]] = []
    for peer, target_port, _name in targets or [(ExternalPeer(dst_ip), port, None)]:
        destination = endpoints.endpoint(peer, peer.ip if peer.ip is not None else dst_ip)
        exempt = _node_local(source_peer, source, peer, destination)
        verdict = exempt or evaluator.check(source, destination, protocol, target_port)
        checks.append((f"{destination.label()}:{target_port}", verdict))
    allowed = all(verdict.allowed for _, verdict in checks)
    return FlowVerdict(
        src_ip=src_ip,
        dst_ip=dst_ip,
        protocol=protocol,
        dst_port=port,
        allowed=allowed,
        reason=_combine(checks, targets[0][0] if targets else None, allowed)
        + _unresolved_notes([source_peer, *(peer for peer, _, _ in targets)]),
        source=source.label(),
        destinations=tuple(label for label, _ in checks),
        time=when,
    )


def _combine(checks: list[tuple[str, Verdict]], first: Peer | None, allowed: bool) -> str:
    service = first.via_service if first is not None else None
    if service is None and len(checks) == 1:
        return checks[0][1].reason
    # Replicas of one workload give the same reason: say it once.
    distinct: dict[str, list[str]] = {}
    for label, verdict in checks:
        if verdict.allowed == allowed:
            # "allowed: ..." once for the whole flow, not again for each backend
            text = verdict.reason.removeprefix("allowed: ").removeprefix("denied: ")
            distinct.setdefault(text, []).append(label)
    via = f"via Service {service.namespace}/{service.name} port {service.port}: " if service else ""
    if allowed:
        head = f"allowed for all {len(checks)} backend(s)"
    else:
        denied = sum(1 for _, verdict in checks if not verdict.allowed)
        head = f"denied for {denied} of {len(checks)} backend(s)"
    details = "; ".join(
        f"[{', '.join(sorted(set(labels)))}] {text}" for text, labels in distinct.items()
    )
    return f"{'allowed' if allowed else 'denied'}: {via}{head}: {details}"


def _unresolved_notes(peers: Sequence[Peer]) -> str:
    """Why an address in the cluster was evaluated as a bare IP (no pod holds it)."""
    notes = sorted(
        {f"{peer.ip}: {peer.note}" for peer in peers if isinstance(peer, UNRESOLVED) and peer.note}
    )
    return f" (note: {'; '.join(notes)})" if notes else ""


def _node_local(
    source_peer: Peer, source: Endpoint, destination_peer: Peer, destination: Endpoint
) -> Verdict | None:
    """The Kubernetes exemption: a pod and its own node may always talk."""
    if isinstance(destination, PodEndpoint) and isinstance(source_peer, NodePeer):
        node, pod_node = source_peer.node_name, node_name_of(destination_peer)
        if node and node == pod_node:
            return Verdict(
                True,
                f"allowed: from node {node}, the node {destination.label()} "
                "runs on (always allowed)",
            )
    if isinstance(source, PodEndpoint) and isinstance(destination_peer, NodePeer):
        node, pod_node = destination_peer.node_name, node_name_of(source_peer)
        if node and node == pod_node:
            return Verdict(
                True, f"allowed: to node {node}, the node {source.label()} runs on (always allowed)"
            )
    return None


class _EndpointBuilder:
    def __init__(self, inventory: Inventory, resolver: EndpointResolver) -> None:
        self.resolver = resolver
        self.namespace_labels = namespace_labels(inventory)

    def endpoint(self, peer: Peer, ip: IPAddress) -> Endpoint:
        if isinstance(peer, ExternalPeer) and peer.fqdn:
            return IpEndpoint(ip, names=(peer.fqdn,))  # for ClusterNetworkPolicy domainNames
        if not isinstance(peer, WorkloadPeer):
            return IpEndpoint(ip)  # nodes, host-network pods, external and unknown addresses
        pod = self.resolver.pod_for(peer)
        if pod is None or pod.host_network:
            return IpEndpoint(ip)
        address = peer.ip
        if address is None:  # a Service backend: its pod address of the flow's family
            address = next((a for a in pod.ips if a.version == ip.version), None)
        return pod_endpoint(pod, self.namespace_labels.get(pod.namespace), ip=address)
