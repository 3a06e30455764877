"""Inputs to one FlowTable: pcap, pcapng and agent summaries, sniffed by content.

Each file is read on its own (captures: `CaptureFile` events, DNS payloads through a
`DnsDecoder`; summaries: `read_summary`) into its own FlowTable; several files are read in
parallel, one process a core, and the tables merged in input order so the result doesn't
depend on which worker finished first. A damaged file gives a warning and keeps what was
read before the damage; only when nothing at all could be read is it an error.
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from multiprocessing import get_context
from multiprocessing.queues import Queue
from pathlib import Path

from discover.errors import ConfigurationError, ReadError
from discover.flows.flowtable import FlowTable
from discover.flows.hubble_facts import HubbleFacts
from discover.flows.progress import ByteProgress
from discover.reading.formats import sniff_input as sniff_format  # also asked by analyze


class NothingReadError(ReadError):
    """No input gave anything usable; `warnings` holds what went wrong with each."""

    def __init__(self, path: str, message: str, warnings: Sequence[str]) -> None:
        self.warnings = list(warnings)
        super().__init__(path, message)


@dataclass(frozen=True, slots=True)
class FileStats:
    """What one input gave. For a summary, `packets` is the agent's packet counter and
    `dns_answers` the answers its DNS rows count."""

    path: str
    format: str  # "pcap", "pcapng", "pcap.gz", "summary", "hubble" or "hubble.gz"
    bytes: int
    packets: int
    edges: int
    dns_answers: int
    complete: bool
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class LoadedInputs:
    table: FlowTable
    files: list[FileStats]
    warnings: list[str]
    window_start: datetime | None
    window_end: datetime | None
    hubble: HubbleFacts | None = None  # endpoints, drops, Services of Hubble inputs

    @property
    def packets(self) -> int:
        return sum(f.packets for f in self.files)

    @property
    def dns_answers(self) -> int:
        return sum(f.dns_answers for f in self.files)


@dataclass(frozen=True, slots=True)
class FileResult:
    """One input read (what a worker sends back, pickled): its table, stats, warnings and
    time window, or only warnings when nothing of it was usable."""

    table: FlowTable | None
    stats: FileStats | None
    warnings: tuple[str, ...]
    window: tuple[float, float] | None
    hubble: HubbleFacts | None = None


def load_inputs(
    paths: Sequence[Path], *, jobs: int | None = None, progress: bool = False, dns: bool = True
) -> LoadedInputs:
    """Read every input into one FlowTable (see the module docstring).

    `jobs` caps the worker processes (default: one per core, never more than files).
    `dns=False` skips parsing DNS answers in captures (the `flows` command doesn't need
    them, and parsing is the slow part of reading): `dns_answers` then counts the
    responses that carried answers, and the table has no DNS rows from captures.
    Raises ReadError for a path that isn't a file, NothingReadError when no input gave
    anything usable.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigurationError("no input files given")
    sizes = []
    for path in paths:
        if not path.is_file():
            reason = "no such file" if not path.exists() else "not a regular file"
            raise ReadError(str(path), reason)
        sizes.append(path.stat().st_size)
    workers = max(1, min(len(paths), jobs or os.cpu_count() or 1))
    if workers == 1:
        with ByteProgress(sum(sizes), enabled=progress) as bar:
            return _combine(
                paths,
                (read_input(path, _bar_updater(bar, i), dns=dns) for i, path in enumerate(paths)),
            )
    return _combine(paths, _read_parallel(paths, sum(sizes), workers, progress, dns))


def _bar_updater(bar: ByteProgress, index: int) -> Callable[[int, int], None]:
    return lambda done, _total: bar.update(index, done)


def read_input(
    path: Path, on_progress: Callable[[int, int], None] | None = None, *, dns: bool = True
) -> FileResult:
    """One input into its own FlowTable; never raises ReadError (it becomes a warning)."""
    try:
        kind = sniff_format(path)
        if kind == "summary":
            return _read_summary(path)
        if kind.startswith("hubble"):
            return _read_hubble(path, kind, on_progress)
        return _read_capture(path, kind, on_progress, dns)
    except ReadError as error:
        return FileResult(None, None, (str(error),), None)


def _read_capture(
    path: Path, kind: str, on_progress: Callable[[int, int], None] | None, dns: bool
) -> FileResult:
    # Imported here: numpy and dnspython only load in the processes that read captures.
    from discover.flows.events import ConnectionOpen, EdgePackets
    from discover.reading.capture_file import CaptureFile
    from discover.reading.dns_wire import DnsDecoder
    from discover.reading.packets import DnsPayload

    capture = CaptureFile(path, on_progress=on_progress)
    table = FlowTable()
    decoder = DnsDecoder()
    add_packets, add_connection, add_dns = table.add_packets, table.add_connection, table.add_dns
    decode = decoder.decode
    warnings: list[str] = []
    try:
        # A million packets give a few thousand events: keep this loop plain.
        for event in capture:
            kind_of = type(event)
            if kind_of is EdgePackets:
                add_packets(event)  # type: ignore[arg-type]
            elif kind_of is ConnectionOpen:
                add_connection(event)  # type: ignore[arg-type]
            elif kind_of is DnsPayload and dns:
                answer = decode(event)  # type: ignore[arg-type]
                if answer is not None:
                    add_dns(answer)
    except ReadError as error:
        if capture.records == 0 and not table.edge_count:
            raise  # the file header itself: nothing of this file is usable
        warnings.append(str(error))
        capture.complete = False
    warnings.extend(capture.warnings)
    capped = decoder.cap_warning(str(path))
    if capped is not None:
        warnings.append(capped)
    packets = capture.stats.packets
    if not capture.complete and packets == 0:
        return FileResult(None, None, tuple(warnings), None)
    counters = capture.stats.as_dict()
    counters.update({f"dns_{k}": v for k, v in decoder.counters.items()})
    stats = FileStats(
        path=str(path),
        format=capture.format or kind,
        bytes=path.stat().st_size,
        packets=packets,
        edges=table.edge_count,
        dns_answers=decoder.counters["answers"] if dns else capture.stats.dns_responses,
        complete=capture.complete,
        counters=counters,
    )
    return FileResult(table, stats, tuple(warnings), table.time_range())


