"""`netpol-discover manifests daemonset|sidecar`: print deployment YAML for the agent."""

from __future__ import annotations

import argparse
import sys

from discover.commands import agent
from discover.errors import ConfigurationError, OutputError

DESCRIPTION = """\
Print ready-to-apply YAML for the capture agent.

  daemonset  Namespace, ServiceAccount, read-only ClusterRole and binding, and a
             DaemonSet (host network, NET_RAW only, read-only root filesystem,
             checkpoints on a hostPath, probes on /healthz).
  sidecar    a strategic-merge patch adding the agent to a Deployment (no RBAC unless
             --inventory-watch; then a ClusterRole bound to --service-account).

The agents serve /summary and /inventory on 127.0.0.1:PORT only; `collect` reads them
through a port-forward (RBAC: create on pods/portforward in the agents' namespace).
/healthz and /metrics are on HEALTH-PORT on every address, for probes and scrapes.
"""

EXAMPLES = """\
examples:
  netpol-discover manifests daemonset -o agent.yaml
  netpol-discover manifests daemonset --duration 7d --max-edges 200000 | kubectl apply -f -
  netpol-discover manifests sidecar --namespace shop --inventory-watch \\
      --service-account web -o agent-patch.yaml
"""


class ManifestWriteError(OutputError):
    """The output file could not be written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, f"cannot write the manifests: {reason}")


def _duration(text: str) -> str:
    """Checked with the agent's own parser, then passed on as written."""
    agent.parse_duration(text)
    return text.strip()


def _whole_seconds(text: str) -> int:
    seconds = agent.parse_checkpoint_interval(text)
    if not seconds.is_integer():
        raise ConfigurationError(f"--checkpoint-interval {text!r}: must be whole seconds here")
    return int(seconds)


def _port(text: str) -> int:
    """A containerPort (probes and `collect` reach it): 1-65535, unlike the agent's
    --listen, where 0 picks a free port."""
    if not text.strip().isdecimal() or not 1 <= int(text) <= 65535:
        raise ConfigurationError(f"--port {text!r}: must be a port number 1-65535")
    return int(text)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "manifests",
        help="print Kubernetes YAML to deploy the capture agent",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=("daemonset", "sidecar"))
    parser.add_argument(
        "--namespace",
        default=None,
        help="default: netpol-discover (daemonset); the Deployment's namespace for sidecar RBAC",
    )
    parser.add_argument("--image", default=None, help="agent image (default: the release's)")
    parser.add_argument("--port", type=agent.usage(_port), default=9808,
                        help="data port on 127.0.0.1, read by collect (default 9808)")
    parser.add_argument("--health-port", type=agent.usage(_port), default=9809,
                        help="/healthz and /metrics port for probes and scrapes (default 9809)")
    parser.add_argument(
        "--duration",
        type=agent.usage(_duration),
        default="24h",
        help="learning window, e.g. 24h, 7d; 'none' = until stopped (default 24h)",
    )
    parser.add_argument(
        "--max-edges",
        type=agent.usage(agent.parse_max_edges),
        default=None,
        help="edge cap of each agent, 0 = no cap (default: 100000 daemonset, 20000 sidecar)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=agent.usage(_whole_seconds),
        default=60,
        metavar="SECONDS",
        help="how often each agent writes its summary to disk (default 60); a restarted "
        "agent loses at most this much",
    )
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


class PortClash(ConfigurationError):
    def __init__(self, port: int) -> None:
        super().__init__(f"--port and --health-port are both {port}: they must differ")


def run(args: argparse.Namespace) -> int:
    from sidecar import manifests

    if args.port == args.health_port:
        raise PortClash(args.port)
    daemonset = args.kind == "daemonset"
    watch = args.inventory_watch if args.inventory_watch is not None else daemonset
    options = manifests.ManifestOptions(
        namespace=args.namespace or manifests.DEFAULT_NAMESPACE,
        image=args.image or manifests.DEFAULT_IMAGE,
        port=args.port,
        health_port=args.health_port,
        duration=None if agent.parse_duration(args.duration) is None else args.duration,
        checkpoint_interval=args.checkpoint_interval,
        max_edges=args.max_edges if args.max_edges is not None
        else (100_000 if daemonset else 20_000),
        inventory_watch=watch,
        service_account=args.service_account or manifests.NAME,
        host_path=args.host_path,
    )
    text = manifests.render_daemonset(options) if daemonset else manifests.render_sidecar(options)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            raise ManifestWriteError(args.output, error.strerror or str(error)) from None
    return 0
