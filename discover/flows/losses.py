"""What an input knows it missed: the counters of an agent summary that mean its flow table
lacks traffic (edges refused at the cap, UDP sampled out under load, kernel drops).

A proposal built from such a table is incomplete: an edge that isn't in the table gets no
rule, and applying the policies blocks it. `analyze` turns the losses of each input into a
critical finding and `collect` warns with the same words; both read them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from discover.flows.events import Protocol


@dataclass(frozen=True, slots=True)
class InputLosses:
    """The loss counters of one input; counters it doesn't carry read as 0 (pcap files and
    older agents carry fewer). `edges_by_protocol` breaks `edges_refused` down where the
    agent counted that (empty where it didn't); the rest is of an unknown protocol."""

    edges_refused: int = 0
    edges_by_protocol: tuple[tuple[Protocol, int], ...] = ()
    udp_over_client_share: int = 0
    udp_sampled_out: int = 0
    kernel_drops: int = 0
    dns_rows_refused: int = 0

    @classmethod
    def from_counters(cls, counters: Mapping[str, int]) -> InputLosses:
        keys = {protocol: f"edges_dropped_{protocol.value.lower()}" for protocol in Protocol}
        by_protocol: tuple[tuple[Protocol, int], ...] = ()
        if any(key in counters for key in keys.values()):
            by_protocol = tuple((p, counters.get(key, 0)) for p, key in keys.items())
        return cls(
            edges_refused=counters.get("edges_dropped", 0),
            edges_by_protocol=by_protocol,
            udp_over_client_share=counters.get("udp_edges_dropped_per_source", 0),
            udp_sampled_out=counters.get("udp_sampled_out", 0),
            kernel_drops=counters.get("kernel_drops", 0),
            dns_rows_refused=counters.get("dns_rows_dropped", 0),
        )

    def __bool__(self) -> bool:
        return bool(
            self.edges_refused or self.udp_sampled_out or self.kernel_drops
            or self.dns_rows_refused
        )  # fmt: skip

    def describe(self) -> str:
        """How much is missing, e.g. "200,000 events for new edges refused at the cap (0
        TCP, 200,000 UDP, all over one client's UDP share), 12 kernel drops"."""
        parts = []
        if self.edges_refused:
            parts.append(f"{self.edges_refused:,} events for new edges refused at the cap"
                         f"{self._edge_breakdown()}")  # fmt: skip
        if self.udp_sampled_out:
            parts.append(f"{self.udp_sampled_out:,} UDP datagrams sampled out")
        if self.kernel_drops:
            parts.append(f"{self.kernel_drops:,} kernel drops")
        if self.dns_rows_refused:
            parts.append(f"{self.dns_rows_refused:,} DNS answers refused at the cap")
        return ", ".join(parts)

    def advice(self) -> str:
        """What to change for the next learning window."""
        steps = []
        udp = dict(self.edges_by_protocol).get(Protocol.UDP, 0)
        if self.udp_over_client_share:
            steps.append("look at the UDP clients with the most edges in flows.csv (a scan or "
                         "a flood?); if they are real, raise the agent's "
                         "--max-udp-edges-per-source")  # fmt: skip
        if udp > self.udp_over_client_share:
            steps.append("raise --max-udp-edges (default: a quarter of --max-edges)")
        if self.edges_refused > udp or self.dns_rows_refused:
            steps.append("raise the agent's --max-edges (its memory limit with it)")
        if self.udp_sampled_out or self.kernel_drops:
            steps.append("give the agent more CPU (resources.limits.cpu): it fell behind the "
                         "node's traffic")  # fmt: skip
        return "; ".join(steps)

    def _edge_breakdown(self) -> str:
        if not self.edges_by_protocol:
            return ""  # an agent older than the breakdown
        # TCP and UDP always (a reader wants to know TCP was spared), SCTP where it counts.
        counted = [(protocol, n) for protocol, n in self.edges_by_protocol
                   if n or protocol is not Protocol.SCTP]  # fmt: skip
        parts = [f"{n:,} {protocol.value}" for protocol, n in counted]
        unknown = self.edges_refused - sum(n for _protocol, n in counted)
        if unknown > 0:
            parts.append(f"{unknown:,} of an unknown protocol")
        if self.udp_over_client_share:
            parts.append(f"{self.udp_over_client_share:,} of the UDP ones over their "
                         "client's share")  # fmt: skip
        return f" ({', '.join(parts)})"
