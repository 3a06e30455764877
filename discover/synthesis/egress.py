"""Egress rules: DNS for workloads that resolved names, observed in-cluster destinations
by their labels on the pod port, external addresses reached by IP as single ipBlocks.
Destinations reached by name are left to `fqdn.py`."""

from __future__ import annotations

from discover.enrichment.peers import (
    UNRESOLVED,
    ExternalPeer,
    GraphEdge,
    WorkloadPeer,
    workload_of,
)
from discover.inventory.model import WorkloadRef
from discover.synthesis.cluster_dns import ClusterDns, dns_egress_peers, is_dns_edge
from discover.synthesis.context import SynthesisContext, ip_peer
from discover.synthesis.drafts import RuleDraft
from discover.synthesis.fqdn import NamedEdge
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import Direction, Severity


def ensure_dns_rule(context: SynthesisContext, workload: WorkloadRef, dns: ClusterDns
                    ) -> RuleDraft | None:
    """The DNS egress rule of a workload that resolves names (UDP and TCP); None when no
    DNS server can be named exactly (an empty `to` would allow every destination)."""
    peers = dns_egress_peers(context, dns)
    if not peers:
        return None
    rule = context.draft(workload).rule(
        "egress", "dns", peers, use_names=False,
        reason="cluster DNS (UDP and TCP: DNS falls back to TCP for large answers)",
    )
    rule.ports.update(dns.port_specs())
    return rule


def plan_egress_edge(context: SynthesisContext, edge: GraphEdge, workload: WorkloadRef,
                     dns: ClusterDns) -> NamedEdge | None:
    """Decide one edge out of `workload`, a policy target (the edge's source). An edge
    reached through a DNS name is returned undecided: the FQDN planner decides it."""
    draft = context.draft(workload)
    policy = context.policy_id(workload)
    destination = edge.destination
    evidence = f"{workload} -> {destination.label()} {edge.protocol} {edge.port}"

    if is_dns_edge(edge):
        server = workload_of(destination)
        if server is not None and not context.selectable(server):
            context.deny_unselectable(edge, Direction.EGRESS, server, policy)
            return None
        rule = ensure_dns_rule(context, workload, dns)
        if rule is None:
            context.deny_unselectable(edge, Direction.EGRESS, server or dns.workloads[0], policy)
            return None
        rule.observe(destination.label(), PortSpec(edge.protocol, edge.port), edge)
        context.decide(edge, Direction.EGRESS, True, policy, "cluster DNS")
        return None

    if isinstance(destination, WorkloadPeer) and context.known(destination.workload):
        if not context.selectable(destination.workload):
            context.deny_unselectable(edge, Direction.EGRESS, destination.workload, policy)
            return None
        draft.rule(
            "egress", f"pod:{destination.workload}",
            [context.pod_peer(destination.workload, workload.namespace)],
        ).observe(destination.label(), PortSpec(edge.protocol, edge.port, edge.port_name), edge)
        context.decide(edge, Direction.EGRESS, True, policy, "observed destination")
        return None

    if isinstance(destination, ExternalPeer) and destination.fqdn:
        return NamedEdge(edge, workload, destination, destination.fqdn)

    if not isinstance(destination, UNRESOLVED) and destination.ip is not None:
        draft.rule(
            "egress", f"ip:{destination.ip}", [ip_peer(destination.ip)], use_names=False,
        ).observe(destination.label(), PortSpec(edge.protocol, edge.port), edge)
        if isinstance(destination, WorkloadPeer):
            context.report(
                Severity.WARNING, "ipblock-pod-ip", str(workload),
                f"a pod of {destination.workload} that the inventory doesn't "
                f"know is allowed by its pod IP {destination.ip} as an ipBlock: "
                "CNI-dependent (Cilium never "
                "matches pod IPs with ipBlock), and the address is gone when the pod "
                "restarts; refresh the inventory so a label selector can be used", evidence,
            )
        elif not isinstance(destination, ExternalPeer):
            context.report(
                Severity.INFO, "egress-node-destination", str(workload),
                "a node address (host-network pod, API server, kubelet) is allowed by its "
                "address only", evidence,
            )
        context.decide(edge, Direction.EGRESS, True, policy, "address reached by IP")
        return None

    context.report(
        Severity.WARNING, "egress-unresolved-destination", str(workload),
        f"a destination that no inventory object explains ({destination.kind}"
        f"{': ' + destination.note if destination.note else ''}) is not allowed", evidence,
    )
    context.decide(edge, Direction.EGRESS, False, policy, f"unresolved ({destination.kind})")
    return None
