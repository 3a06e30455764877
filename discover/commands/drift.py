"""`netpol-discover drift INPUT... --inventory FILE`: a newer window against the
NetworkPolicies in force (the inventory's), or against a proposal (`--policies FILE`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from discover.commands.inputs import (
    add_inputs_argument,
    add_inventory_arguments,
    add_reading_options,
    load_inventory_from_args,
    read_traffic_from_args,
)

DESCRIPTION = """\
Compare a newer window of traffic with the NetworkPolicies applied in the cluster (those
of the inventory) or with a proposal (--policies FILE): edges they deny, with the policy
and rule to change and a suggested patch (the rule analyze would write, appended to that
policy); blocked attempts (refused or unanswered set-ups towards a denied peer: after
enforcement, the symptom of a broken dependency); rules, peers and ports the window never
used; workloads that no policy of their own selects.

exit status:
  0  nothing observed is denied
  1  an observed edge or attempt is denied (for CI), OR an error explained on stderr
  2  a usage error
"""

EPILOG = """\
examples:
  netpol-discover drift summary-week2.json --kubeconfig ~/.kube/config
  netpol-discover drift window2.pcap --inventory cluster.json \\
      --policies proposal/policies.yaml --patch-out patch.yaml --format json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "drift",
        help="check a newer window against applied (or proposed) NetworkPolicies",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_inputs_argument(parser, flows_files=True)
    add_inventory_arguments(parser)
    parser.add_argument(
        "--policies", type=Path, metavar="FILE",
        help="check these NetworkPolicies (a proposal's policies.yaml) instead of the "
        "inventory's")
    parser.add_argument(
        "--format", choices=("markdown", "json"), default="markdown",
        help="what to print on stdout (default: markdown)")
    parser.add_argument(
        "--patch-out", type=Path, metavar="FILE",
        help="write the suggested patch here (policies to kubectl apply -f)")
    add_reading_options(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def run(args: argparse.Namespace) -> int:
    from discover.atomic import replace_file
    from discover.enrichment.workload_graph import build_graph
    from discover.inventory.files import load_inventory_files
    from discover.netpol.files import load_policy_file
    from discover.synthesis.options import SynthesisOptions
    from discover.verification.drift import compute_drift
    from reports.drift_report import render_json, render_markdown, render_patch_yaml

    inventory = load_inventory_from_args(args)
    if args.policies is not None:
        # read once for its checks (an error names the file and document), once as records
        policy_file = load_policy_file(args.policies)
        for note in policy_file.notes:
            print(f"netpol-discover: note: {note}", file=sys.stderr)
        applied = load_inventory_files([args.policies]).network_policies
    else:
        applied = inventory.network_policies
    traffic = read_traffic_from_args(args)
    graph = build_graph(traffic.flows, traffic.dns, inventory)
    drift = compute_drift(graph, inventory, applied, SynthesisOptions())
    patch_file = None
    if args.patch_out is not None and drift.patches:
        text = render_patch_yaml(drift)

        def write(path: Path) -> None:
            path.write_text(text, encoding="utf-8")

        replace_file(args.patch_out, write)
        patch_file = str(args.patch_out)
    if args.format == "json":
        sys.stdout.write(render_json(drift))
    else:
        sys.stdout.write(render_markdown(drift, patch_file))
    return 1 if drift.failed else 0
