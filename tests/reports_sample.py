"""The bundled shop sample run through the pipeline, as a ReportInput for report tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from discover.inventory.files import load_inventory_files
from discover.sources import load_inputs
from discover.synthesis import SynthesisOptions, propose
from discover.workload_graph import build_graph
from reports.model import ReportInput

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "shop"


@cache
def shop_report() -> ReportInput:
    capture = SAMPLE / "capture.pcap"
    loaded = load_inputs([capture], jobs=1)
    flows, dns = loaded.table.flows_frame(), loaded.table.dns_frame()
    inventory = load_inventory_files([SAMPLE / "inventory.json"])
    graph = build_graph(flows, dns, inventory)
    proposal = propose(graph, inventory, SynthesisOptions())
    counters = {"packets": loaded.packets, "dns_answers": loaded.dns_answers}
    return ReportInput(
        proposal=proposal, graph=graph, flows=flows, dns=dns, inventory=inventory,
        sources=("samples/shop/capture.pcap",), counters=counters,
        warnings=tuple(loaded.warnings),
    )
