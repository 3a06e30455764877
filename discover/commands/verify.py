"""`netpol-discover verify`: would these NetworkPolicies allow the observed flows?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """\
Check every observed flow against NetworkPolicies, with Kubernetes semantics: IPs are
resolved to pods with the inventory (at each flow's first_seen time when the flows file
has it), a flow to a Service ClusterIP is checked against every backing pod on the
targetPort.

exit status:
  0  every flow is allowed
  1  a flow is denied (each listed on stdout) OR an error explained on stderr
     (unreadable file, invalid policy)
  2  a usage error
"""

EXAMPLES = """\
examples:
  netpol-discover verify --policies proposal/policies.yaml --flows proposal/flows.csv \\
      --inventory cluster.json --format json
  netpol-discover verify --policies policies.yaml --flows flows.parquet \\
      --inventory pods.json --inventory services.yaml --matrix
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check observed flows against NetworkPolicies",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--policies",
        required=True,
        type=Path,
        action="append",
        metavar="FILE",
        help="YAML/JSON with NetworkPolicy and ClusterNetworkPolicy documents (other kinds "
        "are ignored); repeat the flag for several files",
    )
    parser.add_argument(
        "--flows",
        required=True,
        type=Path,
        metavar="FILE",
        help="flows CSV or Parquet (src_ip,dst_ip,protocol,dst_port at least)",
    )
    # One FILE per flag, repeated for several, as `analyze` and `graph` take it.
    parser.add_argument(
        "--inventory",
        required=True,
        type=Path,
        action="append",
        metavar="FILE",
        help="kubectl get ... -o json|yaml output; repeat the flag for several files",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the denied flows and a count (default); json: every flow with its "
        "verdict (and the matrix with --matrix)",
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="also print the allowed ports between every pair of workloads",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from discover.flows.flowfiles import read_flow_rows
    from discover.inventory.files import load_inventory_files
    from discover.netpol import PolicyEvaluator
    from discover.netpol.cluster_evaluate import TieredEvaluator
    from discover.netpol.files import load_policy_files
    from discover.netpol.matrix import render_matrix, workload_matrix
    from discover.verification.verify import verify_flows

    policy_file = load_policy_files(args.policies)
    flows = read_flow_rows(args.flows)
    inventory = load_inventory_files(args.inventory)
    evaluator = PolicyEvaluator(policy_file.policies)
    if policy_file.cluster_policies:  # the tiers around NetworkPolicy
        node_labels = {a: node.labels for node in inventory.nodes for a in node.addresses}
        evaluator = TieredEvaluator(policy_file.policies, policy_file.cluster_policies,
                                    node_labels)
    verdicts = verify_flows(flows, evaluator, inventory)
    for note in (*policy_file.notes, *inventory.notes):
        print(f"netpol-discover: note: {note}", file=sys.stderr)
    matrix = workload_matrix(evaluator, inventory) if args.matrix else None
    denied = [v for v in verdicts if not v.allowed]
    if args.format == "json":
        records = [v.to_dict() for v in verdicts]
        if matrix is None:
            print(json.dumps(records, indent=2))
        else:
            cells = [
                {"src": str(c.source), "dst": str(c.destination), "conn": str(c.allowed)}
                for c in matrix
            ]
            print(json.dumps({"flows": records, "matrix": cells}, indent=2))
        return 1 if denied else 0
    for verdict in denied:
        print(
            f"DENIED {verdict.src_ip} -> {verdict.dst_ip} {verdict.protocol}/{verdict.dst_port}"
            f" ({verdict.source} -> {', '.join(verdict.destinations)}): "
            f"{verdict.reason.removeprefix('denied: ')}"
        )
    policies = str(len(policy_file.policies))
    if policy_file.cluster_policies:
        policies = f"{policies} NetworkPolicies and {len(policy_file.cluster_policies)} cluster"
    if denied:
        print(f"{len(denied)} of {len(verdicts)} flows denied by {policies} policies")
    else:
        print(f"all {len(verdicts)} flows allowed by {policies} policies")
    if matrix is not None:
        print()
        print(render_matrix(matrix))
    return 1 if denied else 0
