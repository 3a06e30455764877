"""The truth table of workload pairs: which ports each workload may open to each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from discover.inventory.model import Inventory, Pod, WorkloadRef
from discover.netpol.endpoints import namespace_labels, pod_endpoint
from discover.netpol.evaluate import PodEndpoint, PolicyEvaluator
from discover.netpol.ports import ConnectionSet


@dataclass(frozen=True, slots=True)
class MatrixCell:
    source: WorkloadRef
    destination: WorkloadRef
    allowed: ConnectionSet


def workload_endpoints(inventory: Inventory) -> dict[WorkloadRef, PodEndpoint]:
    """One pod a workload (pods of a workload share a template: a live one, first by
    name), as the evaluator sees it. Host-network pods are skipped: policies don't apply
    to them."""
    labels = namespace_labels(inventory)
    representatives: dict[WorkloadRef, Pod] = {}
    for pod in sorted(inventory.pods, key=lambda p: (p.workload, p.deleted is not None, p.name)):
        if not pod.host_network:
            representatives.setdefault(pod.workload, pod)
    return {
        ref: pod_endpoint(pod, labels.get(pod.namespace)) for ref, pod in representatives.items()
    }


def workload_matrix(evaluator: PolicyEvaluator, inventory: Inventory) -> list[MatrixCell]:
    """Allowed connections between every ordered pair of workloads (see
    `workload_endpoints`), self-pairs left out. Quadratic: for a table people read; the
    counts of a whole cluster come from `netpol.classes`."""
    endpoints = workload_endpoints(inventory)
    ordered = sorted(endpoints)
    return [
        MatrixCell(src, dst, evaluator.connections(endpoints[src], endpoints[dst]))
        for src in ordered
        for dst in ordered
        if src != dst
    ]


def render_matrix(cells: Sequence[MatrixCell]) -> str:
    """A text truth table: a row per source workload, a column per destination (numbered,
    names in the row labels), each cell the allowed ports, `all` or `-`."""
    refs = sorted({c.source for c in cells} | {c.destination for c in cells})
    if not refs:
        return "no workloads in the inventory"
    number = {ref: index + 1 for index, ref in enumerate(refs)}
    grid = {(c.source, c.destination): _cell(c.allowed) for c in cells}
    rows = [
        [f"{number[src]}. {src}"] + [grid.get((src, dst), "self") for dst in refs] for src in refs
    ]
    header = ["source \\ destination"] + [str(number[dst]) for dst in refs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _cell(allowed: ConnectionSet) -> str:
    if allowed.is_all:
        return "all"
    if allowed.is_empty:
        return "-"
    return str(allowed).replace(" ", ":")
