"""Cluster DNS: who it is, the egress rule every resolving workload needs, and the DNS
pods' own ingress (port 53 from pods, never from outside)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

from discover.enrichment.peers import GraphEdge, WorkloadPeer
from discover.flows.events import Protocol
from discover.inventory.facts import DNS_POD_LABELS, NODELOCAL_DNS, facts_for
from discover.inventory.model import Inventory, WorkloadRef
from discover.synthesis.context import SynthesisContext, ip_peer, namespace_selector
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import Severity

DNS_PORT = 53
GUESSED_DNS_LABEL = ("k8s-app", "kube-dns")  # the DNS rule's peer when no DNS pod is known


@dataclass(frozen=True, slots=True)
class ClusterDns:
    workloads: tuple[WorkloadRef, ...]
    ports: tuple[int, ...]  # the pod ports DNS is served on (53 unless seen otherwise)
    node_local: bool  # NodeLocal DNSCache was used

    def port_specs(self) -> set[PortSpec]:
        return {PortSpec(protocol, port) for port in self.ports
                for protocol in (Protocol.TCP, Protocol.UDP)}


def is_dns_edge(edge: GraphEdge) -> bool:
    """An edge that is a name lookup: to the cluster DNS on its port, or to NodeLocal DNS."""
    destination = edge.destination
    if destination.ip == NODELOCAL_DNS and edge.port == DNS_PORT:
        return True
    return destination.is_cluster_dns and edge.protocol in ("UDP", "TCP") and (
        edge.port == DNS_PORT or (destination.via_service is not None
                                  and destination.via_service.port == DNS_PORT)
    )


def find_cluster_dns(edges: Sequence[GraphEdge], inventory: Inventory) -> ClusterDns:
    facts = facts_for(inventory)
    # A host-network DNS pod (NodeLocal DNSCache as usually deployed) answers on its node's
    # address, which no podSelector names: clients reach it by the NodeLocal ipBlock.
    workloads = {w for w in facts.dns_workloads if not facts.host_network_only(w)}
    ports: set[int] = set()
    node_local = False
    for edge in edges:
        if not is_dns_edge(edge):
            continue
        if edge.destination.ip == NODELOCAL_DNS:
            node_local = True
        elif isinstance(edge.destination, WorkloadPeer):
            workloads.add(edge.destination.workload)
            ports.add(edge.port)
    for service in facts.dns_services:
        for port in service.ports:
            if port.port == DNS_PORT and isinstance(port.target_port, int):
                ports.add(port.target_port)
    return ClusterDns(tuple(sorted(workloads)), tuple(sorted(ports or {DNS_PORT})), node_local)


def dns_egress_peers(context: SynthesisContext, dns: ClusterDns) -> list[dict[str, Any]]:
    """The peers of the DNS egress rule: the DNS pods in their namespace (always with a
    namespaceSelector, since they live elsewhere), plus NodeLocal DNSCache when used."""
    peers: list[dict[str, Any]] = []
    for workload in dns.workloads:
        if not context.selectable(workload):
            # a DNS selector that also matches other pods would open port 53 to them
            context.report_unselectable(workload)
            continue
        selector = context.selectors[workload].match_labels()
        peers.append(
            {
                "namespaceSelector": namespace_selector(workload.namespace),
                "podSelector": {"matchLabels": selector} if selector else {},
            }
        )
        context.check_namespace_label(workload.namespace)
    if not dns.workloads:
        # the usual default; a guess nothing in the inventory confirms, so say so
        peers.append(
            {
                "namespaceSelector": namespace_selector("kube-system"),
                "podSelector": {"matchLabels": dict([GUESSED_DNS_LABEL])},
            }
        )
        _report_guessed_dns(context)
    if dns.node_local:
        peers.append(ip_peer(ip_network(f"{NODELOCAL_DNS}/32")))
    return peers


def _report_guessed_dns(context: SynthesisContext) -> None:
    key, value = GUESSED_DNS_LABEL
    context.report(
        Severity.WARNING, "dns-pods-unknown", "cluster/dns",
        "the inventory has no cluster DNS pods (none in kube-system labelled "
        + " or ".join(f"{k}={v}" for k, v in DNS_POD_LABELS)
        + " or running a coredns/kube-dns image, and no lookup reached one): the DNS egress "
        f"rule's selector {key}={value} in namespace kube-system is a guess (the common "
        "default); check your DNS pods' namespace and labels (kubectl get pods -A "
        f"-l {key}={value}; kubectl -n kube-system get service kube-dns -o wide) and change "
        "the rule to match them, or every workload that resolves names loses DNS",
    )


def dns_ingress_peers() -> list[dict[str, Any]]:
    """Every pod of every namespace; an empty namespaceSelector matches no external IP."""
    return [{"namespaceSelector": {}}]
