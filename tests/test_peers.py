"""The peer types: each one's label (the text flows.csv, the graph and findings show) and
`kind` word, and which carry a workload."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from discover.enrichment.peers import (
    ClusterUnknownPeer,
    EarlierPodPeer,
    ExternalPeer,
    LoadBalancerPeer,
    NodePeer,
    Peer,
    WorkloadPeer,
    workload_of,
)
from discover.inventory.model import WorkloadRef

WEB = WorkloadRef("shop", "Deployment", "web")
EXPORTER = WorkloadRef("monitoring", "DaemonSet", "node-exporter")
IP = ip_address("10.0.0.1")


@pytest.mark.parametrize(("peer", "label", "kind", "workload"), [
    (WorkloadPeer(WEB, "web-1", ip_address("10.244.1.10")), "shop/deployment/web", "workload",
     WEB),
    (NodePeer(IP, "node-1"), "node/node-1", "node", None),
    (NodePeer(IP), "10.0.0.1", "node", None),
    (NodePeer(IP, "node-1", EXPORTER, "node-exporter-x"), "monitoring/daemonset/node-exporter",
     "node", EXPORTER),
    (LoadBalancerPeer(ip_address("198.51.100.7")), "198.51.100.7", "load-balancer", None),
    (ClusterUnknownPeer(ip_address("10.96.99.1")), "10.96.99.1", "cluster-unknown", None),
    (EarlierPodPeer(ip_address("10.244.1.99")), "10.244.1.99", "earlier-pod", None),
    (ExternalPeer(ip_address("203.0.113.10"), "api.stripe.com"),
     "api.stripe.com (203.0.113.10)", "external", None),
    (ExternalPeer(ip_address("2001:db8::7")), "2001:db8::7", "external", None),
])
def test_label_kind_and_workload(peer: Peer, label: str, kind: str,
                                 workload: WorkloadRef | None) -> None:
    assert (peer.label(), peer.kind, workload_of(peer)) == (label, kind, workload)


def test_peers_of_different_types_are_different_graph_nodes() -> None:
    # same address, one a node and one outside: never merged into one edge end
    peers: list[Peer] = [NodePeer(IP), ExternalPeer(IP)]
    assert peers[0] != peers[1]
    assert len({NodePeer(IP), ExternalPeer(IP), ClusterUnknownPeer(IP)}) == 3
