"""The service graph as drawn: one node per workload or outside party, one link per pair.

The workload graph has an edge per (source, destination, protocol, port); a picture wants
one arrow per pair of boxes labelled with its ports. External destinations reached by name
become one node per FQDN (its addresses in the tooltip); IP-only externals one node per
address. Items a finding or a denied edge points at are `flagged` (drawn in the warning
colour). Ids (`n0`, `e0`) follow the sorted node keys, so the output is deterministic.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass

from discover.enrichment.peers import (
    ClusterUnknownPeer,
    EarlierPodPeer,
    ExternalPeer,
    GraphEdge,
    LoadBalancerPeer,
    NodePeer,
    Peer,
    WorkloadPeer,
)
from discover.enrichment.workload_graph import WorkloadGraph
from discover.synthesis.proposal import Proposal, Severity

MAX_PORTS_IN_LABEL = 3
HUB_DEGREE = 8  # a node linked to this many others (and 30 % of all) is a hub
HUB_LINKS_UP_TO = 60  # nodes: bigger pictures leave hub links out (see `drawable`)


class NodeKind(enum.StrEnum):
    WORKLOAD = "workload"
    FQDN = "fqdn"  # an external destination reached through a DNS name
    EXTERNAL_IP = "external-ip"  # an external address with no name
    LOAD_BALANCER = "load-balancer"
    NODE = "node"  # a cluster node (kubelet probes, host-network pods)
    UNRESOLVED = "unresolved"  # a cluster address no inventory object explains


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    key: str  # stable identity: the workload label, "fqdn:NAME", "ip:ADDR", ...
    kind: NodeKind
    label: str  # the short name in the box
    detail: str  # the second line: workload kind, "external", addresses
    namespace: str | None  # the cluster it is drawn in; None outside any namespace
    flagged: bool
    title: str  # the tooltip: full name, findings
    idle: bool = False  # a workload of the inventory that no traffic touched


@dataclass(frozen=True, slots=True)
class GraphLink:
    id: str
    source: str  # node ids
    target: str
    ports: tuple[str, ...]  # "TCP/8080", sorted
    connections: int
    flagged: bool
    title: str
    hub: bool = False  # to or from a hub (cluster DNS, a scraper): kept out of the layering

    @property
    def label(self) -> str:
        shown = list(self.ports[:MAX_PORTS_IN_LABEL])
        if len(self.ports) > MAX_PORTS_IN_LABEL:
            shown.append(f"+{len(self.ports) - MAX_PORTS_IN_LABEL}")
        return ", ".join(shown)


@dataclass(frozen=True, slots=True)
class ServiceGraph:
    nodes: tuple[GraphNode, ...]
    links: tuple[GraphLink, ...]

    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({n.namespace for n in self.nodes if n.namespace is not None}))

    def node(self, node_id: str) -> GraphNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


@dataclass(frozen=True, slots=True)
class _Shape:
    key: str
    kind: NodeKind
    label: str
    detail: str
    namespace: str | None


def _shape(peer: Peer) -> _Shape:
    match peer:
        case WorkloadPeer(workload=ref):
            return _Shape(str(ref), NodeKind.WORKLOAD, ref.name, ref.kind.lower(), ref.namespace)
        case ExternalPeer(fqdn=str(fqdn)) if fqdn:
            return _Shape(f"fqdn:{fqdn}", NodeKind.FQDN, fqdn, "external name", None)
        case LoadBalancerPeer(ip=ip):
            return _Shape(f"lb:{ip}", NodeKind.LOAD_BALANCER, str(ip), "load balancer", None)
        case NodePeer(ip=ip, node_name=node_name):  # a host-network pod is drawn as its node
            name = node_name or str(ip)
            return _Shape(f"node:{name}", NodeKind.NODE, name, "node", None)
        case ClusterUnknownPeer(ip=ip) | EarlierPodPeer(ip=ip):
            return _Shape(f"ip:{ip}", NodeKind.UNRESOLVED, str(ip), peer.kind, None)
        case ExternalPeer(ip=ip):
            return _Shape(f"ip:{ip}", NodeKind.EXTERNAL_IP, str(ip), "external IP", None)


def edge_key(edge: GraphEdge) -> tuple[str, str, str, int]:
    """What identifies an edge across the graph and the proposal's decisions."""
    return (edge.source.label(), edge.destination.label(), edge.protocol, edge.port)


