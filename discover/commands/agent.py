"""`netpol-discover agent`: the live capture agent (DaemonSet or sidecar)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from discover.errors import ConfigurationError

DESCRIPTION = """\
Capture connection set-ups (TCP SYN / SYN-ACK), UDP flow starts and DNS answers on an
interface during a learning window, keep a bounded summary, checkpoint it to
STATE_DIR/summary.json, and serve /summary, /inventory, /healthz and /metrics over HTTP.

/summary and /inventory map the cluster (every flow, DNS answer, pod and label): --listen
is loopback by default, and `collect` reads them through a port-forward the API server
authorizes. --health-listen adds a port for probes and scrapes with /healthz and /metrics
only.

A restarted agent resumes from its checkpoint (window start and counts kept). When the
window ends the agent writes a final checkpoint and keeps serving (a DaemonSet must not
crash-loop) unless --exit-after-window. SIGTERM / SIGINT write a final checkpoint.
Needs CAP_NET_RAW.

Connections opened before the window (database pools, API-server watches) send no set-up
to capture: at start and every --established-interval the agent reads them from the socket
table of every network namespace it can see through /proc (a DaemonSet needs hostPID for
the pods' namespaces; no capability).
"""

T = TypeVar("T")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float | None:
    """`90`, `90s`, `30m`, `24h`, `7d`, `1h30m` -> seconds; `none`/`0` -> until stopped."""
    value = text.strip().lower()
    if value in ("", "none", "0", "forever"):
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ConfigurationError(f"--duration {text!r}: expected e.g. 90s, 30m, 24h, 7d")
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def parse_checkpoint_interval(text: str) -> float:
    """Seconds between checkpoints: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"--checkpoint-interval {text!r}: must be a number of "
                                 "seconds > 0")
    return value


def parse_established_interval(text: str) -> float | None:
    """Seconds between socket-table reads: a number > 0, or 0 for never (None)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ConfigurationError(f"--established-interval {text!r}: must be a number of "
                                 "seconds > 0, or 0 for never")
    return value or None


def parse_max_edges(text: str) -> int:
    """The edge cap: a whole number >= 0 (0 = no cap)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(f"--max-edges {text!r}: must be a whole number >= 0 "
                                 "(0 = no cap)")
    return value


def parse_max_udp_edges(text: str) -> int:
    """UDP's budget within --max-edges: a whole number >= 1."""
    return _at_least_one(text, "--max-udp-edges")


def parse_max_udp_edges_per_source(text: str) -> int:
    """One UDP client's share of the UDP budget: a whole number >= 1."""
    return _at_least_one(text, "--max-udp-edges-per-source")


