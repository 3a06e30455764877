"""Destinations reached through a DNS name: the FQDN dependencies, and the egress rules
each `--fqdn-mode` writes for them (proxy, any-ip, pin)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from discover.enrichment.peers import ExternalPeer, GraphEdge, WorkloadPeer, workload_of
from discover.errors import ConfigurationError
from discover.flows.events import Protocol
from discover.flows.flowtable import DnsRow, utc_time
from discover.inventory.model import IPAddress, WorkloadRef
from discover.synthesis.cidrs import ClusterCidrs
from discover.synthesis.context import SynthesisContext, ip_peer
from discover.synthesis.options import FqdnMode, ProxyRef
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import (
    Direction,
    FqdnDependency,
    FqdnHandling,
    PortUse,
    Severity,
)


class EgressProxyError(ConfigurationError):
    """The named egress proxy isn't in the inventory, or has no port to use."""

    def __init__(self, proxy: ProxyRef, message: str) -> None:
        self.proxy = proxy
        super().__init__(f"--egress-proxy {proxy}: {message}")


@dataclass(frozen=True, slots=True)
class DnsObservation:
    """One (name, address) answer row of the DNS table, as the flow table keeps it."""

    name: str
    address: IPAddress
    ttl: int
    first_seen: datetime
    last_seen: datetime
    cname_chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NamedEdge:
    """An edge from `workload` to an external address it reached through the name `fqdn`."""

    edge: GraphEdge
    workload: WorkloadRef
    destination: ExternalPeer
    fqdn: str


def reached_by_name(edge: GraphEdge) -> NamedEdge | None:
    """The edge as reached by name, when a workload's pod reached an external name."""
    source, destination = edge.source, edge.destination
    if isinstance(source, WorkloadPeer) and isinstance(destination, ExternalPeer) \
            and destination.fqdn:
        return NamedEdge(edge, source.workload, destination, destination.fqdn)
    return None


def dns_observations(rows: Iterable[DnsRow]) -> tuple[DnsObservation, ...]:
    """The flow table's DNS rows as synthesis reads them (aware times)."""
    return tuple(
        DnsObservation(
            name=row.name,
            address=row.address,
            ttl=row.ttl,
            first_seen=utc_time(row.first_seen),
            last_seen=utc_time(row.last_seen),
            cname_chain=row.cname_chain,
        )
        for row in rows
    )


def _addresses_changed(rows: Sequence[DnsObservation]) -> bool | None:
    """True when the answer set moved during the window: one address stopped being
    answered before another started."""
    if not rows:
        return None
    return any(a.last_seen < b.first_seen for a in rows for b in rows if a.address != b.address)


def collect_dependencies(
    edges: Sequence[NamedEdge], dns: Sequence[DnsObservation],
    handling: Mapping[WorkloadRef, FqdnHandling],
) -> tuple[FqdnDependency, ...]:
    """One dependency per (workload, FQDN) from the edges reached by name."""
    by_name: dict[str, list[DnsObservation]] = defaultdict(list)
    for row in dns:
        by_name[row.name].append(row)
    grouped: dict[tuple[WorkloadRef, str], list[NamedEdge]] = defaultdict(list)
    for named in edges:
        grouped[(named.workload, named.fqdn)].append(named)
    dependencies = []
    for (workload, fqdn), group in sorted(grouped.items()):
        rows = by_name.get(fqdn, [])
        chain = max((n.destination.cname_chain for n in group), key=len, default=())
        addresses = {n.destination.ip for n in group}
        addresses.update(row.address for row in rows)
        group_edges = [n.edge for n in group]
        dependencies.append(
            FqdnDependency(
                workload=workload,
                fqdn=fqdn,
                cname_chain=chain,
                ports=tuple(sorted({PortUse(e.protocol, e.port) for e in group_edges},
                                   key=lambda p: (p.port, p.protocol))),
                addresses=tuple(sorted(addresses, key=lambda a: (a.version, a))),
                ttls=tuple(sorted({row.ttl for row in rows})),
                addresses_changed=_addresses_changed(rows),
                connections=sum(e.connections for e in group_edges),
                first_seen=min(e.first_seen for e in group_edges),
                last_seen=max(e.last_seen for e in group_edges),
                how=handling[workload],
            )
        )
    return tuple(dependencies)


