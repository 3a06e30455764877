"""The service graph as SVG: Graphviz `dot` when installed, else the built-in layout.

`render_svg` is the public entry; `render_service_svg` also says which layout engine drew
the picture (the HTML report prints it).
"""

from __future__ import annotations

from dataclasses import dataclass

from discover.enrichment.workload_graph import WorkloadGraph
from discover.synthesis.proposal import Proposal
from reports.graph_dot import GraphvizError, dot_version, svg_by_dot
from reports.graph_layout import svg_by_builtin_layout
from reports.graph_model import ServiceGraph, build_service_graph

BUILTIN = "built-in layered layout"


@dataclass(frozen=True, slots=True)
class RenderedSvg:
    svg: str
    engine: str  # "graphviz version 2.43.0 (0)" or BUILTIN (with why)


def render_service_svg(service: ServiceGraph, engine: str = "auto") -> RenderedSvg:
    """`engine`: "auto" (dot, falling back to the built-in layout), "dot" (raise
    GraphvizError without it) or "builtin"."""
    if engine != "builtin":
        try:
            version = dot_version()
            return RenderedSvg(svg_by_dot(service), version)
        except GraphvizError as error:
            if engine == "dot":
                raise
            return RenderedSvg(svg_by_builtin_layout(service), f"{BUILTIN} ({error.reason})")
    return RenderedSvg(svg_by_builtin_layout(service), BUILTIN)


def render_svg(graph: WorkloadGraph, proposal: Proposal | None = None) -> str:
    return render_service_svg(build_service_graph(graph, proposal)).svg
