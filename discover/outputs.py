"""Write what `analyze` found into its output directory (the DESIGN.md contract).

Every file is written whole to a temporary name and renamed, so a failed run never leaves
a half-written policies.yaml that someone might apply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from discover.analysis import Analysis
from discover.errors import ConfigurationError
from discover.flows.flowfiles import write_table
from discover.flows.flowtable import DnsRow, FlowRow
from discover.flows.sources import LoadedInputs
from discover.inventory.model import Inventory
from discover.synthesis.render import render_cilium_yaml, render_fqdn_yaml, render_policies_yaml
from reports.html import render_html
from reports.markdown import render_markdown
from reports.model import ReportInput
from reports.tables import flows_with_verdicts


def write_outputs(
    out_dir: Path,
    analysis: Analysis,
    loaded: LoadedInputs,
    inventory: Inventory,
    flows: Sequence[FlowRow],
    dns: Sequence[DnsRow],
) -> list[Path]:
    """Write the contract's six files into `out_dir`; the paths, in a stable order."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"{out_dir}: cannot create the output directory: "
                                 f"{error.strerror or error}") from error
    proposal = analysis.proposal
    report = ReportInput(
        proposal=proposal,
        graph=analysis.graph,
        flows=flows,
        dns=dns,
        inventory=inventory,
        sources=tuple(f.path for f in loaded.files),
        counters={"packets": loaded.packets, "dns_answers": loaded.dns_answers,
                  "flows": len(flows), "edges": len(analysis.graph.edges)},
        warnings=tuple(loaded.warnings) + tuple(inventory.notes),
    )
    texts = {
        "policies.yaml": render_policies_yaml(proposal),
        "fqdn-dependencies.yaml": render_fqdn_yaml(proposal),
        "cilium-policies.yaml": render_cilium_yaml(proposal),
        "report.md": render_markdown(report),
        "report.html": render_html(report),
    }
    written = []
    for name, text in texts.items():
        written.append(_write_atomically(out_dir / name, text))
    flows_path = out_dir / "flows.csv"
    write_table(flows_with_verdicts(flows, analysis.verdicts), flows_path)
    written.insert(1, flows_path)
    return written


def _write_atomically(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot write: {error.strerror or error}") from error
    return path
