"""One Hubble flow file -> its FlowTable, its facts, counters and warnings.

`discover/flows/sources.py` calls this for inputs it sniffed as Hubble JSON and wraps the
result like any other input's, so Hubble files are read in parallel, merged in input order
and mixed freely with captures and agent summaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from discover.flows.flowtable import FlowTable
from discover.flows.hubble_connections import HubbleConnections
from discover.flows.hubble_facts import FactsCollector, HubbleFacts
from discover.reading.hubble import HubbleFile


@dataclass(frozen=True, slots=True)
class HubbleRead:
    table: FlowTable
    facts: HubbleFacts
    counters: dict[str, int]
    warnings: tuple[str, ...]
    flows: int
    dns_answers: int
    compressed: bool
    complete: bool


def read_hubble_file(
    path: Path, on_progress: Callable[[int, int], None] | None = None
) -> HubbleRead:
    """Counters: the reader's (see `HubbleFile`), the flows by verdict ("verdict_forwarded",
    ...), "icmp" (flows without a port: no NetworkPolicy rule), "sock" (socket-level
    translation events, which repeat a connection's L3/L4 flows), "sctp" (SCTP flows, as
    the packet readers count SCTP packets) and "dns_answers" (L7 DNS responses with
    addresses)."""
    source = HubbleFile(path, on_progress=on_progress)
    table = FlowTable()
    connections = HubbleConnections(table)
    collector = FactsCollector(str(path))
    counters: dict[str, int] = {}
    for flow in source:
        verdict_key = f"verdict_{flow.verdict.value.lower()}"
        counters[verdict_key] = counters.get(verdict_key, 0) + 1
        collector.add(flow)
        if flow.protocol is None:
            counters["icmp"] = counters.get("icmp", 0) + 1
            continue
        if flow.flow_type == "SOCK":
            counters["sock"] = counters.get("sock", 0) + 1
            continue
        if flow.protocol.value == "SCTP":
            counters["sctp"] = counters.get("sctp", 0) + 1
        if flow.verdict.happened:
            connections.add(flow)
    connections.finish()
    counters.update(source.counters)
    counters["dns_answers"] = connections.dns_answers
    lost = source.counters.get("flows_lost", 0)
    return HubbleRead(
        table=table,
        facts=collector.facts(flows_lost=lost),
        counters=counters,
        warnings=tuple(source.warnings),
        flows=source.counters.get("flows", 0),
        dns_answers=connections.dns_answers,
        compressed=source.compressed,
        complete=not source.counters.get("truncated", 0),
    )
