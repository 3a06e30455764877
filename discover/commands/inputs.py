"""The command-line side of input selection (`discover/flows/inputs.py`): INPUT...,
--inventory/--kubeconfig/--context, --jobs and --quiet, shared by the commands that read
traffic, so that they accept the same inputs the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from discover.flows.inputs import InventorySource, Traffic
    from discover.inventory.model import Inventory

CAPTURES = "pcap, pcapng, agent summary or Hubble flow file (recognised by content)"


def add_inputs_argument(parser: argparse.ArgumentParser, *, flows_files: bool = False) -> None:
    """INPUT...: captures, summaries and Hubble files; with `flows_files` also the flows
    files (.csv/.parquet) that `flows -o` and `analyze` write."""
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help=f"{CAPTURES}, or a flows .csv/.parquet file" if flows_files else CAPTURES,
    )


def add_reading_options(parser: argparse.ArgumentParser) -> None:
    """--jobs and --quiet, for every command that reads INPUTs."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="files read in parallel (default: one per CPU core)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary line (warnings are still printed)",
    )


def add_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    """--inventory FILE... or --kubeconfig/--context: where the cluster objects come from."""
    source = parser.add_argument_group("inventory (files, or the live API)")
    source.add_argument("--inventory", action="append", type=Path, default=[], metavar="FILE",
                        help="kubectl get ... -o json|yaml output; repeat for several files")
    source.add_argument("--kubeconfig", metavar="FILE",
                        help="read the inventory from the live cluster with this kubeconfig")
    source.add_argument("--context", metavar="NAME",
                        help="kubeconfig context for the live cluster (implies the live API)")


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return number


def inventory_source(args: argparse.Namespace) -> InventorySource:
    from discover.flows.inputs import InventorySource

    return InventorySource(tuple(args.inventory), args.kubeconfig, args.context)


def load_inventory_from_args(args: argparse.Namespace) -> Inventory:
    """Files or the live API; a usage error (exit 2) for neither or both. The notes that
    mean lost data are printed as warnings."""
    source = inventory_source(args)
    problem = source.problem()
    if problem is not None:
        args.usage_error(problem)
    inventory = source.load()
    warn_inventory_problems(inventory)
    return inventory


def warn_inventory_problems(inventory: Inventory) -> None:
    from discover.flows.inputs import lost_data_notes

    for note in lost_data_notes(inventory):
        warn(note)


def read_traffic_from_args(args: argparse.Namespace) -> Traffic:
    """INPUT... read with --jobs, a progress bar unless --quiet; the warnings printed."""
    from discover.flows.inputs import read_traffic
    from discover.flows.progress import progress_wanted

    traffic = read_traffic(args.inputs, jobs=args.jobs, progress=progress_wanted(args.quiet))
    for warning in traffic.loaded.warnings:
        warn(warning)
    return traffic


def warn(message: str) -> None:
    print(f"netpol-discover: warning: {message}", file=sys.stderr)
