"""How each kind of node and link looks, shared by the Graphviz and the built-in layout,
and the class names the report's script filters on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from discover.escaping.visible import visible
from reports.graph_model import GraphLink, GraphNode, NodeKind

FONT = "Helvetica"
EDGE_COLOR = "#8c959f"
EDGE_LABEL_COLOR = "#57606a"
HUB_EDGE_COLOR = "#c4cad1"
FLAG_EDGE_COLOR = "#d1242f"
CLUSTER_FILL = "#f6f8fa"
CLUSTER_BORDER = "#d0d7de"
TEXT = "#1f2328"
MUTED = "#656d76"


@dataclass(frozen=True, slots=True)
class NodeStyle:
    fill: str
    border: str
    text: str = TEXT
    dashed: bool = False
    shape: str = "box"  # Graphviz shape; the built-in layout draws boxes for all


STYLES = {
    NodeKind.WORKLOAD: NodeStyle("#ffffff", "#54728c"),
    NodeKind.FQDN: NodeStyle("#fbefff", "#8250df", shape="box"),
    NodeKind.EXTERNAL_IP: NodeStyle("#fff1e5", "#bc4c00", dashed=True),
    NodeKind.LOAD_BALANCER: NodeStyle("#ddf4ff", "#0969da", shape="hexagon"),
    NodeKind.NODE: NodeStyle("#eaeef2", "#6e7781", shape="box3d"),
    NodeKind.UNRESOLVED: NodeStyle("#f6f8fa", "#6e7781", dashed=True),
}
IDLE = NodeStyle("#f6f8fa", "#afb8c1", text=MUTED, dashed=True)
FLAGGED = NodeStyle("#fff8c5", "#bf8700")


def node_style(node: GraphNode) -> NodeStyle:
    base = IDLE if node.idle else STYLES[node.kind]
    if node.flagged:
        return NodeStyle(FLAGGED.fill, FLAGGED.border, base.text, base.dashed, base.shape)
    return base


def printable(text: str) -> str:
    """Text without the control characters XML forbids (a DNS name may carry any byte):
    each is escaped visibly (`\\x07`), so the SVG stays well-formed and Graphviz accepts
    the label. Tabs and newlines stay: tooltips are several lines."""
    return visible(text, keep="\t\n\r")


def token(name: str) -> str:
    """A class-name-safe form of a namespace name (names are DNS labels; be safe anyway)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def node_classes(node: GraphNode) -> str:
    parts = [f"kind-{node.kind.value}"]
    parts.append(f"ns-{token(node.namespace)}" if node.namespace else "outside")
    if node.flagged:
        parts.append("flagged")
    if node.idle:
        parts.append("idle")
    return " ".join(parts)


def link_classes(link: GraphLink, source: GraphNode, target: GraphNode) -> str:
    parts = [f"from-{link.source}", f"to-{link.target}"]
    for end in (source, target):
        cls = f"ns-{token(end.namespace)}" if end.namespace else "outside"
        if cls not in parts:
            parts.append(cls)
    if link.flagged:
        parts.append("flagged")
    if link.hub:
        parts.append("hub")
    return " ".join(parts)
