"""Attempts are not dependencies: which observed edges synthesis may allow (issue 13).

An edge is allowed when its exchange completed (or its outcome is unknown: evidence from
before outcomes were recorded, allowed as it was then). A refused or unanswered edge is an
attempt: denied, with an `EdgeDecision` saying why, and reported. One-way UDP is normal
for some protocols (statsd, syslog, NetFlow, SNMP traps), so a one-way edge is allowed
when the destination declares that UDP port or the datagrams are sustained: spread over
at least `SUSTAINED_SPAN`, or over more than `SUSTAINED_SHARE` of the window (a short
capture). Anything less is a brief burst to an undeclared port, an attempt.

The findings go one per source: a scan of many ports or hosts is one finding, whose
evidence lists what was tried. `SynthesisOptions.allow_attempts` (`analyze
--allow-attempts`) turns all this off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from discover.enrichment.peers import GraphEdge, WorkloadPeer
from discover.flows.events import Outcome, Protocol
from discover.synthesis.context import SynthesisContext
from discover.synthesis.proposal import Direction, Severity, Window

SUSTAINED_SPAN = timedelta(minutes=5)
SUSTAINED_SHARE = 0.5
RULE = "attempt-not-allowed"
SHOWN = 12  # attempts listed in one finding's evidence

_WHY = {
    Outcome.REFUSED: "refused (answered by a TCP RST, an SCTP ABORT or an ICMP unreachable)",
    Outcome.UNANSWERED: "unanswered (nobody answered its set-ups)",
    Outcome.ONE_WAY: "a brief one-way UDP burst to a port the destination does not declare",
}


def attempt_reason(context: SynthesisContext, edge: GraphEdge, window: Window) -> str | None:
    """Why `edge` is an attempt and not a dependency; None when it may be allowed."""
    outcome = edge.outcome
    if outcome in (Outcome.COMPLETED, Outcome.UNKNOWN):
        return None
    if outcome is Outcome.ONE_WAY and (_declared_udp(context, edge) or sustained(edge, window)):
        return None
    return f"attempted, not allowed: {_WHY[outcome]}"


def sustained(edge: GraphEdge, window: Window) -> bool:
    """One-way datagrams spread over SUSTAINED_SPAN, or over more than SUSTAINED_SHARE of
    a known window."""
    span = edge.last_seen - edge.first_seen
    if span >= SUSTAINED_SPAN:
        return True
    if window.start is None or window.end is None or window.end <= window.start:
        return False
    return span > (window.end - window.start) * SUSTAINED_SHARE


def _declared_udp(context: SynthesisContext, edge: GraphEdge) -> bool:
    destination = edge.destination
    if not isinstance(destination, WorkloadPeer):
        return False
    return any(p.port == edge.port and p.protocol == Protocol.UDP
               for p in context.declared_ports(destination.workload))


def split_attempts(
    context: SynthesisContext, edges: Iterable[GraphEdge], window: Window
) -> tuple[list[GraphEdge], list[tuple[GraphEdge, str]]]:
    """(edges synthesis may allow, attempts with their reason), in the order given."""
    kept: list[GraphEdge] = []
    attempts: list[tuple[GraphEdge, str]] = []
    for edge in edges:
        reason = None if context.options.allow_attempts else attempt_reason(context, edge, window)
        if reason is None:
            kept.append(edge)
        else:
            attempts.append((edge, reason))
    return kept, attempts


def deny_attempts(context: SynthesisContext, attempts: list[tuple[GraphEdge, str]]) -> None:
    """A denied decision for each governed side of each attempt, and a finding per source."""
    by_source: dict[str, list[tuple[GraphEdge, str]]] = defaultdict(list)
    for edge, reason in attempts:
        destination, source = edge.destination, edge.source
        if isinstance(destination, WorkloadPeer) and context.is_policy_target(
                destination.workload):
            context.decide(edge, Direction.INGRESS, False, None, reason)
        if isinstance(source, WorkloadPeer) and context.is_policy_target(source.workload):
            context.decide(edge, Direction.EGRESS, False, None, reason)
        by_source[source.label()].append((edge, reason))
    for label, tried in sorted(by_source.items()):
        destinations = {e.destination.label() for e, _ in tried}
        kinds = sorted({e.outcome.value for e, _ in tried})
        listed = [f"{e.destination.label()} {e.protocol}/{e.port} {e.outcome.value}"
                  for e, _ in tried[:SHOWN]]
        more = f"; and {len(tried) - SHOWN} more" if len(tried) > SHOWN else ""
        context.report(
            Severity.WARNING, RULE, label,
            f"attempted, not allowed: {len(tried)} edge(s) to {len(destinations)} "
            f"destination(s) never completed ({', '.join(kinds)}), so no rule allows them. "
            "A scan, a probe of closed ports or a blocked destination looks like this (so "
            "does a service that was down all window: if it is a real dependency, observe "
            "it again, or use --allow-attempts)",
            "; ".join(listed) + more,
        )
