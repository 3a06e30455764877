"""`netpol-discover manifests daemonset|sidecar`: print deployment YAML for the agent."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Print ready-to-apply YAML for the capture agent.

  daemonset  Namespace, ServiceAccount, read-only ClusterRole and binding, and a
             DaemonSet (host network, NET_RAW only, read-only root filesystem,
             checkpoints on a hostPath, probes on /healthz).
  sidecar    a strategic-merge patch adding the agent to a Deployment (no RBAC unless
             --inventory-watch; then a ClusterRole bound to --service-account).
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "manifests",
        help="print Kubernetes YAML to deploy the capture agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=("daemonset", "sidecar"))
    parser.add_argument(
        "--namespace",
        default=None,
        help="default: netpol-discover (daemonset); the Deployment's namespace for sidecar RBAC",
    )
    parser.add_argument("--image", default=None, help="agent image (default: the release's)")
    parser.add_argument("--port", type=int, default=9808, help="HTTP port (default 9808)")
    parser.add_argument(
        "--duration", default="24h", help="learning window, e.g. 24h, 7d; 'none' = until stopped"
    )
    parser.add_argument(
        "--max-edges",
        type=int,
        default=None,
        help="edge cap of each agent (default: 100000 daemonset, 20000 sidecar)",
    )
    parser.add_argument("--checkpoint-interval", type=int, default=60, metavar="SECONDS")
    parser.add_argument(
        "--inventory-watch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="watch the API for IP -> pod (default: on for daemonset, off for sidecar)",
    )
    parser.add_argument(
        "--service-account",
        default=None,
        help="sidecar: the Deployment's ServiceAccount to bind (with --inventory-watch)",
    )
    parser.add_argument(
        "--host-path",
        default="/var/lib/netpol-discover",
        help="daemonset: node directory for checkpoints; a new path starts a new window",
    )
    parser.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sidecar import manifests

    daemonset = args.kind == "daemonset"
    watch = args.inventory_watch if args.inventory_watch is not None else daemonset
    options = manifests.ManifestOptions(
        namespace=args.namespace or manifests.DEFAULT_NAMESPACE,
        image=args.image or manifests.DEFAULT_IMAGE,
        port=args.port,
        duration=None if args.duration in ("", "none") else args.duration,
        checkpoint_interval=args.checkpoint_interval,
        max_edges=args.max_edges or (100_000 if daemonset else 20_000),
        inventory_watch=watch,
        service_account=args.service_account or manifests.NAME,
        host_path=args.host_path,
    )
    text = manifests.render_daemonset(options) if daemonset else manifests.render_sidecar(options)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0
