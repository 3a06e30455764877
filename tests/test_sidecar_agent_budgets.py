"""The agent's edge budgets without a capture: options reach its table, and the refused
counts by protocol survive a restart and reach /metrics (issue 15 item 7)."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from discover.cli import main
from discover.flows.events import ConnectionOpen, DirectionEvidence, Protocol
from discover.flows.flowtable import DROP_COUNTERS
from sidecar.agent import Agent, AgentOptions

T0 = 1_700_000_000.0
CLIENT = IPv4Address("10.244.9.9")


def udp_burst(agent: Agent, count: int) -> None:
    for port in range(count):
        agent.table.add(ConnectionOpen(T0, CLIENT, 40000, IPv4Address("10.96.0.1"), 1000 + port,
                                       Protocol.UDP, DirectionEvidence.UDP_FIRST))  # fmt: skip


def test_budgets_default_to_shares_of_max_edges_and_can_be_set(tmp_path: Path) -> None:
    default = Agent(AgentOptions(state_dir=tmp_path / "a", max_edges=1000), clock=lambda: T0)
    assert (default.table.max_udp_edges, default.table.max_udp_edges_per_source) == (250, 25)
    chosen = Agent(AgentOptions(state_dir=tmp_path / "b", max_edges=1000, max_udp_edges=600,
                                max_udp_edges_per_source=600), clock=lambda: T0)  # fmt: skip
    assert (chosen.table.max_udp_edges, chosen.table.max_udp_edges_per_source) == (600, 600)


def test_refused_counts_by_protocol_survive_a_restart(tmp_path: Path) -> None:
    options = AgentOptions(state_dir=tmp_path / "state", max_edges=40)  # 1 UDP edge a client
    first = Agent(options, clock=lambda: T0)
    udp_burst(first, 5)
    assert first.counters()["udp_edges_dropped_per_source"] == 4
    first.save_checkpoint()
    second = Agent(options, clock=lambda: T0 + 60)
    udp_burst(second, 7)  # the kept edge counts on; 6 more refused
    counters = second.counters()
    assert set(DROP_COUNTERS) <= set(counters)
    assert counters["edges_dropped"] == counters["edges_dropped_udp"] == 4 + 6
    assert counters["udp_edges_dropped_per_source"] == 4 + 6
    metrics = second.metrics_text()
    assert "netpol_discover_edges_dropped_udp_total 10\n" in metrics
    assert "netpol_discover_udp_edges 1\n" in metrics
    document = second.document()
    assert document["counters"]["edges_dropped_udp"] == 10


@pytest.mark.parametrize("option", ["--max-udp-edges", "--max-udp-edges-per-source"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_budgets_are_usage_errors(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", option, value])
    assert exit_info.value.code == 2
    assert f"{option} {value!r}: must be a whole number >= 1" in capsys.readouterr().err
