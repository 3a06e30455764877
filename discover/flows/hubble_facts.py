"""What a Hubble export says beside connections: who the endpoints are, what was blocked,
which Services flows went through. Records are picklable (a worker process sends them back
with its table) and `merge` folds the facts of several files.

- Endpoints: each address with the namespace, identity labels, pod name and workloads the
  flows gave it (`inventory/from_flows.py` builds pods, namespaces and nodes from them).
- Blocked: flows with verdict DROPPED or ERROR, aggregated per edge (client, server,
  protocol, server port) and reason: attempts that never got through, never a reason to
  allow, reported with `drop_reason_desc` and the denying policies.
- Services: `destination_service` of flows to a backend, kept as evidence (Cilium's socket
  load balancing shows the backend's address, not the ClusterIP).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from discover.flows.events import IPAddress, Protocol
from discover.reading.hubble_records import HubbleEndpoint, HubbleFlow, Verdict

DNS_PORT = 53


@dataclass(frozen=True, slots=True)
class EndpointSighting:
    """An address as one kind of endpoint (same namespace, pod, labels and workloads)."""

    ip: IPAddress
    namespace: str
    pod_name: str
    labels: tuple[str, ...]
    workloads: tuple[tuple[str, str], ...]  # (kind, name)
    node_name: str  # the node whose host it is (reserved:host), else ""
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class BlockedEdge:
    """Flows that were dropped (or met an error) on one edge, for one reason."""

    client_ip: IPAddress
    server_ip: IPAddress
    protocol: Protocol
    port: int
    verdict: str
    reason: str
    policies: tuple[str, ...]
    client: str  # who the endpoint was: "ns/pod", "reserved:world", or ""
    server: str
    flows: int
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class ServiceSighting:
    namespace: str
    name: str
    ip: IPAddress
    protocol: Protocol
    port: int
    flows: int


@dataclass(frozen=True, slots=True)
class HubbleFacts:
    files: tuple[str, ...] = ()
    endpoints: tuple[EndpointSighting, ...] = ()
    blocked: tuple[BlockedEdge, ...] = ()
    services: tuple[ServiceSighting, ...] = ()
    audited: int = 0  # AUDIT flows: policy would have dropped them when enforcing
    flows_lost: int = 0  # lost_events responses: flows Hubble never delivered

    def merge(self, other: HubbleFacts) -> HubbleFacts:
        collector = FactsCollector("")
        collector.absorb(self)
        collector.absorb(other)
        return collector.facts(files=self.files + other.files,
                               audited=self.audited + other.audited,
                               flows_lost=self.flows_lost + other.flows_lost)


def merge_facts(facts: Iterable[HubbleFacts | None]) -> HubbleFacts | None:
    result: HubbleFacts | None = None
    for each in facts:
        if each is not None:
            result = each if result is None else result.merge(each)
    return result


_EndpointKey = tuple[IPAddress, str, str, tuple[str, ...], tuple[tuple[str, str], ...], str]
_BlockedKey = tuple[IPAddress, IPAddress, Protocol, int, str, str, tuple[str, ...], str, str]
_ServiceKey = tuple[str, str, IPAddress, Protocol, int]


class FactsCollector:
    """Collects the facts of one file, flow by flow."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.audited = 0
        self._endpoints: dict[_EndpointKey, list[float]] = {}
        self._blocked: dict[_BlockedKey, list[float]] = {}
        self._services: dict[_ServiceKey, int] = {}

    def add(self, flow: HubbleFlow) -> None:
        self._endpoint(flow.src_ip, flow.source, flow.node_name, flow.time)
        self._endpoint(flow.dst_ip, flow.destination, flow.node_name, flow.time)
        if flow.verdict is Verdict.AUDIT:
            self.audited += 1
        if flow.protocol is None:
            return
        if flow.verdict.blocked:
            self._add_blocked(flow)
        elif flow.destination_service is not None and flow.verdict.happened \
                and flow.is_reply is not True:
            namespace, name = flow.destination_service
            key = (namespace, name, flow.dst_ip, flow.protocol, flow.dst_port)
            self._services[key] = self._services.get(key, 0) + 1

    def facts(self, *, files: tuple[str, ...] | None = None, audited: int | None = None,
              flows_lost: int = 0) -> HubbleFacts:
        return HubbleFacts(
            files=(self.path,) if files is None else files,
            endpoints=tuple(sorted(
                (EndpointSighting(*key, t[0], t[1]) for key, t in self._endpoints.items()),
                key=lambda e: (_ip_key(e.ip), e.namespace, e.pod_name, e.labels))),
            blocked=tuple(sorted(
                (BlockedEdge(*key, int(t[2]), t[0], t[1]) for key, t in self._blocked.items()),
                key=lambda b: (_ip_key(b.client_ip), _ip_key(b.server_ip), b.protocol.value,
                               b.port, b.reason, b.policies))),
            services=tuple(sorted(
                (ServiceSighting(*key, count) for key, count in self._services.items()),
                key=lambda s: (s.namespace, s.name, _ip_key(s.ip), s.protocol.value, s.port))),
            audited=self.audited if audited is None else audited,
            flows_lost=flows_lost,
        )

    def absorb(self, facts: HubbleFacts) -> None:
        for e in facts.endpoints:
            self._stretch(self._endpoints, (e.ip, e.namespace, e.pod_name, e.labels,
                                            e.workloads, e.node_name), e.first, e.last, 0)
        for b in facts.blocked:
            self._stretch(self._blocked, (b.client_ip, b.server_ip, b.protocol, b.port,
                                          b.verdict, b.reason, b.policies, b.client, b.server),
                          b.first, b.last, b.flows)
        for s in facts.services:
            key = (s.namespace, s.name, s.ip, s.protocol, s.port)
            self._services[key] = self._services.get(key, 0) + s.flows

    # -- internals -------------------------------------------------------------------

    def _endpoint(self, ip: IPAddress, endpoint: HubbleEndpoint, node: str, time: float) -> None:
        if not endpoint.labels and not endpoint.pod_name:
            return
        host = node if "host" in endpoint.reserved else ""
        key = (ip, endpoint.namespace, endpoint.pod_name, endpoint.labels, endpoint.workloads,
               host)
        self._stretch(self._endpoints, key, time, time, 0)

    def _add_blocked(self, flow: HubbleFlow) -> None:
        client, server = _blocked_direction(flow)
        protocol = flow.protocol
        assert protocol is not None
        ends = {
            (flow.src_ip, flow.src_port): _who(flow.source),
            (flow.dst_ip, flow.dst_port): _who(flow.destination),
        }
        key = (client[0], server[0], protocol, server[1], flow.verdict.value,
               flow.drop_reason, tuple(sorted({str(p) for p in flow.denied_by})),
               ends[client], ends[server])
        self._stretch(self._blocked, key, flow.time, flow.time, 1)

    @staticmethod
    def _stretch(table: dict, key: object, first: float, last: float,  # type: ignore[type-arg]
                 count: int) -> None:
        span = table.get(key)
        if span is None:
            table[key] = [first, last, count]
            return
        span[0] = min(span[0], first)
        span[1] = max(span[1], last)
        if len(span) > 2:
            span[2] += count


def _blocked_direction(flow: HubbleFlow) -> tuple[tuple[IPAddress, int], tuple[IPAddress, int]]:
    """(client end, server end) of a blocked packet: its sender is the client unless it
    is a reply (or a SYN-ACK, or DNS answered from port 53)."""
    src, dst = (flow.src_ip, flow.src_port), (flow.dst_ip, flow.dst_port)
    reply = flow.is_reply is True or (flow.flags.syn and flow.flags.ack)
    if flow.protocol is Protocol.UDP and flow.src_port == DNS_PORT != flow.dst_port:
        reply = True
    return (dst, src) if reply else (src, dst)


def _ip_key(ip: IPAddress) -> tuple[int, int]:
    return ip.version, int(ip)


def _who(endpoint: HubbleEndpoint) -> str:
    if endpoint.pod_name:
        return f"{endpoint.namespace}/{endpoint.pod_name}"
    reserved = sorted(endpoint.reserved)
    return ", ".join(f"reserved:{r}" for r in reserved)
