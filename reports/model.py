"""What a report is made of (`ReportInput`) and the facts every report shows first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from discover.enrichment.peers import WorkloadPeer
from discover.enrichment.workload_graph import WorkloadGraph
from discover.flows.flowtable import DnsRow, FlowRow
from discover.inventory.model import Inventory, WorkloadRef
from discover.synthesis.proposal import Finding, Proposal, Severity, format_time
from discover.synthesis.render import ManifestTexts
from discover.verification.changes import Changes


@dataclass(frozen=True, slots=True)
class ReportInput:
    proposal: Proposal
    graph: WorkloadGraph
    flows: Sequence[FlowRow]  # the flow table's edges as seen on the wire
    dns: Sequence[DnsRow]  # the DNS table
    inventory: Inventory
    sources: tuple[str, ...]  # input files
    counters: Mapping[str, int]  # packets, records, parse errors, ...
    warnings: tuple[str, ...]  # reading/inventory warnings
    changes: Changes  # what the proposal newly denies, computed by the analysis
    # the documents' YAML as policies.yaml has it, written once (None: written on demand)
    manifests: ManifestTexts | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers. `flows` counts flow-table rows (edges on the wire),
    `connections` their connections; workloads and namespaces count those seen in
    traffic, `*_known` those the inventory has."""

    window_start: datetime | None
    window_end: datetime | None
    sources: tuple[str, ...]
    packets: int | None
    flows: int
    connections: int
    dns_rows: int
    edges: int
    workloads: tuple[WorkloadRef, ...]
    workloads_known: int
    namespaces: tuple[str, ...]
    namespaces_known: int
    policies: int
    findings: Mapping[Severity, int]
    warnings: tuple[str, ...]

    @property
    def window(self) -> str:
        return f"{format_time(self.window_start)} .. {format_time(self.window_end)}"

    @property
    def duration(self) -> str:
        if self.window_start is None or self.window_end is None:
            return "unknown"
        return format_duration((self.window_end - self.window_start).total_seconds())


def format_duration(seconds: float) -> str:
    """A compact human duration: 12 s, 5 min 3 s, 2 h 10 min, 3 d 4 h."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def observed_workloads(graph: WorkloadGraph) -> tuple[WorkloadRef, ...]:
    """Every workload on either side of an edge, sorted."""
    found = {
        peer.workload
        for edge in graph.edges
        for peer in (edge.source, edge.destination)
        if isinstance(peer, WorkloadPeer)
    }
    return tuple(sorted(found))


def inventory_workloads(inventory: Inventory) -> tuple[WorkloadRef, ...]:
    return tuple(sorted({pod.workload for pod in inventory.pods}))


def summarize(report: ReportInput) -> Summary:
    proposal, graph, flows = report.proposal, report.graph, report.flows
    start = proposal.window.start or graph.window_start
    end = proposal.window.end or graph.window_end
    workloads = observed_workloads(graph)
    namespaces = sorted({w.namespace for w in workloads} | set(proposal.namespaces))
    connections = sum(flow.connections for flow in flows)
    packets = report.counters.get("packets")
    # Callers may already have folded the inventory's notes into the warnings: once each.
    warnings = tuple(dict.fromkeys((*report.warnings, *report.inventory.notes)))
    return Summary(
        window_start=start,
        window_end=end,
        sources=tuple(report.sources),
        packets=int(packets) if packets is not None else None,
        flows=len(flows),
        connections=connections,
        dns_rows=len(report.dns),
        edges=len(graph.edges),
        workloads=workloads,
        workloads_known=len(inventory_workloads(report.inventory)),
        namespaces=tuple(namespaces),
        namespaces_known=len(report.inventory.namespaces),
        policies=len(proposal.documents),
        findings=Counter(finding.severity for finding in proposal.findings),
        warnings=warnings,
    )


def sorted_findings(proposal: Proposal) -> list[Finding]:
    return sorted(proposal.findings, key=lambda finding: finding.sort_key())
