"""The per-workload part of a large report as data: a JSON document in the page that the
script turns into one workload's section when a reader searches for it or picks it.

At 5,000 workloads the expanded sections (an edge table each, the policy with its
comments and YAML) made a page of hundreds of megabytes that no browser lays out. Here
every workload is one compact row: strings are stored once in a table and referred to
by index, an edge is five numbers. The policies' rules and YAML stay in policies.yaml
(they are as large as it is); the section says which documents hold them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from discover.escaping.html_text import json_script_element
from discover.inventory.model import WorkloadRef
from discover.synthesis.proposal import EdgeDecision, PolicyDocument
from discover.verification.changes import WorkloadChange
from reports.changes import external_peers
from reports.html_util import esc

DATA_ID = "workload-data"
# An edge's verdict as the script shows it: allowed, denied on purpose, not governed.
VERDICTS = {True: 0, False: 1, None: 2}
SCHEMA = ("namespace", "kind", "name", "seen", "flags", "newly denied (lines of pieces)",
          "outside (lines of pieces)", "policies",
          "edges, 5 numbers each: direction*3+verdict, peer, port, connections, reason")
EDGE_FIELDS = 5
# Lines listing names ("denies all ingress from 480 workload(s) ... (a, b, c, +477 more)")
# share most of their pieces but not the whole: stored as pieces, each once.
_PIECES = re.compile(r"(, |; | \(|\)|: )")


class _Strings:
    """A string table: each distinct string once, referred to by its index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.index)
        return found

    def pieces(self, line: str) -> list[int]:
        return [self(piece) for piece in _PIECES.split(line) if piece]

    def table(self) -> list[str]:
        return list(self.index)


def _edge_row(decision: EdgeDecision, strings: _Strings) -> list[int]:
    edge = decision.edge
    ingress = decision.direction == "ingress"
    peer = edge.source if ingress else edge.destination
    via = edge.destination.via_service
    label = peer.label() + (f" (via Service {via.namespace}/{via.name}:{via.port})"
                            if via else "")
    port = f"{edge.protocol} {edge.port}" + (f" ({edge.port_name})" if edge.port_name else "")
    reason = decision.reason
    if decision.allowed is True and decision.policy:
        reason = f"{decision.policy}: {reason}"
    return [(0 if ingress else 1) * 3 + VERDICTS[decision.allowed], strings(label),
            strings(port), edge.connections, strings(reason)]


def workload_rows(workloads: Sequence[WorkloadRef],
                  documents: Mapping[str, list[PolicyDocument]],
                  decisions: Mapping[WorkloadRef, list[EdgeDecision]],
                  changes: Mapping[WorkloadRef, WorkloadChange],
                  flagged: Mapping[str, list[str]], seen: set[WorkloadRef]) -> dict[str, Any]:
    strings = _Strings()
    rows = []
    for ref in workloads:
        docs = documents.get(str(ref), [])
        change = changes.get(ref)
        outside = []
        for document in docs:
            outside.append(strings.pieces("ingress from: " + ("; ".join(
                external_peers(document.manifest, "ingress")) or "nothing")))
            outside.append(strings.pieces("egress to: " + ("; ".join(
                external_peers(document.manifest, "egress")) or "nothing")))
        ordered = sorted(decisions.get(ref, []), key=lambda d: (
            d.direction, d.edge.source.label(), d.edge.destination.label(), d.edge.protocol,
            d.edge.port))
        rows.append([
            strings(ref.namespace), strings(ref.kind.lower()), strings(ref.name),
            1 if ref in seen else 0, [strings(rule) for rule in flagged.get(str(ref), [])],
            [strings.pieces(line) for line in (change.lines() if change else [])], outside,
            [strings(f"{d.namespace}/{d.name}") for d in docs],
            [number for decision in ordered for number in _edge_row(decision, strings)],
        ])
    return {"schema": list(SCHEMA), "strings": strings.table(), "workloads": rows}


def workload_finder(data: dict[str, Any], namespaces: Sequence[str]) -> str:
    """The search box, the namespace filter, the result list and the section the script
    fills, with the data behind them."""
    options = "".join(f'<option value="{esc(ns)}">{esc(ns)}</option>' for ns in namespaces)
    return (
        '<div class="wl-finder" data-workloads="' + DATA_ID + '">'
        '<div class="table-tools"><input type="search" data-role="wl-search" '
        'placeholder="find a workload (name, namespace, peer, rule)" '
        'aria-label="find a workload">'
        '<label>namespace <select data-role="wl-namespace"><option value="">all</option>'
        f'{options}</select></label>'
        '<label><input type="checkbox" data-role="wl-flagged"> flagged or denying only'
        '</label><span class="count" data-role="wl-count"></span></div>'
        '<ul class="wl-results plain" data-role="wl-results"></ul>'
        '<div class="wl-shown" data-role="wl-shown"></div></div>'
        + json_script_element(DATA_ID, json.dumps(data, ensure_ascii=False,
                                                   separators=(",", ":")))
    )
