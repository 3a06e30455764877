"""The service graph as SVG, laid out by the engine the command chose.

`choose_layout` is called once by a command (`--graph-layout auto|graphviz|builtin`):
auto takes Graphviz `dot` when it is installed and the built-in layout when not. The
renderers take its answer and never look for `dot` themselves, so the same inputs and
the same choice give the same bytes. `render_service_svg` also says which engine drew the
picture (the HTML report prints it); a `dot` that fails or runs out of time falls back
to the built-in layout, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from discover.enrichment.workload_graph import WorkloadGraph
from discover.synthesis.proposal import Proposal
from reports.graph_dot import DOT_TIMEOUT_S, GraphvizError, dot_version, svg_by_dot
from reports.graph_layout import svg_by_builtin_layout
from reports.graph_model import ServiceGraph, build_service_graph

BUILTIN = "built-in layered layout"
LAYOUT_CHOICES = ("auto", "graphviz", "builtin")


class LayoutEngine(StrEnum):
    GRAPHVIZ = "graphviz"
    BUILTIN = "builtin"


@dataclass(frozen=True, slots=True)
class GraphLayout:
    """The engine that draws, and how the picture names it: "graphviz version 2.43.0 (0)",
    or BUILTIN with why when auto found no `dot`."""

    engine: LayoutEngine
    description: str

    @classmethod
    def builtin(cls, why: str = "") -> GraphLayout:
        return cls(LayoutEngine.BUILTIN, f"{BUILTIN} ({why})" if why else BUILTIN)


BUILTIN_LAYOUT = GraphLayout.builtin()


def choose_layout(choice: str) -> GraphLayout:
    """One of LAYOUT_CHOICES to an engine: "graphviz" without a working `dot` is a
    GraphvizError (a ConfigurationError: one line, exit 1)."""
    if choice == "builtin":
        return GraphLayout.builtin()
    try:
        return GraphLayout(LayoutEngine.GRAPHVIZ, dot_version())
    except GraphvizError as error:
        if choice == "graphviz":
            raise
        return GraphLayout.builtin(error.reason)


@dataclass(frozen=True, slots=True)
class RenderedSvg:
    svg: str
    engine: str  # "graphviz version 2.43.0 (0)" or BUILTIN (with why)


def render_service_svg(service: ServiceGraph, layout: GraphLayout,
                       timeout_s: float = DOT_TIMEOUT_S) -> RenderedSvg:
    """`timeout_s`: how long `dot` may take before the built-in layout draws instead."""
    if layout.engine is LayoutEngine.GRAPHVIZ:
        try:
            return RenderedSvg(svg_by_dot(service, timeout_s), layout.description)
        except GraphvizError as error:  # failed or out of time on this graph
            return RenderedSvg(svg_by_builtin_layout(service), f"{BUILTIN} ({error.reason})")
    return RenderedSvg(svg_by_builtin_layout(service), layout.description)


def render_svg(graph: WorkloadGraph, layout: GraphLayout,
               proposal: Proposal | None = None) -> str:
    return render_service_svg(build_service_graph(graph, proposal), layout).svg
