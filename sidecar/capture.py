"""The live capture socket: raw IP packets in batches, filtered in the kernel.

Why not `scapy.sniff()`: dissecting every packet costs ~200 us, so it saturates a core near
5,000 packets/s. Why not scapy's `L2ListenSocket` either: it can't open libpcap's `any`
pseudo-interface (which a node agent needs) and it hands back each interface's own link
layer. This socket is what libpcap itself opens for `any`: AF_PACKET, SOCK_DGRAM, so every
packet starts at its IP header (LINKTYPE_RAW) on any interface, tunnel or VLAN; scapy
(through libpcap) still compiles the filter, the kernel runs it, and only set-ups, DNS
answers and UDP are copied to Python, through a TPACKET_V3 ring (`ring.py`; plain `recv`
as a fallback), without dissection, in whole batches for the same `PacketDecoder` the
offline path uses.

Capturing needs CAP_NET_RAW only: attaching a socket filter and mapping a ring need no
other capability. (The `recv` fallback raises its receive buffer with SO_RCVBUFFORCE when
CAP_NET_ADMIN happens to be there, else only up to net.core.rmem_max.)
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import time
from dataclasses import dataclass

from discover.errors import ConfigurationError
from sidecar import bpf
from sidecar.ring import BLOCK_COUNT, BLOCK_SIZE, PacketRing

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33
ANY = "any"
SNAPLEN = 65535  # whole packets: DNS answers over TCP can be long
RECEIVE_BUFFER = 32 << 20


class CaptureOpenError(ConfigurationError):
    """The capture socket could not be opened (no such interface, no CAP_NET_RAW)."""

    def __init__(self, interface: str, reason: str) -> None:
        self.interface = interface
        self.reason = reason
        super().__init__(f"capture on interface {interface!r}: {reason}")


@dataclass(frozen=True, slots=True)
class SocketCounters:
    """Totals since the socket opened, as the kernel counts them (PACKET_STATISTICS)."""

    received: int  # packets that passed the filter (queued or dropped)
    drops: int  # passed the filter but the receive buffer was full


class CaptureSocket:
    """An AF_PACKET socket on one interface (or all: `any`) with the agent's BPF filter."""

    linktype = bpf.LINKTYPE_RAW

    def __init__(
        self,
        interface: str,
        exclude_tcp_ports: tuple[int, ...] = (),
        receive_buffer: int = RECEIVE_BUFFER,
        use_ring: bool = True,
        ring_blocks: int = BLOCK_COUNT,
        ring_block_size: int = BLOCK_SIZE,
    ) -> None:
        self.interface = interface
        self.expression = bpf.filter_expression(exclude_tcp_ports)
        program = bpf.compile_expression(self.expression)
        self._received = 0
        self._drops = 0
        self._ring: PacketRing | None = None
        try:
            ring = (ring_blocks, ring_block_size) if use_ring else None
            self._sock = self._open(interface, program, receive_buffer, ring)
        except OSError as error:
            reason = error.strerror or str(error)
            if error.errno == errno.EPERM:
                reason += " (capture needs CAP_NET_RAW)"
            raise CaptureOpenError(interface, reason) from error

    @property
    def uses_ring(self) -> bool:
        return self._ring is not None

    def _open(
        self,
        interface: str,
        program: list[tuple[int, int, int, int]],
        receive_buffer: int,
        ring: tuple[int, int] | None,
    ) -> socket.socket:
        if interface == ANY:
            # An unbound packet socket sees every interface; it receives from the moment it
            # exists, so whatever arrived before the filter was attached is drained below.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        else:
            # Protocol 0 receives nothing until bind, so the filter is in place first.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            bpf.attach(sock, program)
            if ring is not None:
                try:
                    self._ring = PacketRing(sock, block_size=ring[1], block_count=ring[0])
                except OSError as error:  # no TPACKET_V3 (kernels < 3.2): recv() it is
                    log.warning("no packet ring (%s): reading with recv()", error)
            if interface != ANY:
                sock.bind((interface, ETH_P_ALL))
            if self._ring is None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            _drain(sock)
            sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)  # reset: count from here on
        except BaseException:
            if self._ring is not None:
                self._ring.close()
            sock.close()
            raise
        return sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_batch(
        self, max_frames: int = 512, max_wait: float = 0.05, gather: float = 0.02
    ) -> tuple[list[float], list[bytes]]:
        """Up to `max_frames` packets: wait at most `max_wait` s for the first, then keep
        reading what arrives for up to `gather` s after it.

        Gathering matters for CPU: decoding has a fixed cost per call, so at a few thousand
        packets/s a batch of one packet per wake-up costs several times more than a batch
        of dozens. Packets are still read (and stamped) as they arrive, only decoded later.
        Returns (times, frames); both empty when nothing came. With the packet ring, whole
        blocks are returned (the kernel's block timeout does the gathering) and times are
        the kernel's.
        """
        if self._ring is not None:
            return self._ring.read(max_frames, max_wait)
        times: list[float] = []
        frames: list[bytes] = []
        sock = self._sock
        ready, _, _ = select.select([sock], [], [], max_wait)
        if not ready:
            return times, frames
        recv = sock.recv
        clock = time.time
        deadline: float | None = None
        while len(frames) < max_frames:
            try:
                frame = recv(SNAPLEN)
            except BlockingIOError:
                if deadline is None:
                    break  # woken up for nothing (a packet taken by a race): try again later
                remaining = deadline - clock()
                if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                    break
                continue
            except InterruptedError:
                continue
            now = clock()
            if deadline is None:
                deadline = now + gather
            frames.append(frame)
            times.append(now)
        return times, frames

    def counters(self) -> SocketCounters:
        """Kernel totals since open. Reading PACKET_STATISTICS resets the kernel's copy,
        so this socket keeps the running sums."""
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("II", raw)
        self._received += packets
        self._drops += drops
        return SocketCounters(received=self._received, drops=self._drops)

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
        self._sock.close()

    def __enter__(self) -> CaptureSocket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(SNAPLEN)
        except (BlockingIOError, InterruptedError):
            return
