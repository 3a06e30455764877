"""`netpol-discover dns INPUT... -o FILE`: which addresses each client was told a name has."""

from __future__ import annotations

import argparse

from discover.commands.flows import add_table_command, write_inputs_table

DESCRIPTION = """\
Read captures (pcap, pcapng, also gzipped) and agent summaries and write one row per
(client IP, name, address) from the DNS answers the clients received, over UDP or TCP:
the name as asked (lower case), the CNAME chain to the address ("a > b"), the DNS server,
the TTL of the latest answer, how many answers said so, first and last time seen.
"""

EPILOG = """\
examples:
  netpol-discover dns node-a.pcap node-b.pcapng -o dns.csv
  netpol-discover dns agent-summary.json -o dns.parquet --quiet

Exit status: 0 written, 1 nothing could be read or written (explained on stderr),
2 usage error.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_table_command(
        subparsers,
        "dns",
        "write the DNS answers (CSV or Parquet) seen in captures and agent summaries",
        DESCRIPTION,
        EPILOG,
        "the DNS table",
        run,
    )


def run(args: argparse.Namespace) -> int:
    return write_inputs_table(args, "dns")
