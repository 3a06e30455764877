"""The agent summary: a versioned JSON document holding a FlowTable and where it came from.

An agent serves and checkpoints one; `collect`, `analyze` and the other commands read them
(`discover/flows/sources.py` sniffs them by their leading `{`). Conversions come in pairs:
`summary_to_dict` / `summary_from_dict`. Reading is strict: every field is checked and a
bad one raises `SummaryError` naming the source and the JSON path ("summary.json:
flows[3].dst_port: expected an integer"). Older documents are brought up to date one
version at a time by `MIGRATIONS` before they are checked. docs/summary-format.md
describes every field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, NoReturn

from discover import __version__
from discover.errors import OutputError, ReadError
from discover.flows.events import DirectionEvidence, IPAddress, Outcome, Protocol
from discover.flows.flowtable import (
    DNS_COLUMNS,
    DROP_COUNTERS,
    FLOW_COLUMNS,
    DnsRow,
    FlowRow,
    FlowTable,
    iso_time,
)

KIND = "netpol-discover-summary"
SCHEMA_VERSION = 2
# Counters a table contributes when the meta doesn't carry them already (its caps' drops).
TABLE_COUNTERS = DROP_COUNTERS
# Flow frames hold datetime64[ns], which ends in April 2262.
MAX_EPOCH = 9_223_372_036.0
# A summary is read whole (about 1 KB of Python objects a row), so a larger file is refused
# before it is read. An agent's summary at its default caps (100,000 edges, as many DNS
# rows) stays under 0.6 GB even with the longest addresses, names and CNAME chains in every
# row (tests/test_hostile_inputs.py measures the rows); rows of usual names take far less,
# which leaves room for summaries merged by `collect` from several agents.
MAX_SUMMARY_BYTES = 1 << 30
# A file larger than this must show that it is a summary in its first or last bytes (the
# writer sorts keys, so "kind" comes after the rows; a version 0 draft has no kind) before
# it is read whole: a 512 MB JSON log starting with '{' is refused at once.
LOOK_BEFORE_READING = 1 << 20
_SIGNS = (f'"{KIND}"'.encode(), b'"schema_version"')


class SummaryError(ReadError):
    """A summary document that is not what its version says; `json_path` says where."""

    def __init__(self, source: str, json_path: str, message: str) -> None:
        self.json_path = json_path
        super().__init__(source, f"{json_path}: {message}" if json_path else message)


@dataclass(frozen=True, slots=True)
class SummaryMeta:
    """Who wrote a summary and over which window; `counters` are free-form totals
    (packets, kernel_drops, parse_errors, edges_dropped, ...)."""

    node_name: str = ""
    interface: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    agent_name: str = ""  # the agent's pod; for a sidecar, the pod it watches
    agent_version: str = __version__

    @classmethod
    def for_agent(
        cls,
        *,
        node_name: str,
        interface: str,
        window_start: float | datetime | None,
        window_end: float | datetime | None,
        counters: Mapping[str, int],
        agent_name: str = "",
    ) -> SummaryMeta:
        """Meta for a live agent, which keeps its window as epoch seconds."""
        return cls(
            node_name=node_name,
            interface=interface,
            window_start=_as_datetime(window_start),
            window_end=_as_datetime(window_end),
            counters=dict(counters),
            agent_name=agent_name,
        )


def summary_to_dict(table: FlowTable, meta: SummaryMeta) -> dict[str, Any]:
    """The current-version document; rows sorted, so equal tables give equal documents."""
    return {
        **_summary_head(table, meta),
        "flows": [_flow_dict(row) for row in table.flow_rows()],
        "dns": [_dns_dict(row) for row in table.dns_rows()],
    }


def _summary_head(table: FlowTable, meta: SummaryMeta) -> dict[str, Any]:
    """Everything of the document but its rows."""
    counters = {key: int(value) for key, value in meta.counters.items()}
    drops = table.drop_counters()
    counters.setdefault("dns_rows_dropped", drops.pop("dns_rows_dropped"))
    if "edges_dropped" not in counters:
        # The breakdown only beside the table's own total (a total from an agent older than
        # the breakdown has none), and only where nonzero: an absent key reads as 0.
        for key, value in drops.items():
            if value or key == "edges_dropped":
                counters.setdefault(key, value)
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "agent": {
            "name": meta.agent_name,
            "node": meta.node_name,
            "interface": meta.interface,
            "version": meta.agent_version,
        },
        "window": {
            "start": _datetime_text(meta.window_start),
            "end": _datetime_text(meta.window_end),
        },
        "counters": dict(sorted(counters.items())),
    }


def _flow_dict(row: FlowRow) -> dict[str, Any]:
    return {
        "src_ip": str(row.src_ip),
        "dst_ip": str(row.dst_ip),
        "protocol": row.protocol.value,
        "dst_port": row.dst_port,
        "connections": row.connections,
        "packets": row.packets,
        "first_seen": time_text(row.first_seen),
        "last_seen": time_text(row.last_seen),
        "direction": row.direction.value,
        "outcome": row.outcome.value,
    }


def _dns_dict(row: DnsRow) -> dict[str, Any]:
    return {
        "client_ip": str(row.client_ip),
        "name": row.name,
        "address": str(row.address),
        "cname_chain": list(row.cname_chain),
        "server_ip": str(row.server_ip),
        "ttl": row.ttl,
        "answers": row.answers,
        "first_seen": time_text(row.first_seen),
        "last_seen": time_text(row.last_seen),
    }


def summary_from_dict(doc: object, source: str) -> tuple[FlowTable, SummaryMeta]:
    """Check a document (any version this code knows) and turn it into a table and meta.

    The table's drop counters start at zero: what the agent dropped is in
    `meta.counters` (`edges_dropped` and the rest of TABLE_COUNTERS), so a resumed agent
    doesn't count it twice.
    """
    current = migrate(doc, source)
    f = Fields(source)
    check_keys(
        f, current, "", {"kind", "schema_version", "agent", "window", "counters", "flows", "dns"}
    )
    if current["kind"] != KIND:
        raise SummaryError(source, "kind", f"expected {KIND!r}, got {current['kind']!r}")
    agent = f.mapping(current["agent"], "agent")
    check_keys(f, agent, "agent", {"name", "node", "interface", "version"})
    window = f.mapping(current["window"], "window")
    check_keys(f, window, "window", {"start", "end"})
    start = f.optional_time(window["start"], "window.start")
    end = f.optional_time(window["end"], "window.end")
    if start is not None and end is not None and start > end:
        raise SummaryError(source, "window", "start is after end")
    counters = f.mapping(current["counters"], "counters")
    meta = SummaryMeta(
        node_name=f.string(agent["node"], "agent.node"),
        interface=f.string(agent["interface"], "agent.interface"),
        window_start=_as_datetime(start),
        window_end=_as_datetime(end),
        counters={k: f.count(v, f"counters.{k}") for k, v in counters.items()},
        agent_name=f.string(agent["name"], "agent.name"),
        agent_version=f.string(agent["version"], "agent.version"),
    )
    table = FlowTable()
    for index, item in enumerate(f.array(current["flows"], "flows")):
        table.add_flow_row(_flow_row(f, item, f"flows[{index}]"))
    for index, item in enumerate(f.array(current["dns"], "dns")):
        table.add_dns_row(f.dns_row(item, f"dns[{index}]"))
    return table, meta


def read_summary(
    path: Path | str, *, max_bytes: int = MAX_SUMMARY_BYTES
) -> tuple[FlowTable, SummaryMeta]:
    """A summary file from disk (see `summary_from_dict`)."""
    name = str(path)
    try:
        _check_before_reading(Path(path), max_bytes)
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise ReadError(name, f"cannot read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ReadError(name, f"not UTF-8 text (byte {error.start})") from error
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReadError(
            name, f"line {error.lineno} column {error.colno}: invalid JSON: {error.msg}"
        ) from error
    except RecursionError:
        raise ReadError(name, "JSON nested too deeply to be a summary") from None
    return summary_from_dict(doc, name)


def _check_before_reading(path: Path, max_bytes: int) -> None:
    """ReadError for a file too large to be a summary, or a large one that shows no sign of
    being one; OSError from the file system goes to the caller."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ReadError(
            str(path),
            f"{size:,} bytes: larger than any summary ({max_bytes:,} bytes at most; an agent's "
            "summary at its default caps stays under 0.6 GB)",
        )
    if size <= LOOK_BEFORE_READING:
        return
    with path.open("rb") as stream:
        head = stream.read(1 << 16)
        stream.seek(max(0, size - (1 << 16)))
        tail = stream.read()
    if not any(sign in head or sign in tail for sign in _SIGNS):
        raise ReadError(
            str(path),
            f"starts with '{{' but is no netpol-discover summary: {size:,} bytes without "
            f'"kind": "{KIND}" near its start or end',
        )