def proxy_workload(context: SynthesisContext, proxy: ProxyRef) -> WorkloadRef:
    matches = sorted(
        workload for workload in context.pods_by_workload
        if workload.namespace == proxy.namespace and workload.name == proxy.name
    )
    if not matches:
        raise EgressProxyError(proxy, "no pods of that workload in the inventory")
    return matches[0]


def proxy_ports(context: SynthesisContext, proxy: ProxyRef, workload: WorkloadRef,
                edges: Sequence[GraphEdge]) -> set[PortSpec]:
    if proxy.port is not None:
        return {PortSpec(Protocol.TCP, proxy.port)}
    seen = {PortSpec(e.protocol, e.port, e.port_name) for e in edges
            if workload_of(e.destination) == workload and e.protocol == Protocol.TCP}
    if seen:
        return seen
    declared = {PortSpec(p.protocol, p.port, p.name) for p in context.declared_ports(workload)
                if p.protocol == Protocol.TCP}
    if not declared:
        raise EgressProxyError(proxy, "its pods declare no TCP port: name it as NS/NAME:PORT")
    return declared


def plan_fqdn_edges(
    context: SynthesisContext, edges: Sequence[NamedEdge], cidrs: ClusterCidrs,
    all_edges: Sequence[GraphEdge], dns: Sequence[DnsObservation] = (),
) -> dict[WorkloadRef, FqdnMode]:
    """Write the rules for edges reached by name; returns the mode applied per workload.
    Pinning also pins the addresses DNS answered for the name but nobody connected to
    (round-robin siblings), which makes the pin a little less brittle."""
    answered: dict[str, set[IPAddress]] = defaultdict(set)
    for row in dns:
        answered[row.name].add(row.address)
    mode = context.options.effective_fqdn_mode
    proxy = context.options.egress_proxy
    proxy_ref = proxy_workload(context, proxy) if proxy is not None and mode is FqdnMode.PROXY \
        else None
    applied: dict[WorkloadRef, FqdnMode] = {}
    # what each workload's names resolved to: an any-IP rule must not except those
    reached: dict[WorkloadRef, set[IPAddress]] = defaultdict(set)
    for named in edges:
        reached[named.workload].add(named.destination.ip)
        reached[named.workload].update(answered.get(named.fqdn, ()))
    for named in sorted(edges, key=_edge_key):
        source = named.workload
        workload_mode = mode
        if mode is FqdnMode.PROXY and source == proxy_ref:
            workload_mode = FqdnMode.ANY_IP  # the proxy itself filters by name
        applied[source] = workload_mode
        if workload_mode is FqdnMode.PROXY:
            assert proxy is not None and proxy_ref is not None
            _plan_proxy(context, named, proxy, proxy_ref, all_edges)
        elif workload_mode is FqdnMode.PIN:
            _plan_pin(context, named, answered.get(named.fqdn, set()))
        else:
            _plan_any_ip(context, named, cidrs, reached[source])
    return applied


def _edge_key(named: NamedEdge) -> tuple[str, str, str, int]:
    return (str(named.workload), named.fqdn, named.edge.protocol, named.edge.port)


