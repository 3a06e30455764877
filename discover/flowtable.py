"""The flow table: events folded into one row per edge and one row per DNS answer.

Memory grows with the number of distinct edges and (client, name, address) triples, never
with the number of packets or events: each event updates a few counters in a dict keyed by
a tuple. Offline readers build one table per file and `merge` them; the live agent builds
one with a `max_edges` cap and writes it as an agent summary.

Times are float seconds since the epoch inside the table; the frames turn them into
`datetime64[ns, UTC]`. pandas is imported only when a frame is built or a file read or
written, so the live agent and `--help` don't pay for it.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discover.errors import ConfigurationError, ReadError
from discover.events import (
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    EdgePackets,
    IPAddress,
    Protocol,
)

if TYPE_CHECKING:
    import pandas as pd

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
    DirectionEvidence.SYN_ACK,
    DirectionEvidence.UDP_FIRST,
    DirectionEvidence.INFERRED,
)
_RANK = {evidence: rank for rank, evidence in enumerate(EVIDENCE_ORDER)}
# Packets of an edge whose ConnectionOpen hasn't been seen yet: the weakest evidence.
_UNKNOWN_RANK = _RANK[DirectionEvidence.INFERRED]

EdgeKey = tuple[IPAddress, IPAddress, Protocol, int]  # client, server, protocol, server port
DnsKey = tuple[IPAddress, str, IPAddress]  # client, name, address


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One edge of the table: client -> server on a protocol and server port."""

    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol
    dst_port: int
    connections: int
    packets: int
    first_seen: float
    last_seen: float
    direction: DirectionEvidence


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
    edge beyond the cap is dropped and counted in `edges_dropped`, while edges already in
    the table keep counting. `max_dns_rows` does the same for DNS rows (default: the same
    cap as edges), counted in `dns_rows_dropped`.
    """

    def __init__(self, max_edges: int | None = None, *, max_dns_rows: int | None = None):
        self.max_edges = max_edges
        self.max_dns_rows = max_dns_rows if max_dns_rows is not None else max_edges
        self.edges_dropped = 0
        self.dns_rows_dropped = 0
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
        self._add_edge_values(key, 1, 0, event.time, event.time, _RANK[event.evidence])

    def add_packets(self, event: EdgePackets) -> None:
        key = (event.client_ip, event.server_ip, event.protocol, event.server_port)
        self._add_edge_values(
            key, 0, event.packets, event.first_time, event.last_time, _UNKNOWN_RANK
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
        key = (row.src_ip, row.dst_ip, row.protocol, row.dst_port)
        self._add_edge_values(
            key, row.connections, row.packets, row.first_seen, row.last_seen, _RANK[row.direction]
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
            self._add_edge_values(key, e.connections, e.packets, e.first, e.last, e.rank)
        for dkey, d in other._dns.items():
            self._add_dns_values(
                dkey, d.cname_chain, d.server_ip, d.ttl, d.answers, d.first, d.last
            )
        self.edges_dropped += other.edges_dropped
        self.dns_rows_dropped += other.dns_rows_dropped

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
            yield FlowRow(*key, e.connections, e.packets, e.first, e.last, EVIDENCE_ORDER[e.rank])

    def dns_rows(self) -> Iterator[DnsRow]:
        """DNS rows sorted by client IP, name, address."""
        for key, d in sorted(self._dns.items(), key=_dns_item_key):
            yield DnsRow(*key, d.cname_chain, d.server_ip, d.ttl, d.answers, d.first, d.last)

    def flows_frame(self) -> pd.DataFrame:
        """FLOW_COLUMNS, one row per edge, sorted (see `flow_rows`)."""
        return flows_frame(list(self.flow_rows()))

    def dns_frame(self) -> pd.DataFrame:
        """DNS_COLUMNS, one row per (client, name, address), sorted (see `dns_rows`)."""
        return dns_frame(list(self.dns_rows()))

    def write(self, path: Path | str, table: str = "flows") -> int:
        """Write the "flows" or "dns" table like `write_table(frame, path)`; the rows written.

        CSV goes straight from the rows, byte for byte what `write_table` writes, without
        importing pandas (half a second of a command that takes two).
        """
        if Path(path).suffix.lower() != ".csv":
            frame = self.flows_frame() if table == "flows" else self.dns_frame()
            write_table(frame, path)
            return len(frame)
        rows: list[tuple[object, ...]]
        if table == "flows":
            header = FLOW_COLUMNS
            rows = [
                (
                    r.src_ip,
                    r.dst_ip,
                    r.protocol.value,
                    r.dst_port,
                    r.connections,
                    r.packets,
                    iso_time(r.first_seen),
                    iso_time(r.last_seen),
                    r.direction.value,
                )
                for r in self.flow_rows()
            ]
        else:
            header = DNS_COLUMNS
            rows = [
                (
                    d.client_ip,
                    d.name,
                    d.address,
                    CNAME_SEPARATOR.join(d.cname_chain),
                    d.server_ip,
                    d.ttl,
                    d.answers,
                    iso_time(d.first_seen),
                    iso_time(d.last_seen),
                )
                for d in self.dns_rows()
            ]
        try:
            with open(path, "w", newline="", encoding="utf-8") as stream:
                writer = csv.writer(stream, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)
        except OSError as error:
            raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error
        return len(rows)

    # -- internals -------------------------------------------------------------------

    def _edge_full(self) -> bool:
        if self.max_edges is not None and len(self._edges) >= self.max_edges:
            self.edges_dropped += 1
            return True
        return False

    def _add_edge_values(
        self, key: EdgeKey, connections: int, packets: int, first: float, last: float, rank: int
    ) -> None:
        stats = self._edges.get(key)
        if stats is None:
            if not self._edge_full():
                self._edges[key] = _EdgeStats(connections, packets, first, last, rank)
            return
        stats.connections += connections
        stats.packets += packets
        if first < stats.first:
            stats.first = first
        if last > stats.last:
            stats.last = last
        if rank < stats.rank:
            stats.rank = rank

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


def ip_sort_key(ip: IPAddress) -> tuple[int, int]:
    """Numeric order, IPv4 before IPv6 (IPv4Address and IPv6Address don't compare)."""
    return ip.version, int(ip)


def _edge_item_key(item: tuple[EdgeKey, _EdgeStats]) -> tuple[int, int, int, int, str, int]:
    src, dst, protocol, port = item[0]
    return src.version, int(src), dst.version, int(dst), protocol.value, port


def _dns_item_key(item: tuple[DnsKey, _DnsStats]) -> tuple[int, int, str, int, int]:
    client, name, address = item[0]
    return client.version, int(client), name, address.version, int(address)


# -- frames ----------------------------------------------------------------------------


def flows_frame(rows: list[FlowRow]) -> pd.DataFrame:
    """FLOW_COLUMNS with the contract's dtypes, rows in the order given."""
    import pandas as pd

    return pd.DataFrame(
        {
            "src_ip": pd.Series([str(r.src_ip) for r in rows], dtype="str"),
            "dst_ip": pd.Series([str(r.dst_ip) for r in rows], dtype="str"),
            "protocol": pd.Series([r.protocol.value for r in rows], dtype="str"),
            "dst_port": pd.Series([r.dst_port for r in rows], dtype="int64"),
            "connections": pd.Series([r.connections for r in rows], dtype="int64"),
            "packets": pd.Series([r.packets for r in rows], dtype="int64"),
            "first_seen": epoch_series([r.first_seen for r in rows]),
            "last_seen": epoch_series([r.last_seen for r in rows]),
            "direction": pd.Series([r.direction.value for r in rows], dtype="str"),
        },
        columns=FLOW_COLUMNS,
    )


def dns_frame(rows: list[DnsRow]) -> pd.DataFrame:
    """DNS_COLUMNS with the contract's dtypes, rows in the order given."""
    import pandas as pd

    return pd.DataFrame(
        {
            "client_ip": pd.Series([str(r.client_ip) for r in rows], dtype="str"),
            "name": pd.Series([r.name for r in rows], dtype="str"),
            "address": pd.Series([str(r.address) for r in rows], dtype="str"),
            "cname_chain": pd.Series(
                [CNAME_SEPARATOR.join(r.cname_chain) for r in rows], dtype="str"
            ),
            "server_ip": pd.Series([str(r.server_ip) for r in rows], dtype="str"),
            "ttl": pd.Series([r.ttl for r in rows], dtype="int64"),
            "answers": pd.Series([r.answers for r in rows], dtype="int64"),
            "first_seen": epoch_series([r.first_seen for r in rows]),
            "last_seen": epoch_series([r.last_seen for r in rows]),
        },
        columns=DNS_COLUMNS,
    )


def iso_time(seconds: float) -> str:
    """What `write_table` writes for a time: rounded to the microsecond like `epoch_series`."""
    whole, micros = divmod(round(seconds * 1e6), 1_000_000)
    return f"{_second_text(whole)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4096)
def _second_text(whole: int) -> str:
    # strftime is the slow part of writing a CSV; flows share their seconds a lot.
    return (_EPOCH + timedelta(seconds=whole)).strftime("%Y-%m-%dT%H:%M:%S")


def epoch_series(seconds: list[float]) -> pd.Series:
    """Float epoch seconds -> datetime64[ns, UTC], rounded to the microsecond pcap gives."""
    import numpy as np
    import pandas as pd

    micros = np.rint(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    stamps = pd.to_datetime(micros, unit="us", utc=True)
    return pd.Series(stamps).astype("datetime64[ns, UTC]")


# -- flow files --------------------------------------------------------------------------

REQUIRED_FLOW_COLUMNS = FLOW_COLUMNS[:4]
# Defaults for a flows file that has only the required columns: each row was seen at least
# once, nothing else is known about it.
_DIRECTIONS = frozenset(e.value for e in DirectionEvidence)
_FLOW_DEFAULTS = {"connections": "1", "packets": "0", "direction": DirectionEvidence.INFERRED}


class FlowsFileError(ReadError):
    """A flows file row that doesn't hold what its column says (`line` is 1-based)."""

    def __init__(self, path: str, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(path, message if line is None else f"line {line}: {message}")


class OutputError(ConfigurationError):
    """An output file that can't be written (unknown extension, missing directory...)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


def read_flows_file(path: Path | str) -> pd.DataFrame:
    """A flows CSV or Parquet file (sniffed by content) as FLOW_COLUMNS plus any extra ones.

    Only the four required columns must be there; the others get defaults (connections 1,
    packets 0, times NaT, direction "inferred"). IPs come back in canonical form, protocol
    upper case. A bad value raises FlowsFileError naming the file, the line and the column
    (for Parquet, `line` is the 1-based row).
    """
    import pandas as pd

    name = str(path)
    try:
        with open(path, "rb") as stream:
            is_parquet = stream.read(4) == b"PAR1"
    except OSError as error:
        raise ReadError(name, f"cannot read: {error.strerror}") from error
    raw, first_line = (_read_parquet(name), 1) if is_parquet else (_read_csv(name), 2)
    missing = [c for c in REQUIRED_FLOW_COLUMNS if c not in raw.columns]
    if missing:
        raise FlowsFileError(
            name,
            f"missing column(s) {', '.join(missing)}; a flows file needs at least "
            f"{','.join(REQUIRED_FLOW_COLUMNS)}",
        )
    lines = [first_line + int(i) for i in raw.index]
    out: dict[str, object] = {}
    for column, parse, dtype in (
        ("src_ip", _parse_ip, "str"),
        ("dst_ip", _parse_ip, "str"),
        ("protocol", _parse_protocol, "str"),
        ("dst_port", _parse_port, "int64"),
        ("connections", _parse_count, "int64"),
        ("packets", _parse_count, "int64"),
        ("direction", _parse_direction, "str"),
    ):
        if column in raw.columns:
            values = _parse_column(name, lines, column, parse, raw[column].tolist())
        else:
            values = [parse(_FLOW_DEFAULTS[column])] * len(raw)
        out[column] = pd.Series(values, dtype=dtype, index=raw.index)
    for column in ("first_seen", "last_seen"):
        out[column] = _parse_times(name, lines, column, raw.get(column), raw.index)
    extra = {c: raw[c] for c in raw.columns if c not in FLOW_COLUMNS}
    return pd.DataFrame(out | extra, columns=FLOW_COLUMNS + list(extra)).reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a frame as CSV (times ISO-8601 UTC) or Parquet, chosen by the file extension."""
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".csv":
            text = frame.copy()
            for column in text.columns:
                if isinstance(text[column].dtype, pd.DatetimeTZDtype):
                    stamps = text[column].dt.tz_convert("UTC").dt.strftime(ISO_FORMAT)
                    text[column] = stamps.astype(object).where(stamps.notna(), "")
            text.to_csv(path, index=False, lineterminator="\n")
        elif suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            raise OutputError(str(path), "unknown output format; use a .csv or .parquet name")
    except OSError as error:
        raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error


def _read_csv(name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        # Everything as text: the values are checked below, with their line numbers.
        frame = pd.read_csv(
            name, dtype=str, keep_default_na=False, skip_blank_lines=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError as error:
        raise FlowsFileError(name, "empty file; expected a header line") from error
    except pd.errors.ParserError as error:
        raise FlowsFileError(name, f"not a valid CSV file: {error}") from error
    except UnicodeDecodeError as error:
        raise FlowsFileError(name, f"not UTF-8 text (byte {error.start})") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    blank = (frame == "").all(axis=1)  # blank lines count for line numbers, hold nothing
    return frame[~blank]


def _read_parquet(name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(name)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise FlowsFileError(name, f"not a readable Parquet file: {error}") from error


def _parse_column(
    name: str, lines: list[int], column: str, parse: Callable[[object], Any], cells: list[Any]
) -> list[Any]:
    """Each distinct value parsed once (IPs, ports and protocols repeat a lot)."""
    parsed: dict[object, Any] = {}
    try:
        for value in dict.fromkeys(cells):
            parsed[value] = parse(value)
    except ValueError as error:
        line = lines[cells.index(value)]
        raise FlowsFileError(name, f"{column}: {error}", line=line) from None
    except TypeError:  # an unhashable value from a Parquet column of lists or maps
        raise FlowsFileError(name, f"{column}: expected text or numbers, not lists") from None
    return [parsed[value] for value in cells]


def _parse_ip(value: object) -> str:
    try:
        return str(ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"expected an IP address, got {value!r}") from None


def _parse_protocol(value: object) -> str:
    text = str(value).strip().upper()
    if text not in (Protocol.TCP, Protocol.UDP):
        raise ValueError(f"expected TCP or UDP, got {value!r}")
    return text


def _parse_int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        text = str(value).strip()
        number = int(text) if text.isascii() and text.isdigit() else None
    if number is None or not low <= number <= high:
        raise ValueError(f"expected {what}, got {value!r}")
    return number


def _parse_port(value: object) -> int:
    return _parse_int(value, 0, 65535, "a port number 0-65535")


def _parse_count(value: object) -> int:
    return _parse_int(value, 0, 2**63 - 1, "a count (an integer >= 0)")


def _parse_direction(value: object) -> str:
    text = str(value).strip().lower()
    if not text:
        return DirectionEvidence.INFERRED.value
    if text not in _DIRECTIONS:
        choices = ", ".join(e.value for e in DirectionEvidence)
        raise ValueError(f"expected one of {choices}, got {value!r}")
    return text


def _parse_times(
    name: str, lines: list[int], column: str, raw: pd.Series | None, index: pd.Index
) -> pd.Series:
    import pandas as pd

    if raw is None:
        return pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):  # Parquet keeps real timestamps
        aware: pd.Series = raw if getattr(raw.dt, "tz", None) else raw.dt.tz_localize("UTC")
        converted: pd.Series = aware.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        return converted
    text = raw.astype(str).str.strip().where(raw.notna(), "")
    stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = stamps.isna() & (text != "")
    if bad.any():
        position = int(bad.to_numpy().argmax())
        raise FlowsFileError(
            name,
            f"{column}: expected an ISO-8601 time, got {text.iloc[position]!r}",
            line=lines[position],
        )
    return stamps.astype("datetime64[ns, UTC]")
