"""The agent process: capture thread, learning window, checkpoints, HTTP, signals.

Threads: `capture` reads batches from the socket, decodes them with the offline path's
`PacketDecoder` and `DnsDecoder`, and adds the events to a bounded `FlowTable`; `http`
serves; `inventory` (optional) watches the API. The main thread owns the clock: it
checkpoints every interval, ends the window, and turns SIGTERM/SIGINT into a final
checkpoint. The table is shared under one lock, held by readers only long enough to copy it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from discover.errors import ReadError
from discover.flows.flowtable import DROP_COUNTERS, FlowTable
from discover.flows.summary import SummaryMeta, summary_from_dict, summary_to_dict
from discover.reading.dns_wire import DnsDecoder
from discover.reading.packets import DnsPayload, PacketDecoder
from sidecar import metrics
from sidecar.agent_metrics import AgentFigures, InventoryFigures, agent_samples, state_samples
from sidecar.capture import RECEIVE_BUFFER, CaptureSocket
from sidecar.checkpoint import Checkpoint, StateDirError, encode
from sidecar.established import EstablishedScanner
from sidecar.inventory_watch import InventoryWatch
from sidecar.sampling import UdpSampler
from sidecar.server import AgentServer, is_loopback

log = logging.getLogger(__name__)

# /summary is rendered at most this often; scrapes in between get the same bytes.
SUMMARY_CACHE_SECONDS = 1.0

# Decoder counters that mean "a packet we could not read", summed into parse_errors.
PARSE_ERROR_KEYS = ("malformed", "truncated", "unsupported_link")


@dataclass(frozen=True, slots=True)
class AgentOptions:
    state_dir: Path
    interface: str = "any"
    # Data (/summary, /inventory) on loopback: only `collect` through an RBAC-checked
    # port-forward (or a process on this node / in this pod) can read the cluster's map.
    listen_host: str = "127.0.0.1"
    listen_port: int = 9808
    # Probes and scrapes: /healthz and /metrics only, on any address; None = not served.
    health_host: str | None = None
    health_port: int = 0
    duration: float | None = None  # seconds; None = until stopped
    checkpoint_interval: float = 60.0
    max_edges: int | None = 100_000
    # Within max_edges: UDP's budget and one client's share of it (None: FlowTable's
    # defaults, a quarter of max_edges and a tenth of that).
    max_udp_edges: int | None = None
    max_udp_edges_per_source: int | None = None
    node_name: str = ""
    agent_name: str = ""
    inventory_watch: bool = False
    inventory_relist: float = 600.0  # seconds of pod watch between full lists
    kubeconfig: str | None = None  # None: $KUBECONFIG / ~/.kube/config, else in-cluster
    context: str | None = None
    exit_after_window: bool = False
    batch_frames: int = 512
    batch_wait: float = 0.05
    batch_gather: float = 0.02
    receive_buffer: int = RECEIVE_BUFFER
    use_ring: bool = True
    # Seconds between reads of the kernel's socket tables for connections opened before
    # the window (sidecar/established.py); None: never. The first read is at start-up.
    established_interval: float | None = 60.0
    proc_root: str = "/proc"


@dataclass(slots=True)
class Counters:
    """Totals of one run. The agent keeps two: this run's, and what the checkpoint it
    resumed from had counted; the summary shows their sum."""

    packets: int = 0
    kernel_drops: int = 0
    kernel_received: int = 0
    parse_errors: int = 0
    udp_sampled_out: int = 0
    dns_malformed: int = 0
    established: int = 0  # connections found already established in the socket tables

    def as_dict(self) -> dict[str, int]:
        return {
            "packets": self.packets,
            "kernel_drops": self.kernel_drops,
            "kernel_received": self.kernel_received,
            "parse_errors": self.parse_errors,
            "udp_sampled_out": self.udp_sampled_out,
            "dns_malformed": self.dns_malformed,
            "established": self.established,
        }


class Agent:
    def __init__(self, options: AgentOptions, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._rendered: tuple[float, bytes] | None = None
        self._stop = threading.Event()
        self._window_over = threading.Event()
        self.checkpoint = Checkpoint(options.state_dir)
        self.table = FlowTable(
            max_edges=options.max_edges,
            max_udp_edges=options.max_udp_edges,
            max_udp_edges_per_source=options.max_udp_edges_per_source,
        )
        self._base = Counters()
        self._run = Counters()
        self._table_dropped_base = dict.fromkeys(DROP_COUNTERS, 0)
        self.window_start = clock()
        self.last_checkpoint: float | None = None
        self.checkpoint_errors = 0
        # The state directory's problem while checkpoints fail (None once one succeeds).
        self.checkpoint_problem: str | None = None
        self.checkpoints_set_aside = 0
        try:
            self.checkpoint.prepare()
            self._resume()
        except StateDirError as error:
            # Full, read-only or missing: exiting would crash-loop the DaemonSet and a
            # restart can't fix a disk. Capture and serve anyway; every checkpoint retries.
            self._checkpoint_failed(error)
        self._capture_thread: threading.Thread | None = None
        self._capture_error: str | None = None
        self.established: EstablishedScanner | None = None
        if options.established_interval is not None:
            self.established = EstablishedScanner(options.proc_root)
        self.inventory: InventoryWatch | None = None
        if options.inventory_watch:
            self.inventory = InventoryWatch(
                options.state_dir,
                kubeconfig=options.kubeconfig,
                context=options.context,
                relist_interval=options.inventory_relist,
            )

    # --- state ---------------------------------------------------------------------

    def _resume(self) -> None:
        try:
            document = self.checkpoint.load()
            if document is None:
                return
            table, meta = summary_from_dict(document, source=str(self.checkpoint.path))
        except ReadError as error:
            # Not from our atomic writes (a hand edit, a damaged disk). Crash-looping a
            # DaemonSet over it helps nobody: keep it aside for a person and start afresh.
            self.checkpoints_set_aside += 1
            try:
                kept: Path | str = self.checkpoint.set_aside()
            except OSError as rename_error:
                kept = f"nowhere ({rename_error.strerror or rename_error}: left in place)"
            log.warning("unreadable checkpoint (%s): moved to %s, starting a new window",
                        error, kept)  # fmt: skip
            return
        self.table.merge(table)
        if meta.window_start is not None:
            self.window_start = meta.window_start.timestamp()
        counters = dict(meta.counters)
        self._base = Counters(**{key: int(counters.get(key, 0)) for key in Counters().as_dict()})
        self._table_dropped_base = {key: int(counters.get(key, 0)) for key in DROP_COUNTERS}
        log.info(
            "resumed from %s: window started %s, %d counted packets",
            self.checkpoint.path,
            meta.window_start,
            self._base.packets,
        )

    @property
    def window_end(self) -> float | None:
        if self.options.duration is None:
            return None
        return self.window_start + self.options.duration

    def counters(self) -> dict[str, int]:
        base = self._base.as_dict()
        run = self._run.as_dict()
        total = {key: base[key] + run[key] for key in base}
        for key, value in self.table.drop_counters().items():
            total[key] = self._table_dropped_base[key] + value
        return total

    def _snapshot(self) -> FlowTable:
        copy = FlowTable()
        with self._lock:
            copy.merge(self.table)
        return copy

    def document(self) -> dict[str, Any]:
        snapshot = self._snapshot()
        now = self._clock()
        end = now if self.window_end is None else min(now, self.window_end)
        meta = SummaryMeta.for_agent(
            node_name=self.options.node_name,
            interface=self.options.interface,
            window_start=self.window_start,
            window_end=end,
            counters=self.counters(),
            agent_name=self.options.agent_name,
        )
        return summary_to_dict(snapshot, meta)

    def rendered(self, max_age: float = 0.0) -> bytes:
        """The encoded document, rendered again unless the last one is younger than
        `max_age` s. One render at a time: at the edge cap a render takes seconds and a
        few hundred MB, and scrapes of /summary must not multiply that."""
        with self._render_lock:
            cached = self._rendered
            if cached is not None and self._clock() - cached[0] <= max_age:
                return cached[1]
            data = encode(self.document())
            self._rendered = (self._clock(), data)
            return data

    def save_checkpoint(self) -> None:
        self.checkpoint.save_bytes(self.rendered())
        self.last_checkpoint = self._clock()
        if self.checkpoint_problem is not None:
            log.info("checkpoint written to %s again", self.checkpoint.path)
            self.checkpoint_problem = None
        if self.inventory is not None:
            try:
                self.inventory.write()
            except OSError as error:  # the summary is what matters; say so and go on
                log.warning("writing %s: %s", self.inventory.path, error)

    def _try_checkpoint(self) -> None:
        """A failed write (disk full, directory gone) is logged, counted and retried at
        the next interval; capture and serving go on."""
        try:
            self.save_checkpoint()
        except StateDirError as error:
            self._checkpoint_failed(error)

    def _checkpoint_failed(self, error: StateDirError) -> None:
        self.checkpoint_errors += 1
        self.checkpoint_problem = str(error)
        log.error("checkpoint failed, capturing and serving on, retrying every %.0f s: %s",
                  self.options.checkpoint_interval, error)  # fmt: skip

    # --- capture -------------------------------------------------------------------

    def _capture_loop(self, sock: CaptureSocket) -> None:
        decoder = PacketDecoder()
        dns = DnsDecoder()
        sampler = UdpSampler()
        options = self.options
        try:
            while not self._stop.is_set() and not self._window_over.is_set():
                times, frames = sock.read_batch(
                    options.batch_frames, options.batch_wait, options.batch_gather
                )
                if frames:
                    read = len(frames)
                    times, frames = sampler.sample(
                        times, frames, backlog=read >= options.batch_frames
                    )
                    events = decoder.decode(sock.linktype, times, frames) if frames else []
                    self._ingest(events, dns, frames_read=read)
                self._update_counters(sock, decoder, dns, sampler)
            self._ingest(decoder.flush(), dns, frames_read=0)
            self._update_counters(sock, decoder, dns, sampler)
        except Exception as error:  # the capture thread dying must show in /healthz
            self._capture_error = f"{type(error).__name__}: {error}"
            log.exception("capture stopped")
            raise

    def _ingest(self, events: list[Any], dns: DnsDecoder, frames_read: int) -> None:
        answers = []
        others = []
        for event in events:
            if isinstance(event, DnsPayload):
                answer = dns.decode(event)
                if answer is not None:
                    answers.append(answer)
            else:
                others.append(event)
        with self._lock:
            for item in others:
                self.table.add(item)
            for answer in answers:
                self.table.add(answer)
            self._run.packets += frames_read
        if self.established is not None:
            self.established.note_opened(others)

    def _update_counters(
        self, sock: CaptureSocket, decoder: PacketDecoder, dns: DnsDecoder, sampler: UdpSampler
    ) -> None:
        stats = decoder.stats.as_dict()
        self._run.parse_errors = sum(int(stats.get(key, 0)) for key in PARSE_ERROR_KEYS)
        self._run.dns_malformed = int(dns.counters.get("malformed", 0))
        kernel = sock.counters()
        self._run.kernel_drops = kernel.drops
        self._run.kernel_received = kernel.received
        self._run.udp_sampled_out = sampler.sampled_out

    def _scan_established(self) -> None:
        """Connections older than the window (or missed by the capture) from the kernel's
        socket tables; a table that can't be read is logged, never fatal."""
        scanner = self.established
        if scanner is None:
            return
        started = time.monotonic()
        events = scanner.scan(self._clock())
        with self._lock:
            for event in events:
                self.table.add(event)
        self._run.established = scanner.reported_total
        stats = scanner.last
        for problem in stats.errors[:3]:
            log.warning("socket table scan: %s", problem)
        level = logging.INFO if stats.reported else logging.DEBUG
        log.log(level, "socket tables: %d namespaces, %d sockets, %d connections found "
                "already established (%.0f ms)", stats.namespaces, stats.sockets,
                stats.reported, 1000 * (time.monotonic() - started))  # fmt: skip

    def capture_alive(self) -> bool:
        thread = self._capture_thread
        return thread is not None and thread.is_alive()

    # --- view for the HTTP server ---------------------------------------------------

    def summary_json(self) -> bytes:
        return self.rendered(max_age=SUMMARY_CACHE_SECONDS)

    def health(self) -> tuple[bool, str]:
        if self._capture_error is not None:
            return False, f"capture failed: {self._capture_error}"
        if not self._window_over.is_set() and not self.capture_alive():
            return False, "capture thread not running"
        state = "window over, serving" if self._window_over.is_set() else "capturing"
        if self.checkpoint_problem is not None:
            # Healthy for the probes: a restart can't fix the disk and would lose the
            # window held in memory. The detail says what to fix.
            return True, (f"{state}; checkpoints failing ({self.checkpoint_errors} so far, "
                          f"retried every {self.options.checkpoint_interval:g} s): "
                          f"{self.checkpoint_problem}")  # fmt: skip
        age = self.checkpoint_age()
        if age is not None and age > 3 * self.options.checkpoint_interval + 30:
            return False, f"last checkpoint {age:.0f}s ago"
        return True, state

    def checkpoint_age(self) -> float | None:
        if self.last_checkpoint is None:
            return None
        return max(0.0, self._clock() - self.last_checkpoint)

    def metrics_text(self) -> str:
        with self._lock:
            edges = self.table.edge_count
            udp_edges = self.table.udp_edge_count
            dns_rows = self.table.dns_row_count
        inventory = None
        if self.inventory is not None:
            watch = self.inventory
            inventory = InventoryFigures(
                writes=watch.writes,
                lists=watch.lists,
                pod_changes=watch.pod_changes,
                errors=watch.errors,
                age=watch.age(self._clock),
            )
        figures = AgentFigures(
            counters=self.counters(),
            edges=edges,
            udp_edges=udp_edges,
            dns_rows=dns_rows,
            window_start=self.window_start,
            window_end=self.window_end,
            window_open=not self._window_over.is_set(),
            checkpoint_age=self.checkpoint_age(),
            checkpoint_errors=self.checkpoint_errors,
            inventory=inventory,
        )
        return metrics.render([
            *agent_samples(figures),
            *state_samples(self.checkpoint_problem is not None, self.checkpoints_set_aside),
        ])  # fmt: skip

    def inventory_json(self) -> bytes | None:
        return None if self.inventory is None else self.inventory.document_bytes()

    # --- the process ----------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: final checkpoint, then exit", signum)
        self._stop.set()

    def run(self, install_signals: bool = True) -> int:
        """Capture until the window ends or a signal comes; checkpoint on the way."""
        previous: dict[signal.Signals, Any] = {}
        if install_signals:
            for number in (signal.SIGTERM, signal.SIGINT):
                previous[number] = signal.signal(number, self._on_signal)
        try:
            return self._serve()
        finally:  # give the caller (a test, an embedding program) its handlers back
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _serve(self) -> int:
        options = self.options
        if not is_loopback(options.listen_host):
            log.warning(
                "--listen %s is not a loopback address: anyone who reaches it can read "
                "/summary and /inventory, the cluster's map",
                options.listen_host,
            )
        server = AgentServer(self, options.listen_host, options.listen_port)
        self.listen_port = server.port
        health: AgentServer | None = None
        try:
            if options.health_host is not None:
                health = AgentServer(self, options.health_host, options.health_port, data=False)
                self.health_port = health.port
        except BaseException:
            server.close()
            raise
        ports = (server.port,) if health is None else (server.port, health.port)
        try:
            self._capture_until_window_ends(ports)
            self._try_checkpoint()
            if self.inventory is not None:
                self.inventory.stop()  # the window is over: no more API load
            if self._window_over.is_set() and not options.exit_after_window:
                log.info("learning window over: serving %s until stopped", self.checkpoint.path)
                while not self._stop.wait(options.checkpoint_interval):
                    self.last_checkpoint = self._clock()  # nothing changes: still fresh
        finally:
            if self.inventory is not None:
                self.inventory.stop()
            server.close()
            if health is not None:
                health.close()
        if self._capture_error is not None:
            log.error("capture failed: %s (checkpoint written; exiting)", self._capture_error)
            return 1
        return 0

    def _capture_until_window_ends(self, http_ports: tuple[int, ...]) -> None:
        if self.window_end is not None and self._clock() >= self.window_end:
            self._window_over.set()
            return
        if self.inventory is not None:
            self.inventory.start()
        sock = CaptureSocket(
            self.options.interface,
            exclude_tcp_ports=http_ports,
            receive_buffer=self.options.receive_buffer,
            use_ring=self.options.use_ring,
        )
        try:
            self._capture_thread = threading.Thread(
                target=self._capture_loop, args=(sock,), name="capture", daemon=True
            )
            self._capture_thread.start()
            self._scan_established()  # after the capture opened: no connection falls between
            self._try_checkpoint()
            next_checkpoint = self._clock() + self.options.checkpoint_interval
            scan_every = self.options.established_interval
            next_scan = None if scan_every is None else self._clock() + scan_every
            while not self._stop.is_set():
                now = self._clock()
                if self.window_end is not None and now >= self.window_end:
                    self._window_over.set()
                    break
                if not self._capture_thread.is_alive():
                    break
                if next_scan is not None and scan_every is not None and now >= next_scan:
                    self._scan_established()
                    next_scan = now + scan_every
                if now >= next_checkpoint:
                    self._try_checkpoint()
                    next_checkpoint = now + self.options.checkpoint_interval
                wake = next_checkpoint if next_scan is None else min(next_checkpoint, next_scan)
                if self.window_end is not None:
                    wake = min(wake, self.window_end)
                self._stop.wait(max(0.01, min(1.0, wake - now)))
            self._capture_thread.join()
        finally:
            sock.close()
