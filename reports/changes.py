"""What the proposal newly denies: workload pairs that may connect today (the cluster's
existing policies, or none) and may not, or on fewer ports, once the proposal is applied.

Computed with the evaluator's workload matrix twice (before: existing policies; after:
existing plus proposed, as they would be in the cluster together). The matrix is
quadratic in workloads, so past `MAX_WORKLOADS` it is skipped and the report says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from discover.inventory.model import Inventory, WorkloadRef
from discover.netpol.evaluate import PolicyEvaluator
from discover.netpol.matrix import workload_matrix
from discover.netpol.ports import ConnectionSet
from discover.netpol.selectors import InvalidPolicyError
from discover.synthesis.proposal import PolicyDocument, Proposal

MAX_WORKLOADS = 400
WORKLOAD_ANNOTATION = "netpol-discover.io/workload"
NAMES_SHOWN = 4


@dataclass(frozen=True, slots=True)
class PairChange:
    """Connections between `workload` and `peer` (either direction, see the owner) that
    the proposal takes away; `after` is what stays."""

    peer: WorkloadRef
    before: ConnectionSet
    after: ConnectionSet

    @property
    def lost_all(self) -> bool:
        return self.after.is_empty


@dataclass(frozen=True, slots=True)
class WorkloadChange:
    workload: WorkloadRef
    ingress: tuple[PairChange, ...]  # from peers, towards this workload
    egress: tuple[PairChange, ...]  # from this workload, towards peers

    def lines(self) -> list[str]:
        return [
            line for line in (_side_line("ingress", "from", self.ingress),
                              _side_line("egress", "to", self.egress)) if line
        ]


@dataclass(frozen=True, slots=True)
class Changes:
    by_workload: Mapping[WorkloadRef, WorkloadChange]
    pairs_open_before: int  # ordered workload pairs with any connection allowed
    pairs_open_after: int
    skipped: str | None = None  # why nothing was computed

    def for_namespace(self, namespace: str) -> list[WorkloadChange]:
        return [c for ref, c in sorted(self.by_workload.items()) if ref.namespace == namespace]


def _names(changes: Sequence[PairChange]) -> str:
    names = [str(c.peer) for c in changes[:NAMES_SHOWN]]
    if len(changes) > NAMES_SHOWN:
        names.append(f"+{len(changes) - NAMES_SHOWN} more")
    return ", ".join(names)


def _side_line(word: str, preposition: str, changes: Sequence[PairChange]) -> str:
    if not changes:
        return ""
    lost = [c for c in changes if c.lost_all]
    limited = [c for c in changes if not c.lost_all]
    parts = []
    if lost:
        parts.append(f"denies all {word} {preposition} {len(lost)} workload(s) that may "
                     f"connect today ({_names(lost)})")
    if limited:
        kept = "; ".join(f"{c.peer}: {c.after}" for c in limited[:NAMES_SHOWN])
        more = f"; +{len(limited) - NAMES_SHOWN} more" if len(limited) > NAMES_SHOWN else ""
        parts.append(f"limits {word} {preposition} {len(limited)} workload(s) to the ports "
                     f"seen ({kept}{more})")
    return "; ".join(parts)


def compute_changes(inventory: Inventory, proposal: Proposal,
                    max_workloads: int = MAX_WORKLOADS) -> Changes:
    workloads = {pod.workload for pod in inventory.pods if not pod.host_network}
    if len(workloads) > max_workloads:
        return Changes({}, 0, 0, skipped=f"{len(workloads)} workloads: the pair matrix is "
                       f"computed up to {max_workloads}")
    existing = list(inventory.network_policies)
    note: str | None = None
    try:
        before = workload_matrix(PolicyEvaluator(existing), inventory)
    except InvalidPolicyError as error:
        # An invalid existing policy is a finding of the audit; compare against none.
        before = workload_matrix(PolicyEvaluator([]), inventory)
        note = f"existing policies unreadable ({error}); compared with no policies"
    after = workload_matrix(PolicyEvaluator([*existing, *proposal.policies]), inventory)
    ingress: dict[WorkloadRef, list[PairChange]] = defaultdict(list)
    egress: dict[WorkloadRef, list[PairChange]] = defaultdict(list)
    for old, new in zip(before, after, strict=True):
        if old.allowed.is_empty or old.allowed == new.allowed:
            continue
        ingress[old.destination].append(PairChange(old.source, old.allowed, new.allowed))
        egress[old.source].append(PairChange(old.destination, old.allowed, new.allowed))
    by_workload = {
        ref: WorkloadChange(ref, tuple(ingress.get(ref, ())), tuple(egress.get(ref, ())))
        for ref in sorted(set(ingress) | set(egress))
    }
    return Changes(
        by_workload,
        pairs_open_before=sum(1 for cell in before if not cell.allowed.is_empty),
        pairs_open_after=sum(1 for cell in after if not cell.allowed.is_empty),
        skipped=note,
    )


def documents_by_workload(proposal: Proposal) -> dict[str, list[PolicyDocument]]:
    """Proposed documents keyed by the workload label they are for ("" for namespace-wide
    ones such as the default deny)."""
    out: dict[str, list[PolicyDocument]] = defaultdict(list)
    for document in proposal.documents:
        annotations = document.manifest.get("metadata", {}).get("annotations", {}) or {}
        out[str(annotations.get(WORKLOAD_ANNOTATION, ""))].append(document)
    return out


def external_peers(manifest: Mapping[str, Any], direction: str) -> list[str]:
    """The ipBlock peers of a policy's rules in one direction ("ingress"/"egress"), with
    their ports: what stays reachable outside the cluster."""
    out = []
    key = "from" if direction == "ingress" else "to"
    for rule in manifest.get("spec", {}).get(direction, []) or []:
        ports = ", ".join(
            f"{p.get('protocol', 'TCP')} {p['port']}" if "port" in p else p.get("protocol", "TCP")
            for p in rule.get("ports", []) or []
        ) or "any port"
        for peer in rule.get(key, []) or []:
            block = peer.get("ipBlock")
            if block:
                excepted = block.get("except") or []
                text = block["cidr"] + (f" except {len(excepted)} range(s)" if excepted else "")
                out.append(f"{text} on {ports}")
    return sorted(set(out))
