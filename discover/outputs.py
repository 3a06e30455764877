"""Write what `analyze` found into its output directory (the files of OUTPUT_NAMES).

The six files are written into a temporary directory beside the output directory and
swapped in as a set (`discover/atomic.py`), so a failed run never leaves a half-written
policies.yaml that someone might apply, nor new policies beside an old report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from discover.analysis import Analysis
from discover.atomic import replace_directory
from discover.errors import ConfigurationError
from discover.flows.flowfiles import write_table
from discover.flows.flowtable import DnsRow, FlowRow
from discover.flows.sources import LoadedInputs
from discover.inventory.model import Inventory
from discover.synthesis.cluster_policies import render_cluster_policies_yaml, with_cni_finding
from discover.synthesis.render import (
    ManifestTexts,
    render_cilium_yaml,
    render_fqdn_yaml,
    render_policies_yaml,
)
from reports.graph_svg import BUILTIN_LAYOUT, GraphLayout
from reports.html import render_html
from reports.markdown import render_markdown
from reports.model import ReportInput
from reports.tables import flows_with_verdicts

FLOWS_FILE = "flows.csv"
CLUSTER_POLICIES_FILE = "cluster-policies.yaml"
OUTPUT_NAMES = frozenset({"policies.yaml", FLOWS_FILE, "fqdn-dependencies.yaml",
                          "cilium-policies.yaml", "report.md", "report.html",
                          CLUSTER_POLICIES_FILE})


def write_outputs(
    out_dir: Path,
    analysis: Analysis,
    loaded: LoadedInputs,
    inventory: Inventory,
    flows: Sequence[FlowRow],
    dns: Sequence[DnsRow],
    layout: GraphLayout = BUILTIN_LAYOUT,
) -> list[Path]:
    """Write the files of OUTPUT_NAMES into `out_dir`; the paths, in a stable order.
    `layout` draws report.html's service graph (`analyze` passes the one it chose).

    All six are written into a new directory beside `out_dir`, synced, and swapped in
    together: `out_dir` holds either the old set or the new one, never a mix."""
    proposal = analysis.proposal
    manifests = ManifestTexts(proposal.documents)  # for policies.yaml and report.html
    cluster = analysis.cluster_policies
    report = ReportInput(
        # the reports say what cluster-policies.yaml needs; the YAML headers' counts don't
        proposal=with_cni_finding(proposal, cluster) if cluster else proposal,
        graph=analysis.graph,
        flows=flows,
        dns=dns,
        inventory=inventory,
        sources=tuple(f.path for f in loaded.files),
        counters={"packets": loaded.packets, "dns_answers": loaded.dns_answers,
                  "flows": len(flows), "edges": len(analysis.graph.edges)},
        changes=analysis.changes,
        warnings=tuple(loaded.warnings) + tuple(inventory.notes),
        manifests=manifests,
    )
    texts = {
        "policies.yaml": render_policies_yaml(proposal, manifests),
        "fqdn-dependencies.yaml": render_fqdn_yaml(proposal),
        "cilium-policies.yaml": render_cilium_yaml(proposal),
        **({CLUSTER_POLICIES_FILE: render_cluster_policies_yaml(cluster, proposal)}
           if cluster else {}),
        "report.md": render_markdown(report),
        "report.html": render_html(report, layout),
    }
    table = flows_with_verdicts(flows, analysis.verdicts)

    def write(staging: Path) -> None:
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        write_table(table, staging / FLOWS_FILE)

    try:
        replace_directory(out_dir, write, OUTPUT_NAMES)
    except OSError as error:
        raise ConfigurationError(f"{out_dir}: cannot write the outputs: "
                                 f"{error.strerror or error}; nothing was changed "
                                 "there") from error
    written = [out_dir / name for name in texts]
    written.insert(1, out_dir / FLOWS_FILE)
    return written
