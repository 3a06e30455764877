"""The `netpol-discover` command: a thin dispatcher over `discover/commands/*`.

Each command module defines `add_parser(subparsers)` and `run(args) -> int`, and imports
heavy libraries (pandas, scapy, kubernetes) inside `run` only, so that `--help` stays fast.
Exit codes: 0 success, 1 an error explained on stderr, 2 a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from discover import __version__
from discover.errors import DiscoverError

# Order is the order of `--help`.
COMMANDS = (
    "analyze",
    "flows",
    "dns",
    "graph",
    "verify",
    "drift",
    "inventory",
    "agent",
    "collect",
    "manifests",
)

EPILOG = """\
examples:
  netpol-discover analyze capture.pcap --inventory cluster.json --out proposal/
  netpol-discover flows node-*.pcap -o flows.parquet
  netpol-discover verify --policies proposal/policies.yaml --flows flows.csv \\
      --inventory cluster.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netpol-discover",
        description="Propose least-privilege Kubernetes NetworkPolicies from observed traffic.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _command_module(name)
        if module is not None:
            module.add_parser(subparsers)
    return parser


def _command_module(name: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(f"discover.commands.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"discover.commands.{name}":
            return None  # a command not built yet in this checkout
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except DiscoverError as error:
        print(f"netpol-discover: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("netpol-discover: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
