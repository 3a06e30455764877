"""`netpol-discover inventory --out FILE`: dump the live cluster's inventory to a file.

The file is the `kind: List` JSON that `kubectl get ... -o json` prints (YAML for a
.yaml/.yml name), which `--inventory FILE` reads back, so an offline run can be
reproduced without the cluster. Heavy imports happen inside `run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
List namespaces, nodes, pods, services, endpoint slices, ingresses, network policies and
workloads (deployments, replica sets, stateful sets, daemon sets, jobs, cron jobs) of the
live cluster through its API, optionally watch pods for a while so pod IP changes and
deletions are recorded with their times, and write it all as one kubectl-style List.
Resources the credentials may not list are skipped with a warning naming the RBAC verb to
grant; the rest is written.
"""

EPILOG = """\
examples:
  netpol-discover inventory --out cluster.json
  netpol-discover inventory --out cluster.json --context prod --watch 600
  netpol-discover inventory --out cluster.yaml --kubeconfig ./kubeconfig
  netpol-discover analyze capture.pcap --inventory cluster.json --out proposal/

Without --kubeconfig, $KUBECONFIG or ~/.kube/config is used, or the in-cluster service
account when run in a pod. The account needs 'list' (and 'watch' on pods for --watch) on
the resources above at cluster scope. Exit status: 0 written, 1 error explained on
stderr (unreachable server, no readable resource), 2 usage error.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inventory", help="dump the live cluster's inventory to a file (for offline runs)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", "-o", required=True, type=Path, metavar="FILE",
                        help="where to write the List (.json, or .yaml/.yml)")
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file to use")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument("--watch", type=float, default=0.0, metavar="SECONDS",
                        help="watch pods this long after listing (default: 0, a snapshot)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="timeout of each API request (default: 30)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    parser.set_defaults(run=run, usage_error=parser.error)


def run(args: argparse.Namespace) -> int:
    import json

    import yaml

    from discover.errors import OutputError
    from discover.inventory.dump import inventory_to_dict
    from discover.inventory.live import load_inventory_live

    if args.watch < 0 or args.timeout <= 0:
        args.usage_error("--watch must be >= 0 and --timeout > 0")
    inventory = load_inventory_live(args.kubeconfig, args.context, watch_seconds=args.watch,
                                    timeout=args.timeout)
    for note in inventory.notes:
        if note.startswith("skipped:") or "forbidden" in note or "unauthorized" in note:
            print(f"netpol-discover: warning: {note}", file=sys.stderr)
    document = inventory_to_dict(inventory)
    if args.out.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(document, sort_keys=False)
    else:
        text = json.dumps(document, indent=2) + "\n"
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise OutputError(str(args.out), f"cannot write: {error.strerror or error}") from error
    if not args.quiet:
        print(f"netpol-discover: {len(inventory.pods)} pods, {len(inventory.services)} "
              f"services, {len(inventory.nodes)} nodes from {', '.join(inventory.sources)}; "
              f"wrote {args.out}", file=sys.stderr)
    return 0
