"""The report's headline numbers against the tables they come from."""

from __future__ import annotations

import pytest

from discover.synthesis.proposal import Severity
from reports.model import format_duration, observed_workloads, summarize
from tests.reports_sample import DB, WEB, shop_report, tiny_report


def test_summary_numbers_match_the_flow_table() -> None:
    report = shop_report()
    summary = summarize(report)
    assert summary.flows == len(report.flows) > 0
    assert summary.connections == sum(f.connections for f in report.flows)
    assert summary.dns_rows == len(report.dns)
    assert summary.edges == len(report.graph.edges)
    assert summary.packets == report.counters["packets"] > 0
    assert summary.policies == len(report.proposal.documents)
    assert sum(summary.findings.values()) == len(report.proposal.findings)
    assert summary.window_start is not None and summary.window_end is not None
    assert summary.window_start <= summary.window_end


def test_summary_counts_workloads_and_namespaces_seen() -> None:
    summary = summarize(tiny_report())
    assert summary.workloads == (WEB, DB)
    assert summary.namespaces == ("ns-a", "ns-b")
    assert summary.workloads_known == 2
    assert summary.findings[Severity.WARNING] == 1
    assert summary.duration == "5 min 0 s"
    assert any("inventory note" in w for w in summary.warnings)


def test_observed_workloads_sorted_and_unique() -> None:
    assert observed_workloads(tiny_report().graph) == (WEB, DB)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (12.4, "12 s"), (61, "1 min 1 s"), (3600 * 2 + 600, "2 h 10 min"),
    (86400 * 3 + 3600 * 4, "3 d 4 h"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_warnings_are_listed_once() -> None:
    from dataclasses import replace

    report = tiny_report()
    doubled = replace(report, warnings=report.warnings + report.inventory.notes)
    assert summarize(doubled).warnings == summarize(report).warnings
    assert len(summarize(report).warnings) == 2