def _read_summary(path: Path) -> FileResult:
    from discover.flows.summary import read_summary

    table, meta = read_summary(path)
    window = table.time_range()
    if meta.window_start is not None and meta.window_end is not None:
        window = (meta.window_start.timestamp(), meta.window_end.timestamp())
    counters = {key: int(value) for key, value in meta.counters.items()}
    stats = FileStats(
        path=str(path),
        format="summary",
        bytes=path.stat().st_size,
        packets=counters.get("packets", 0),
        edges=table.edge_count,
        dns_answers=sum(row.answers for row in table.dns_rows()),
        complete=True,
        counters=counters,
    )
    return FileResult(table, stats, (), window)


def _read_hubble(
    path: Path, kind: str, on_progress: Callable[[int, int], None] | None
) -> FileResult:
    from discover.flows.hubble_source import read_hubble_file

    read = read_hubble_file(path, on_progress)
    if read.flows == 0:
        return FileResult(None, None, (*read.warnings, f"{path}: no Hubble flow in it"), None)
    stats = FileStats(
        path=str(path),
        format=kind,
        bytes=path.stat().st_size,
        packets=read.flows,
        edges=read.table.edge_count,
        dns_answers=read.dns_answers,
        complete=read.complete,
        counters=read.counters,
    )
    return FileResult(read.table, stats, read.warnings, read.table.time_range(), read.facts)


# -- parallel reading --------------------------------------------------------------------

_progress_queue: Queue[tuple[int, int]] | None = None


def _init_worker(progress_queue: Queue[tuple[int, int]] | None) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _read_in_worker(index: int, path: Path, dns: bool) -> FileResult:
    sink = _progress_queue
    on_progress = None if sink is None else (lambda done, _total: sink.put((index, done)))
    return read_input(path, on_progress, dns=dns)


# Files read ahead of the one the caller waits for, per worker: enough to keep the workers
# busy behind a slow file, few enough that waiting tables don't pile up.
READ_AHEAD = 4


def _read_parallel(
    paths: list[Path], total: int, workers: int, progress: bool, dns: bool
) -> Iterator[FileResult]:
    """Each file's result in input order, as soon as it and those before it are read: the
    caller folds it in and lets it go, so a thousand agent summaries never sit in memory
    together (at most READ_AHEAD x workers results wait)."""
    context = get_context()
    progress_queue: Queue[tuple[int, int]] | None = context.Queue() if progress else None
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(progress_queue,)
    ) as pool:
        queued = iter(enumerate(paths))
        # Submitted before the progress bar starts its thread: workers fork a quiet process.
        waiting: deque[Future[FileResult]] = deque(
            pool.submit(_read_in_worker, i, path, dns)
            for i, path in islice(queued, READ_AHEAD * workers)
        )
        with ByteProgress(total, enabled=progress) as bar:
            while waiting:
                wait([waiting[0]], timeout=0.2)  # the next in order; later ones may be done
                _drain(progress_queue, bar)
                while waiting and waiting[0].done():
                    for i, path in islice(queued, 1):
                        waiting.append(pool.submit(_read_in_worker, i, path, dns))
                    yield waiting.popleft().result()
            _drain(progress_queue, bar)


def _drain(progress_queue: Queue[tuple[int, int]] | None, bar: ByteProgress) -> None:
    while progress_queue is not None:
        try:
            index, done = progress_queue.get_nowait()
        except queue.Empty:
            return
        bar.update(index, done)


def _combine(paths: list[Path], results: Iterable[FileResult]) -> LoadedInputs:
    table = FlowTable()
    files: list[FileStats] = []
    warnings: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    hubble: HubbleFacts | None = None
    for result in results:
        warnings.extend(result.warnings)
        if result.table is None or result.stats is None:
            continue
        table.merge(result.table)
        files.append(result.stats)
        if result.hubble is not None:
            hubble = result.hubble if hubble is None else hubble.merge(result.hubble)
        if result.window is not None:
            starts.append(result.window[0])
            ends.append(result.window[1])
    if not files:
        where = str(paths[0]) if len(paths) == 1 else f"all {len(paths)} inputs"
        detail = warnings[0] if warnings else "nothing read"
        if len(paths) == 1 and detail.startswith(str(paths[0])):
            # "x.pcap: record 1 ..." or "x.pcap at byte 0: ...": the path is said once.
            detail = detail[len(str(paths[0])) :].removeprefix(":").lstrip()
        raise NothingReadError(where, f"nothing usable read: {detail}", warnings)
    return LoadedInputs(
        table=table,
        files=files,
        warnings=warnings,
        window_start=datetime.fromtimestamp(min(starts), UTC) if starts else None,
        window_end=datetime.fromtimestamp(max(ends), UTC) if ends else None,
        hubble=hubble,
    )
