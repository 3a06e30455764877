"""The workload graph: the flow table's `FlowRow`s resolved by the `Resolver` into who talks
to whom.

Each flow row is resolved at its first and last time and whenever a pod took either of its
addresses in between (an IP that changed owner during the row gives an edge for each owner,
said in the notes). A client's row to a Service ClusterIP and its row to the backing pod
after DNAT (a node capture sees both) land on the same edge; per client address the edge
counts the larger of the two, never their sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from discover.enrichment.peers import (
    EarlierPodPeer,
    FlowKey,
    GraphEdge,
    Peer,
    ServiceRef,
    WorkloadPeer,
)
from discover.enrichment.resolver import Resolver, declared_port
from discover.flows.events import OUTCOME_ORDER, IPAddress, Outcome, Protocol
from discover.flows.flowtable import DnsRow, FlowRow, utc_time
from discover.inventory.model import Inventory, WorkloadRef

T = TypeVar("T")
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_POD_HELD = (WorkloadPeer, EarlierPodPeer)  # what a pod IP resolves to


@dataclass(frozen=True, slots=True)
class UndeclaredPort:
    """Traffic reached `workload` on a port none of its containers declares (an admin or
    debug port, or a pod that declares no ports at all: `pod_declares_ports` says which)."""

    workload: WorkloadRef
    protocol: Protocol
    port: int
    pod_declares_ports: bool


@dataclass(frozen=True, slots=True)
class WorkloadGraph:
    edges: tuple[GraphEdge, ...]
    window_start: datetime | None
    window_end: datetime | None
    notes: tuple[str, ...]
    undeclared_ports: tuple[UndeclaredPort, ...] = field(default=())


@dataclass(slots=True)
class _Counts:
    connections: int = 0
    packets: int = 0


@dataclass(slots=True)
class _EdgeAcc:
    source: Peer
    destination: Peer
    port_name: str | None = None
    first: datetime | None = None
    last: datetime | None = None
    evidence: set[FlowKey] = field(default_factory=set)
    services: set[ServiceRef] = field(default_factory=set)
    notes: set[str] = field(default_factory=set)
    source_notes: set[str] = field(default_factory=set)
    # per client address: counts of rows to the ClusterIP, counts of rows to the pod itself
    via_service: dict[IPAddress, _Counts] = field(default_factory=dict)
    direct: dict[IPAddress, _Counts] = field(default_factory=dict)
    outcome: int = len(OUTCOME_ORDER)  # the most telling of its rows' (OUTCOME_ORDER)


def _identity(peer: Peer) -> Peer:
    """What makes two peers the same graph node: a workload by its workload alone."""
    if isinstance(peer, WorkloadPeer):
        return WorkloadPeer(peer.workload, is_cluster_dns=peer.is_cluster_dns)
    return replace(peer, via_service=None, note="")


def build_graph(flows: Sequence[FlowRow], dns: Sequence[DnsRow] | None, inventory: Inventory,
                resolver: Resolver | None = None) -> WorkloadGraph:
    resolver = resolver or Resolver(inventory, dns)
    notes: set[str] = set(resolver.notes)
    edges: dict[tuple[Peer, Peer, Protocol, int], _EdgeAcc] = {}
    rows = _rows(flows, inventory, notes)
    for src_ip, dst_ip, protocol, dst_port, connections, packets, first, last, outcome in rows:
        flow = FlowKey(src_ip, dst_ip, protocol, dst_port)
        # Every pod that held either address at some time of the row, not only the
        # holders at its ends: a long row can see an IP pass through several pods.
        instants = sorted(set(resolver.instants(src_ip, first, last))
                          | set(resolver.instants(dst_ip, first, last)))
        sources = _unique(p for t in instants for p in resolver.resolve_sources(src_ip, t))
        destinations = _unique(
            r for t in instants
            for r in resolver.resolve_destination(dst_ip, protocol, dst_port, t, src_ip))
        span = f"between {first.isoformat()} and {last.isoformat()}"
        owners = {_identity(p) for p in sources}
        if len(owners) > 1:
            notes.add(f"{src_ip} changed owner {span}: the flow to {dst_ip}/{protocol}/"
                      f"{dst_port} is counted for each of {_labels(owners)}")
        backends = {_identity(p) for p, _, _ in destinations}
        if len(backends) > 1 and any(p.via_service for p, _, _ in destinations):
            notes.add(f"{dst_ip}/{protocol}/{dst_port} is served by {len(backends)} workloads: "
                      "each edge carries the flow's full counts")
        elif len(backends) > 1 and all(isinstance(p, _POD_HELD) for p in backends):
            notes.add(f"{dst_ip} changed owner {span}: the flow from {src_ip} to "
                      f"{protocol}/{dst_port} is counted for each of {_labels(backends)}")
        # Resolving at several instants may give the same edge twice (with other notes):
        # the row counts once for each distinct edge.
        touched: set[tuple[Peer, Peer, Protocol, int]] = set()
        for source in sources:
            for destination, port, port_name in destinations:
                key = (_identity(source), _identity(destination), protocol, port)
                acc = edges.get(key)
                if acc is None:
                    acc = edges[key] = _EdgeAcc(key[0], key[1])
                acc.port_name = acc.port_name or port_name
                if source.note:
                    acc.source_notes.add(source.note)
                if destination.note:
                    acc.notes.add(destination.note)
                if destination.via_service:
                    acc.services.add(destination.via_service)
                if key in touched:
                    continue
                touched.add(key)
                acc.first = first if acc.first is None else min(acc.first, first)
                acc.last = last if acc.last is None else max(acc.last, last)
                acc.evidence.add(flow)
                acc.outcome = min(acc.outcome, _OUTCOME_RANK[outcome])
                bucket = acc.via_service if destination.via_service else acc.direct
                counts = bucket.setdefault(src_ip, _Counts())
                counts.connections += connections
                counts.packets += packets
    graph_edges = sorted((_finish(acc, key[2], key[3]) for key, acc in edges.items()),
                         key=edge_sort_key)
    # Rows without times stand at _FAR_FUTURE only to be resolved: they say nothing of
    # when the window was.
    firsts = [e.first_seen for e in graph_edges if e.first_seen != _FAR_FUTURE]
    lasts = [e.last_seen for e in graph_edges if e.last_seen != _FAR_FUTURE]
    return WorkloadGraph(
        edges=tuple(graph_edges),
        window_start=min(firsts) if firsts else None,
        window_end=max(lasts) if lasts else None,
        notes=tuple(sorted(notes)),
        undeclared_ports=_undeclared(graph_edges, resolver),
    )


def edge_sort_key(edge: GraphEdge) -> tuple[str, str, str, int, str, str]:
    return (edge.source.label(), edge.destination.label(), edge.protocol, edge.port,
            edge.source.kind, edge.destination.kind)


def _finish(acc: _EdgeAcc, protocol: Protocol, port: int) -> GraphEdge:
    connections = packets = 0
    for client in set(acc.via_service) | set(acc.direct):
        # One connection seen before DNAT (to the ClusterIP) and after (to the pod).
        svc, direct = acc.via_service.get(client, _Counts()), acc.direct.get(client, _Counts())
        connections += max(svc.connections, direct.connections)
        packets += max(svc.packets, direct.packets)
    service = min(acc.services, key=lambda s: (s.namespace, s.name, s.port)) if acc.services \
        else None
    destination = replace(acc.destination, via_service=service, note="; ".join(sorted(acc.notes)))
    source = replace(acc.source, note="; ".join(sorted(acc.source_notes)))
    assert acc.first is not None and acc.last is not None
    return GraphEdge(
        source=source, destination=destination, protocol=protocol, port=port,
        port_name=acc.port_name, connections=connections, packets=packets,
        first_seen=acc.first, last_seen=acc.last,
        evidence=tuple(sorted(acc.evidence, key=_flow_sort_key)),
        outcome=OUTCOME_ORDER[acc.outcome],
    )


def _flow_sort_key(flow: FlowKey) -> tuple[int, IPAddress, int, IPAddress, str, int]:
    return (flow.src_ip.version, flow.src_ip, flow.dst_ip.version, flow.dst_ip, flow.protocol,
            flow.dst_port)


def _undeclared(edges: Iterable[GraphEdge], resolver: Resolver) -> tuple[UndeclaredPort, ...]:
    found: set[UndeclaredPort] = set()
    for edge in edges:
        destination = edge.destination
        if not isinstance(destination, WorkloadPeer):
            continue
        pod = resolver.pod_for(destination)
        if pod is None or declared_port(pod, edge.port, edge.protocol) is not None:
            continue
        found.add(UndeclaredPort(destination.workload, edge.protocol, edge.port,
                                 bool(pod.ports)))
    return tuple(sorted(found, key=lambda u: (u.workload, u.protocol, u.port)))


def _labels(peers: Iterable[Peer]) -> str:
    return ", ".join(sorted(p.label() for p in peers))


def _unique(items: Iterable[T]) -> list[T]:
    out: list[T] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


Row = tuple[IPAddress, IPAddress, Protocol, int, int, int, datetime, datetime, Outcome]
_OUTCOME_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOME_ORDER)}


def _rows(flows: Sequence[FlowRow], inventory: Inventory, notes: set[str]) -> list[Row]:
    """Each flow with aware times; a row without times (a flows file that has none) is
    resolved against the inventory as it was taken."""
    when = inventory.collected_at or _FAR_FUTURE
    out: list[Row] = []
    for flow in flows:
        if flow.first_seen is None:
            notes.add("flows without times: resolved against the inventory as it was taken")
            first = when
        else:
            first = utc_time(flow.first_seen)
        last = first if flow.last_seen is None else utc_time(flow.last_seen)
        out.append((flow.src_ip, flow.dst_ip, flow.protocol, flow.dst_port, flow.connections,
                    flow.packets, first, max(first, last), flow.outcome))
    return out
