"""report.html: everything of the sample is in it, numbers match, names are escaped,
nothing is loaded from anywhere, the same inputs give the same bytes."""

from __future__ import annotations

import html
import json
import re
import time
from functools import cache
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover.enrichment.peers import WorkloadPeer, workload_of
from reports import graph_dot
from reports.graph_svg import choose_layout
from reports.html import render_html
from reports.model import summarize
from tests.reports_sample import EVIL, big_report, empty_report, shop_report, tiny_report

LAYOUT = choose_layout("auto")  # as `analyze` chooses on this machine


class _Collector(HTMLParser):
    """Tags, attributes and text of a page (also checks it parses)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(shop_report(), LAYOUT)


@pytest.fixture(scope="module")
def parsed(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    return collector


def test_every_workload_of_the_sample_appears(page: str) -> None:
    report = shop_report()
    for pod in report.inventory.pods:
        assert html.escape(str(pod.workload)) in page or pod.workload.name in page
    for edge in report.graph.edges:
        for peer in (edge.source, edge.destination):
            assert html.escape(peer.label()) in page, peer.label()


def test_every_edge_of_the_sample_has_a_decision_row(page: str) -> None:
    report = shop_report()
    for decision in report.proposal.decisions:
        edge = decision.edge
        peer = edge.source if decision.direction == "ingress" else edge.destination
        assert html.escape(peer.label()) in page
        assert f"{edge.protocol} {edge.port}" in page


def test_every_finding_and_fqdn_dependency_appears(page: str) -> None:
    report = shop_report()
    assert report.proposal.findings
    for finding in report.proposal.findings:
        assert html.escape(finding.message) in page
        assert html.escape(finding.rule) in page
    for dep in report.proposal.fqdn_dependencies:
        assert html.escape(dep.fqdn) in page
        assert html.escape(str(dep.workload)) in page


def test_summary_numbers_match_the_flow_table(parsed: _Collector) -> None:
    report = shop_report()
    summary = summarize(report)
    text = " ".join(" ".join(parsed.text).split())
    assert f"Flows {len(report.flows):,}" in text
    assert f"{sum(f.connections for f in report.flows):,} connections" in text
    assert f"Packets {report.counters['packets']:,}" in text
    assert f"Workloads {len(summary.workloads)}" in text
    assert f"Namespaces {len(summary.namespaces)}" in text


def test_flow_table_has_one_row_per_flow(page: str) -> None:
    table = re.search(r'id="flows-table">(.*?)</table>', page, re.S)
    assert table is not None
    assert table.group(1).count("<tr>") == len(shop_report().flows) + 1  # + header


def test_graph_is_inline_svg_with_every_workload(parsed: _Collector) -> None:
    report = shop_report()
    svgs = [attrs for tag, attrs in parsed.tags if tag == "svg"]
    assert svgs
    node_classes = [attrs.get("class") or "" for tag, attrs in parsed.tags if tag == "g"]
    workloads = {str(p.workload) for e in report.graph.edges for p in (e.source, e.destination)
                 if isinstance(p, WorkloadPeer)}
    assert sum("kind-workload" in c for c in node_classes) == len(workloads)


def test_self_contained_no_network(parsed: _Collector, page: str) -> None:
    for tag, attrs in parsed.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value)
        if tag == "link":
            assert attrs.get("rel") == "icon" and attrs.get("href") == "data:,"
    # Only the SVG namespace URIs (identifiers, never fetched) mention http.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "@import" not in page and "url(http" not in page


def test_sections_and_controls(parsed: _Collector) -> None:
    ids = {attrs.get("id") for _, attrs in parsed.tags}
    assert {"summary", "graph", "findings", "namespaces", "fqdn", "flows", "notes",
            "findings-table", "flows-table", "fqdn-table", "graph-workloads"} <= ids
    roles = {attrs.get("data-role") for _, attrs in parsed.tags}
    assert {"namespace", "search", "flagged", "hubs"} <= roles


def test_policy_yaml_and_evidence_per_workload(page: str) -> None:
    report = shop_report()
    for document in report.proposal.documents:
        assert f"YAML of NetworkPolicy {document.namespace}/{document.name}" in page
        for line in document.comments:
            assert html.escape(line) in page
    assert "Newly denied" in page and "denies all ingress" in page


def test_deterministic() -> None:
    assert render_html(shop_report(), LAYOUT) == render_html(shop_report(), LAYOUT)


def test_everything_from_the_cluster_is_escaped() -> None:
    page = render_html(tiny_report(), LAYOUT)
    assert "<script>alert" not in page
    assert "<i-evil>" not in page
    assert page.count("<script>") == 1  # our own, at the end
    assert html.escape(EVIL) in page
    collector = _Collector()
    collector.feed(page)
    assert [tag for tag, _ in collector.tags].count("script") == 1


def test_builtin_layout_named_when_dot_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_dot.shutil, "which", lambda name: None)
    page = render_html(tiny_report(), choose_layout("auto"))
    assert "Layout: built-in layered layout (the dot command is not installed" in page
    assert 'id="graph-workloads"' in page


def test_a_hundred_and_forty_workloads_stay_legible() -> None:
    report = big_report(namespaces=14, per_namespace=10)
    started = time.monotonic()
    page = render_html(report, LAYOUT)
    assert time.monotonic() - started < 60  # hub links would make dot take minutes
    collector = _Collector()
    collector.feed(page)
    ids = {attrs.get("id") for _, attrs in collector.tags}
    assert {"graph-overview", "graph-workloads"} <= ids  # namespaces first, then workloads
    classes = [attrs.get("class") or "" for tag, attrs in collector.tags if tag == "g"]
    assert sum("kind-workload" in c.split() for c in classes) == 142 + 16  # + overview
    assert "links of hubs (every workload to the cluster DNS" in page
    assert sum(1 for c in classes if "namespace" in c.split()) == 16
    assert page.count('<details class="wl"') == 142  # every section written out


def test_past_the_threshold_one_namespace_at_a_time_and_sections_from_data() -> None:
    report = big_report(namespaces=16, per_namespace=10)  # 162 workloads
    page = render_html(report, LAYOUT)
    collector = _Collector()
    collector.feed(page)
    ids = [attrs.get("id") for _, attrs in collector.tags]
    assert "graph-overview" in ids and "graph-workloads" not in ids
    assert "graph-drill" in ids
    # one picture live, one <template> for each other namespace
    assert page.count('<template data-drilldown-for="graph-drill"') == 18 - 1
    assert '<details class="wl"' not in page
    data = _workload_data(page)
    assert len(data["workloads"]) == 162
    strings = data["strings"]
    names = {"/".join(strings[i] for i in row[:3]) for row in data["workloads"]}
    assert "team-03/deployment/svc-04" in names
    row = next(r for r in data["workloads"]
               if [strings[i] for i in r[:3]] == ["team-03", "deployment", "svc-04"])
    peers = {strings[row[8][k + 1]] for k in range(0, len(row[8]), 5)}
    assert {"team-03/deployment/svc-03", "team-03/deployment/svc-05",
            "monitoring/statefulset/prometheus"} <= peers
    decided = sum(len(r[8]) // 5 for r in data["workloads"])
    assert decided == sum(1 for d in report.proposal.decisions
                          if workload_of(d.edge.destination if d.direction == "ingress"
                                         else d.edge.source) is not None)


def test_workload_data_can_not_end_its_script() -> None:
    """Names from the cluster in the page's JSON: no '</script' or '<!--' gets through,
    and the JSON reads back to the names."""
    evil = "</script><script>alert(1)</script><!--"
    report = big_report(namespaces=16, per_namespace=10, name_prefix=evil)
    page = render_html(report, LAYOUT)
    start = page.index('<script type="application/json" id="workload-data">')
    end = page.index("</script>", start)
    body = page[start:end]
    assert "</" not in body.split(">", 1)[1] and "<!--" not in body
    data = _workload_data(page)
    assert any(s.startswith(evil) for s in data["strings"])
    assert page.count("<script") == 2  # the data and the page's script, nothing injected


def _workload_data(page: str) -> dict[str, Any]:
    start = page.index('<script type="application/json" id="workload-data">')
    start = page.index(">", start) + 1
    data: dict[str, Any] = json.loads(page[start:page.index("</script>", start)])
    return data


def test_an_empty_analysis_still_renders() -> None:
    page = render_html(empty_report(), LAYOUT)
    assert "No findings." in page and "No workload reached an external name." in page
    assert "Learning window unknown" in page
    assert page.count("<svg") == 1


def _tag_names(page: str) -> list[str]:
    collector = _Collector()
    collector.feed(page)
    return [tag for tag, _ in collector.tags]


@cache
def _plain_tags() -> tuple[str, ...]:
    return tuple(_tag_names(render_html(tiny_report("plain"), LAYOUT)))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_no_name_changes_the_markup(name: str) -> None:
    """Whatever a cluster or a DNS answer calls things, the page has the same elements."""
    assert tuple(_tag_names(render_html(tiny_report(name), LAYOUT))) == _plain_tags()