def _plan_proxy(context: SynthesisContext, named: NamedEdge, proxy: ProxyRef,
                proxy_ref: WorkloadRef, all_edges: Sequence[GraphEdge]) -> None:
    source, edge = named.workload, named.edge
    if not context.selectable(proxy_ref):
        context.deny_unselectable(edge, Direction.EGRESS, proxy_ref, context.policy_id(source))
        return
    draft = context.draft(source)
    draft.flags.add("fqdn-proxy")
    rule = draft.rule("egress", f"pod:{proxy_ref}", [context.pod_peer(proxy_ref, source.namespace)],
                      reason=f"egress proxy {proxy} for names")
    ports = proxy_ports(context, proxy, proxy_ref, all_edges)
    rule.ports.update(ports)
    if context.writes_policy(proxy_ref):
        # the proxy must accept its new clients, seen or not
        context.draft(proxy_ref).rule(
            "ingress", f"pod:{source}", [context.pod_peer(source, proxy_ref.namespace)],
            reason="a client of the egress proxy",
        ).ports.update(ports)
    context.report(
        Severity.WARNING, "egress-fqdn-proxy", str(source),
        f"names are reached through the egress proxy {proxy} only; direct connections seen "
        "in the window are blocked until the workload uses the proxy",
        f"{edge.destination.label()} {edge.protocol} {edge.port}",
    )
    context.decide(edge, Direction.EGRESS, False, context.policy_id(source),
                   f"{named.fqdn}: through the egress proxy {proxy}")


def _plan_pin(context: SynthesisContext, named: NamedEdge, answered: set[IPAddress]) -> None:
    source, edge, address_seen = named.workload, named.edge, named.destination.ip
    draft = context.draft(source)
    draft.flags.add("fqdn-pin")
    port = PortSpec(edge.protocol, edge.port)
    draft.rule("egress", f"ip:{address_seen}", [ip_peer(address_seen)],
               use_names=False, reason=f"addresses seen for {named.fqdn} (pinned)"
               ).observe(edge.destination.label(), port, edge)
    for address in sorted(answered - {address_seen}, key=lambda a: (a.version, a)):
        draft.rule("egress", f"ip:{address}", [ip_peer(address)], use_names=False,
                   reason=f"answered by DNS for {named.fqdn} (pinned, not "
                          "connected to in the window)").ports.add(port)
    context.report(
        Severity.WARNING, "egress-fqdn-pin", str(source),
        "the addresses seen for names are pinned as ipBlocks: brittle, they break when "
        "the name moves", f"{edge.destination.label()} {edge.protocol} {edge.port}",
    )
    context.decide(edge, Direction.EGRESS, True, context.policy_id(source), "pinned address")


def _plan_any_ip(context: SynthesisContext, named: NamedEdge, cidrs: ClusterCidrs,
                 reached: set[IPAddress]) -> None:
    source, edge = named.workload, named.edge
    version = named.destination.ip.version
    everything = "0.0.0.0/0" if version == 4 else "::/0"
    block: dict[str, object] = {"cidr": everything}
    excepts = cidrs.excepts(version, reached)
    if excepts.excepts:
        block["except"] = excepts.as_list()
    draft = context.draft(source)
    draft.flags.add("fqdn-any-ip")
    draft.rule("egress", f"any-ip:v{version}", [{"ipBlock": block}], use_names=False,
               reason=f"names NetworkPolicy can't express: any address except "
                      f"{excepts.summary}, on these ports only"
               ).observe(edge.destination.label(), PortSpec(edge.protocol, edge.port), edge)
    context.report(
        Severity.WARNING, "egress-fqdn-any-ip", str(source),
        f"egress to names is allowed to any IPv{version} address except {excepts.summary} "
        "on the ports seen; restrict it with an egress proxy (see fqdn-dependencies.yaml) "
        "or the CiliumNetworkPolicy alternative",
        f"{edge.destination.label()} {edge.protocol} {edge.port}",
    )
    if excepts.kept_open:
        context.report(
            Severity.WARNING, "egress-fqdn-any-ip-not-excepted", str(source),
            "a name resolved into " + ", ".join(str(n) for n in excepts.kept_open)
            + " (node address, link-local or cloud metadata): the any-IP rule does not "
            "except it, so it is reachable on the ports seen; check the name really "
            "points there",
            ", ".join(str(a) for a in sorted(reached, key=lambda a: (a.version, a))
                      if any(a in n for n in excepts.kept_open)),
        )
    context.decide(edge, Direction.EGRESS, True, context.policy_id(source), "any address (FQDN)")
