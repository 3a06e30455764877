"""A pcap or pcapng file as a stream of connection events.

`CaptureFile(path)` reads the file chunk by chunk (`pcap_format`), decodes each chunk
with one `PacketDecoder` and yields its events. A bad file header raises `ReadError` when
iteration starts; damage later in the file ends the stream with a warning that names the
record and byte, and `complete` False; everything read before it is kept. A record whose
timestamp is out of range (before 1970, after 9999) is skipped with such a warning, and the
rest of the file read.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from discover.errors import ReadError
from discover.reading.formats import GZIP_MAGIC
from discover.reading.linklayer import SUPPORTED
from discover.reading.packets import DecodeStats, Output, PacketDecoder
from discover.reading.pcap_format import (
    CHUNK_BYTES,
    EXPANSION_FLOOR,
    MAX_EXPANSION,
    RecordWalker,
)


class CaptureFile:
    """Streaming reader of one capture; iterate once."""

    def __init__(
        self, path: Path, on_progress: Callable[[int, int], None] | None = None,
        *, chunk_bytes: int = CHUNK_BYTES, max_expansion: int = MAX_EXPANSION,
        expansion_floor: int = EXPANSION_FLOOR,
    ) -> None:
        self.path = Path(path)
        self.on_progress = on_progress
        self.chunk_bytes = chunk_bytes
        self.max_expansion = max_expansion  # gzip bombs: see pcap_format.MAX_EXPANSION
        self.expansion_floor = expansion_floor
        self.decoder = PacketDecoder()
        self.warnings: list[str] = []
        self.complete = True
        self.records = 0  # packet records read, skipped ones included
        self.skipped = 0  # records skipped for a timestamp out of range
        self.format = ""
        self.linktypes: set[int] = set()

    @property
    def stats(self) -> DecodeStats:
        return self.decoder.stats

    def __iter__(self) -> Iterator[Output]:
        name = str(self.path)
        try:
            total = self.path.stat().st_size
            raw_stream = self.path.open("rb")
        except OSError as error:
            raise ReadError(name, f"cannot open: {error.strerror or error}") from error
        with raw_stream:
            stream: BinaryIO = raw_stream
            compressed = raw_stream.read(2) == GZIP_MAGIC
            if compressed:
                stream = gzip.GzipFile(fileobj=raw_stream, mode="rb")  # type: ignore[assignment]
            raw_stream.seek(0)
            walker = RecordWalker(
                name, stream, chunk_bytes=self.chunk_bytes,
                compressed=raw_stream if compressed else None,
                max_expansion=self.max_expansion, expansion_floor=self.expansion_floor,
            )
            for batch in walker.batches():
                yield from self.decoder.decode_batch(
                    batch.raw, batch.data, batch.starts, batch.caplens, batch.linktypes,
                    batch.times,
                )
                if self.on_progress is not None:
                    self.on_progress(min(raw_stream.tell(), total), total)
            yield from self.decoder.flush()
        self.records = walker.records
        self.format = walker.format
        self.linktypes = set(walker.linktypes_seen)
        if walker.problem is not None:
            p = walker.problem
            self.complete = False
            self.warnings.append(
                f"{name}: record {p.record} at byte {p.offset}: {p.message}; "
                f"kept the {p.record - 1} records before it"
            )
        if walker.skipped is not None:
            first, count = walker.skipped.first, walker.skipped.count
            self.skipped = count
            more = f" (and {count - 1} more such records, skipped too)" if count > 1 else ""
            self.complete = False  # damaged records, as a cut or a bad length is
            self.warnings.append(
                f"{name}: record {first.record} at byte {first.offset}: {first.message}; "
                f"record skipped{more}"
            )
        unknown = sorted(self.linktypes - SUPPORTED)
        if unknown and self.stats.unsupported_link:
            shown = ", ".join(str(lt) for lt in unknown)
            self.warnings.append(
                f"{name}: {self.stats.unsupported_link} packets of link type {shown} skipped "
                "(not Ethernet, Linux cooked, raw IP or BSD loopback)"
            )
        if self.on_progress is not None:
            self.on_progress(total, total)