def denied_edges(proposal: Proposal | None) -> dict[tuple[str, str, str, int], list[str]]:
    """Edges the proposal denies on purpose, with the reasons."""
    out: dict[tuple[str, str, str, int], list[str]] = defaultdict(list)
    for decision in proposal.decisions if proposal else ():
        if decision.allowed is False:
            out[edge_key(decision.edge)].append(f"{decision.direction}: {decision.reason}")
    return out


def build_service_graph(graph: WorkloadGraph, proposal: Proposal | None = None,
                        idle: tuple[str, ...] = ()) -> ServiceGraph:
    """`idle`: workload labels (`ns/kind/name`) to draw although no traffic touched them."""
    shapes: dict[str, _Shape] = {}
    addresses: dict[str, set[str]] = defaultdict(set)
    pairs: dict[tuple[str, str], list[GraphEdge]] = defaultdict(list)
    for edge in graph.edges:
        ends = []
        for peer in (edge.source, edge.destination):
            shape = _shape(peer)
            shapes.setdefault(shape.key, shape)
            if peer.ip is not None and shape.kind is not NodeKind.WORKLOAD:
                addresses[shape.key].add(str(peer.ip))
            ends.append(shape.key)
        pairs[(ends[0], ends[1])].append(edge)
    for label in idle:
        if label not in shapes:
            namespace, kind, name = label.split("/", 2)
            shapes[label] = _Shape(label, NodeKind.WORKLOAD, name, kind, namespace)
    warnings = _flagged_subjects(proposal)
    denied = denied_edges(proposal)
    flagged_keys = {key for key, shape in shapes.items() if shape.kind is NodeKind.UNRESOLVED}
    links_flagged: dict[tuple[str, str], list[str]] = {}
    for pair, edges in pairs.items():
        reasons = [r for e in edges for r in denied.get(edge_key(e), [])]
        links_flagged[pair] = reasons
    ids = {key: f"n{index}" for index, key in enumerate(sorted(shapes))}
    idle_keys = set(idle) - {k for pair in pairs for k in pair}
    nodes = []
    for key in sorted(shapes):
        shape = shapes[key]
        findings = warnings.get(key, [])
        title_lines = [key.split(":", 1)[1] if shape.kind is not NodeKind.WORKLOAD else key]
        if addresses.get(key) and shape.kind is NodeKind.FQDN:
            title_lines.append("addresses: " + ", ".join(sorted(addresses[key])))
        if key in idle_keys:
            title_lines.append("no traffic seen")
        title_lines.extend(findings)
        nodes.append(GraphNode(
            id=ids[key], key=key, kind=shape.kind, label=shape.label, detail=shape.detail,
            namespace=shape.namespace, flagged=bool(findings) or key in flagged_keys,
            title="\n".join(title_lines), idle=key in idle_keys,
        ))
    hubs = _hubs(pairs, len(shapes))
    hubs |= {_shape(e.destination).key for e in graph.edges if e.destination.is_cluster_dns}
    links = []
    for index, pair in enumerate(sorted(pairs, key=lambda p: (ids[p[0]], ids[p[1]]))):
        edges = pairs[pair]
        ports = sorted({f"{e.protocol}/{e.port}" for e in edges},
                       key=lambda p: (p.split("/")[0], int(p.split("/")[1])))
        connections = sum(e.connections for e in edges)
        reasons = links_flagged[pair]
        title = [f"{shapes[pair[0]].label} -> {shapes[pair[1]].label}",
                 f"{', '.join(ports)}: {connections} connection(s)", *sorted(set(reasons))]
        links.append(GraphLink(
            id=f"e{index}", source=ids[pair[0]], target=ids[pair[1]], ports=tuple(ports),
            connections=connections, flagged=bool(reasons), title="\n".join(title),
            hub=pair[0] in hubs or pair[1] in hubs,
        ))
    return ServiceGraph(tuple(nodes), tuple(links))


