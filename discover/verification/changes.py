"""What the proposal newly denies: workload pairs that may connect today (the cluster's
existing policies, or none) and may not, or on fewer ports, once the proposal is applied
(existing plus proposed policies, as they would be in the cluster together).

Computed once by the analysis for both reports, on classes of workloads that the
policies can't tell apart (`netpol.classes`), never pair by pair: the pairs that no rule
of either end matches are counted in bulk from the ends' isolation, and only the pairs a
rule matches are evaluated. Equal, pair for pair, to the evaluator's workload matrix
(tests/test_verification_changes.py proves it on random clusters).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

from discover.inventory.model import Inventory, WorkloadRef
from discover.netpol.classes import ClassPair, WorkloadClasses
from discover.netpol.evaluate import PolicyEvaluator
from discover.netpol.matrix import workload_endpoints
from discover.netpol.policy import EGRESS, INGRESS, Policy
from discover.netpol.ports import ConnectionSet
from discover.netpol.selectors import InvalidPolicyError
from discover.synthesis.proposal import Proposal

NAMES_SHOWN = 4  # peers named per line; the rest is a count


@dataclass(frozen=True, slots=True)
class KeptPeer:
    peer: WorkloadRef
    after: ConnectionSet  # what stays allowed


@dataclass(frozen=True, slots=True)
class SideChange:
    """One side of a workload (ingress: its sources; egress: its destinations): peers
    that may connect today and lose every connection (`lost`) or keep fewer ports
    (`limited`), with the first NAMES_SHOWN of each in workload order."""

    lost: int = 0
    limited: int = 0
    lost_shown: tuple[WorkloadRef, ...] = ()
    limited_shown: tuple[KeptPeer, ...] = ()

    def line(self, word: str, preposition: str) -> str:
        parts = []
        if self.lost:
            names = [str(peer) for peer in self.lost_shown]
            if self.lost > NAMES_SHOWN:
                names.append(f"+{self.lost - NAMES_SHOWN} more")
            parts.append(f"denies all {word} {preposition} {self.lost} workload(s) that may "
                         f"connect today ({', '.join(names)})")
        if self.limited:
            kept = "; ".join(f"{k.peer}: {k.after}" for k in self.limited_shown)
            more = f"; +{self.limited - NAMES_SHOWN} more" if self.limited > NAMES_SHOWN else ""
            parts.append(f"limits {word} {preposition} {self.limited} workload(s) to the "
                         f"ports seen ({kept}{more})")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class WorkloadChange:
    workload: WorkloadRef
    ingress: SideChange  # from peers, towards this workload
    egress: SideChange  # from this workload, towards peers

    def lines(self) -> list[str]:
        return [line for line in (self.ingress.line("ingress", "from"),
                                  self.egress.line("egress", "to")) if line]


@dataclass(frozen=True, slots=True)
class Changes:
    by_workload: Mapping[WorkloadRef, WorkloadChange]  # only workloads that lose something
    pairs_open_before: int  # ordered workload pairs with any connection allowed
    pairs_open_after: int
    note: str | None = None  # what the comparison could not take into account

    def for_namespace(self, namespace: str) -> list[WorkloadChange]:
        return [c for ref, c in sorted(self.by_workload.items()) if ref.namespace == namespace]


def compute_changes(inventory: Inventory, proposal: Proposal,
                    parsed: Sequence[Policy] | None = None) -> Changes:
    """`parsed`: the proposal's policies already read (the analysis has them for the
    self-check; reading thousands of them again costs seconds).

    Existing policies the evaluator can't read are a finding of the audit; then both
    sides are compared without them (before: no policies; after: the proposal alone)."""
    note: str | None = None
    try:
        existing = PolicyEvaluator(list(inventory.network_policies)).policies
    except InvalidPolicyError as error:
        existing = ()
        note = f"existing policies unreadable ({error}); compared with no policies"
    proposed = tuple(parsed) if parsed is not None else PolicyEvaluator(
        proposal.policies).policies
    view = _Comparison(WorkloadClasses(workload_endpoints(inventory), (*existing, *proposed)),
                       before=len(existing), after=len(existing) + len(proposed))
    by_workload: dict[WorkloadRef, WorkloadChange] = {}
    ingress = view.sides(INGRESS)
    egress = view.sides(EGRESS)
    for ref in sorted(view.classes.class_of):
        change = WorkloadChange(ref, ingress.get(ref, SideChange()), egress.get(ref, SideChange()))
        if change.ingress != SideChange() or change.egress != SideChange():
            by_workload[ref] = change
    return Changes(by_workload, view.open_pairs(view.before), view.open_pairs(view.after), note)


class _Comparison:
    """Before and after on one class partition. A pair's cell is the evaluator's answer
    (pairs a rule matches) or the default (all when neither end is isolated, else none)."""

    def __init__(self, classes: WorkloadClasses, before: int, after: int) -> None:
        self.classes = classes
        self.before = before
        self.after = after
        self.sizes = [len(members) for members in classes.members]
        self.cells: dict[ClassPair, tuple[ConnectionSet, ConnectionSet]] = {
            pair: (classes.connections(pair, rules, before),
                   classes.connections(pair, rules, after))
            for pair, rules in classes.exceptions().items()
        }

    def _pairs(self, pair: ClassPair) -> int:
        source, destination = pair
        if source == destination:
            return self.sizes[source] * (self.sizes[source] - 1)
        return self.sizes[source] * self.sizes[destination]

    def _open(self, number: int, direction: str, active: int) -> bool:
        return not self.classes.isolated(number, direction, active)

    def open_pairs(self, active: int) -> int:
        """Ordered pairs of distinct workloads with any connection allowed."""
        classes = range(len(self.sizes))
        sources = sum(self.sizes[c] for c in classes if self._open(c, EGRESS, active))
        destinations = sum(self.sizes[c] for c in classes if self._open(c, INGRESS, active))
        both = sum(self.sizes[c] for c in classes
                   if self._open(c, EGRESS, active) and self._open(c, INGRESS, active))
        total = sources * destinations - both
        index = 0 if active == self.before else 1
        for pair, cell in self.cells.items():
            if self._open(pair[0], EGRESS, active) and self._open(pair[1], INGRESS, active):
                total -= self._pairs(pair)  # counted above as open by default
            if not cell[index].is_empty:
                total += self._pairs(pair)
        return total

    def sides(self, direction: str) -> dict[WorkloadRef, SideChange]:
        """Per workload, its changed peers on one side: INGRESS (the workload is the
        destination, peers are sources) or EGRESS (the workload is the source)."""
        own_direction, peer_direction = direction, EGRESS if direction == INGRESS else INGRESS
        count = len(self.sizes)
        by_own: dict[int, list[tuple[int, ConnectionSet, ConnectionSet]]] = defaultdict(list)
        for (source, destination), (before, after) in self.cells.items():
            own, peer = (destination, source) if direction == INGRESS else (source, destination)
            by_own[own].append((peer, before, after))
        # Pairs outside the cells lose everything when open before and closed after:
        # the peer is open before, and the own end or the peer is isolated after.
        open_before = [self._open(c, peer_direction, self.before) for c in range(count)]
        closed_after = [open_before[c] and not self._open(c, peer_direction, self.after)
                        for c in range(count)]
        ordered = sorted(self.classes.class_of.items())
        bulks = {name: (flags, [(ref, c) for ref, c in ordered if flags[c]])
                 for name, flags in (("open", open_before), ("closed", closed_after))}
        out: dict[WorkloadRef, SideChange] = {}
        for own in range(count):
            if not self._open(own, own_direction, self.before):
                bulk = None  # isolated today: only the pairs a rule matches were open
            elif self._open(own, own_direction, self.after):
                bulk = bulks["closed"]  # still open itself: peers isolated by the proposal
            else:
                bulk = bulks["open"]  # isolated by the proposal: every peer open today
            cells = by_own.get(own, [])
            excluded = {peer for peer, _, _ in cells}
            lost = [peer for peer, before, after in cells
                    if not before.is_empty and before != after and after.is_empty]
            limited = [(peer, after) for peer, before, after in cells
                       if not before.is_empty and before != after and not after.is_empty]
            lost_count = sum(self.sizes[peer] for peer in lost)
            streams: list[Iterator[WorkloadRef]] = [self._first(peer) for peer in lost]
            self_lost = own in lost
            if bulk is not None:
                flags, members = bulk
                lost_count += len(members) - sum(
                    self.sizes[peer] for peer in excluded if flags[peer])
                streams.append(ref for ref, c in members if c not in excluded)
                self_lost = self_lost or (flags[own] and own not in excluded)
            lost_names = list(islice(heapq.merge(*streams), NAMES_SHOWN + 1))
            kept = list(islice(heapq.merge(
                *(self._kept(peer, after) for peer, after in limited), key=_peer_of),
                NAMES_SHOWN + 1))
            limited_count = sum(self.sizes[peer] for peer, _ in limited)
            self_limited = any(peer == own for peer, _ in limited)
            if not lost_count and not limited_count:
                continue
            for member in self.classes.members[own]:
                out[member] = SideChange(
                    lost_count - self_lost, limited_count - self_limited,
                    tuple(r for r in lost_names if r != member)[:NAMES_SHOWN],
                    tuple(KeptPeer(r, a) for r, a in kept if r != member)[:NAMES_SHOWN])
        return out

    def _first(self, number: int) -> Iterator[WorkloadRef]:
        return iter(self.classes.members[number][:NAMES_SHOWN + 1])

    def _kept(self, number: int, after: ConnectionSet) -> Iterator[tuple[WorkloadRef,
                                                                        ConnectionSet]]:
        return ((ref, after) for ref in self._first(number))


def _peer_of(item: tuple[WorkloadRef, ConnectionSet]) -> WorkloadRef:
    return item[0]
