"""The flow table: events folded into one row per edge and one row per DNS answer.

Memory grows with the number of distinct edges and (client, name, address) triples, never
with the number of packets or events: each event updates a few counters in a dict keyed by
a tuple. Offline readers build one table per file and `merge` them; the live agent builds
one with a `max_edges` cap and writes it as an agent summary.

Times are float seconds since the epoch inside the table and in its rows (`utc_time` gives
the aware datetime a later stage reads). The rows are what the later stages take; the
DataFrame accessors (`flows_frame`, `dns_frame`) are for users and the file writers, built
by `frames.py`, so that the live agent and `--help` never import pandas.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from discover.flows.events import (
    OUTCOME_ORDER,
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    EdgePackets,
    IPAddress,
    Outcome,
    Protocol,
)

if TYPE_CHECKING:
    import pandas as pd  # noqa: TID251 (type only: the DataFrame accessors' return type)

FLOW_COLUMNS = [
    "src_ip",
    "dst_ip",
    "protocol",
    "dst_port",
    "connections",
    "packets",
    "first_seen",
    "last_seen",
    "direction",
    "outcome",
]
DNS_COLUMNS = [
    "client_ip",
    "name",
    "address",
    "cname_chain",
    "server_ip",
    "ttl",
    "answers",
    "first_seen",
    "last_seen",
]
CNAME_SEPARATOR = " > "
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Most certain first: an edge shows the best evidence any of its connections had.
EVIDENCE_ORDER = (
    DirectionEvidence.SYN,
    DirectionEvidence.INIT,
    DirectionEvidence.SYN_ACK,
    DirectionEvidence.INIT_ACK,
    DirectionEvidence.ESTABLISHED,
    DirectionEvidence.FLOW_LOG,
    DirectionEvidence.UDP_FIRST,
    DirectionEvidence.INFERRED,
)
_RANK = {evidence: rank for rank, evidence in enumerate(EVIDENCE_ORDER)}
# Packets of an edge whose ConnectionOpen hasn't been seen yet: the weakest evidence.
_UNKNOWN_RANK = _RANK[DirectionEvidence.INFERRED]
_OUTCOME_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOME_ORDER)}
# An edge known only from ConnectionOpens (no packets of it counted yet) has no outcome
# of its own; its rows say UNKNOWN.
_NO_OUTCOME = len(OUTCOME_ORDER)
_COMPLETED = _OUTCOME_RANK[Outcome.COMPLETED]

EdgeKey = tuple[IPAddress, IPAddress, Protocol, int]  # client, server, protocol, server port

# A capped table's default UDP budget is 1/UDP_SHARE of the cap, and one client's share of
# it 1/UDP_SOURCE_SHARE: a quarter of the table can't hold the TCP connections of a node,
# and ten clients at least are needed to fill the UDP quarter.
UDP_SHARE = 4
UDP_SOURCE_SHARE = 10
# `drop_counters()` keys, as agent summaries and /metrics carry them. edges_dropped is the
# total; the per-protocol ones add up to it; udp_edges_dropped_per_source is part of
# edges_dropped_udp.
DROP_COUNTERS = (
    "edges_dropped",
    *(f"edges_dropped_{protocol.value.lower()}" for protocol in Protocol),
    "udp_edges_dropped_per_source",
    "dns_rows_dropped",
)
DnsKey = tuple[IPAddress, str, IPAddress]  # client, name, address


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One edge of the table: client -> server on a protocol and server port.

    The defaults are what a flows file with only the four required columns says of a row
    (the one place they are written, `FLOW_DEFAULTS`): seen at least once, nothing else
    known. Times are None only for such a row; a `FlowTable`'s rows always have them.
    `outcome` is the best any of the edge's connections reached (see `Outcome`).
    """

    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol
    dst_port: int
    connections: int = 1
    packets: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    direction: DirectionEvidence = DirectionEvidence.INFERRED
    outcome: Outcome = Outcome.UNKNOWN


# Column -> value for the columns a flows file may leave out.
FLOW_DEFAULTS: Mapping[str, object] = {
    f.name: f.default for f in fields(FlowRow) if f.default is not MISSING
}
REQUIRED_FLOW_COLUMNS = [c for c in FLOW_COLUMNS if c not in FLOW_DEFAULTS]


