"""Frames in, connection events out: the packet decoder shared by pcap files and live capture.

TCP connections, SCTP associations and UDP flows become `ConnectionOpen`s; `EdgePackets`
carry each edge's packet counts and outcome (answered, refused, neither), ICMP
unreachables included (matched to the edge of the packet they quote).
`PacketDecoder.decode` takes a batch of frames of one link type; `decode_batch` takes
frames that already sit in one buffer (the pcap reader's chunks). Header fields are
gathered for the whole batch with numpy (`linklayer`, `packet_headers`); Python code then
runs once per flow and batch (`conntrack`), never once per data packet. Only DNS responses
that carry answers leave as payloads, for dnspython to parse later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from discover.flows.events import ConnectionOpen, EdgePackets, IPAddress, Protocol
from discover.reading.conntrack import ConnectionTracker, address
from discover.reading.linklayer import locate_network, read_u8, read_u16
from discover.reading.packet_headers import TCP, UDP, Headers, extract
from discover.reading.tunnels import decapsulate

DNS_PORT = 53
DNS_HEADER = 12

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DnsPayload:
    """A DNS message from a server to a client, header QR=1 and ANCOUNT>0."""

    time: float
    client_ip: IPAddress
    server_ip: IPAddress
    client_port: int
    server_port: int
    transport: Protocol  # UDP, or TCP (payload without the 2-byte length prefix)
    payload: bytes


Output = ConnectionOpen | EdgePackets | DnsPayload


@dataclass(slots=True)
class DecodeStats:
    """Counters of what the decoder saw; `as_dict` for reports and summaries."""

    packets: int = 0
    bytes: int = 0
    non_ip: int = 0  # ARP, LLC, ... behind a supported link type
    unsupported_link: int = 0  # frames of a link type the decoder does not know
    truncated: int = 0  # headers cut by the snap length or a short frame
    malformed: int = 0  # header fields that contradict each other
    ipv4: int = 0
    ipv6: int = 0
    ipv6_extension_headers: int = 0
    fragments: int = 0  # IP fragments (first and later)
    later_fragments: int = 0  # non-first fragments: no ports, not decoded
    other_protocol: int = 0  # IP but neither TCP, UDP nor SCTP (ICMP, ESP, GRE, ...)
    icmp_errors: int = 0  # of those, ICMP unreachables matched to the flow they answer
    sctp: int = 0  # SCTP packets (truncated ones included)
    tunneled: int = 0  # VXLAN, Geneve, IP-in-IP, GRE packets decoded by their inner packet
    tcp: int = 0
    udp: int = 0
    connections_syn: int = 0
    connections_syn_ack: int = 0
    associations_init: int = 0  # SCTP associations opened by their INIT
    associations_init_ack: int = 0  # ... by the server's INIT-ACK only
    connections_inferred: int = 0  # TCP and SCTP, seen mid-way
    udp_flows: int = 0
    # The same SYN (same ISN) or SCTP INIT (same Initiate Tag) again: retransmit or a second
    # interface.
    duplicate_syns: int = 0
    # A new connection (another ISN or Initiate Tag) on a 4-tuple set up < syn_window ago.
    reused_tuples: int = 0
    inferred_by_listener: int = 0
    inferred_by_well_known_port: int = 0
    inferred_by_ephemeral_port: int = 0
    inferred_by_lower_port: int = 0
    inferred_by_first_packet: int = 0
    dns_responses: int = 0  # emitted: QR=1 and ANCOUNT>0
    dns_without_answers: int = 0  # NXDOMAIN, NODATA: skipped before dnspython
    dns_truncated: int = 0  # answers cut by the snap length or fragmentation
    dns_tcp_partial: int = 0  # TCP segments holding part of a message
    flows_pruned: int = 0
    flows_tracked: int = 0  # current size of the connection table (a gauge)

    def add(self, counts: Counter[str]) -> None:
        for name, value in counts.items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class PacketDecoder:
    """Stateful: dedupes connections seen twice (by the client's ISN), ages flows out,
    infers directions. `syn_window` is how long a set-up is remembered to match its
    retransmits and copies; `tcp_idle` also ages SCTP associations out."""

    def __init__(
        self, *, syn_window: float = 30.0, udp_idle: float = 60.0, tcp_idle: float = 600.0,
        max_flows: int = 1_000_000,
    ) -> None:
        self.stats = DecodeStats()
        self._tracker = ConnectionTracker(
            syn_window=syn_window, udp_idle=udp_idle, tcp_idle=tcp_idle, max_flows=max_flows
        )

    def decode(
        self, linktype: int, times: Sequence[float] | F64Array, frames: Sequence[bytes]
    ) -> list[Output]:
        """Events for a batch of frames of one link type (the live agent's entry point)."""
        if len(times) != len(frames):
            raise ValueError(f"{len(times)} times for {len(frames)} frames")
        if not len(frames):
            return []
        raw = b"".join(frames)
        lengths = np.fromiter(map(len, frames), dtype=np.int64, count=len(frames))
        ends = np.cumsum(lengths)
        return self.decode_batch(
            raw, np.frombuffer(raw, dtype=np.uint8), ends - lengths, lengths,
            np.full(len(frames), linktype, dtype=np.int64), np.asarray(times, dtype=np.float64),
        )

    def decode_batch(
        self, raw: bytes, data: U8Array, starts: I64Array, caplens: I64Array,
        linktypes: I64Array, times: F64Array,
    ) -> list[Output]:
        """Events for frames `raw[starts[i]:starts[i] + caplens[i]]` (`data` views `raw`)."""
        counts: Counter[str] = Counter()
        counts["packets"] += len(starts)
        counts["bytes"] += int(caplens.sum())
        ends = starts + caplens
        l3, net = locate_network(data, starts, ends, linktypes)
        headers, carried = extract(raw, data, ends, l3, net, counts)
        headers = decapsulate(raw, data, ends, headers, carried, counts)
        when = times[headers.index]
        opens, edges = self._tracker.track(headers, when, counts)
        dns = _dns_payloads(raw, data, headers, when, counts)
        self.stats.add(counts)
        self.stats.flows_tracked = len(self._tracker)
        timed: list[ConnectionOpen | DnsPayload] = [*opens, *dns]
        timed.sort(key=lambda e: e.time)
        return [*timed, *edges]

    def flush(self) -> list[Output]:
        """End of input: forget every flow (EdgePackets are already emitted per batch)."""
        self.stats.flows_pruned += len(self._tracker)
        self._tracker.clear()
        self.stats.flows_tracked = 0
        return []


def _dns_payloads(
    raw: bytes, data: U8Array, h: Headers, when: F64Array, counts: Counter[str]
) -> list[DnsPayload]:
    """DNS responses with answers from source port 53 (mDNS's 5353 is not ours)."""
    sel = np.flatnonzero(h.sport == DNS_PORT)
    if not len(sel):
        return []
    out: list[DnsPayload] = []
    udp = sel[h.proto[sel] == UDP]
    if len(udp):
        p, pe = h.payload[udp], h.payload_end[udp]
        whole = pe - p >= DNS_HEADER
        response = whole & ((read_u8(data, p + 2) & 0x80) != 0)
        answers = read_u16(data, p + 6)
        counts["dns_without_answers"] += int(np.count_nonzero(response & (answers == 0)))
        wanted = response & (answers > 0)
        cut = wanted & h.incomplete[udp]
        counts["dns_truncated"] += int(np.count_nonzero(cut))
        for i in udp[wanted & ~cut].tolist():
            out.append(_payload(h, when, i, Protocol.UDP, raw[h.payload[i] : h.payload_end[i]]))
    tcp = sel[(h.proto[sel] == TCP) & (h.payload_end[sel] > h.payload[sel])]
    for i in tcp.tolist():
        for message in _tcp_messages(raw, int(h.payload[i]), int(h.payload_end[i]), counts):
            out.append(_payload(h, when, i, Protocol.TCP, message))
    counts["dns_responses"] += len(out)
    return out


def _tcp_messages(raw: bytes, at: int, end: int, counts: Counter[str]) -> list[bytes]:
    """Whole DNS messages in one TCP segment (2-byte length prefix each); a message split
    across segments is counted, not reassembled."""
    found: list[bytes] = []
    while at < end:
        if at + 2 > end:
            counts["dns_tcp_partial"] += 1
            break
        size = int.from_bytes(raw[at : at + 2], "big")
        body = at + 2
        if size < DNS_HEADER or body + size > end:
            counts["dns_tcp_partial"] += 1
            break
        message = raw[body : body + size]
        if message[2] & 0x80:
            if int.from_bytes(message[6:8], "big"):
                found.append(message)
            else:
                counts["dns_without_answers"] += 1
        at = body + size
    return found


def _payload(h: Headers, when: F64Array, i: int, transport: Protocol, body: bytes) -> DnsPayload:
    return DnsPayload(
        time=float(when[i]),
        client_ip=address(int(h.family[i]), int(h.dst_hi[i]), int(h.dst_lo[i])),
        server_ip=address(int(h.family[i]), int(h.src_hi[i]), int(h.src_lo[i])),
        client_port=int(h.dport[i]),
        server_port=int(h.sport[i]),
        transport=transport,
        payload=body,
    )
