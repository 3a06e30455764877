"""The agent's /metrics: its counters and gauges as Prometheus samples, table-driven."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.metrics import Sample

# (metric name, key in the agent's counters, help)
COUNTERS = (
    ("packets_total", "packets", "Packets read past the kernel filter."),
    ("kernel_received_total", "kernel_received",
     "Packets the kernel filter passed (read, queued or dropped)."),
    ("kernel_drops_total", "kernel_drops", "Packets the kernel dropped: ring or buffer full."),
    ("parse_errors_total", "parse_errors", "Packets the decoder could not read."),
    ("udp_sampled_out_total", "udp_sampled_out",
     "UDP datagrams skipped by load sampling (DNS never is)."),
    ("edges_dropped_total", "edges_dropped",
     "Events for new edges refused at the --max-edges cap (all protocols)."),
    ("edges_dropped_tcp_total", "edges_dropped_tcp", "Of edges_dropped: TCP connections."),
    ("edges_dropped_udp_total", "edges_dropped_udp",
     "Of edges_dropped: UDP flows (the total cap or the --max-udp-edges budget)."),
    ("edges_dropped_sctp_total", "edges_dropped_sctp", "Of edges_dropped: SCTP associations."),
    ("udp_edges_dropped_per_source_total", "udp_edges_dropped_per_source",
     "Of edges_dropped_udp: refused because their client had --max-udp-edges-per-source."),
    ("dns_rows_dropped_total", "dns_rows_dropped", "DNS rows refused at the cap."),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class InventoryFigures:
    writes: int
    lists: int
    pod_changes: int
    errors: int
    age: float | None


@dataclass(frozen=True, slots=True)
class AgentFigures:
    counters: Mapping[str, int]
    edges: int
    dns_rows: int
    window_start: float
    window_end: float | None
    window_open: bool
    checkpoint_age: float | None
    checkpoint_errors: int = 0
    inventory: InventoryFigures | None = None
    udp_edges: int = 0


def agent_samples(figures: AgentFigures) -> list[Sample]:
    samples = [
        Sample(name, "counter", help_text, figures.counters.get(key, 0))
        for name, key, help_text in COUNTERS
    ]
    samples += [
        Sample("edges", "gauge", "Distinct flow edges in the summary.", figures.edges),
        Sample("udp_edges", "gauge", "Of edges: UDP ones (bounded by --max-udp-edges).",
               figures.udp_edges),
        Sample("dns_answers", "gauge", "DNS (client, name, address) rows.", figures.dns_rows),
        Sample("window_start_timestamp_seconds", "gauge", "Start of the learning window.",
               figures.window_start),
        Sample("window_open", "gauge", "1 while the learning window runs.",
               1 if figures.window_open else 0),
        Sample("checkpoint_errors_total", "counter",
               "Checkpoints that failed, at start-up too (retried at the next interval).",
               figures.checkpoint_errors),
    ]  # fmt: skip
    if figures.window_end is not None:
        samples.append(
            Sample("window_end_timestamp_seconds", "gauge", "Planned end of the learning window.",
                   figures.window_end)
        )  # fmt: skip
    if figures.checkpoint_age is not None:
        samples.append(
            Sample("checkpoint_age_seconds", "gauge", "Seconds since the last checkpoint.",
                   figures.checkpoint_age)
        )  # fmt: skip
    inventory = figures.inventory
    if inventory is not None:
        samples += [
            Sample("inventory_writes_total", "counter", "Times inventory.json was written.",
                   inventory.writes),
            Sample("inventory_lists_total", "counter",
                   "Full lists of the inventory kinds (then pods are watched).", inventory.lists),
            Sample("inventory_pod_changes_total", "counter",
                   "Pod additions, deletions and IP changes the watch recorded.",
                   inventory.pod_changes),
            Sample("inventory_errors_total", "counter",
                   "API failures of the inventory watch (retried with backoff).",
                   inventory.errors),
        ]  # fmt: skip
        if inventory.age is not None:
            samples.append(
                Sample("inventory_age_seconds", "gauge",
                       "Seconds since inventory.json was written.", inventory.age)
            )  # fmt: skip
    return samples


def state_samples(checkpoint_failing: bool, set_aside: int) -> list[Sample]:
    """The state directory: a failing one is reported here, not by exiting."""
    return [
        Sample("checkpoint_failing", "gauge",
               "1 while checkpoints fail (state directory full, read-only, missing).",
               1 if checkpoint_failing else 0),
        Sample("checkpoints_set_aside_total", "counter",
               "Unreadable checkpoints moved aside at start-up (a new window began).",
               set_aside),
    ]  # fmt: skip
