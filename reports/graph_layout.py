"""A small built-in layered layout, used when Graphviz `dot` is not installed.

Namespaces and outside nodes are placed in columns by the longest path that reaches
them (cycles broken in a fixed order), a namespace's workloads stacked inside its box,
groups in a column ordered by where their predecessors sit. Edges are cubic curves
from the right side of a box to the left side of the next; a link that goes back or
stays in its column loops out to the right. Plain, but every box, arrow and label is
there and nothing depends on the platform.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass

from reports.graph_model import GraphNode, ServiceGraph
from reports.graph_style import (
    CLUSTER_BORDER,
    CLUSTER_FILL,
    EDGE_COLOR,
    EDGE_LABEL_COLOR,
    FLAG_EDGE_COLOR,
    FONT,
    MUTED,
    link_classes,
    node_classes,
    node_style,
    printable,
    token,
)

NODE_H = 40
NODE_GAP = 10
CLUSTER_PAD = 10
CLUSTER_HEADER = 24
GROUP_GAP = 26
COLUMN_GAP = 150
MARGIN = 20
CHAR_W = 7.0  # mean advance of an 11 px sans-serif glyph, bold a little wider


@dataclass(frozen=True, slots=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _group_of(node: GraphNode) -> str:
    return f"ns:{node.namespace}" if node.namespace is not None else node.id


def _ranks(groups: list[str], successors: dict[str, set[str]]) -> dict[str, int]:
    """Longest-path layering after dropping the edges that close a cycle (DFS order)."""
    state: dict[str, int] = {}
    order: list[str] = []
    forward: dict[str, set[str]] = defaultdict(set)
    for root in groups:
        if root in state:
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(successors[root]))]
        state[root] = 1
        while stack:
            current, pending = stack[-1]
            if pending:
                nxt = pending.pop(0)
                if state.get(nxt) == 1:
                    continue  # back edge: ignored for layering
                forward[current].add(nxt)
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, sorted(successors[nxt])))
            else:
                state[current] = 2
                order.append(current)
                stack.pop()
    rank = dict.fromkeys(groups, 0)
    for group in reversed(order):  # a topological order of the forward edges
        for nxt in forward[group]:
            rank[nxt] = max(rank[nxt], rank[group] + 1)
    return rank


def _node_width(node: GraphNode) -> float:
    return max(110.0, len(node.label) * CHAR_W + 26, len(node.detail) * 5.6 + 26)


def _columns(members: list[str], links: list[tuple[str, str]]) -> list[list[str]]:
    """`members` in layered columns by the links among them (hub links left out)."""
    successors: dict[str, set[str]] = {m: set() for m in members}
    for a, b in links:
        if a != b and a in successors and b in successors:
            successors[a].add(b)
    rank = _ranks(sorted(members), successors)
    columns: dict[int, list[str]] = defaultdict(list)
    for member in sorted(members):
        columns[rank[member]].append(member)
    return [columns[r] for r in sorted(columns)]


@dataclass(frozen=True, slots=True)
class _Group:
    """A namespace box (or a lone outside node): its columns of nodes and its size."""

    columns: list[list[GraphNode]]
    widths: list[float]
    width: float
    height: float
    cluster: bool


def _group(nodes: list[GraphNode], links: list[tuple[str, str]], cluster: bool) -> _Group:
    by_id = {n.id: n for n in nodes}
    columns = [[by_id[i] for i in sorted(col, key=lambda i: (by_id[i].label, i))]
               for col in _columns(list(by_id), links)]
    widths = [max(_node_width(n) for n in col) for col in columns]
    inner_w = sum(widths) + (len(widths) - 1) * (COLUMN_GAP * 0.6)
    inner_h = max(len(col) * NODE_H + (len(col) - 1) * NODE_GAP for col in columns)
    pad_w = 2 * CLUSTER_PAD if cluster else 0
    pad_h = CLUSTER_HEADER + 2 * CLUSTER_PAD if cluster else 0
    return _Group(columns, widths, inner_w + pad_w, inner_h + pad_h, cluster)


def layout(service: ServiceGraph) -> tuple[dict[str, Box], dict[str, Box], float, float]:
    """Node boxes by id, namespace boxes by name, total width and height."""
    members: dict[str, list[GraphNode]] = defaultdict(list)
    for node in service.nodes:
        members[_group_of(node)].append(node)
    group_of = {node.id: _group_of(node) for node in service.nodes}
    layered = [(link.source, link.target) for link in service.links if not link.hub]
    outer = [(group_of[a], group_of[b]) for a, b in layered if group_of[a] != group_of[b]]
    predecessors: dict[str, set[str]] = defaultdict(set)
    for a, b in outer:
        predecessors[b].add(a)
    groups = {g: _group(nodes, layered, g.startswith("ns:")) for g, nodes in members.items()}
    nodes_out: dict[str, Box] = {}
    clusters: dict[str, Box] = {}
    position: dict[str, float] = {}
    x = float(MARGIN)
    total_h = 0.0
    for column in _columns(list(members), outer):
        # Barycenter of the predecessors already placed keeps arrows short and straight.
        def weight(group: str) -> tuple[float, str]:
            placed = [position[p] for p in predecessors[group] if p in position]
            return (sum(placed) / len(placed) if placed else float("inf"), group)

        ordered = sorted(column, key=weight)
        col_w = max(groups[g].width for g in ordered)
        y = float(MARGIN)
        for name in ordered:
            group = groups[name]
            position[name] = y + group.height / 2
            inner_x, inner_y = x, y
            if group.cluster:
                clusters[name[3:]] = Box(x, y, group.width, group.height)
                inner_x, inner_y = x + CLUSTER_PAD, y + CLUSTER_HEADER + CLUSTER_PAD
            for nodes, width in zip(group.columns, group.widths, strict=True):
                node_y = inner_y
                for node in nodes:
                    nodes_out[node.id] = Box(inner_x, node_y, width, NODE_H)
                    node_y += NODE_H + NODE_GAP
                inner_x += width + COLUMN_GAP * 0.6
            y += group.height + GROUP_GAP
        total_h = max(total_h, y - GROUP_GAP + MARGIN)
        x += col_w + COLUMN_GAP
    return nodes_out, clusters, max(x - COLUMN_GAP + MARGIN + 60, 2.0 * MARGIN), \
        max(total_h, 2.0 * MARGIN)


def _text(x: float, y: float, text: str, size: int, *, bold: bool = False,
          fill: str = "#1f2328", anchor: str = "middle") -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-family="{FONT},'
            f'Arial,sans-serif" font-size="{size}"{weight} fill="{fill}">'
            f"{html.escape(printable(text))}</text>")


def svg_by_builtin_layout(service: ServiceGraph) -> str:
    boxes, clusters, width, height = layout(service)
    # Marker ids must be unique in the page that holds several graphs.
    arrow = f"arrow-{service.nodes[0].id}" if service.nodes else "arrow"
    parts = [
        f'<svg width="{width:.0f}pt" height="{height:.0f}pt" viewBox="0 0 {width:.1f} '
        f'{height:.1f}" xmlns="http://www.w3.org/2000/svg">',
        "<defs>",
        f'<marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{EDGE_COLOR}"/></marker>',
        f'<marker id="{arrow}-flagged" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{FLAG_EDGE_COLOR}"/></marker>',
        "</defs>",
        f'<g id="graph-{arrow}" class="graph"><title>service graph</title>',
        f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="white"/>',
    ]
    for namespace in sorted(clusters):
        box = clusters[namespace]
        parts.append(f'<g id="ns-{token(namespace)}" class="namespace ns-{token(namespace)}">'
                     f"<title>{html.escape(printable('namespace ' + namespace))}</title>")
        parts.append(f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
                     f'height="{box.h:.1f}" rx="8" fill="{CLUSTER_FILL}" '
                     f'stroke="{CLUSTER_BORDER}"/>')
        parts.append(_text(box.x + 10, box.y + 17, namespace, 12, bold=True, anchor="start"))
        parts.append("</g>")
    nodes = {node.id: node for node in service.nodes}
    for link in service.links:
        parts.append(_link_svg(link.id, link_classes(link, nodes[link.source],
                                                     nodes[link.target]),
                               boxes[link.source], boxes[link.target], link.label,
                               link.title, link.flagged, arrow))
    for node in service.nodes:
        parts.append(_node_svg(node, boxes[node.id]))
    parts.append("</g></svg>")
    return "\n".join(parts)


def _node_svg(node: GraphNode, box: Box) -> str:
    style = node_style(node)
    dash = ' stroke-dasharray="4 3"' if style.dashed else ""
    stroke_w = 2 if node.flagged else 1.2
    return "".join([
        f'<g id="{node.id}" class="node {node_classes(node)}">',
        f"<title>{html.escape(printable(node.title))}</title>",
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
        f'rx="6" fill="{style.fill}" stroke="{style.border}" stroke-width="{stroke_w}"{dash}/>',
        _text(box.x + box.w / 2, box.y + 17, node.label, 11, bold=True, fill=style.text),
        _text(box.x + box.w / 2, box.y + 31, node.detail, 9, fill=MUTED),
        "</g>",
    ])


def _link_svg(link_id: str, classes: str, src: Box, dst: Box, label: str, title: str,
              flagged: bool, arrow: str) -> str:
    x1, y1 = src.x + src.w, src.cy
    if dst.x > x1:  # forward: right side to left side
        x2, y2 = dst.x, dst.cy
        bend = max(40.0, (x2 - x1) / 2)
        c1, c2 = (x1 + bend, y1), (x2 - bend, y2)
    else:  # backwards or within a column: loop out on the right
        x2, y2 = dst.x + dst.w, dst.cy
        reach = max(x1, x2) + 50 + abs(y2 - y1) * 0.15
        c1, c2 = (reach, y1), (reach, y2)
    # The curve's point at t=0.5 carries the label.
    mx = (x1 + 3 * c1[0] + 3 * c2[0] + x2) / 8
    my = (y1 + 3 * c1[1] + 3 * c2[1] + y2) / 8
    color = FLAG_EDGE_COLOR if flagged else EDGE_COLOR
    dash = ' stroke-dasharray="5 3"' if flagged else ""
    marker = f"{arrow}-flagged" if flagged else arrow
    label_w = len(label) * 5.4 + 8
    return "".join([
        f'<g id="{link_id}" class="edge {classes}">',
        f"<title>{html.escape(printable(title))}</title>",
        f'<path d="M{x1:.1f},{y1:.1f} C{c1[0]:.1f},{c1[1]:.1f} {c2[0]:.1f},{c2[1]:.1f} '
        f'{x2:.1f},{y2:.1f}" fill="none" stroke="{color}" stroke-width="1.2"{dash} '
        f'marker-end="url(#{marker})"/>',
        f'<rect x="{mx - label_w / 2:.1f}" y="{my - 8:.1f}" width="{label_w:.1f}" height="13" '
        'fill="white" fill-opacity="0.85"/>',
        _text(mx, my + 2, label, 9, fill=FLAG_EDGE_COLOR if flagged else EDGE_LABEL_COLOR),
        "</g>",
    ])
