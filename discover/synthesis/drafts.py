"""Mutable drafts the planners fill while walking the edges; frozen into manifests later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from discover.enrichment.peers import GraphEdge
from discover.inventory.model import WorkloadRef
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import format_time
from discover.synthesis.selectors import SelectorChoice


@dataclass(slots=True)
class EvidenceItem:
    """Observed traffic behind a rule, aggregated per peer label and port."""

    peer: str
    port: PortSpec
    connections: int
    first_seen: datetime
    last_seen: datetime

    def add(self, edge: GraphEdge) -> None:
        self.connections += edge.connections
        self.first_seen = min(self.first_seen, edge.first_seen)
        self.last_seen = max(self.last_seen, edge.last_seen)

    def compact(self) -> str:
        return (
            f"{self.peer} {self.port.protocol} {self.port.port} x{self.connections} conns "
            f"{format_time(self.first_seen)}..{format_time(self.last_seen)}"
        )


@dataclass(slots=True)
class RuleDraft:
    """One ingress or egress rule: `peers` (NetworkPolicyPeer dicts) x `ports`.

    `reason` says why a rule exists that no edge alone explains (DNS, load balancer ranges,
    Ingress controller); `use_names` False for ipBlock peers, where port names mean nothing.
    """

    peers: list[dict[str, Any]]
    ports: set[PortSpec] = field(default_factory=set)
    evidence: dict[tuple[str, PortSpec], EvidenceItem] = field(default_factory=dict)
    reason: str = ""
    use_names: bool = True

    def observe(self, peer_label: str, port: PortSpec, edge: GraphEdge) -> None:
        self.ports.add(port)
        key = (peer_label, port)
        item = self.evidence.get(key)
        if item is None:
            self.evidence[key] = EvidenceItem(
                peer_label, port, edge.connections, edge.first_seen, edge.last_seen
            )
        else:
            item.add(edge)


@dataclass(slots=True)
class PolicyDraft:
    workload: WorkloadRef
    selector: SelectorChoice
    ingress: dict[str, RuleDraft] = field(default_factory=dict)
    egress: dict[str, RuleDraft] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)  # e.g. fqdn-any-ip, fqdn-pin
    notes: list[str] = field(default_factory=list)  # extra header lines

    def rule(
        self,
        direction: str,
        key: str,
        peers: list[dict[str, Any]],
        *,
        reason: str = "",
        use_names: bool = True,
    ) -> RuleDraft:
        rules = self.ingress if direction == "ingress" else self.egress
        draft = rules.get(key)
        if draft is None:
            draft = RuleDraft(peers, reason=reason, use_names=use_names)
            rules[key] = draft
        return draft
