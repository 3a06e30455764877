"""Only what completed is allowed (issue 13): refused and unanswered edges and brief one-way
UDP to an undeclared port are denied on purpose and reported, one finding per source;
`allow_attempts` keeps the old behaviour; outcome "unknown" is allowed as before."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import ip_address

import pytest

from discover.analysis import analyze
from discover.flows.events import DirectionEvidence, Outcome, Protocol
from discover.flows.flowtable import FlowRow
from discover.synthesis import SynthesisOptions
from discover.synthesis.attempts import RULE
from tests.factories import make_inventory, make_pod, shop_pods

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()
WEB, API, DB, UI = "10.244.1.10", "10.244.1.11", "10.244.1.12", "10.244.2.20"
STATSD = "10.244.1.13"  # declares UDP 8125
BLACKHOLE = "203.0.113.66"
SCAN_PORTS = (22, 23, 80, 443, 3306, 6379)


def row(src: str, dst: str, port: int, outcome: Outcome, protocol: Protocol = Protocol.TCP,
        first: float = T0, last: float | None = None) -> FlowRow:
    return FlowRow(ip_address(src), ip_address(dst), protocol, port, 1, 2, first,
                   first if last is None else last, DirectionEvidence.SYN, outcome)


FLOWS = (
    row(WEB, API, 9090, Outcome.COMPLETED),
    row(API, DB, 5432, Outcome.COMPLETED, last=T0 + 3600),
    *(row(UI, API, port, Outcome.REFUSED) for port in SCAN_PORTS),  # the scan: one finding
    row(API, DB, 5433, Outcome.REFUSED),  # a closed port: RST
    row(API, BLACKHOLE, 443, Outcome.UNANSWERED),  # SYNs a firewall drops
    row(WEB, DB, 9999, Outcome.REFUSED, Protocol.UDP),  # ICMP port unreachable
    row(WEB, DB, 7000, Outcome.ONE_WAY, Protocol.UDP, T0 + 5, T0 + 6),  # a brief burst
    row(WEB, STATSD, 8125, Outcome.ONE_WAY, Protocol.UDP, T0 + 5, T0 + 6),  # declared port
    row(API, "192.0.2.9", 514, Outcome.ONE_WAY, Protocol.UDP, T0 + 10, T0 + 3000),  # sustained
    row(UI, WEB, 8080, Outcome.UNKNOWN),  # an old summary's edge: allowed as before
)
ATTEMPTED = {(UI, API, p) for p in SCAN_PORTS} | {
    (API, DB, 5433), (API, BLACKHOLE, 443), (WEB, DB, 9999), (WEB, DB, 7000)}


@pytest.fixture(scope="module")
def inventory():  # type: ignore[no-untyped-def]
    statsd = make_pod("shop", "statsd", {"app": "statsd"}, STATSD,
                      ports=[(8125, "UDP", "statsd")], node="node-1")
    return make_inventory([*shop_pods(), statsd])


def _denied(result) -> set[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    return {(str(v.src_ip), str(v.dst_ip), v.dst_port) for v in result.verdicts if not v.allowed}


def test_attempts_are_denied_on_purpose_and_completed_edges_allowed(inventory) -> None:  # type: ignore[no-untyped-def]
    # analyze() raises when the proposal denies a flow it did not decide to deny
    result = analyze(FLOWS, (), inventory, SynthesisOptions())
    assert _denied(result) == ATTEMPTED
    reasons = {d.reason for d in result.proposal.decisions if d.allowed is False}
    assert any(r.startswith("attempted, not allowed: refused") for r in reasons)
    assert any(r.startswith("attempted, not allowed: unanswered") for r in reasons)
    assert any("brief one-way UDP burst" in r for r in reasons)


def test_one_finding_per_source_the_scan_included(inventory) -> None:  # type: ignore[no-untyped-def]
    result = analyze(FLOWS, (), inventory, SynthesisOptions())
    findings = {f.subject: f for f in result.proposal.findings if f.rule == RULE}
    assert sorted(findings) == ["front/deployment/ui", "shop/deployment/api",
                                "shop/deployment/web"]
    scan = findings["front/deployment/ui"]
    assert scan.message.startswith("attempted, not allowed: 6 edge(s) to 1 destination(s)")
    assert all(f"TCP/{port} refused" in scan.evidence for port in SCAN_PORTS)
    assert "unanswered" in findings["shop/deployment/api"].message


def test_an_undeclared_port_that_was_only_attempted_is_not_reported_as_allowed(inventory) -> None:  # type: ignore[no-untyped-def]
    result = analyze(FLOWS, (), inventory, SynthesisOptions())
    undeclared = [f for f in result.proposal.findings if f.rule == "ingress-4-undeclared-port"]
    assert all("shop/statefulset/db" != f.subject and "/api" not in f.subject
               for f in undeclared)


def test_allow_attempts_keeps_the_old_behaviour(inventory) -> None:  # type: ignore[no-untyped-def]
    result = analyze(FLOWS, (), inventory, SynthesisOptions(allow_attempts=True))
    assert _denied(result) == set()
    assert RULE not in {f.rule for f in result.proposal.findings}


def test_every_edge_of_an_old_summary_is_allowed_as_before(inventory) -> None:  # type: ignore[no-untyped-def]
    old = tuple(replace(flow, outcome=Outcome.UNKNOWN) for flow in FLOWS)
    assert _denied(analyze(old, (), inventory, SynthesisOptions())) == set()