@dataclass(frozen=True, slots=True)
class DnsRow:
    """What one client was told one name resolves to; values from the latest answer."""

    client_ip: IPAddress
    name: str
    address: IPAddress
    cname_chain: tuple[str, ...]
    server_ip: IPAddress
    ttl: int
    answers: int
    first_seen: float
    last_seen: float


@dataclass(slots=True)
class _EdgeStats:
    connections: int
    packets: int
    first: float
    last: float
    rank: int  # index into EVIDENCE_ORDER
    outcome: int  # index into OUTCOME_ORDER, or _NO_OUTCOME


@dataclass(slots=True)
class _DnsStats:
    cname_chain: tuple[str, ...]
    server_ip: IPAddress
    ttl: int
    answers: int
    first: float
    last: float


class FlowTable:
    """Edges and DNS rows aggregated from events; picklable, mergeable.

    `max_edges` caps the number of distinct edges (for the live agent): an event for a new
    edge beyond the cap is dropped and counted in `edges_dropped` (and by protocol, see
    `drop_counters`), while edges already in the table keep counting. Within the cap UDP
    has a budget of its own, `max_udp_edges` (default: 1/UDP_SHARE of `max_edges`), and one
    client at most `max_udp_edges_per_source` of it (default: 1/UDP_SOURCE_SHARE of the UDP
    budget): UDP 4-tuples cost a flood nothing to make, so they must not take the room of
    TCP and SCTP set-ups, which may fill the whole table. `max_dns_rows` caps DNS rows
    (default: the same cap as edges), counted in `dns_rows_dropped`.
    """

    def __init__(
        self,
        max_edges: int | None = None,
        *,
        max_dns_rows: int | None = None,
        max_udp_edges: int | None = None,
        max_udp_edges_per_source: int | None = None,
    ):
        self.max_edges = max_edges
        self.max_dns_rows = max_dns_rows if max_dns_rows is not None else max_edges
        if max_udp_edges is None and max_edges is not None:
            max_udp_edges = _share(max_edges, UDP_SHARE)
        if max_udp_edges_per_source is None and max_udp_edges is not None:
            max_udp_edges_per_source = _share(max_udp_edges, UDP_SOURCE_SHARE)
        self.max_udp_edges = max_udp_edges
        self.max_udp_edges_per_source = max_udp_edges_per_source
        self.edges_dropped = 0
        self.dns_rows_dropped = 0
        # Of edges_dropped: by the protocol of the refused edge, and the UDP ones refused
        # because their client had used up its share.
        self.edges_dropped_by_protocol = dict.fromkeys(Protocol, 0)
        self.udp_edges_dropped_per_source = 0
        self._udp_edges = 0
        self._udp_edges_by_source: dict[IPAddress, int] = {}  # only with a per-source limit
        self._edges: dict[EdgeKey, _EdgeStats] = {}
        self._dns: dict[DnsKey, _DnsStats] = {}

    # -- adding events ---------------------------------------------------------------

    def add(self, event: ConnectionOpen | EdgePackets | DnsAnswer) -> None:
        if type(event) is EdgePackets:
            self.add_packets(event)
        elif type(event) is ConnectionOpen:
            self.add_connection(event)
        elif type(event) is DnsAnswer:
            self.add_dns(event)
        else:
            raise TypeError(f"FlowTable can't add {type(event).__name__}")

    def add_all(self, events: Iterable[ConnectionOpen | EdgePackets | DnsAnswer]) -> None:
        for event in events:
            self.add(event)

    def add_connection(self, event: ConnectionOpen) -> None:
        key = (event.client_ip, event.server_ip, event.protocol, event.server_port)
        # A connection found ESTABLISHED in a socket table finished its handshake: completed.
        outcome = _COMPLETED if event.evidence is DirectionEvidence.ESTABLISHED else _NO_OUTCOME
        self._add_edge_values(key, 1, 0, event.time, event.time, _RANK[event.evidence], outcome)

    def add_packets(self, event: EdgePackets) -> None:
        key = (event.client_ip, event.server_ip, event.protocol, event.server_port)
        self._add_edge_values(
            key, 0, event.packets, event.first_time, event.last_time, _UNKNOWN_RANK,
            _OUTCOME_RANK[event.outcome],
        )

    def add_dns(self, answer: DnsAnswer) -> None:
        for record in answer.addresses:
            self._add_dns_values(
                (answer.client_ip, answer.query_name, record.address),
                answer.cname_chain,
                answer.server_ip,
                record.ttl,
                1,
                answer.time,
                answer.time,
            )

    def add_flow_row(self, row: FlowRow) -> None:
        """Add an already aggregated edge (from an agent summary or another table)."""
        if row.first_seen is None or row.last_seen is None:
            raise ValueError(f"a flow table row needs its times: {row}")
        key = (row.src_ip, row.dst_ip, row.protocol, row.dst_port)
        self._add_edge_values(
            key, row.connections, row.packets, row.first_seen, row.last_seen, _RANK[row.direction],
            _OUTCOME_RANK[row.outcome],
        )

    def add_dns_row(self, row: DnsRow) -> None:
        self._add_dns_values(
            (row.client_ip, row.name, row.address),
            row.cname_chain,
            row.server_ip,
            row.ttl,
            row.answers,
            row.first_seen,
            row.last_seen,
        )

    def merge(self, other: FlowTable) -> None:
        """Fold another table into this one (the other is left as it was)."""
        for key, e in other._edges.items():
            self._add_edge_values(
                key, e.connections, e.packets, e.first, e.last, e.rank, e.outcome
            )
        for dkey, d in other._dns.items():
            self._add_dns_values(
                dkey, d.cname_chain, d.server_ip, d.ttl, d.answers, d.first, d.last
            )
        self.edges_dropped += other.edges_dropped
        self.dns_rows_dropped += other.dns_rows_dropped
        for protocol, count in other.edges_dropped_by_protocol.items():
            self.edges_dropped_by_protocol[protocol] += count
        self.udp_edges_dropped_per_source += other.udp_edges_dropped_per_source

    # -- reading the table -----------------------------------------------------------

    @property
    def edge_count(self) -> int:
        return len(self._edges)

    def __len__(self) -> int:
        """The number of edges (DNS rows: `dns_row_count`)."""
        return len(self._edges)

    @property
    def dns_row_count(self) -> int:
        return len(self._dns)

    @property
    def udp_edge_count(self) -> int:
        return self._udp_edges

    def drop_counters(self) -> dict[str, int]:
        """What the caps refused, under the agent summary's counter names (DROP_COUNTERS)."""
        counters = {"edges_dropped": self.edges_dropped}
        for protocol, count in self.edges_dropped_by_protocol.items():
            counters[f"edges_dropped_{protocol.value.lower()}"] = count
        counters["udp_edges_dropped_per_source"] = self.udp_edges_dropped_per_source
        counters["dns_rows_dropped"] = self.dns_rows_dropped
        return counters

    def time_range(self) -> tuple[float, float] | None:
        """(earliest first_seen, latest last_seen) over edges and DNS rows; None if empty."""
        firsts = [e.first for e in self._edges.values()] + [d.first for d in self._dns.values()]
        lasts = [e.last for e in self._edges.values()] + [d.last for d in self._dns.values()]
        if not firsts:
            return None
        return min(firsts), max(lasts)

    def flow_rows(self) -> Iterator[FlowRow]:
        """Edges sorted by client IP, server IP (numerically), protocol, port."""
        for key, e in sorted(self._edges.items(), key=_edge_item_key):
            outcome = OUTCOME_ORDER[e.outcome] if e.outcome < _NO_OUTCOME else Outcome.UNKNOWN
            yield FlowRow(
                *key, e.connections, e.packets, e.first, e.last, EVIDENCE_ORDER[e.rank], outcome
            )

    def dns_rows(self) -> Iterator[DnsRow]:
        """DNS rows sorted by client IP, name, address."""
        for key, d in sorted(self._dns.items(), key=_dns_item_key):
            yield DnsRow(*key, d.cname_chain, d.server_ip, d.ttl, d.answers, d.first, d.last)

    def flows_frame(self) -> pd.DataFrame:
        """FLOW_COLUMNS, one row per edge, sorted (see `flow_rows`)."""
        from discover.flows.frames import flows_frame

        return flows_frame(list(self.flow_rows()))

    def dns_frame(self) -> pd.DataFrame:
        """DNS_COLUMNS, one row per (client, name, address), sorted (see `dns_rows`)."""
        from discover.flows.frames import dns_frame

        return dns_frame(list(self.dns_rows()))

    # -- internals -------------------------------------------------------------------

    def _edge_full(self, key: EdgeKey) -> bool:
        """No room for this new edge (counted as refused): the whole table is at its cap,
        or, for UDP, the UDP budget or its client's share of it is used up."""
        client, _server, protocol, _port = key
        full = self.max_edges is not None and len(self._edges) >= self.max_edges
        if protocol is Protocol.UDP and not full:
            per_source = self.max_udp_edges_per_source
            if per_source is not None and self._udp_edges_by_source.get(client, 0) >= per_source:
                self.udp_edges_dropped_per_source += 1
                full = True
            elif self.max_udp_edges is not None and self._udp_edges >= self.max_udp_edges:
                full = True
        if full:
            self.edges_dropped += 1
            self.edges_dropped_by_protocol[protocol] += 1
        return full

    def _add_edge_values(
        self, key: EdgeKey, connections: int, packets: int, first: float, last: float, rank: int,
        outcome: int,
    ) -> None:
        stats = self._edges.get(key)
        if stats is None:
            if not self._edge_full(key):
                self._edges[key] = _EdgeStats(connections, packets, first, last, rank, outcome)
                if key[2] is Protocol.UDP:
                    self._count_udp_edge(key[0])
            return
        stats.connections += connections
        stats.packets += packets
        if first < stats.first:
            stats.first = first
        if last > stats.last:
            stats.last = last
        if rank < stats.rank:
            stats.rank = rank
        if outcome < stats.outcome:
            stats.outcome = outcome

    def _count_udp_edge(self, client: IPAddress) -> None:
        self._udp_edges += 1
        if self.max_udp_edges_per_source is not None:
            self._udp_edges_by_source[client] = self._udp_edges_by_source.get(client, 0) + 1

    def _add_dns_values(
        self,
        key: DnsKey,
        cname_chain: tuple[str, ...],
        server_ip: IPAddress,
        ttl: int,
        answers: int,
        first: float,
        last: float,
    ) -> None:
        stats = self._dns.get(key)
        if stats is None:
            if self.max_dns_rows is not None and len(self._dns) >= self.max_dns_rows:
                self.dns_rows_dropped += 1
                return
            self._dns[key] = _DnsStats(cname_chain, server_ip, ttl, answers, first, last)
            return
        stats.answers += answers
        stats.first = min(stats.first, first)
        if last >= stats.last:
            # The latest answer says what the name resolves to now.
            stats.last = last
            stats.cname_chain = cname_chain
            stats.server_ip = server_ip
            stats.ttl = ttl


