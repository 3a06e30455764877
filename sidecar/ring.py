"""A TPACKET_V3 receive ring on a packet socket: the kernel writes packets straight into
memory shared with this process, in blocks that it hands over when full or after a
timeout.

Why a ring and not `recv`: a socket's receive buffer is capped by net.core.rmem_max
(often 208 KiB on nodes) unless the process has CAP_NET_ADMIN, which the agent should not
need. At ~1 KiB of accounting per queued packet that is a few hundred packets, so any
pause of the Python process longer than ~50 ms at 5,000 packets/s drops packets. A ring is
sized freely (16 MiB here: about 100,000 SYNs) with CAP_NET_RAW alone, carries the kernel
timestamp of each packet, and one poll() hands over a whole block (the block timeout,
20 ms, does what batching would otherwise do).

Layouts from <linux/if_packet.h>: tpacket_req3, tpacket_block_desc + tpacket_hdr_v1,
tpacket3_hdr.
"""

from __future__ import annotations

import mmap
import select
import socket
import struct

SOL_PACKET = 263
PACKET_VERSION = 10
PACKET_RX_RING = 5
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1

BLOCK_SIZE = 128 << 10  # a power-of-two number of pages
BLOCK_COUNT = 128  # 16 MiB in all
FRAME_SIZE = 2048  # V3 frames are variable; the kernel only checks the arithmetic
RETIRE_MS = 20  # hand a partly filled block over after this long

_REQ3 = struct.Struct("=7I")  # block_size, block_nr, frame_size, frame_nr, tov, priv, feat
_BLOCK_STATUS = 8  # offsetof(tpacket_block_desc, hdr.bh1.block_status), after version, priv
_BLOCK = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt (from block)
_PACKET = struct.Struct("=IIIIIIHH")  # next_offset, sec, nsec, snaplen, len, status, mac, net


class PacketRing:
    """The ring of one packet socket; `read()` returns whole blocks of packets."""

    def __init__(
        self, sock: socket.socket, block_size: int = BLOCK_SIZE, block_count: int = BLOCK_COUNT
    ) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        request = _REQ3.pack(
            block_size,
            block_count,
            FRAME_SIZE,
            block_size // FRAME_SIZE * block_count,
            RETIRE_MS,
            0,
            0,
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self._map = mmap.mmap(sock.fileno(), block_size * block_count, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)
        self.block_size = block_size
        self.block_count = block_count
        self._next = 0

    def _ready(self) -> bool:
        status = _BLOCK.unpack_from(self._map, self._next * self.block_size + _BLOCK_STATUS)[0]
        return bool(status & TP_STATUS_USER)

    def read(self, max_frames: int, max_wait: float) -> tuple[list[float], list[bytes]]:
        """Packets of the blocks the kernel has handed over, waiting up to `max_wait` s for
        the first block; stops after the block that reaches `max_frames`."""
        times: list[float] = []
        frames: list[bytes] = []
        if not self._ready():
            self._poll.poll(max(0, int(max_wait * 1000)))
            if not self._ready():
                return times, frames
        ring = self._map
        unpack = _PACKET.unpack_from
        while len(frames) < max_frames and self._ready():
            base = self._next * self.block_size
            _, count, offset = _BLOCK.unpack_from(ring, base + _BLOCK_STATUS)
            position = base + offset
            for _ in range(count):
                step, sec, nsec, snaplen, _, _, _, net = unpack(ring, position)
                start = position + net
                frames.append(ring[start : start + snaplen])
                times.append(sec + nsec * 1e-9)
                position += step
            # Give the block back to the kernel.
            struct.pack_into("=I", ring, base + _BLOCK_STATUS, TP_STATUS_KERNEL)
            self._next = (self._next + 1) % self.block_count
        return times, frames

    def close(self) -> None:
        self._map.close()
