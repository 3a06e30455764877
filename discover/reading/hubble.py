"""Hubble flow files: recognising them, and reading them line by line into `HubbleFlow`s.

`hubble observe -o json` (alias `jsonpb`) and Hubble's flow exporter write one JSON object
a line (NDJSON), possibly gzipped. A bad line is a warning naming the file and the line
number and the rest is read; lines that are JSON but carry no flow (`node_status`,
`lost_events`) are counted by kind, lost events by how many flows they lost.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from discover.errors import ReadError
from discover.reading.hubble_records import HubbleFlow, NotAFlow, field, parse_flow

GZIP_MAGIC = b"\x1f\x8b"
# The first key of a GetFlowsResponse (Go's protojson writes fields in number order: flow=1,
# or node_status/lost_events for the other responses) or of a bare Flow (time=1, uuid=34,
# verdict=2, ...). An agent summary starts with {"schema_version" (or pretty-printed "{\n").
_FIRST_KEY = re.compile(
    rb'\A\s*\{\s*"(flow|node_status|nodeStatus|lost_events|lostEvents|time|uuid|verdict|'
    rb'IP|l4|node_name|nodeName)"\s*:'
)
MAX_WARNED_LINES = 5  # bad lines named one by one; past that, one count
PROGRESS_EVERY = 4096  # lines between progress callbacks


def looks_like_hubble(head: bytes) -> bool:
    """The first bytes (decompressed) open a Hubble JSON line (see `_FIRST_KEY`)."""
    return _FIRST_KEY.match(head.removeprefix(b"\xef\xbb\xbf")) is not None


def gzip_head(path: Path, size: int) -> bytes:
    """The first `size` decompressed bytes of a gzip file (b"" when it doesn't inflate)."""
    try:
        with open(path, "rb") as stream:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return inflater.decompress(stream.read(64 * 1024), size)
    except (OSError, zlib.error):
        return b""


class HubbleFile:
    """Iterate the flows of one file; afterwards `counters`, `warnings`, `lines`.

    `counters` counts lines by what they were: "flows", "lost_events" (responses) and
    "flows_lost" (the flows they say were lost), "node_status"/"other_events", "bad_lines"
    (not JSON, or a flow with a malformed field), "no_ip"/"no_l4" (flows without an IP or
    L4 header: nothing a NetworkPolicy governs).
    """

    def __init__(
        self, path: Path, *, on_progress: Callable[[int, int], None] | None = None
    ) -> None:
        self.path = path
        self.on_progress = on_progress
        self.counters: Counter[str] = Counter()
        self.warnings: list[str] = []
        self.lines = 0
        self.compressed = False

    def __iter__(self) -> Iterator[HubbleFlow]:
        total = self.path.stat().st_size
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 (closed below, with the gzip layer)
        except OSError as error:
            raise ReadError(str(self.path), f"cannot open: {error.strerror or error}") from error
        with raw:
            self.compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if self.compressed else raw
            try:
                yield from self._lines(stream, raw, total)
            except (OSError, EOFError, zlib.error) as error:
                # A cut or corrupt gzip stream: what was read before stays.
                self._warn(f"{self.path}: after line {self.lines}: {error}; the rest is "
                           "not read")
                self.counters["truncated"] += 1
        bad = self.counters["bad_lines"]
        if bad > MAX_WARNED_LINES:
            self.warnings.append(
                f"{self.path}: {bad - MAX_WARNED_LINES:,} more bad lines skipped "
                f"({bad:,} in all)"
            )

    def _lines(self, stream: Iterable[bytes], raw: IO[bytes], total: int) -> Iterator[HubbleFlow]:
        for number, line in enumerate(stream, start=1):
            self.lines = number
            if number % PROGRESS_EVERY == 0 and self.on_progress is not None:
                self.on_progress(raw.tell(), total)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                self._bad(number, f"not JSON ({error})")
                continue
            try:
                yield parse_flow(obj)
            except NotAFlow as skipped:
                self.counters[skipped.reason] += 1
                if skipped.reason == "lost_events":
                    self.counters["flows_lost"] += _lost_count(obj)
                elif skipped.reason in ("not_object", "not_flow"):
                    self._bad(number, skipped.detail)
                continue
            except ValueError as error:
                self._bad(number, str(error))
                continue
            self.counters["flows"] += 1
        if self.on_progress is not None:
            self.on_progress(total, total)

    def _bad(self, number: int, why: str) -> None:
        self.counters["bad_lines"] += 1
        if self.counters["bad_lines"] <= MAX_WARNED_LINES:
            self._warn(f"{self.path}: line {number}: {why[:200]}; line skipped")

    def _warn(self, text: str) -> None:
        self.warnings.append(text)


def _lost_count(obj: object) -> int:
    """num_events_lost of a lost_events response (a uint64: a JSON string in proto3)."""
    if not isinstance(obj, dict):
        return 0
    lost = field(obj, "lost_events")
    if not isinstance(lost, dict):
        return 0
    value = field(lost, "num_events_lost")
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
