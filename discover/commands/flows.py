"""`netpol-discover flows INPUT... -o FILE`: the flow table of captures and agent summaries.

The input options, the loading and the closing summary line are shared with the `dns`
command (`discover/commands/dns.py`), which writes the DNS table of the same inputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from discover.commands.inputs import (
    add_inputs_argument,
    add_reading_options,
    warn,
)

OUTPUT_SUFFIXES = (".csv", ".parquet")

DESCRIPTION = """\
Read captures (pcap, pcapng, also gzipped) and agent summaries and write one row per
connection edge (client IP, server IP, protocol, server port) with connection and packet
counts, first and last time seen and how the direction was decided. Addresses are as seen
on the wire: a Service ClusterIP stays a ClusterIP here. Inputs are recognised by their
content, not their name, and read in parallel, one process a core.
"""

EPILOG = """\
examples:
  netpol-discover flows node-a.pcap node-b.pcapng -o flows.csv
  netpol-discover flows capture.pcap.gz agent-summary.json -o flows.parquet --jobs 2
  netpol-discover flows big.pcap -o flows.csv --quiet

A damaged capture gives a warning (file, record, byte) and what was read before the
damage is kept. Exit status: 0 written, 1 nothing could be read or written (explained on
stderr), 2 usage error.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_table_command(
        subparsers,
        "flows",
        "write the flow table (CSV or Parquet) of captures and agent summaries",
        DESCRIPTION,
        EPILOG,
        "the flow table",
        run,
    )


def run(args: argparse.Namespace) -> int:
    return write_inputs_table(args, "flows")


def add_table_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    epilog: str,
    what: str,
    run: Callable[[argparse.Namespace], int],
) -> None:
    """A command that reads INPUT... and writes one table to -o (`flows`, `dns`)."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(parser, what)
    parser.set_defaults(run=run)


def add_input_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """INPUT..., -o, --jobs, --quiet: the options of `flows` and `dns`."""
    add_inputs_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_path,
        metavar="FILE",
        help=f"where to write {what}: a .csv (times ISO-8601 UTC) or .parquet file",
    )
    add_reading_options(parser)


def output_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the output format comes from the extension; use .csv or .parquet"
        )
    return path


def write_inputs_table(args: argparse.Namespace, table: str) -> int:
    """Load the inputs, write the `table` ("flows" or "dns") frame, report on stderr."""
    from discover.flows.flowfiles import write_flow_table
    from discover.flows.progress import progress_wanted
    from discover.flows.sources import NothingReadError, load_inputs

    try:
        loaded = load_inputs(
            args.inputs,
            jobs=args.jobs,
            progress=progress_wanted(args.quiet),
            dns=table == "dns",  # the flow table doesn't need DNS answers parsed
        )
    except NothingReadError as error:
        if len(error.warnings) > 1:  # with one, the error line says it all
            for warning in error.warnings:
                warn(warning)
        raise
    for warning in loaded.warnings:
        warn(warning)
    rows = write_flow_table(loaded.table, args.output, table)
    if not args.quiet:
        files = len(loaded.files)
        read = f"{files} file{_s(files)}"
        if files != len(args.inputs):
            read = f"{files} of {len(args.inputs)} files"
        edges = loaded.table.edge_count
        warnings = len(loaded.warnings)
        print(
            f"netpol-discover: {read}, {loaded.packets:,} packets, {edges:,} edge{_s(edges)}, "
            f"{loaded.dns_answers:,} DNS answer{_s(loaded.dns_answers)}, "
            f"{warnings} warning{_s(warnings)}; wrote {rows:,} row{_s(rows)} to {args.output}",
            file=sys.stderr,
        )
    return 0


def _s(count: int) -> str:
    return "" if count == 1 else "s"
