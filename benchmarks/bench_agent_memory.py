"""The agent's memory at its edge cap: what the DaemonSet's memory limit must hold.

Fills a real `Agent`'s flow table (no capture) with --max-edges distinct TCP edges plus
DNS rows, then renders /summary and writes a checkpoint, the agent's largest allocation.
Prints the resident size after the fill (VmRSS) and the peak (VmHWM), in MB (10^6 bytes).

    python benchmarks/bench_agent_memory.py [--max-edges 100000] [--dns-rows 20000]
"""

from __future__ import annotations

import argparse
import tempfile
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from discover.flows.events import (
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    DnsRecordAddress,
    Protocol,
)
from sidecar.agent import Agent, AgentOptions


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def fill(agent: Agent, edges: int, dns_rows: int) -> None:
    base = int(IPv4Address("10.0.0.0"))
    for n in range(edges):  # distinct client/server pairs, as on a busy node
        agent.table.add(ConnectionOpen(1_700_000_000.0 + n, IPv4Address(base + n), 40000,
                                       IPv4Address(base + 0x100000 + n // 7), 443 + n % 50,
                                       Protocol.TCP, DirectionEvidence.SYN))  # fmt: skip
    for n in range(dns_rows):
        agent.table.add(DnsAnswer(1_700_000_000.0 + n, IPv4Address(base + n % 5000),
                                  ip_address("10.96.0.10"), f"svc-{n}.example.com", (),
                                  (DnsRecordAddress(IPv4Address(base + 0x200000 + n), 30),),
                                  Protocol.UDP))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-edges", type=int, default=100_000)
    parser.add_argument("--dns-rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        agent = Agent(AgentOptions(state_dir=Path(state), max_edges=args.max_edges))
        start = _status_mb("VmRSS")
        fill(agent, args.max_edges, args.dns_rows)
        filled = _status_mb("VmRSS")
        size = len(agent.rendered())
        agent.save_checkpoint()
        peak = _status_mb("VmHWM")
    print(f"edges {agent.table.edge_count:,}, DNS rows {agent.table.dns_row_count:,}, "
          f"summary {size / 1e6:.0f} MB")  # fmt: skip
    print(f"resident: {start:.0f} MB at start, {filled:.0f} MB at the cap, "
          f"peak {peak:.0f} MB while rendering and checkpointing")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