def _share(total: int, parts: int) -> int:
    """1/parts of a cap, rounded up: a small cap still leaves every class some room."""
    return -(-total // parts)


def _edge_item_key(item: tuple[EdgeKey, _EdgeStats]) -> tuple[int, int, int, int, str, int]:
    src, dst, protocol, port = item[0]
    return src.version, int(src), dst.version, int(dst), protocol.value, port


def _dns_item_key(item: tuple[DnsKey, _DnsStats]) -> tuple[int, int, str, int, int]:
    client, name, address = item[0]
    return client.version, int(client), name, address.version, int(address)


# -- times ----------------------------------------------------------------------------


def utc_time(seconds: float) -> datetime:
    """Epoch seconds as an aware UTC datetime, rounded to the microsecond (what pcap gives;
    the same instant `frames.epoch_series` and `iso_time` give)."""
    return _EPOCH + timedelta(microseconds=round(seconds * 1e6))


def iso_time(seconds: float | None) -> str:
    """What `write_table` writes for a time: rounded to the microsecond like `utc_time`;
    an unknown time (a flows file row without times) is empty."""
    if seconds is None:
        return ""
    whole, micros = divmod(round(seconds * 1e6), 1_000_000)
    return f"{_second_text(whole)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4096)
def _second_text(whole: int) -> str:
    # strftime is the slow part of writing a CSV; flows share their seconds a lot.
    return (_EPOCH + timedelta(seconds=whole)).strftime("%Y-%m-%dT%H:%M:%S")