def _at_least_one(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{option} {text!r}: must be a whole number >= 1")
    return value


def usage(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type=` from one of the parsers above: bad values are usage errors
    (exit 2), and `manifests` rejects exactly what the agent it deploys would."""

    def checked(text: str) -> T:
        try:
            return parse(text)
        except ConfigurationError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    checked.__name__ = parse.__name__
    return checked


EXAMPLES = """\
examples:
  netpol-discover agent --interface any --duration 24h --state-dir /var/lib/netpol-discover
  netpol-discover agent -i eth0 --duration 7d --inventory-watch \
      --listen 127.0.0.1:9808 --health-listen 0.0.0.0:9809
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run the live capture agent (learning window, checkpoints, HTTP)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--interface",
        "-i",
        default="any",
        help="interface to capture on (default: any = all interfaces)",
    )
    parser.add_argument(
        "--duration",
        type=usage(parse_duration),
        default=None,
        metavar="D",
        help="learning window length, e.g. 24h, 7d (default: until stopped)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/netpol-discover"),
        metavar="DIR",
        help="where summary.json is checkpointed (default: /var/lib/netpol-discover)",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:9808",
        metavar="HOST:PORT",
        help="HTTP address for /summary /inventory /healthz /metrics (default "
        "127.0.0.1:9808; a non-loopback address lets anyone who reaches it read the data)",
    )
    parser.add_argument(
        "--health-listen",
        default=None,
        metavar="HOST:PORT",
        help="also serve /healthz and /metrics (nothing else) here, e.g. 0.0.0.0:9809 for "
        "probes and scrapes (default: not served)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=usage(parse_checkpoint_interval),
        default=60.0,
        metavar="S",
        help="seconds between checkpoints (default 60)",
    )
    parser.add_argument(
        "--max-edges",
        type=usage(parse_max_edges),
        default=100_000,
        metavar="N",
        help="cap on distinct edges kept; more are counted as dropped (default 100000; 0 = no cap)",
    )
    parser.add_argument(
        "--max-udp-edges",
        type=usage(parse_max_udp_edges),
        default=None,
        metavar="N",
        help="of --max-edges, at most N UDP edges, so that a UDP flood leaves TCP its room "
        "(default: a quarter of --max-edges; set it to --max-edges to share freely)",
    )
    parser.add_argument(
        "--max-udp-edges-per-source",
        type=usage(parse_max_udp_edges_per_source),
        default=None,
        metavar="N",
        help="of those, at most N from one client IP (default: a tenth of --max-udp-edges)",
    )
    parser.add_argument(
        "--established-interval",
        type=usage(parse_established_interval),
        default=60.0,
        metavar="S",
        help="seconds between reads of the kernel's socket tables for connections opened "
        "before the window (first read at start; 0 = never; default 60)",
    )
    parser.add_argument(
        "--node-name",
        default=None,
        metavar="NAME",
        help="recorded in the summary (default: $NODE_NAME or the host name)",
    )
    parser.add_argument(
        "--agent-name",
        default=None,
        metavar="NAME",
        help="recorded in the summary (default: $POD_NAME or the host name)",
    )
    parser.add_argument(
        "--inventory-watch",
        action="store_true",
        help="watch pods/services/endpointslices/namespaces/nodes through "
        "the API (in-cluster config or kubeconfig) beside capture",
    )
    parser.add_argument(
        "--receive-buffer",
        type=int,
        default=32 << 20,
        metavar="BYTES",
        help="with --no-ring: socket receive buffer (default 32 MiB; above "
        "net.core.rmem_max only with CAP_NET_ADMIN)",
    )
    parser.add_argument(
        "--no-ring",
        dest="ring",
        action="store_false",
        help="read with recv() instead of the 16 MiB TPACKET_V3 ring (diagnostics)",
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="for --inventory-watch outside a cluster"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument(
        "--exit-after-window",
        action="store_true",
        help="exit when the window ends instead of serving on",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sidecar.agent import Agent, AgentOptions
    from sidecar.server import parse_listen

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, port = parse_listen(args.listen)
    health_host, health_port = (None, 0) if args.health_listen is None \
        else parse_listen(args.health_listen, "--health-listen")  # fmt: skip
    options = AgentOptions(
        state_dir=args.state_dir,
        interface=args.interface,
        listen_host=host,
        listen_port=port,
        health_host=health_host,
        health_port=health_port,
        duration=args.duration,
        checkpoint_interval=args.checkpoint_interval,
        established_interval=args.established_interval,
        max_edges=args.max_edges or None,
        max_udp_edges=args.max_udp_edges,
        max_udp_edges_per_source=args.max_udp_edges_per_source,
        node_name=args.node_name or os.environ.get("NODE_NAME") or socket.gethostname(),
        agent_name=args.agent_name or os.environ.get("POD_NAME") or socket.gethostname(),
        exit_after_window=args.exit_after_window,
        inventory_watch=args.inventory_watch,
        kubeconfig=args.kubeconfig,
        context=args.context,
        receive_buffer=args.receive_buffer,
        use_ring=args.ring,
    )
    return Agent(options).run()
