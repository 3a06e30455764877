"""An input that missed traffic makes the proposal incomplete, and `analyze` says so as a
critical finding, by how much and in which input (issue 15 item 7)."""

from __future__ import annotations

import csv
import html
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from discover.analysis import INPUT_INCOMPLETE, _reading_findings
from discover.cli import main
from discover.flows.events import ConnectionOpen, DirectionEvidence, Protocol
from discover.flows.flowtable import FlowTable
from discover.flows.losses import InputLosses
from discover.flows.summary import SummaryMeta, write_summary
from discover.synthesis.proposal import Severity

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO / "samples" / "shop" / "inventory.json"
# Inside the recorded sample's window, so the inventory's pods hold these addresses.
T = datetime(2026, 12, 4, 19, 56, 50, tzinfo=UTC).timestamp()
INGRESS = IPv4Address("10.244.0.4")  # ingress-nginx controller
STOREFRONT = IPv4Address("10.244.0.5")  # shop/storefront


@pytest.mark.parametrize(
    ("counters", "described"),
    [
        ({"edges_dropped": 5, "edges_dropped_tcp": 1, "edges_dropped_udp": 4,
          "edges_dropped_sctp": 0, "udp_edges_dropped_per_source": 3},
         "5 events for new edges refused at the cap (1 TCP, 4 UDP, 3 of the UDP ones over "
         "their client's share)"),
        ({"edges_dropped": 1200, "edges_dropped_sctp": 200, "edges_dropped_tcp": 1000},
         "1,200 events for new edges refused at the cap (1,000 TCP, 0 UDP, 200 SCTP)"),
        # An agent older than the breakdown, or merged with one: the rest is unknown.
        ({"edges_dropped": 9}, "9 events for new edges refused at the cap"),
        ({"edges_dropped": 9, "edges_dropped_udp": 4},
         "9 events for new edges refused at the cap (0 TCP, 4 UDP, 5 of an unknown protocol)"),
        ({"udp_sampled_out": 7, "kernel_drops": 3},
         "7 UDP datagrams sampled out, 3 kernel drops"),
        ({"dns_rows_dropped": 2, "packets": 10}, "2 DNS answers refused at the cap"),
    ],
)  # fmt: skip
def test_losses_say_how_much_is_missing(counters: dict[str, int], described: str) -> None:
    losses = InputLosses.from_counters(counters)
    assert losses
    assert losses.describe() == described
    assert losses.advice()


@pytest.mark.parametrize(
    ("counters", "advice"),
    [
        ({"edges_dropped": 4, "edges_dropped_udp": 4, "udp_edges_dropped_per_source": 4},
         ["--max-udp-edges-per-source"]),
        ({"edges_dropped": 4, "edges_dropped_udp": 4}, ["raise --max-udp-edges ("]),
        ({"edges_dropped": 4, "edges_dropped_tcp": 4}, ["raise the agent's --max-edges"]),
        ({"edges_dropped": 4}, ["raise the agent's --max-edges"]),
        ({"kernel_drops": 1}, ["more CPU"]),
        ({"udp_sampled_out": 1}, ["more CPU"]),
    ],
)  # fmt: skip
def test_the_advice_names_the_option_that_was_short(
    counters: dict[str, int], advice: list[str]
) -> None:
    text = InputLosses.from_counters(counters).advice()
    options = {"--max-udp-edges-per-source", "raise --max-udp-edges (",
               "raise the agent's --max-edges", "more CPU"}
    assert {o for o in options if o in text} == set(advice), text


def test_a_complete_input_has_no_losses() -> None:
    zeros = {"packets": 10, "edges_dropped": 0, "edges_dropped_udp": 0, "kernel_drops": 0,
             "udp_sampled_out": 0, "dns_rows_dropped": 0, "parse_errors": 4}  # fmt: skip
    assert not InputLosses.from_counters(zeros)
    assert not InputLosses.from_counters({"sctp": 3, "truncated": 2})  # a pcap's counters
    assert _reading_findings({}, {"a.json": zeros, "b.pcap": {"packets": 5}}) == []


