"""Findings from what Hubble inputs say beside connections (`HubbleFacts`).

- Blocked flows (verdict DROPPED or ERROR) are attempts that never got through: the
  proposal never allows them because of these flows (they are not in the flow table), and
  each blocked edge is reported with the datapath's reason and the denying policies, so a
  reviewer can tell a policy doing its job from a dependency that is broken today.
- AUDIT flows went through only because a policy is in audit mode: they are allowed like
  any traffic that happened, and said so.
- `destination_service`: Cilium balances at the socket, so flows show the backend's
  address; the Service the client asked for is kept as evidence.
- `lost_events`: flows Hubble never delivered make the proposal incomplete.
"""

from __future__ import annotations

from collections import defaultdict

from discover.flows.flowtable import iso_time
from discover.flows.hubble_facts import BlockedEdge, HubbleFacts
from discover.synthesis.proposal import Finding, Severity

INPUT_INCOMPLETE = "input-incomplete"  # the rule id analysis.py gives lost input too
SHOWN = 10  # endpoints listed in one finding before "and N more"


def hubble_findings(facts: HubbleFacts) -> tuple[Finding, ...]:
    findings = [_blocked(edge) for edge in facts.blocked]
    if facts.audited:
        findings.append(Finding(
            severity=Severity.WARNING,
            rule="hubble-audit",
            subject="hubble",
            message=(
                f"{facts.audited:,} flows have verdict AUDIT: a policy in audit mode would "
                "have dropped them, and they went through; they are treated as traffic that "
                "happened and allowed. Check that they are wanted before that policy enforces"
            ),
        ))
    findings += _services(facts)
    if facts.flows_lost:
        findings.append(Finding(
            severity=Severity.CRITICAL,
            rule=INPUT_INCOMPLETE,
            subject=", ".join(facts.files),
            message=(
                f"the proposal is incomplete: Hubble reported {facts.flows_lost:,} flows lost "
                "(lost_events: its ring buffer or event queue overflowed) in these inputs; "
                "connections among them get no rule and the policies would block them. "
                "Before applying: export flows with Hubble's flow exporter (or raise the "
                "ring buffer, hubble-event-buffer-capacity) and run the learning window again"
            ),
            evidence=f"{facts.flows_lost:,} flows lost",
        ))
    return tuple(findings)


def _blocked(edge: BlockedEdge) -> Finding:
    client = edge.client or str(edge.client_ip)
    server = edge.server or str(edge.server_ip)
    why = edge.reason or "no reason given"
    policies = f"; denied by {', '.join(edge.policies)}" if edge.policies else ""
    return Finding(
        severity=Severity.WARNING,
        rule="hubble-blocked",
        subject=client,
        message=(
            f"{edge.flows:,} flows from {client} ({edge.client_ip}) to {server} "
            f"({edge.server_ip}) {edge.protocol.value}/{edge.port} were {edge.verdict} "
            f"({why}{policies}): a blocked attempt, not allowed by the proposal. If it is a "
            "dependency, it is broken today"
        ),
        evidence=f"{edge.verdict} {iso_time(edge.first)}..{iso_time(edge.last)}",
    )


def _services(facts: HubbleFacts) -> list[Finding]:
    backends: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in facts.services:
        backends[(s.namespace, s.name)].append(f"{s.ip} {s.protocol.value}/{s.port}")
    findings = []
    for (namespace, name), ends in sorted(backends.items()):
        shown = ", ".join(ends[:SHOWN]) + (f" and {len(ends) - SHOWN} more"
                                           if len(ends) > SHOWN else "")
        findings.append(Finding(
            severity=Severity.INFO,
            rule="hubble-service",
            subject=f"{namespace}/{name}",
            message=(
                f"flows to Service {namespace}/{name} reached its backends at {shown} "
                "(Cilium balances at the socket, so flows show backend addresses): rules "
                "allow those backends' pods on those ports"
            ),
        ))
    return findings
