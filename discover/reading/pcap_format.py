"""Walk pcap and pcapng files chunk by chunk into arrays of record positions and fields.

The file is read in fixed-size chunks (never whole): a Python loop only hops from record
header to record header; timestamps, lengths and interface ids are then gathered for the
whole chunk at once with numpy. Formats are recognised by their magic bytes (formats.py),
never by the file name. Problems inside the file end the walk with a `FormatProblem` that says which
record and which byte; everything before it is kept.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from discover.errors import ReadError
from discover.reading.formats import PCAP_MAGICS, PCAPNG_SHB, capture_kind

CHUNK_BYTES = 4 << 20
# libpcap refuses records larger than this (its MAXIMUM_SNAPLEN); bigger means corruption.
MAX_RECORD = 262144

# A gzip-compressed capture that inflates more than this many times its compressed size is
# a decompression bomb (10 MB of identical empty records inflate to 10 GiB and kept the
# reader busy for minutes): reading stops there with a warning. Real captures compress 4-5x
# (samples/shop), and even records that differ only in their timestamps under 10x; only
# identical records reach 500x. Checked once EXPANSION_FLOOR bytes came out, so a small
# file of zeros is not a bomb.
MAX_EXPANSION = 100
EXPANSION_FLOOR = 64 << 20

# Times a record may carry: from the epoch to the end of year 9999, the range of datetime
# (a pcapng timestamp whose high word is 0xFFFFFFFF says year 586524; a negative if_tsoffset
# can go below the epoch). Out of range is a damaged record: skipped, with a warning.
MAX_TIME = 253402300799.0
PCAPNG_BOM = 0x1A2B3C4D
_IDB, _OPB, _SPB, _EPB = 1, 2, 3, 6

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]
F64Array = npt.NDArray[np.float64]


class CaptureHeaderError(ReadError):
    """The file is not a capture we can read: bad magic, version or section header."""


@dataclass(frozen=True, slots=True)
class FormatProblem:
    """Where reading stopped early, and why."""

    record: int  # 1-based number of the record that could not be read
    offset: int  # byte offset of that record in the file
    message: str


@dataclass(frozen=True, slots=True)
class SkippedRecords:
    """Records skipped for a timestamp out of range: the first one, and how many in all."""

    first: FormatProblem
    count: int


@dataclass(slots=True)
class RecordBatch:
    """The packet records of one chunk: frame `i` is `raw[starts[i]:starts[i] + caplens[i]]`."""

    raw: bytes
    data: U8Array  # the same bytes, as a numpy view
    starts: I64Array
    caplens: I64Array
    linktypes: I64Array
    times: F64Array


def _gather(data: U8Array, positions: I64Array, width: int) -> U8Array:
    """Rows of `width` bytes starting at each position (all positions must fit)."""
    rows: U8Array = data[positions[:, None] + np.arange(width, dtype=np.int64)]
    return rows


class RecordWalker:
    """Yields `RecordBatch`es; afterwards `problem` says why it stopped early, if it did."""

    def __init__(
        self,
        path: str,
        stream: BinaryIO,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        compressed: BinaryIO | None = None,
        max_expansion: int = MAX_EXPANSION,
        expansion_floor: int = EXPANSION_FLOOR,
    ) -> None:
        """`compressed`: the file under a gzip `stream`, whose position tells how much of
        it was inflated (for the bomb check)."""
        self.path = path
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._compressed = compressed
        self._max_expansion = max_expansion
        self._expansion_floor = expansion_floor
        self._inflated = 0
        self._bomb = ""
        self.records = 0  # packet records read so far
        self.bytes_done = 0
        self.problem: FormatProblem | None = None
        self.skipped: SkippedRecords | None = None
        self.format = ""
        self.linktypes_seen: set[int] = set()
        self._stream_error = ""
        self._base = 0
        self._last_time = 0.0

    # -- shared chunk plumbing -------------------------------------------------------------

    def _read(self) -> bytes:
        if self._stream_error:
            return b""
        if not isinstance(self._stream, gzip.GzipFile):
            try:
                return self._stream.read(self._chunk_bytes)
            except OSError as error:
                self._stream_error = str(error)
                return b""
        # A damaged gzip stream raises, losing what one read() decompressed: read in small
        # pieces to keep everything before the damage.
        pieces: list[bytes] = []
        got = 0
        try:
            while got < self._chunk_bytes:
                piece = self._stream.read1(min(1 << 16, self._chunk_bytes - got))
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
        except (OSError, EOFError, ValueError, zlib.error) as error:
            self._stream_error = str(error)
        self._inflated += got
        if self._compressed is not None and self._inflated > self._expansion_floor:
            consumed = max(1, self._compressed.tell())
            if self._inflated > self._max_expansion * consumed:
                self._bomb = (
                    f"the gzip stream inflated {consumed} bytes to {self._inflated}, more than "
                    f"{self._max_expansion} times (a decompression bomb?): reading stopped"
                )
                self._stream_error = self._bomb
        return b"".join(pieces)

    def batches(self) -> Iterator[RecordBatch]:
        self._stream_error = ""
        head = self._read()
        kind = capture_kind(head)
        if kind is None:
            if self._stream_error:
                raise CaptureHeaderError(self.path, f"cannot read: {self._stream_error}", offset=0)
            shown = head[:4].hex() or "nothing"
            raise CaptureHeaderError(
                self.path, f"not a pcap or pcapng file (starts with {shown})", offset=0
            )
        self.format = kind
        if kind == "pcap":
            yield from self._pcap(head)
        else:
            yield from self._pcapng(head)

    def _fail(self, offset: int, message: str, pending: int = 0) -> None:
        """Reading stops at `offset`; `pending` records before it are not counted yet."""
        if self.problem is None:
            self.problem = FormatProblem(self.records + pending + 1, offset, message)

    def _in_range(self, batch: RecordBatch, base: int, hlen: int) -> RecordBatch | None:
        """The batch without records whose time is out of range (counted from
        `self.records`, which includes the batch); None when none is left."""
        times = batch.times
        bad = ~((times >= 0.0) & (times <= MAX_TIME))  # NaN is bad too
        if not bad.any():
            return batch
        first = int(np.argmax(bad))
        count = int(bad.sum())
        if self.skipped is None:
            record = self.records - len(times) + first + 1
            offset = base + int(batch.starts[first]) - hlen
            shown = f"{int(times[first])} s" if np.isfinite(times[first]) else "no time"
            problem = FormatProblem(
                record, offset, f"timestamp {shown} since the epoch is out of range (past 9999)"
                if times[first] > 0 else f"timestamp {shown} is before 1970"
            )
            self.skipped = SkippedRecords(problem, count)
        else:
            self.skipped = SkippedRecords(self.skipped.first, self.skipped.count + count)
        keep = ~bad
        if not keep.any():
            return None
        return RecordBatch(
            batch.raw, batch.data, batch.starts[keep], batch.caplens[keep],
            batch.linktypes[keep], times[keep],
        )

    def _eof_leftover(self, leftover: int, base: int) -> None:
        """The file ended inside a record."""
        if self._bomb:
            self._fail(base, self._bomb)
            return
        why = f"read error ({self._stream_error})" if self._stream_error else "truncated record"
        self._fail(base, f"{why}: {leftover} bytes at the end do not form a complete record")

    # -- pcap --------------------------------------------------------------------------

    def _pcap(self, buf: bytes) -> Iterator[RecordBatch]:
        while len(buf) < 24:
            more = self._read()
            if not more:
                raise CaptureHeaderError(self.path, "pcap file header cut short", offset=0)
            buf += more
        order, divisor, hlen = PCAP_MAGICS[int.from_bytes(buf[:4], "little")]
        major, minor, _zone, _sigfigs, snaplen, linkfield = struct.unpack_from(
            order + "HHiIII", buf, 4
        )
        if major != 2 or minor > 4:
            raise CaptureHeaderError(
                self.path, f"unsupported pcap version {major}.{minor}", offset=4
            )
        # The upper bits of the link-type field carry FCS information, not the link type.
        linktype = linkfield & 0xFFFF
        self.linktypes_seen.add(linktype)
        limit = max(MAX_RECORD, min(snaplen, 1 << 26))
        incl_at = struct.Struct(order + "8xI").unpack_from  # a record header's incl_len
        base = 24  # file offset of buf[0]
        buf = buf[24:]
        while True:
            positions: list[int] = []
            append = positions.append
            pos = 0
            size = len(buf)
            bad = False
            incl = 0
            # The hottest loop of the reader: hop from record to record until a header no
            # longer fits (struct.error), then drop a last record that runs past the end.
            try:
                while True:
                    (incl,) = incl_at(buf, pos)
                    if incl > limit:
                        bad = True
                        break
                    append(pos)
                    pos += hlen + incl
            except struct.error:
                pass
            if positions and positions[-1] + hlen + incl_at(buf, positions[-1])[0] > size:
                pos = positions.pop()
            if positions:
                batch = self._in_range(
                    self._pcap_batch(buf, positions, order, divisor, hlen, linktype), base, hlen
                )
                if batch is not None:
                    yield batch
            if bad:
                self._fail(base + pos, f"record length {incl} is larger than any packet")
                return
            base += pos
            self.bytes_done = base
            rest = buf[pos:]
            more = self._read()
            if not more:
                if rest or self._stream_error:
                    self._eof_leftover(len(rest), base)
                return
            buf = rest + more

    def _pcap_batch(
        self, buf: bytes, positions: list[int], order: str, divisor: float, hlen: int,
        linktype: int,
    ) -> RecordBatch:
        data = np.frombuffer(buf, dtype=np.uint8)
        pos = np.array(positions, dtype=np.int64)
        fields = _gather(data, pos, 16).view(order + "u4").astype(np.int64)
        self.records += len(positions)
        return RecordBatch(
            raw=buf,
            data=data,
            starts=pos + hlen,
            caplens=fields[:, 2],
            linktypes=np.full(len(positions), linktype, dtype=np.int64),
            times=fields[:, 0] + fields[:, 1] / divisor,
        )

    # -- pcapng ------------------------------------------------------------------------

    def _pcapng(self, buf: bytes) -> Iterator[RecordBatch]:
        self._base = 0  # file offset of buf[0]
        self._last_time = 0.0
        section = _Section("<")
        while True:
            epbs: list[int] = []
            extra: list[tuple[int, int, int, float]] = []  # start, caplen, linktype, time
            pos, status = self._pcapng_walk(buf, section, epbs, extra)
            batch, bad = self._pcapng_batch(buf, section, epbs, extra)
            if batch is not None:
                # A packet block's data starts 28 bytes into it (simple ones carry no time).
                batch = self._in_range(batch, self._base, 28)
            if batch is not None:
                yield batch
            if bad or status == "bad":
                return
            if status == "section":
                new_section = self._section_header(buf, pos)
                if new_section is None:
                    return
                section = new_section
                pos += section.length
            self._base += pos
            self.bytes_done = self._base
            rest = buf[pos:]
            if status == "section" and len(rest) >= 12:
                buf = rest
                continue
            more = self._read()
            if not more:
                if rest or self._stream_error:
                    self._eof_leftover(len(rest), self._base)
                return
            buf = rest + more

    def _section_header(self, buf: bytes, pos: int) -> _Section | None:
        """Parse the SHB at `pos` (known complete); None (with a problem) if it is bad."""
        bom = int.from_bytes(buf[pos + 8 : pos + 12], "little")
        order = "<" if bom == PCAPNG_BOM else ">"
        length, _bom, major, minor = struct.unpack_from(order + "IIHH", buf, pos + 4)
        where = self._base + pos
        if major != 1 or minor not in (0, 2):
            self._header_or_fail(where, f"unsupported pcapng version {major}.{minor}")
            return None
        opt, end = pos + 24, pos + length - 4
        while opt + 4 <= end:
            code, olen = struct.unpack_from(order + "HH", buf, opt)
            if code == 0:
                break
            if opt + 4 + olen > end:
                self._header_or_fail(where, f"section header option {code} overflows the block")
                return None
            opt += 4 + olen + (-olen % 4)
        return _Section(order, length)

    def _header_or_fail(self, offset: int, message: str, pending: int = 0) -> None:
        if offset == 0:
            raise CaptureHeaderError(self.path, message, offset=0)
        self._fail(offset, message, pending)

    def _pcapng_walk(
        self, buf: bytes, section: _Section, epbs: list[int],
        extra: list[tuple[int, int, int, float]],
    ) -> tuple[int, str]:
        """Hop over blocks; returns where it stopped and why: more, section, bad."""
        size = len(buf)
        pos = 0
        append = epbs.append
        type_len = struct.Struct(section.order + "II").unpack_from
        epb_max = MAX_RECORD << 2
        while True:
            # The hot loop: runs of enhanced packet blocks, until another kind of block or
            # the end of the buffer (struct.error); a last block past the end is dropped.
            btype = -1
            try:
                while True:
                    btype, blen = type_len(buf, pos)
                    if btype != _EPB or blen < 32 or blen > epb_max or blen & 3:
                        break
                    append(pos)
                    pos += blen
            except struct.error:
                btype = -1
            if pos > size:
                pos = epbs.pop()
                return pos, "more"
            if btype == -1 or pos + 12 > size:
                return pos, "more"
            if btype == PCAPNG_SHB:
                bom = int.from_bytes(buf[pos + 8 : pos + 12], "little")
                if bom not in (PCAPNG_BOM, 0x4D3C2B1A):
                    self._header_or_fail(
                        self._base + pos,
                        "pcapng section header has a bad byte-order magic",
                        len(epbs) + len(extra),
                    )
                    return pos, "bad"
                order = "<" if bom == PCAPNG_BOM else ">"
                blen = struct.unpack_from(order + "I", buf, pos + 4)[0]
                if blen < 28 or blen & 3 or blen > (1 << 24):
                    self._header_or_fail(
                        self._base + pos,
                        f"pcapng section header length {blen} is invalid",
                        len(epbs) + len(extra),
                    )
                    return pos, "bad"
                if pos + blen > size:
                    return pos, "more"
                return pos, "section"
            if blen < 12 or blen & 3 or blen > (1 << 26):
                self._fail(
                    self._base + pos, f"block length {blen} is invalid", len(epbs) + len(extra)
                )
                return pos, "bad"
            if pos + blen > size:
                return pos, "more"
            if btype == _EPB:
                self._fail(
                    self._base + pos,
                    f"enhanced packet block length {blen} is invalid",
                    len(epbs) + len(extra),
                )
                return pos, "bad"
            if btype == _IDB:
                section.add_interface(buf, pos, blen)
            elif btype in (_SPB, _OPB):
                if not self._other_packet(buf, pos, blen, btype, section, extra, len(epbs)):
                    return pos, "bad"
            pos += blen

    def _other_packet(
        self, buf: bytes, pos: int, blen: int, btype: int, section: _Section,
        extra: list[tuple[int, int, int, float]], epbs: int,
    ) -> bool:
        """Simple and obsolete packet blocks: rare, parsed one at a time; `epbs` enhanced
        packet blocks of this walk come before."""
        order = section.order
        where = self._base + pos
        pending = epbs + len(extra)
        if btype == _SPB:
            if blen < 16 or not section.interfaces:
                self._fail(where, "simple packet block without an interface", pending)
                return False
            origlen = struct.unpack_from(order + "I", buf, pos + 8)[0]
            caplen = min(origlen, blen - 16)
            lt = section.interfaces[0][0]
            extra.append((pos + 12, caplen, lt, float("nan")))
            return True
        if blen < 32:
            self._fail(where, "packet block too short", pending)
            return False
        ifid, _drops, hi, lo, caplen = struct.unpack_from(order + "HHIII", buf, pos + 8)
        if ifid >= len(section.interfaces) or caplen > blen - 32:
            self._fail(where, "packet block names no interface or overflows its block", pending)
            return False
        lt, divisor, offset = section.interfaces[ifid]
        ticks = (hi << 32) | lo
        when = ticks // divisor + (ticks % divisor) / divisor + offset
        extra.append((pos + 28, caplen, lt, when))
        return True

    def _pcapng_batch(
        self, buf: bytes, section: _Section, epbs: list[int],
        extra: list[tuple[int, int, int, float]],
    ) -> tuple[RecordBatch | None, bool]:
        """Arrays for the packet blocks of one walk; True when a block turned out bad."""
        if not epbs and not extra:
            return None, False
        data = np.frombuffer(buf, dtype=np.uint8)
        pos = np.array(epbs, dtype=np.int64)
        fields = _gather(data, pos, 28).view(section.order + "u4").astype(np.int64)
        blen, ifid, caplen = fields[:, 1], fields[:, 2], fields[:, 5]
        nif = len(section.interfaces)
        bad = (ifid >= nif) | (caplen > blen - 32)
        found_bad = bool(bad.any())
        if found_bad:
            cut = int(np.argmax(bad))
            why = "names an interface never described" if ifid[cut] >= nif else (
                "has a captured length past its end"
            )
            limit = int(pos[cut])
            extra = [e for e in extra if e[0] < limit]
            pos, fields, ifid, caplen = pos[:cut], fields[:cut], ifid[:cut], caplen[:cut]
            self._fail(self._base + limit, f"enhanced packet block {why}", cut + len(extra))
        if nif:
            lts, divisors, offsets = section.table()
            ticks = (fields[:, 3].astype(np.uint64) << np.uint64(32)) | fields[:, 4].astype(
                np.uint64
            )
            # Whole seconds and the fraction apart: nanosecond ticks exceed float precision.
            div = divisors[ifid]
            times = (ticks // div).astype(np.float64) + (ticks % div) / div + offsets[ifid]
            linktypes = lts[ifid]
        else:
            times = np.empty(0, dtype=np.float64)
            linktypes = np.empty(0, dtype=np.int64)
        starts = pos + 28
        if extra:
            ex = np.array([e[:3] for e in extra], dtype=np.int64).reshape(-1, 3)
            ex_times = np.array([e[3] for e in extra], dtype=np.float64)
            # Simple packet blocks carry no time: borrow the latest known one.
            known = float(times[-1]) if len(times) else self._last_time
            ex_times = np.where(np.isnan(ex_times), known, ex_times)
            starts = np.concatenate([starts, ex[:, 0]])
            caplen = np.concatenate([caplen, ex[:, 1]])
            linktypes = np.concatenate([linktypes, ex[:, 2]])
            times = np.concatenate([times, ex_times])
            order = np.argsort(starts, kind="stable")
            starts, caplen, linktypes, times = (
                starts[order], caplen[order], linktypes[order], times[order]
            )
        self.records += len(starts)
        if not len(starts):
            return None, found_bad
        self._last_time = float(times[-1])
        self.linktypes_seen.update(int(x) for x in np.unique(linktypes))
        batch = RecordBatch(
            buf, data, starts.astype(np.int64), caplen.astype(np.int64),
            linktypes.astype(np.int64), times.astype(np.float64),
        )
        return batch, found_bad


class _Section:
    """One pcapng section: its byte order and interface table."""

    def __init__(self, order: str, length: int = 0) -> None:
        self.order = order
        self.length = length
        self.interfaces: list[tuple[int, int, float]] = []  # linktype, ticks/s, offset s
        self._table: tuple[I64Array, U64Array, F64Array] | None = None

    def add_interface(self, buf: bytes, pos: int, blen: int) -> None:
        linktype = struct.unpack_from(self.order + "H", buf, pos + 8)[0] if blen >= 20 else -1
        divisor, offset = 10**6, 0.0
        opt, end = pos + 16, pos + blen - 4
        while opt + 4 <= end:
            code, olen = struct.unpack_from(self.order + "HH", buf, opt)
            value = buf[opt + 4 : min(opt + 4 + olen, end)]
            if code == 0:
                break
            if code == 9 and value:  # if_tsresol
                exp = value[0] & 0x7F
                divisor = 2 ** min(exp, 63) if value[0] & 0x80 else 10 ** min(exp, 19)
            elif code == 14 and len(value) == 8:  # if_tsoffset, seconds
                offset = float(struct.unpack(self.order + "q", value)[0])
            opt += 4 + olen + (-olen % 4)
        self.interfaces.append((linktype, divisor, offset))
        self._table = None

    def table(self) -> tuple[I64Array, U64Array, F64Array]:
        if self._table is None:
            self._table = (
                np.array([i[0] for i in self.interfaces], dtype=np.int64),
                np.array([i[1] for i in self.interfaces], dtype=np.uint64),
                np.array([i[2] for i in self.interfaces], dtype=np.float64),
            )
        return self._table
