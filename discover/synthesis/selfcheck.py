"""The proposal proves itself: every edge it meant to allow must pass the NetworkPolicy
evaluator (`discover/netpol/`). A proposal that blocks an observed flow it claims to allow is a
bug, and fails loudly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from discover.enrichment.peers import GraphEdge, Peer, WorkloadPeer
from discover.errors import SynthesisError
from discover.inventory.model import Inventory, Pod
from discover.netpol.evaluate import Endpoint, IpEndpoint, PodEndpoint, PolicyEvaluator
from discover.synthesis.context import NAMESPACE_NAME_LABEL
from discover.synthesis.proposal import Proposal


class ProposalBlocksFlowError(SynthesisError):
    """The proposal denies observed flows it meant to allow; `flows` lists them."""

    def __init__(self, flows: list[str]) -> None:
        self.flows = flows
        shown = "; ".join(flows[:5]) + (f"; and {len(flows) - 5} more" if len(flows) > 5 else "")
        super().__init__(f"the proposal blocks {len(flows)} observed flow(s) it meant to "
                         f"allow (a bug, please report it): {shown}")


class EndpointFactory:
    """Observed peers as evaluator endpoints, with the inventory's labels."""

    def __init__(self, inventory: Inventory) -> None:
        self._pods: dict[object, list[Pod]] = defaultdict(list)
        for pod in sorted(inventory.pods, key=lambda p: p.name):
            if not pod.host_network:
                self._pods[pod.workload].append(pod)
        self._namespaces = {ns.name: ns.labels for ns in inventory.namespaces}

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        # The API server sets the name label since 1.21; a namespace lacking it is
        # reported, and the proposal is checked as it works once the label is there.
        labels = dict(self._namespaces.get(namespace, {}))
        labels[NAMESPACE_NAME_LABEL] = namespace
        return labels

    def endpoint(self, peer: Peer) -> Endpoint | None:
        if isinstance(peer, WorkloadPeer):
            pods = self._pods.get(peer.workload)
            if not pods:
                return None
            pod = pods[0]
            return PodEndpoint(
                namespace=pod.namespace, labels=pod.labels,
                namespace_labels=self.namespace_labels(pod.namespace),
                ip=pod.ips[0] if pod.ips else None, ports=pod.ports, name=pod.name,
            )
        return IpEndpoint(peer.ip) if peer.ip is not None else None


def check_proposal(proposal: Proposal, inventory: Inventory) -> None:
    decided: dict[int, list[bool | None]] = defaultdict(list)
    edges: dict[int, GraphEdge] = {}
    for decision in proposal.decisions:
        decided[id(decision.edge)].append(decision.allowed)
        edges[id(decision.edge)] = decision.edge
    evaluator = PolicyEvaluator(proposal.policies)
    factory = EndpointFactory(inventory)
    blocked = []
    for key, outcomes in decided.items():
        if True not in outcomes or False in outcomes or None in outcomes:
            continue
        edge = edges[key]
        src, dst = factory.endpoint(edge.source), factory.endpoint(edge.destination)
        if src is None or dst is None:
            continue
        verdict = evaluator.check(src, dst, edge.protocol, edge.port)
        if not verdict.allowed:
            blocked.append(f"{edge.source.label()} -> {edge.destination.label()} "
                           f"{edge.protocol} {edge.port}: {verdict.reason}")
    if blocked:
        raise ProposalBlocksFlowError(sorted(blocked))
