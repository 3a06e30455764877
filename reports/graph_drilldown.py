"""One namespace of a large service graph: its workloads and their links, with every
other namespace folded into one node.

Past a few hundred workloads a node-per-workload picture is unreadable, and Graphviz
needs minutes for it. The report then shows the namespace overview
(`graph_model.namespace_overview`) and, for the namespace a reader picks, this
drill-down: a picture of a few dozen nodes whatever the cluster's size.
"""

from __future__ import annotations

from collections import defaultdict

from reports.graph_model import GraphLink, GraphNode, NodeKind, ServiceGraph


def _port_order(port: str) -> tuple[str, int]:
    protocol, number = port.split("/")
    return protocol, int(number)


def namespace_drilldown(service: ServiceGraph, namespace: str, prefix: str) -> ServiceGraph:
    """The workloads of `namespace`, the outside nodes they talk to, one node per other
    namespace they talk to (links to its workloads merged, with counts). Hub links
    (cluster DNS, scrapers) are left out unless flagged, as in the big picture. Ids start
    with `prefix` so that the picture can sit in a page beside others."""
    inside = {node.id for node in service.nodes if node.namespace == namespace}
    by_id = {node.id: node for node in service.nodes}

    def key(node_id: str) -> str:
        node = by_id[node_id]
        if node_id in inside or node.namespace is None:
            return node.key
        return f"ns:{node.namespace}"

    merged: dict[tuple[str, str], list[GraphLink]] = defaultdict(list)
    for link in service.links:
        if link.source not in inside and link.target not in inside:
            continue
        if link.hub and not link.flagged:
            continue
        merged[(key(link.source), key(link.target))].append(link)
    members: dict[str, list[GraphNode]] = defaultdict(list)
    for node_id in sorted(inside):
        members[by_id[node_id].key].append(by_id[node_id])
    for link in (link for links in merged.values() for link in links):
        for node_id in (link.source, link.target):
            members[key(node_id)].append(by_id[node_id])
    ids = {k: f"{prefix}n{index}" for index, k in enumerate(sorted(members))}
    nodes = []
    for k in sorted(members):
        group = members[k]
        if k.startswith("ns:") and group[0].id not in inside:
            other = k[3:]
            count = len({n.id for n in group})
            nodes.append(GraphNode(ids[k], k, NodeKind.WORKLOAD, other,
                                   f"namespace, {count} workload(s)", None,
                                   any(n.flagged for n in group),
                                   f"namespace {other}: {count} workload(s) linked with "
                                   f"{namespace}"))
        else:
            node = group[0]
            nodes.append(GraphNode(ids[k], node.key, node.kind, node.label, node.detail,
                                   node.namespace, node.flagged, node.title, node.idle))
    links = []
    for index, pair in enumerate(sorted(merged)):
        group_links = merged[pair]
        ports = sorted({p for link in group_links for p in link.ports}, key=_port_order)
        connections = sum(link.connections for link in group_links)
        title = (group_links[0].title if len(group_links) == 1 else
                 f"{len(group_links)} workload pair(s), {', '.join(ports)}: "
                 f"{connections} connection(s)")
        links.append(GraphLink(f"{prefix}e{index}", ids[pair[0]], ids[pair[1]], tuple(ports),
                               connections, any(link.flagged for link in group_links), title,
                               all(link.hub for link in group_links)))
    return ServiceGraph(tuple(nodes), tuple(links))


def strongest_links(service: ServiceGraph, limit: int) -> tuple[ServiceGraph, int]:
    """At most `limit` links: the flagged ones and then the most connections (ties by id),
    so that a namespace overview of a large cluster stays a picture. Returns the graph
    and how many links were left out; nodes are kept."""
    if len(service.links) <= limit:
        return service, 0
    ranked = sorted(service.links, key=lambda link: (not link.flagged, -link.connections,
                                                     link.id))
    kept = {link.id for link in ranked[:limit]}
    links = tuple(link for link in service.links if link.id in kept)
    return ServiceGraph(service.nodes, links), len(service.links) - len(links)
