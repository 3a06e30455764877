"""Connections older than the learning window, from the kernel's own socket tables.

The capture's kernel filter passes connection set-ups only, so a TCP connection opened
before the agent started (a database pool, an API-server watch, a gRPC stream) never shows
in it, however long the window runs. The kernel still holds every such connection in the
socket table of its network namespace: this module reads those tables at start-up and then
periodically, and turns each ESTABLISHED socket it has not reported yet, and that the
capture did not see open, into a `ConnectionOpen` with evidence `established`.

Where the tables come from: `/proc/<pid>/net/tcp` and `tcp6` of one process in each
network namespace (the node's own and every pod's, found through the processes the agent
can see: with `hostPID`, all of the node's). This needs no capability at all: the kernel
resolves `/proc/<pid>/net` to that task's namespace without a ptrace check, while the
alternatives need CAP_NET_ADMIN (the conntrack table over NETLINK_NETFILTER) or
CAP_SYS_ADMIN (setns into a pod's namespace for a NETLINK_INET_DIAG dump); see
docs/learning-window.md. A namespace is recognised by the inode of its `net/tcp` entry
(one proc entry per namespace), because `/proc/<pid>/ns/net` does need ptrace access.

Direction: in one namespace, a socket whose local address and port a listening socket
covers is the server end of its connection; any other is the client end (it was made
by connect()). Both ends may be on this node (two pods): they give the same key.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal

from discover.flows.events import ConnectionOpen, DirectionEvidence, IPAddress, Protocol

log = logging.getLogger(__name__)

# Socket states as /proc/net/tcp prints them (include/net/tcp_states.h).
TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A
TABLES = ("tcp", "tcp6")

# client IP, client port, server IP, server port: what ConnectionOpen says of a connection.
ConnectionKey = tuple[IPAddress, int, IPAddress, int]
EdgeKey = tuple[IPAddress, IPAddress, int]  # client IP, server IP, server port


class ProcNetError(ValueError):
    """A line of /proc/<pid>/net/tcp that is not what the kernel writes; says which."""

    def __init__(self, source: str, line_number: int, reason: str) -> None:
        self.source = source
        self.line_number = line_number
        super().__init__(f"{source}: line {line_number}: {reason}")


@dataclass(frozen=True, slots=True)
class SocketEntry:
    """One row of a socket table: a TCP socket's two ends and its state."""

    local_ip: IPAddress
    local_port: int
    remote_ip: IPAddress
    remote_port: int
    state: int