def test_each_incomplete_input_is_one_critical_finding() -> None:
    findings = _reading_findings(
        {"sctp": 0},
        {"node-a.json": {"kernel_drops": 2}, "node-b.json": {"packets": 1},
         "node-c.json": {"edges_dropped": 1, "edges_dropped_udp": 1}},
    )  # fmt: skip
    assert [(f.severity, f.rule, f.subject) for f in findings] == [
        (Severity.CRITICAL, INPUT_INCOMPLETE, "node-a.json"),
        (Severity.CRITICAL, INPUT_INCOMPLETE, "node-c.json"),
    ]
    assert findings[0].message.startswith(
        "the proposal is incomplete: 2 kernel drops in node-a.json; "
    )
    assert findings[1].evidence == (
        "1 events for new edges refused at the cap (0 TCP, 1 UDP)"
    )


def flooded_summary(path: Path) -> None:
    """What an agent with --max-edges 100 keeps when one pod sends 200,000 distinct UDP
    4-tuples and then the ingress controller and the storefront connect over TCP."""
    table = FlowTable(max_edges=100)
    base = int(IPv4Address("198.51.100.0"))
    for i in range(200_000):
        table.add(ConnectionOpen(T, STOREFRONT, 40000 + i % 20000, IPv4Address(base + i % 200),
                                 1024 + i // 200, Protocol.UDP, DirectionEvidence.UDP_FIRST))
    table.add(ConnectionOpen(T + 1, INGRESS, 51000, STOREFRONT, 8080, Protocol.TCP,
                             DirectionEvidence.SYN))
    table.add(ConnectionOpen(T + 2, STOREFRONT, 52000, IPv4Address("10.96.10.11"), 80,
                             Protocol.TCP, DirectionEvidence.SYN))  # fmt: skip
    counters = {"packets": 200_002, "udp_sampled_out": 7, "kernel_drops": 3,
                **table.drop_counters()}  # fmt: skip
    meta = SummaryMeta.for_agent(node_name="kind-worker", interface="any", window_start=T - 60,
                                 window_end=T + 60, counters=counters)  # fmt: skip
    write_summary(table, meta, path)


def test_analyze_on_a_flooded_summary_says_the_proposal_is_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "flooded.json"
    flooded_summary(summary)
    out = tmp_path / "out"
    assert main(["analyze", str(summary), "--inventory", str(INVENTORY), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    how_much = (
        "199,997 events for new edges refused at the cap (0 TCP, 199,997 UDP, 199,997 of the "
        "UDP ones over their client's share), 7 UDP datagrams sampled out, 3 kernel drops"
    )
    err = capsys.readouterr().err
    assert f"netpol-discover: critical: the proposal is incomplete: {how_much} in {summary};" \
        in err
    assert "--max-udp-edges-per-source" in err
    report = (out / "report.md").read_text()
    assert INPUT_INCOMPLETE in report and how_much in report
    assert "Findings: 1 critical" in report
    assert html.escape(how_much) in (out / "report.html").read_text()
    # The TCP connections that came after the flood were kept, and the proposal allows them.
    with open(out / "flows.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    tcp = {(r["src_ip"], r["dst_ip"], r["dst_port"], r["allowed"]) for r in rows
           if r["protocol"] == "TCP"}  # fmt: skip
    assert tcp == {("10.244.0.4", "10.244.0.5", "8080", "True"),
                   ("10.244.0.5", "10.96.10.11", "80", "True")}  # fmt: skip
    assert sum(r["protocol"] == "UDP" for r in rows) == 3  # the flooder's share of 25


def test_a_complete_summary_prints_no_critical_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = FlowTable(max_edges=100)
    table.add(ConnectionOpen(T + 1, INGRESS, 51000, STOREFRONT, 8080, Protocol.TCP,
                             DirectionEvidence.SYN))  # fmt: skip
    summary = tmp_path / "calm.json"
    meta = SummaryMeta.for_agent(node_name="n", interface="any", window_start=T - 60,
                                 window_end=T + 60, counters={"packets": 2, "kernel_drops": 0})
    write_summary(table, meta, summary)
    out = tmp_path / "out"
    assert main(["analyze", str(summary), "--inventory", str(INVENTORY), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert "critical" not in capsys.readouterr().err
    assert INPUT_INCOMPLETE not in (out / "report.md").read_text()
