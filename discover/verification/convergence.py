"""Has the learning window seen enough? Per workload, when its last new edge appeared and
how its count of distinct edges grew.

A workload is *converged* when none of its edges appeared first in the last part of the
window (LATE_FRACTION of it, by time): it kept talking, but only to peers it had already
shown. One that still gains edges late may have more to show (a weekly job, a monthly
report, a failover path): the window should be extended before its policy is enforced.
A CronJob the inventory knows that took part in no edge did not run in the window, or ran
without traffic: its peers are unknown either way.

Pure: the graph's edges and the inventory in, records out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from discover.enrichment.peers import GraphEdge, workload_of
from discover.inventory.model import Inventory, WorkloadRef
from discover.synthesis.proposal import Finding, Severity, Window

LATE_FRACTION = 0.2  # the last 20% of the window
BUCKETS = 10  # points of the growth curve
NOT_CONVERGED = "learning-not-converged"
CRONJOB_UNSEEN = "learning-cronjob-not-seen"


@dataclass(frozen=True, slots=True)
class WorkloadLearning:
    workload: WorkloadRef
    edges: int  # distinct edges it took part in (as source or destination)
    last_new_edge: datetime  # when the last of them was first seen
    growth: tuple[int, ...]  # distinct edges seen by the end of each of BUCKETS parts
    converged: bool


@dataclass(frozen=True, slots=True)
class Convergence:
    workloads: tuple[WorkloadLearning, ...]  # by workload
    silent_cronjobs: tuple[WorkloadRef, ...]
    window: Window
    late_from: datetime | None  # where the last part of the window begins

    @property
    def converged(self) -> int:
        return sum(1 for w in self.workloads if w.converged)

    def summary(self) -> str:
        text = (f"{self.converged} of {len(self.workloads)} workloads converged (no new "
                f"edge in the last {LATE_FRACTION:.0%} of the window)")
        if self.silent_cronjobs:
            text += f"; {len(self.silent_cronjobs)} CronJob(s) not seen"
        return text

    def findings(self) -> list[Finding]:
        found = [
            Finding(Severity.WARNING, NOT_CONVERGED, str(w.workload),
                    f"still gaining new edges at the end of the window (the last at "
                    f"{w.last_new_edge:%Y-%m-%dT%H:%M:%SZ}, {w.edges} in all): extend the "
                    "learning window before enforcing its policy",
                    "growth " + " ".join(str(n) for n in w.growth))
            for w in self.workloads if not w.converged]
        found += [
            Finding(Severity.WARNING, CRONJOB_UNSEEN, str(ref),
                    "a CronJob with no traffic in the window (its schedule did not fire, or "
                    "its run sent nothing): its peers are unknown and its policy would block "
                    "them; extend the window over a scheduled run")
            for ref in self.silent_cronjobs]
        return found


def assess_convergence(edges: Sequence[GraphEdge], inventory: Inventory,
                       window: Window) -> Convergence:
    start, end = window.start, window.end
    if start is None or end is None or end <= start:
        return Convergence((), _silent_cronjobs(edges, inventory), window, None)
    span = end - start
    late_from = start + span * (1 - LATE_FRACTION)
    firsts: dict[WorkloadRef, list[datetime]] = defaultdict(list)
    for edge in edges:
        for ref in {workload_of(edge.source), workload_of(edge.destination)}:
            if ref is not None:
                firsts[ref].append(edge.first_seen)
    learned = []
    for ref in sorted(firsts):
        times = sorted(firsts[ref])
        learned.append(WorkloadLearning(
            workload=ref, edges=len(times), last_new_edge=times[-1],
            growth=_growth(times, start, span), converged=times[-1] < late_from))
    return Convergence(tuple(learned), _silent_cronjobs(edges, inventory), window, late_from)


def _growth(times: Sequence[datetime], start: datetime, span: timedelta) -> tuple[int, ...]:
    bounds = [start + span * (i + 1) / BUCKETS for i in range(BUCKETS)]
    return tuple(sum(1 for t in times if t <= bound) for bound in bounds[:-1]) + (len(times),)


def _silent_cronjobs(edges: Sequence[GraphEdge], inventory: Inventory) -> tuple[WorkloadRef, ...]:
    seen = {ref for edge in edges
            for ref in (workload_of(edge.source), workload_of(edge.destination))}
    known = {t.ref for t in inventory.workloads if t.ref.kind == "CronJob"}
    known |= {p.workload for p in inventory.pods if p.workload.kind == "CronJob"}
    return tuple(sorted(ref for ref in known if ref not in seen))
