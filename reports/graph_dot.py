"""Service graph layout by Graphviz `dot` (Debian package graphviz), run as a subprocess.

Why dot: clusters (namespaces) with ranked, spline-routed edges and labels placed without
overlaps, in one well-known binary, deterministic for the same input. Only ids and
class names we generate go into the DOT text as identifiers; every human string goes in
through `discover/escaping/dot_text.py` (HTML-like labels) and the tooltips are put into
the SVG afterwards, escaped again, so names from the cluster never reach the markup
unescaped.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

from discover.errors import ConfigurationError
from discover.escaping.dot_text import dot_label_text, dot_string
from reports.graph_model import GraphNode, ServiceGraph
from reports.graph_style import (
    CLUSTER_BORDER,
    CLUSTER_FILL,
    EDGE_COLOR,
    EDGE_LABEL_COLOR,
    FLAG_EDGE_COLOR,
    FONT,
    HUB_EDGE_COLOR,
    MUTED,
    link_classes,
    node_classes,
    node_style,
    printable,
    token,
)

DOT_TIMEOUT_S = 60  # then the built-in layout draws it (and says why)
_TITLED_GROUP = re.compile(r'(<g id="([^"]+)" class="[^"]*">\s*<title>)(.*?)(</title>)', re.S)
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)


class GraphvizError(ConfigurationError):
    """`dot` is missing or failed; `reason` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"graphviz: {reason}")


def dot_path() -> str | None:
    return shutil.which("dot")


def dot_version() -> str:
    """"graphviz version 2.43.0 (0)" as `dot -V` prints it; GraphvizError without dot."""
    path = dot_path()
    if path is None:
        raise GraphvizError("the dot command is not installed (Debian package graphviz)")
    done = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("dot - ")


_quote = dot_string


def _node_label(node: GraphNode) -> str:
    detail = dot_label_text(node.detail)
    return (f'<<b>{dot_label_text(node.label)}</b><br/>'
            f'<font point-size="10" color="{MUTED}">{detail}</font>>')


def _node_line(node: GraphNode) -> str:
    style = node_style(node)
    styles = ["filled"]
    if style.shape == "box":
        styles.insert(0, "rounded")
    if style.dashed:
        styles.append("dashed")
    attrs = {
        "id": node.id, "class": node_classes(node), "shape": style.shape,
        "style": ",".join(styles), "fillcolor": style.fill, "color": style.border,
        "fontcolor": style.text, "penwidth": "2" if node.flagged else "1.2",
    }
    text = ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
    return f"  {node.id} [{text}, label={_node_label(node)}];"


def dot_source(service: ServiceGraph) -> str:
    lines = [
        "digraph services {",
        f'  graph [rankdir=LR, splines=true, nodesep=0.16, ranksep=0.7, fontname="{FONT}", '
        'fontsize=12, bgcolor="white", pad=0.25, newrank=true];',
        f'  node [fontname="{FONT}", fontsize=12, margin="0.14,0.06", height=0.45];',
        f'  edge [fontname="{FONT}", fontsize=10, color="{EDGE_COLOR}", '
        f'fontcolor="{EDGE_LABEL_COLOR}", arrowsize=0.6, penwidth=1.1];',
    ]
    by_namespace: dict[str | None, list[GraphNode]] = {}
    for node in service.nodes:
        by_namespace.setdefault(node.namespace, []).append(node)
    for index, namespace in enumerate(service.namespaces()):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f'    id="ns-{token(namespace)}"; class="namespace ns-{token(namespace)}";')
        lines.append(f'    label=<<b>{dot_label_text(namespace)}</b>>; labeljust="l"; '
                     f'style="rounded,filled"; fillcolor="{CLUSTER_FILL}"; '
                     f'color="{CLUSTER_BORDER}"; fontsize=12; fontcolor="#24292f";')
        lines.extend("  " + _node_line(node) for node in by_namespace[namespace])
        lines.append("  }")
    lines.extend(_node_line(node) for node in by_namespace.get(None, []))
    nodes = {node.id: node for node in service.nodes}
    for link in service.links:
        attrs = {"id": link.id, "class": link_classes(link, nodes[link.source],
                                                         nodes[link.target]),
                 "label": link.label}
        if link.hub:
            # Hub links (hidden by default in the report) still rank their ends, but
            # their labels are placed after the layout so they take no room in it.
            attrs["xlabel"] = attrs.pop("label")
            attrs.update(color=HUB_EDGE_COLOR, penwidth="0.8", weight="0")
        if link.flagged:
            attrs.update(color=FLAG_EDGE_COLOR, fontcolor=FLAG_EDGE_COLOR, style="dashed",
                         penwidth="1.6")
        text = ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
        lines.append(f"  {link.source} -> {link.target} [{text}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_dot(source: str, fmt: str, timeout_s: float = DOT_TIMEOUT_S) -> bytes:
    """`dot -T<fmt>` on the source; GraphvizError when dot is missing, fails or runs
    longer than `timeout_s` (then it is killed)."""
    path = dot_path()
    if path is None:
        raise GraphvizError("the dot command is not installed (Debian package graphviz)")
    try:
        done = subprocess.run([path, f"-T{fmt}"], input=source.encode(), capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise GraphvizError(f"dot took longer than {timeout_s:g} s") from error
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise GraphvizError(f"dot exited with {done.returncode}: "
                            f"{detail[0] if detail else 'no message'}")
    return done.stdout


def svg_by_dot(service: ServiceGraph, timeout_s: float = DOT_TIMEOUT_S) -> str:
    """The graph as an inline `<svg>` element: no XML prologue or comments, our tooltips."""
    svg = run_dot(dot_source(service), "svg", timeout_s).decode()
    titles = {node.id: node.title for node in service.nodes}
    titles.update({link.id: link.title for link in service.links})
    titles.update({f"ns-{token(ns)}": f"namespace {ns}" for ns in service.namespaces()})

    def retitle(match: re.Match[str]) -> str:
        element_id = html.unescape(match.group(2))
        text = titles.get(element_id)
        if text is None:
            return match.group(0)
        return match.group(1) + html.escape(printable(text)) + match.group(4)

    svg = _COMMENT.sub("", _PROLOGUE.sub("", svg, count=1))
    svg = _TITLED_GROUP.sub(retitle, svg)
    # The graph's own <title> is the DOT graph name: harmless, but say what it is; its
    # group id must stay unique in a page that holds two graphs.
    first = service.nodes[0].id if service.nodes else "empty"
    svg = svg.replace('<g id="graph0" class="graph"', f'<g id="graph-{first}" class="graph"', 1)
    return svg.replace("<title>services</title>", "<title>service graph</title>", 1)