def write_summary(table: FlowTable, meta: SummaryMeta, path: Path | str) -> None:
    """Write a summary as deterministic JSON (sorted keys, indented), row by row."""
    try:
        with open(path, "w", encoding="utf-8") as stream:
            stream.writelines(summary_text(table, meta))
    except OSError as error:
        raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error


def dumps_summary(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def summary_text(table: FlowTable, meta: SummaryMeta) -> Iterator[str]:
    """`dumps_summary(summary_to_dict(table, meta))` in pieces, one row at a time: a merged
    summary of a million edges is written without its document (about 1 KB of Python
    objects per row) or its text being held whole. Same bytes: json's indentation of a
    value nested `level` deep is its own dump with each line break followed by `level`
    indents, and the dump of a string never holds a raw line break."""
    head = _summary_head(table, meta)
    rows: dict[str, Iterator[str]] = {
        "flows": map(_flow_text, table.flow_rows()),
        "dns": (_nested_dump(_dns_dict(row), 2) for row in table.dns_rows()),
    }
    yield "{"
    for index, key in enumerate(sorted([*head, *rows])):
        yield ("\n " if index == 0 else ",\n ") + json.dumps(key) + ": "
        if key in head:
            yield _nested_dump(head[key], 1)
            continue
        empty = True
        for text in rows[key]:
            yield ("[\n  " if empty else ",\n  ") + text
            empty = False
        yield "[]" if empty else "\n ]"
    yield "\n}\n"


# A flow row as json.dumps(indent=1, sort_keys=True) writes it two levels deep. Its strings
# are IP addresses, times and enum values, which JSON never escapes: a format is ~10x
# faster than json's Python encoder (the indenting one) on a million rows.
_FLOW_TEXT = (
    '{\n   "connections": %d,\n   "direction": "%s",\n   "dst_ip": "%s",\n   "dst_port": %d,'
    '\n   "first_seen": "%s",\n   "last_seen": "%s",\n   "outcome": "%s",\n   "packets": %d,'
    '\n   "protocol": "%s",\n   "src_ip": "%s"\n  }'
)


def _flow_text(row: FlowRow) -> str:
    return _FLOW_TEXT % (
        row.connections, row.direction.value, row.dst_ip, row.dst_port,
        time_text(row.first_seen), time_text(row.last_seen), row.outcome.value, row.packets,
        row.protocol.value, row.src_ip,
    )


def _nested_dump(value: object, level: int) -> str:
    return json.dumps(value, indent=1, sort_keys=True).replace("\n", "\n" + " " * level)


def merge_summaries(
    parts: Iterable[tuple[FlowTable, SummaryMeta]],
) -> tuple[FlowTable, SummaryMeta]:
    """One table and meta for several agents: tables merged, the window spanning them all,
    counters summed, node/interface/agent names listed (sorted, comma-separated). Each
    part is folded in as `parts` yields it, so a generator that reads one agent's summary
    at a time keeps memory to the distinct edges, not to all the agents' documents."""
    table = FlowTable()
    metas: list[SummaryMeta] = []
    for part_table, part_meta in parts:
        table.merge(part_table)
        metas.append(part_meta)
    counters: dict[str, int] = {}
    for meta in metas:
        for key, value in meta.counters.items():
            counters[key] = counters.get(key, 0) + value
    starts = [m.window_start for m in metas if m.window_start is not None]
    ends = [m.window_end for m in metas if m.window_end is not None]
    return table, SummaryMeta(
        node_name=_joined(m.node_name for m in metas),
        interface=_joined(m.interface for m in metas),
        window_start=min(starts) if starts else None,
        window_end=max(ends) if ends else None,
        counters=counters,
        agent_name=_joined(m.agent_name for m in metas),
    )


# -- migrations ------------------------------------------------------------------------


def migrate(doc: object, source: str) -> dict[str, Any]:
    """Bring a document of any known version to SCHEMA_VERSION, one step at a time."""
    f = Fields(source)
    current = f.mapping(doc, "")
    if "schema_version" not in current:
        raise SummaryError(source, "schema_version", "missing; is this a netpol-discover summary?")
    version = f.integer(current["schema_version"], "schema_version")
    if version > SCHEMA_VERSION:
        raise SummaryError(
            source,
            "schema_version",
            f"version {version} is newer than this netpol-discover ({__version__}) reads "
            f"(up to {SCHEMA_VERSION}); upgrade netpol-discover",
        )
    if version not in MIGRATIONS and version != SCHEMA_VERSION:
        raise SummaryError(source, "schema_version", f"unknown version {version}")
    while version < SCHEMA_VERSION:
        current = MIGRATIONS[version](current, f)
        version = current["schema_version"]
    return current


def _v0_to_v1(doc: dict[str, Any], f: Fields) -> dict[str, Any]:
    """Version 0, the pre-release draft: epoch-second times, edges as arrays, one DNS entry
        per answer. Its agent only counted connection set-ups (a TCP SYN, a UDP flow's first
    datagram), one packet each."""
    check_keys(
        f,
        doc,
        "",
        {"schema_version", "node", "interface", "started", "ended", "stats", "edges", "dns"},
    )
    stats = f.mapping(doc["stats"], "stats")
    renamed = {"drops": "kernel_drops", "errors": "parse_errors"}
    flows = []
    for index, edge in enumerate(f.array(doc["edges"], "edges")):
        path = f"edges[{index}]"
        values = f.array(edge, path)
        if len(values) != 7:
            raise SummaryError(
                f.source, path, "expected [src, dst, proto, port, count, first, last]"
            )
        src, dst, proto, port, count, first, last = values
        flows_protocol = proto.upper() if isinstance(proto, str) else proto
        flows.append(
            {
                "src_ip": src,
                "dst_ip": dst,
                "protocol": flows_protocol,
                "dst_port": port,
                "connections": count,
                "packets": count,
                "first_seen": _epoch_text(f, first, f"{path}[5]"),
                "last_seen": _epoch_text(f, last, f"{path}[6]"),
                "direction": _V0_DIRECTION.get(flows_protocol, DirectionEvidence.SYN).value,
            }
        )
    dns = []
    for index, entry in enumerate(f.array(doc["dns"], "dns")):
        path = f"dns[{index}]"
        item = f.mapping(entry, path)
        check_keys(f, item, path, {"client", "qname", "answers", "cnames", "ttl", "server", "time"})
        when = _epoch_text(f, item["time"], f"{path}.time")
        chain = [
            _draft_name(f, c, f"{path}.cnames") for c in f.array(item["cnames"], f"{path}.cnames")
        ]
        for address in f.array(item["answers"], f"{path}.answers"):
            dns.append(
                {
                    "client_ip": item["client"],
                    "name": _draft_name(f, item["qname"], f"{path}.qname"),
                    "address": address,
                    "cname_chain": chain,
                    "server_ip": item["server"],
                    "ttl": item["ttl"],
                    "answers": 1,
                    "first_seen": when,
                    "last_seen": when,
                }
            )
    return {
        "kind": KIND,
        "schema_version": 1,
        "agent": {
            "name": "",
            "node": doc["node"],
            "interface": doc["interface"],
            "version": "0 (draft)",
        },
        "window": {
            "start": _epoch_text(f, doc["started"], "started", nullable=True),
            "end": _epoch_text(f, doc["ended"], "ended", nullable=True),
        },
        "counters": {renamed.get(key, key): value for key, value in stats.items()},
        "flows": flows,
        "dns": dns,
    }


# What a v0 agent saw of each connection: the SYN (the INIT, were it SCTP), or a UDP
# flow's first datagram.
_V0_DIRECTION = {
    "TCP": DirectionEvidence.SYN,
    "UDP": DirectionEvidence.UDP_FIRST,
    "SCTP": DirectionEvidence.INIT,
}

def _v1_to_v2(doc: dict[str, Any], f: Fields) -> dict[str, Any]:
    """Version 2 records each edge's outcome. A version 1 agent did not look at answers:
    its edges are "unknown", which synthesis allows as it did before outcomes existed.
    Anything else wrong is left for the version 2 checks to name."""
    flows = doc.get("flows")
    if isinstance(flows, list):
        for index, row in enumerate(flows):
            if isinstance(row, dict) and "outcome" in row:
                f.fail(f"flows[{index}].outcome", "unknown field")
        flows = [
            {**row, "outcome": Outcome.UNKNOWN.value} if isinstance(row, dict) else row
            for row in flows
        ]
    return {**doc, "schema_version": 2, "flows": flows}


MIGRATIONS: dict[int, Callable[[dict[str, Any], Fields], dict[str, Any]]] = {
    0: _v0_to_v1,
    1: _v1_to_v2,
}


# -- helpers ---------------------------------------------------------------------------


def _flow_row(f: Fields, item: object, path: str) -> FlowRow:
    row = f.mapping(item, path)
    check_keys(f, row, path, set(FLOW_COLUMNS))
    first = f.time(row["first_seen"], f"{path}.first_seen")
    last = f.time(row["last_seen"], f"{path}.last_seen")
    if first > last:
        raise SummaryError(f.source, f"{path}.first_seen", "is after last_seen")
    return FlowRow(
        src_ip=f.ip(row["src_ip"], f"{path}.src_ip"),
        dst_ip=f.ip(row["dst_ip"], f"{path}.dst_ip"),
        protocol=Protocol(f.choice(row["protocol"], f"{path}.protocol", list(Protocol))),
        dst_port=f.port(row["dst_port"], f"{path}.dst_port"),
        connections=f.count(row["connections"], f"{path}.connections"),
        packets=f.count(row["packets"], f"{path}.packets"),
        first_seen=first,
        last_seen=last,
        direction=DirectionEvidence(
            f.choice(row["direction"], f"{path}.direction", list(DirectionEvidence))
        ),
        outcome=Outcome(f.choice(row["outcome"], f"{path}.outcome", list(Outcome))),
    )


def _epoch_text(f: Fields, value: object, path: str, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SummaryError(f.source, path, "expected epoch seconds (a number)")
    return time_text(float(value))


def _draft_name(f: Fields, value: object, path: str) -> str:
    return f.string(value, path).rstrip(".").lower()


def _as_datetime(value: float | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


def _datetime_text(value: datetime | None) -> str | None:
    return None if value is None else time_text(value.timestamp())


def _joined(names: Iterable[str]) -> str:
    return ",".join(sorted({name for name in names if name}))


def time_text(seconds: float | None) -> str:
    """Epoch seconds as ISO-8601 UTC with microseconds, e.g. 2026-01-02T03:04:05.000000Z:
    the same text as the flows CSV (a table's rows always have times; only a flows file
    row may have none)."""
    return iso_time(seconds)


def check_keys(f: Fields, obj: Mapping[str, Any], path: str, keys: set[str]) -> None:
    """Every key present, no other: fields that this version doesn't define are refused."""
    prefix = f"{path}." if path else ""
    for key in sorted(keys - obj.keys()):
        raise SummaryError(f.source, prefix + key, "missing")
    for key in sorted(obj.keys() - keys):
        raise SummaryError(f.source, prefix + str(key), "unknown field")


class Fields:
    """Typed reads of JSON values; a wrong value raises SummaryError with its JSON path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._ips: dict[object, IPAddress] = {}  # the same few IPs fill most rows

    def fail(self, path: str, message: str) -> NoReturn:
        raise SummaryError(self.source, path, message)

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "expected an object" if path else "expected a JSON object")
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, "expected an array")
        return value

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, "expected a string")
        return value

    def integer(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "expected an integer")
        return value

    def count(self, value: object, path: str) -> int:
        number = self.integer(value, path)
        if number < 0:
            self.fail(path, f"expected an integer >= 0, got {number}")
        return number

    def port(self, value: object, path: str) -> int:
        number = self.integer(value, path)
        if not 0 <= number <= 65535:
            self.fail(path, f"expected a port number 0-65535, got {number}")
        return number

    def choice(self, value: object, path: str, choices: Iterable[str]) -> str:
        allowed = [str(c) for c in choices]
        if value not in allowed:
            self.fail(path, f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def ip(self, value: object, path: str) -> IPAddress:
        known = self._ips.get(value) if isinstance(value, str) else None
        if known is not None:
            return known
        try:
            address = self._ips[value] = ip_address(self.string(value, path))
        except ValueError:
            self.fail(path, f"expected an IP address, got {value!r}")
        return address

    def time(self, value: object, path: str) -> float:
        text = self.string(value, path)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            self.fail(path, f"expected an ISO-8601 time, got {text!r}")
        if stamp.tzinfo is None:
            self.fail(path, f"expected a time with a zone (…Z), got {text!r}")
        try:
            seconds = stamp.timestamp()
        except (OverflowError, ValueError):
            seconds = -1.0
        if not 0 <= seconds < MAX_EPOCH:
            self.fail(path, f"expected a time from 1970 to 2262, got {text!r}")
        return seconds

    def optional_time(self, value: object, path: str) -> float | None:
        return None if value is None else self.time(value, path)

    def dns_row(self, item: object, path: str) -> DnsRow:
        row = self.mapping(item, path)
        check_keys(self, row, path, set(DNS_COLUMNS))
        name = self.string(row["name"], f"{path}.name")
        if not name or name != name.lower() or name.endswith("."):
            self.fail(
                f"{path}.name", f"expected a lower-case name without trailing dot, got {name!r}"
            )
        chain = self.array(row["cname_chain"], f"{path}.cname_chain")
        first = self.time(row["first_seen"], f"{path}.first_seen")
        last = self.time(row["last_seen"], f"{path}.last_seen")
        if first > last:
            self.fail(f"{path}.first_seen", "is after last_seen")
        return DnsRow(
            client_ip=self.ip(row["client_ip"], f"{path}.client_ip"),
            name=name,
            address=self.ip(row["address"], f"{path}.address"),
            cname_chain=tuple(
                self.string(c, f"{path}.cname_chain[{i}]") for i, c in enumerate(chain)
            ),
            server_ip=self.ip(row["server_ip"], f"{path}.server_ip"),
            ttl=self.count(row["ttl"], f"{path}.ttl"),
            answers=self.count(row["answers"], f"{path}.answers"),
            first_seen=first,
            last_seen=last,
        )