def parse_proc_net_tcp(
    text: str, source: str = "tcp", byteorder: Literal["little", "big"] = sys.byteorder
) -> list[SocketEntry]:
    """The rows of /proc/net/tcp or tcp6 (the header line skipped).

    The kernel prints each address as the raw bytes of the network-order address read as
    native 32-bit words (`%08X` per word), so the bytes come back in the host's byte order;
    ports and the state are plain hex numbers. IPv4-mapped IPv6 addresses (a dual-stack
    listener's IPv4 connections) become IPv4, as the wire has them.
    """
    entries = []
    for number, line in enumerate(text.splitlines()[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise ProcNetError(source, number, f"expected at least 4 fields, got {len(fields)}")
        try:
            local_ip, local_port = _endpoint(fields[1], byteorder)
            remote_ip, remote_port = _endpoint(fields[2], byteorder)
            state = int(fields[3], 16)
        except ValueError as error:
            raise ProcNetError(source, number, str(error)) from None
        entries.append(SocketEntry(local_ip, local_port, remote_ip, remote_port, state))
    return entries


def _endpoint(text: str, byteorder: Literal["little", "big"]) -> tuple[IPAddress, int]:
    address, sep, port = text.partition(":")
    if not sep or len(port) != 4 or len(address) not in (8, 32):
        raise ValueError(f"expected ADDRESS:PORT in hex, got {text!r}")
    raw = b"".join(
        int(address[i : i + 8], 16).to_bytes(4, byteorder) for i in range(0, len(address), 8)
    )
    ip: IPAddress = IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(port, 16)


def established_connections(entries: Iterable[SocketEntry]) -> list[ConnectionKey]:
    """The established connections of one namespace's table, oriented client to server.

    Loopback connections are left out: no NetworkPolicy governs them and the capture
    doesn't report a pod's own loopback either.
    """
    rows = list(entries)
    any_address: set[int] = set()  # ports listened on 0.0.0.0 or ::
    exact: set[tuple[IPAddress, int]] = set()
    for row in rows:
        if row.state == TCP_LISTEN:
            if row.local_ip.is_unspecified:
                any_address.add(row.local_port)
            else:
                exact.add((row.local_ip, row.local_port))
    found = []
    for row in rows:
        if row.state != TCP_ESTABLISHED or (row.local_ip.is_loopback and row.remote_ip.is_loopback):
            continue
        if row.local_port in any_address or (row.local_ip, row.local_port) in exact:
            found.append((row.remote_ip, row.remote_port, row.local_ip, row.local_port))
        else:
            found.append((row.local_ip, row.local_port, row.remote_ip, row.remote_port))
    return found


@dataclass(slots=True)
class ScanStats:
    """What the last scan read: for the log and the agent's counters."""

    namespaces: int = 0
    sockets: int = 0
    reported: int = 0
    unreadable: int = 0  # processes gone or tables unreadable mid-scan
    errors: list[str] = field(default_factory=list)


class EstablishedScanner:
    """Reads the socket tables of every network namespace visible under `proc_root` and
    reports each established TCP connection once, unless the capture saw it open.

    "Saw it open" is decided by edge (client IP, server IP, server port), not by 4-tuple:
    remembering every set-up's 4-tuple between two scans would cost memory in proportion
    to the connection rate (300,000 entries a minute at 5,000/s); edges with set-ups are
    bounded by the table's own edge count. A connection found established on an edge that
    had a set-up captured lately is taken to be that set-up's connection; the cost is a
    connection count one short when the capture missed one of two set-ups of an edge in
    the same interval, never an edge missed or counted twice.

    The start-up scan reports what it finds at once: those connections predate the
    window. A later scan reports a new connection only when the scan after it finds it
    again and still no set-up of its edge was captured since the scan before it was first
    found: the capture thread may be a batch behind a connection that just opened.
    Memory stays bounded by the connections alive on the node: keys leave the sets when
    their connection is gone from the tables.
    """

    def __init__(self, proc_root: Path | str = "/proc") -> None:
        self.proc_root = Path(proc_root)
        self._lock = threading.Lock()
        # Edges with a captured set-up since the last scan, and in the interval before.
        self._opened: set[EdgeKey] = set()
        self._opened_before: set[EdgeKey] = set()
        self._known: set[ConnectionKey] = set()  # alive at the last scan, accounted for
        self._pending: set[ConnectionKey] = set()  # new at the last scan: confirm at next
        self._scans = 0
        self.reported_total = 0
        self.last = ScanStats()

    def note_opened(self, events: Iterable[object]) -> None:
        """The capture thread's TCP set-ups (called with each batch's events)."""
        edges = [
            (event.client_ip, event.server_ip, event.server_port)
            for event in events
            if type(event) is ConnectionOpen and event.protocol is Protocol.TCP
        ]
        if edges:
            with self._lock:
                self._opened.update(edges)

    def scan(self, now: float) -> list[ConnectionOpen]:
        """Read the tables now; the connections to add to the flow table."""
        stats = ScanStats()
        alive: set[ConnectionKey] = set()
        for table in self.read_tables(stats):
            alive.update(established_connections(table))
        return self.account(alive, now, stats)

    def account(
        self, alive: set[ConnectionKey], now: float, stats: ScanStats
    ) -> list[ConnectionOpen]:
        """Which of the connections alive now to report (pure but for the scanner's sets)."""
        with self._lock:
            opened = self._opened | self._opened_before
            self._opened_before, self._opened = self._opened, set()
        captured = {key for key in alive if (key[0], key[2], key[3]) in opened}
        if self._scans == 0:
            report = alive - captured
            pending: set[ConnectionKey] = set()
        else:
            report = (self._pending & alive) - captured
            pending = alive - self._known - self._pending - captured
        self._known = alive - pending
        self._pending = pending
        self._scans += 1
        stats.reported = len(report)
        self.reported_total += len(report)
        self.last = stats
        return [
            ConnectionOpen(now, client, cport, server, sport, Protocol.TCP,
                           DirectionEvidence.ESTABLISHED)
            for client, cport, server, sport in sorted(report, key=_key_order)
        ]  # fmt: skip

    def read_tables(self, stats: ScanStats) -> list[list[SocketEntry]]:
        """One parsed table (tcp and tcp6 together) per network namespace."""
        try:
            pids = [name for name in os.listdir(self.proc_root) if name.isdigit()]
        except OSError as error:
            stats.errors.append(f"{self.proc_root}: {error.strerror or error}")
            return []
        seen: set[int] = set()
        tables = []
        for pid in sorted(pids, key=int):
            net = self.proc_root / pid / "net"
            try:
                namespace = os.stat(net / "tcp").st_ino  # one proc entry per namespace
            except OSError:
                stats.unreadable += 1  # gone since listdir, or no such table
                continue
            if namespace in seen:
                continue
            seen.add(namespace)
            entries: list[SocketEntry] = []
            for name in TABLES:
                path = net / name
                try:
                    text = path.read_text(encoding="ascii")
                except FileNotFoundError:
                    continue  # tcp6 without IPv6
                except (OSError, UnicodeDecodeError) as error:
                    stats.unreadable += 1
                    log.debug("%s: %s", path, error)
                    continue
                try:
                    entries += parse_proc_net_tcp(text, str(path))
                except ProcNetError as error:
                    stats.errors.append(str(error))
            stats.namespaces += 1
            stats.sockets += len(entries)
            tables.append(entries)
        return tables


def _key_order(key: ConnectionKey) -> tuple[int, int, int, int, int, int]:
    client, cport, server, sport = key
    return (client.version, int(client), cport, server.version, int(server), sport)
