"""The service graph: model (nodes, links, flags, hubs), SVG by dot and by the built-in
layout, the standalone picture."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest

from discover.enrichment.peers import WorkloadPeer
from reports import graph_dot, graph_svg
from reports.graph_dot import GraphvizError
from reports.graph_model import NodeKind, _shape, build_service_graph, namespace_overview
from reports.graph_render import RenderFormatError, render_graph
from reports.graph_svg import (
    BUILTIN,
    BUILTIN_LAYOUT,
    GraphLayout,
    LayoutEngine,
    choose_layout,
    render_service_svg,
    render_svg,
)
from tests.reports_sample import EVIL, shop_report, tiny_report


def _layout(engine: str) -> GraphLayout:
    return choose_layout("graphviz" if engine == "dot" else "builtin")


needs_dot = pytest.mark.skipif(graph_dot.dot_path() is None,
                               reason="Graphviz dot not installed (Debian package graphviz)")
SVG = "{http://www.w3.org/2000/svg}"


def _groups(svg: str) -> dict[str, tuple[str, str]]:
    """id -> (class, title) of every <g> with an id, parsed as XML (so it must be XML)."""
    root = ElementTree.fromstring(svg)
    out = {}
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        out[g.get("id", "")] = (g.get("class", ""), title.text if title is not None else "")
    return out


def test_every_workload_and_edge_of_the_sample_is_in_the_model() -> None:
    report = shop_report()
    service = build_service_graph(report.graph, report.proposal)
    keys = {node.key for node in service.nodes}
    pairs = {(link.source, link.target) for link in service.links}
    by_key = {node.key: node.id for node in service.nodes}
    for edge in report.graph.edges:
        for peer in (edge.source, edge.destination):
            if isinstance(peer, WorkloadPeer):
                assert str(peer.workload) in keys
    ports = {(link.source, link.target): link.ports for link in service.links}
    for edge in report.graph.edges:
        pair = (by_key[_shape(edge.source).key], by_key[_shape(edge.destination).key])
        assert f"{edge.protocol}/{edge.port}" in ports[pair]
    assert len(pairs) == len(service.links)
    storefront = by_key["shop/deployment/storefront"]
    catalog = by_key["shop/deployment/catalog"]
    assert ports[(storefront, catalog)] == ("TCP/8080",)


def test_sample_external_names_and_ips_are_distinct_kinds() -> None:
    report = shop_report()
    service = build_service_graph(report.graph, report.proposal)
    kinds = {node.key: node.kind for node in service.nodes}
    for dep in report.proposal.fqdn_dependencies:
        assert kinds[f"fqdn:{dep.fqdn}"] is NodeKind.FQDN
    assert kinds["ip:198.51.100.25"] is NodeKind.EXTERNAL_IP  # the SMTP relay, by IP only
    fqdn = next(n for n in service.nodes if n.key == "fqdn:api.payments.example.com")
    assert "192.0.2.10" in fqdn.title  # its rotating addresses, in one node


def test_findings_and_denied_edges_are_flagged() -> None:
    report = tiny_report()
    service = build_service_graph(report.graph, report.proposal)
    web = next(n for n in service.nodes if n.key == "ns-a/deployment/web")
    db = next(n for n in service.nodes if n.key == "ns-b/statefulset/db")
    client = next(n for n in service.nodes if n.key == "ip:203.0.113.9")
    assert web.flagged and "ingress-2-external-source" in web.title
    assert not db.flagged
    denied = next(link for link in service.links if link.source == client.id)
    assert denied.flagged and "external source" in denied.title
    allowed = next(link for link in service.links if link.target == db.id)
    assert not allowed.flagged and allowed.label == "TCP/5432"


def test_hubs_are_the_cluster_dns_and_the_scraper() -> None:
    report = shop_report()
    service = build_service_graph(report.graph, report.proposal)
    ids = {node.key: node.id for node in service.nodes}
    hub_ends = {link.source for link in service.links if link.hub} | {
        link.target for link in service.links if link.hub}
    assert ids["kube-system/deployment/coredns"] in hub_ends
    assert ids["monitoring/statefulset/prometheus"] in hub_ends
    main = [link for link in service.links
            if link.source == ids["shop/deployment/storefront"]
            and link.target == ids["shop/deployment/catalog"]]
    assert main and not main[0].hub


def test_idle_workloads_are_drawn_dimmed() -> None:
    report = tiny_report()
    service = build_service_graph(report.graph, None, idle=("ns-c/deployment/lonely",))
    lonely = next(n for n in service.nodes if n.key == "ns-c/deployment/lonely")
    assert lonely.idle and lonely.namespace == "ns-c" and "no traffic" in lonely.title


def test_namespace_overview_aggregates_links() -> None:
    report = shop_report()
    overview = namespace_overview(build_service_graph(report.graph, report.proposal))
    labels = {node.label for node in overview.nodes}
    assert {"shop", "monitoring", "payments", "kube-system", "ingress-nginx"} <= labels
    assert all(node.id.startswith("on") for node in overview.nodes)
    shop = next(n for n in overview.nodes if n.label == "shop")
    payments = next(n for n in overview.nodes if n.label == "payments")
    link = next(x for x in overview.links if (x.source, x.target) == (shop.id, payments.id))
    assert "TCP/8443" in link.ports


@pytest.mark.parametrize("engine", [pytest.param("dot", marks=needs_dot), "builtin"])
def test_svg_has_every_node_and_link(engine: str) -> None:
    report = shop_report()
    service = build_service_graph(report.graph, report.proposal)
    rendered = render_service_svg(service, _layout(engine))
    groups = _groups(rendered.svg)
    for node in service.nodes:
        cls, title = groups[node.id]
        assert "node" in cls.split() and f"kind-{node.kind.value}" in cls.split()
        assert title == node.title
        assert ("flagged" in cls.split()) == node.flagged
    for link in service.links:
        cls, title = groups[link.id]
        assert {f"from-{link.source}", f"to-{link.target}"} <= set(cls.split())
        assert title == link.title
    text = "".join(ElementTree.fromstring(rendered.svg).itertext())
    for link in service.links:
        assert link.label in text
    for namespace in service.namespaces():
        assert f"ns-{namespace}" in groups
    assert (rendered.engine == BUILTIN) == (engine == "builtin")


@pytest.mark.parametrize("engine", [pytest.param("dot", marks=needs_dot), "builtin"])
def test_svg_escapes_names(engine: str) -> None:
    report = tiny_report()
    svg = render_service_svg(build_service_graph(report.graph, report.proposal),
                             _layout(engine)).svg
    assert "<script" not in svg and "<i-evil>" not in svg
    root = ElementTree.fromstring(svg)  # still well-formed XML
    assert any(EVIL in (t.text or "") for t in root.iter(f"{SVG}title"))


def test_without_dot_the_builtin_layout_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_dot.shutil, "which", lambda name: None)
    report = tiny_report()
    layout = choose_layout("auto")  # the command's choice, made once
    rendered = render_service_svg(build_service_graph(report.graph, report.proposal), layout)
    assert rendered.engine.startswith(BUILTIN) and "not installed" in rendered.engine
    with pytest.raises(GraphvizError, match="not installed"):
        choose_layout("graphviz")


@needs_dot
def test_the_chosen_layout_is_used_whatever_is_installed() -> None:
    report = tiny_report()
    service = build_service_graph(report.graph, report.proposal)
    assert choose_layout("auto") == choose_layout("graphviz")
    assert render_service_svg(service, BUILTIN_LAYOUT).engine == BUILTIN
    assert render_service_svg(service, choose_layout("builtin")) == render_service_svg(
        service, BUILTIN_LAYOUT)


def test_a_failing_dot_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(source: str, fmt: str) -> bytes:
        raise GraphvizError("dot took longer than 60 s")

    monkeypatch.setattr(graph_svg, "svg_by_dot",
                        lambda _service, _timeout: fail("", "svg").decode())
    report = tiny_report()
    layout = GraphLayout(LayoutEngine.GRAPHVIZ, "graphviz version 0")
    rendered = render_service_svg(build_service_graph(report.graph, report.proposal), layout)
    assert rendered.engine == f"{BUILTIN} (dot took longer than 60 s)"


def test_png_without_dot_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_dot.shutil, "which", lambda name: None)
    report = tiny_report()
    with pytest.raises(GraphvizError, match="not installed"):
        render_graph(report.graph, report.proposal, "png", BUILTIN_LAYOUT)


def test_render_svg_public_entry() -> None:
    report = tiny_report()
    svg = render_svg(report.graph, BUILTIN_LAYOUT)
    assert svg.startswith("<svg") and "web" in svg and "db" in svg


@needs_dot
def test_render_graph_svg_and_png() -> None:
    report = shop_report()
    svg = render_graph(report.graph, report.proposal, "svg", choose_layout("graphviz"))
    assert svg.startswith(b"<?xml") and b"<!-- layout: graphviz" in svg
    ElementTree.fromstring(svg)
    png = render_graph(report.graph, report.proposal, "png", BUILTIN_LAYOUT)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_render_graph_rejects_other_formats() -> None:
    report = tiny_report()
    with pytest.raises(RenderFormatError, match="svg, png"):
        render_graph(report.graph, report.proposal, "pdf", BUILTIN_LAYOUT)


@needs_dot
def test_dot_output_is_deterministic() -> None:
    report = shop_report()
    service = build_service_graph(report.graph, report.proposal)
    dot = choose_layout("graphviz")
    assert render_service_svg(service, dot).svg == render_service_svg(service, dot).svg
    assert not re.search(r"<!--", render_service_svg(service, dot).svg)


@needs_dot
def test_control_characters_keep_dot_and_xml_working() -> None:
    report = tiny_report("bad\x00\x1f\x7fname")
    rendered = render_service_svg(build_service_graph(report.graph, report.proposal),
                                  choose_layout("graphviz"))
    assert rendered.engine.startswith("graphviz")  # dot accepted the labels
    root = ElementTree.fromstring(rendered.svg)
    assert any("bad\\x00\\x1f\\x7fname" in (t.text or "") for t in root.iter(f"{SVG}title"))
    standalone = render_graph(report.graph, report.proposal, "svg", choose_layout("graphviz"))
    ElementTree.fromstring(standalone)