def drawable(service: ServiceGraph,
             max_nodes: int = HUB_LINKS_UP_TO) -> tuple[ServiceGraph, int]:
    """The graph as it can be laid out: past `max_nodes` nodes the hub links (every
    workload to the cluster DNS, a scraper to every workload) are left out of the picture,
    flagged ones excepted. They would make it unreadable, and Graphviz needs minutes to
    route a few hundred such links through the namespace clusters. Returns the graph and
    how many links were left out."""
    if len(service.nodes) <= max_nodes:
        return service, 0
    kept = tuple(link for link in service.links if link.flagged or not link.hub)
    return ServiceGraph(service.nodes, kept), len(service.links) - len(kept)


def _hubs(pairs: dict[tuple[str, str], list[GraphEdge]], node_count: int) -> set[str]:
    """Nodes that talk to (or hear from) nearly everybody: the cluster DNS, a metrics
    scraper. Their links would drag every other node into their rank."""
    threshold = max(HUB_DEGREE, -(-node_count * 3 // 10))
    out_degree: dict[str, int] = defaultdict(int)
    in_degree: dict[str, int] = defaultdict(int)
    for source, target in pairs:
        out_degree[source] += 1
        in_degree[target] += 1
    return {k for k, d in out_degree.items() if d >= threshold} | {
        k for k, d in in_degree.items() if d >= threshold}


def _flagged_subjects(proposal: Proposal | None) -> dict[str, list[str]]:
    """Node key -> the warning/critical findings about it."""
    out: dict[str, list[str]] = defaultdict(list)
    for finding in proposal.findings if proposal else ():
        if finding.severity is Severity.INFO:
            continue
        out[finding.subject].append(f"{finding.severity.value}: {finding.rule}")
    return out


def namespace_overview(service: ServiceGraph) -> ServiceGraph:
    """One node per namespace (outside nodes kept), links aggregated: the picture for
    clusters too large to read workload by workload. Ids start with "o" so both graphs
    can live in one page."""
    key_of = {n.id: (f"ns:{n.namespace}" if n.namespace else n.key) for n in service.nodes}
    members: dict[str, list[GraphNode]] = defaultdict(list)
    for node in service.nodes:
        members[key_of[node.id]].append(node)
    ids = {key: f"on{index}" for index, key in enumerate(sorted(members))}
    nodes = []
    for key in sorted(members):
        group = members[key]
        if key.startswith("ns:"):
            namespace = key[3:]
            flagged = [n.label for n in group if n.flagged]
            title = [f"namespace {namespace}: {len(group)} workload(s)"]
            if flagged:
                title.append("flagged: " + ", ".join(sorted(flagged)))
            nodes.append(GraphNode(ids[key], key, NodeKind.WORKLOAD, namespace,
                                   f"{len(group)} workloads", None, bool(flagged),
                                   "\n".join(title)))
        else:
            nodes.append(GraphNode(ids[key], group[0].key, group[0].kind, group[0].label,
                                   group[0].detail, None, group[0].flagged, group[0].title))
    merged: dict[tuple[str, str], list[GraphLink]] = defaultdict(list)
    for link in service.links:
        pair = (ids[key_of[link.source]], ids[key_of[link.target]])
        merged[pair].append(link)
    links = []
    for index, pair in enumerate(sorted(merged)):
        group_links = merged[pair]
        ports = sorted({p for link in group_links for p in link.ports},
                       key=lambda p: (p.split("/")[0], int(p.split("/")[1])))
        connections = sum(link.connections for link in group_links)
        links.append(GraphLink(f"oe{index}", pair[0], pair[1], tuple(ports), connections,
                               any(link.flagged for link in group_links),
                               f"{len(group_links)} workload pair(s), {connections} "
                               "connection(s)", all(link.hub for link in group_links)))
    return ServiceGraph(tuple(nodes), tuple(links))
