"""UDP load sampling: the one place the agent knowingly skips packets.

All UDP passes the kernel filter (no stateless filter can pick a flow's first datagram),
so a UDP-heavy node (video, QUIC, VXLAN-less overlays) could flood Python. When the socket
has a backlog (a batch came back full) the sampler keeps one in N of the UDP datagrams
that are not DNS, doubling N while the backlog lasts and halving it when it clears. A flow
of many datagrams is still seen (its later datagrams stand for the first); what is skipped
is counted. DNS (port 53 on either side) and TCP are never sampled.
"""

from __future__ import annotations

MAX_KEEP_ONE_IN = 64
IPPROTO_UDP = 17
DNS_PORT = b"\x00\x35"


def is_sampleable_udp(packet: bytes) -> bool:
    """A raw IP packet carrying UDP that is neither to nor from port 53."""
    if not packet:
        return False
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20 or packet[9] != IPPROTO_UDP:
            return False
        if int.from_bytes(packet[6:8], "big") & 0x1FFF:
            return True  # a later fragment: no ports, never a flow start
        offset = (packet[0] & 0x0F) * 4
    elif version == 6:
        if len(packet) < 40 or packet[6] != IPPROTO_UDP:
            return False
        offset = 40
    else:
        return False
    ports = packet[offset : offset + 4]
    return len(ports) == 4 and ports[0:2] != DNS_PORT and ports[2:4] != DNS_PORT


class UdpSampler:
    def __init__(self) -> None:
        self.keep_one_in = 1
        self.sampled_out = 0
        self._seen = 0

    def sample(
        self, times: list[float], frames: list[bytes], *, backlog: bool
    ) -> tuple[list[float], list[bytes]]:
        """The batch with some non-DNS UDP removed when `backlog` says Python is behind."""
        if backlog:
            self.keep_one_in = min(MAX_KEEP_ONE_IN, self.keep_one_in * 2)
        elif self.keep_one_in > 1:
            self.keep_one_in //= 2
        if self.keep_one_in == 1:
            return times, frames
        kept_times: list[float] = []
        kept_frames: list[bytes] = []
        for stamp, frame in zip(times, frames, strict=True):
            if is_sampleable_udp(frame):
                self._seen += 1
                if self._seen % self.keep_one_in:
                    self.sampled_out += 1
                    continue
            kept_times.append(stamp)
            kept_frames.append(frame)
        return kept_times, kept_frames
