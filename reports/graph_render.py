"""The service graph alone, for `netpol-discover graph --render svg|png`.

SVG is laid out by the engine the command chose (`graph_svg.choose_layout`); PNG needs
`dot` (rasterising is Graphviz's job; no imaging library is pulled in for it) and raises
GraphvizError, a ConfigurationError the CLI prints on one line, without it.
"""

from __future__ import annotations

from discover.enrichment.workload_graph import WorkloadGraph
from discover.synthesis.proposal import Proposal
from reports.graph_dot import GraphvizError, dot_source, run_dot
from reports.graph_model import build_service_graph, drawable
from reports.graph_svg import GraphLayout, render_service_svg

FORMATS = ("svg", "png")
XML_PROLOGUE = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'


class RenderFormatError(GraphvizError):
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(f"--render {fmt!r}: expected one of {', '.join(FORMATS)}")


def render_graph(graph: WorkloadGraph, proposal: Proposal | None, fmt: str,
                 layout: GraphLayout) -> bytes:
    service, omitted = drawable(build_service_graph(graph, proposal))
    if fmt == "svg":
        rendered = render_service_svg(service, layout)
        note = f"; {omitted} hub links not drawn" if omitted else ""
        return (XML_PROLOGUE + f"<!-- layout: {rendered.engine}{note} -->\n" + rendered.svg
                + "\n").encode()
    if fmt == "png":
        return run_dot(dot_source(service), "png")
    raise RenderFormatError(fmt)
