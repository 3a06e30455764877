"""Each flow as seen on the wire, with what the workload graph resolved it to: the rows of
the report's Flows table and of flows.csv in `write_tables`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from discover.enrichment.peers import ExternalPeer, FlowKey
from discover.enrichment.workload_graph import WorkloadGraph
from discover.flows.flowtable import FlowRow

RESOLVED_COLUMNS = ("source", "destination", "service", "fqdn")


@dataclass(frozen=True, slots=True)
class ResolvedFlow:
    """`flow` and the graph's resolution of it. Each text joins several values with "; "
    (an IP that changed owner, a Service with several backends); empty when unknown."""

    flow: FlowRow
    source: str
    destination: str
    service: str
    fqdn: str


def resolve_flows(flows: Sequence[FlowRow], graph: WorkloadGraph) -> list[ResolvedFlow]:
    """Every flow, in order, with the labels of the edges it is evidence of."""
    found: dict[FlowKey, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for edge in graph.edges:
        service = edge.destination.via_service
        for key in edge.evidence:
            row = found[key]
            row["source"].add(edge.source.label())
            row["destination"].add(edge.destination.label())
            if service is not None:
                row["service"].add(f"{service.namespace}/{service.name}:{service.port}")
            named = edge.destination if isinstance(edge.destination, ExternalPeer) else None
            row["fqdn"].add((named.fqdn or "") if named else "")
    out = []
    for flow in flows:
        row = found.get(FlowKey(flow.src_ip, flow.dst_ip, flow.protocol, flow.dst_port), {})
        texts = [_joined(row.get(column, set())) for column in RESOLVED_COLUMNS]
        out.append(ResolvedFlow(flow, *texts))
    return out


def _joined(values: set[str]) -> str:
    return "; ".join(sorted(v for v in values if v))
