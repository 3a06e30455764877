"""A staged rollout of a proposal: which namespace to enforce first, and what each stage
holds. Pure: `reports/rollout_report.py` writes the plan and its files.

A stage is one namespace. The order puts the least risky first, so that a mistake hurts
little and teaches early: namespaces with no unresolved finding (critical or warning)
first, then those with fewer external dependencies (the proposal's weakest part: FQDNs
and addresses that move), then fewer inbound peers (who breaks when the ingress side is
wrong). `kube-system` (and the other system namespaces) and the namespaces of ingress
controllers go last whatever their score: a mistake there takes the whole cluster, or
all of its incoming traffic, down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from discover.enrichment.peers import ExternalPeer, GraphEdge, workload_of
from discover.inventory.facts import SYSTEM_NAMESPACES, api_watcher_reason
from discover.inventory.model import Inventory
from discover.synthesis.proposal import Finding, PolicyDocument, Proposal, Severity, Window

OPEN_SEVERITIES = (Severity.CRITICAL, Severity.WARNING)
LAST_SYSTEM = "a system namespace: a mistake here can stop the whole cluster"
LAST_INGRESS = "runs an ingress controller ({what}): a mistake cuts all incoming traffic"


@dataclass(frozen=True, slots=True)
class Stage:
    number: int  # 1-based
    namespace: str
    documents: tuple[PolicyDocument, ...]
    open_findings: tuple[Finding, ...]  # critical and warning findings about it
    external: tuple[str, ...]  # external destinations of its workloads (FQDN or address)
    inbound: tuple[str, ...]  # peers outside the namespace that reach it
    last: str = ""  # why it is held to the end ("" when ordered by its score)

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.documents)


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    stages: tuple[Stage, ...]
    cni: tuple[str, ...]  # detected CNIs (the dry-run form depends on them)
    window: Window


def plan_rollout(proposal: Proposal, edges: Sequence[GraphEdge],
                 inventory: Inventory, system_namespaces: Sequence[str] = ()) -> RolloutPlan:
    documents: dict[str, list[PolicyDocument]] = defaultdict(list)
    for document in proposal.documents:
        documents[document.namespace].append(document)
    external: dict[str, set[str]] = defaultdict(set)
    inbound: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        source, destination = workload_of(edge.source), workload_of(edge.destination)
        if source is not None and isinstance(edge.destination, ExternalPeer):
            peer = edge.destination
            external[source.namespace].add(peer.fqdn or str(peer.ip))
        if destination is not None and (source is None
                                        or source.namespace != destination.namespace):
            inbound[destination.namespace].add(edge.source.label())
    held = _held_to_the_end(inventory, (*SYSTEM_NAMESPACES, *system_namespaces))
    ordered = sorted(
        documents,
        key=lambda ns: (bool(held.get(ns)), len(_open(proposal.findings, ns)) > 0,
                        len(external[ns]), len(inbound[ns]), ns))
    stages = tuple(
        Stage(number, ns, tuple(documents[ns]), _open(proposal.findings, ns),
              tuple(sorted(external[ns])), tuple(sorted(inbound[ns])), held.get(ns, ""))
        for number, ns in enumerate(ordered, start=1))
    return RolloutPlan(stages, proposal.cni, proposal.window)


def _open(findings: Sequence[Finding], namespace: str) -> tuple[Finding, ...]:
    """Findings a reviewer still has to settle for `namespace`: its workloads, its
    policies, the namespace itself, or an edge that starts or ends in it."""
    prefixes = (f"{namespace}/", f"namespace/{namespace}", f"networkpolicy/{namespace}/")
    found = []
    for finding in findings:
        if finding.severity not in OPEN_SEVERITIES:
            continue
        ends = [part.strip() for part in finding.subject.split(" -> ")]
        if any(end.startswith(prefixes) or end == f"namespace/{namespace}" for end in ends):
            found.append(finding)
    return tuple(found)


def _held_to_the_end(inventory: Inventory, system: Sequence[str]) -> dict[str, str]:
    held = {ns: LAST_SYSTEM for ns in system}
    for pod in inventory.pods:
        reason = api_watcher_reason(pod)
        if reason is not None and "ingress" in reason and pod.namespace not in held:
            held[pod.namespace] = LAST_INGRESS.format(what=reason)
    return held
