"""IPv4/IPv6 and TCP/UDP/SCTP header fields of a batch of frames, gathered as numpy arrays.

An ICMP or ICMPv6 "destination unreachable" carries the start of the packet it answers: it
becomes an entry of that packet's flow, as if its destination had answered with a TCP RST
(flags `RST | ICMP_ERROR`), so that connection tracking tells the client's edge it was
refused without a path of its own.

The common shapes (IPv4, IPv6 without extension headers) are handled for all frames at
once; IPv6 extension-header chains, rare in practice, are walked one frame at a time.
Addresses are two uint64 halves (IPv4 in the low half), so both families share arrays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from discover.reading.linklayer import (
    NET_IPV4,
    NET_IPV6,
    NET_MALFORMED,
    NET_OTHER,
    NET_TRUNCATED,
    NET_UNSUPPORTED,
    read_u8,
    read_u16,
    read_u32,
)

U8Array = npt.NDArray[np.uint8]
U64Array = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TCP, UDP, SCTP = 6, 17, 132
ICMP, ICMPV6 = 1, 58
SYN, RST, ACK = 0x02, 0x04, 0x10
# Not a TCP flag (those fit in a byte): marks an entry that stands for an ICMP error.
ICMP_ERROR = 0x1000
ICMP_UNREACHABLE = 3  # ICMP type 3, destination unreachable (RFC 792)
ICMP_FRAGMENTATION_NEEDED = 4  # its code 4 is path MTU discovery, not a refusal
ICMPV6_UNREACHABLE = 1  # ICMPv6 type 1 (RFC 4443)
ICMP_HEADER = 8  # type, code, checksum, 4 unused bytes; the offending packet follows
SCTP_ABORT = 6  # an ABORT answering an INIT refuses the association (RFC 4960 5.1)
# SCTP chunk types that set up an association (RFC 4960 3.2); INIT must be alone in its
# packet, so the first chunk is the only one looked at.
SCTP_INIT, SCTP_INIT_ACK = 1, 2
SCTP_COMMON_HEADER = 12  # ports, verification tag, checksum
SCTP_SETUP_BYTES = SCTP_COMMON_HEADER + 8  # + chunk header and the Initiate Tag
# Extension headers walked in IPv6: hop-by-hop, routing, fragment, AH, destination options,
# mobility, HIP, shim6.
IPV6_EXTENSIONS = (0, 43, 44, 51, 60, 135, 139, 140)
MAX_EXTENSIONS = 12


@dataclass(slots=True)
class Headers:
    """One entry per TCP/UDP/SCTP packet whose ports could be read.

    SCTP set-ups are described in TCP's terms, so connection tracking has one path for
    both: an INIT chunk has flags SYN and `seq` its Initiate Tag; an INIT-ACK has flags
    SYN|ACK and `ack` the common header's verification tag (the client's Initiate Tag)
    + 1, as a SYN-ACK acknowledges ISN + 1. Other SCTP packets have flags 0, and no
    payload (nothing in them is decoded).
    """

    index: I64Array  # position of the frame in its batch
    family: I64Array  # 4 or 6
    src_hi: U64Array
    src_lo: U64Array
    dst_hi: U64Array
    dst_lo: U64Array
    proto: I64Array  # TCP, UDP or SCTP
    sport: I64Array
    dport: I64Array
    # TCP flags (SCTP: SYN for INIT, SYN|ACK for INIT-ACK, RST for ABORT); 0 for UDP;
    # RST|ICMP_ERROR for an ICMP error, whose entry has the offending packet's 5-tuple
    # turned around (sent by its destination) and no payload.
    flags: I64Array
    # Read for SYN and SYN-ACK segments only (0 otherwise): a SYN's sequence number is the
    # client's ISN, a SYN-ACK acknowledges ISN + 1 (SCTP: see above).
    seq: I64Array
    ack: I64Array
    payload: I64Array  # absolute offset of the L4 payload in the batch buffer
    payload_end: I64Array  # where it ends (IP/UDP lengths bounded by the captured bytes)
    incomplete: BoolArray  # the payload was cut (snap length) or is the first fragment


def _address_halves(data: U8Array, at: I64Array) -> tuple[U64Array, U64Array]:
    """IPv6 addresses at offsets `at` (all known to be inside the buffer)."""
    rows = data[at[:, None] + np.arange(16, dtype=np.int64)]
    halves = np.ascontiguousarray(rows).view(">u8").astype(np.uint64)
    return halves[:, 0], halves[:, 1]


@dataclass(slots=True)
class IpPayloads:
    """IP packets carrying another protocol that a tunnel decoder may want (IP-in-IP, GRE)."""

    index: I64Array
    proto: I64Array
    start: I64Array  # absolute offset of the IP payload
    end: I64Array


TUNNEL_PROTOCOLS = (4, 41, 47)  # IPv4 in IP, IPv6 in IP, GRE


def extract(
    raw: bytes, data: U8Array, ends: I64Array, l3: I64Array, net: I64Array,
    counts: Counter[str],
) -> tuple[Headers, IpPayloads]:
    """Header fields of every TCP/UDP/SCTP frame, and where tunnel protocols start;
    everything else is tallied in `counts`."""
    counts["non_ip"] += int(np.count_nonzero(net == NET_OTHER))
    counts["truncated"] += int(np.count_nonzero(net == NET_TRUNCATED))
    counts["malformed"] += int(np.count_nonzero(net == NET_MALFORMED))
    counts["unsupported_link"] += int(np.count_nonzero(net == NET_UNSUPPORTED))

    parts = [p for p in (_ipv4(data, ends, l3, net, counts),
                         _ipv6(raw, data, ends, l3, net, counts)) if p is not None]
    if not parts:
        return _empty(), IpPayloads(*(np.empty(0, dtype=np.int64),) * 4)
    idx, fam, shi, slo, dhi, dlo, proto, l4, ipend, cut = (
        np.concatenate(cols) for cols in zip(*parts, strict=True)
    )
    tcp, udp, sctp = proto == TCP, proto == UDP, proto == SCTP
    counts["other_protocol"] += len(proto) - int(np.count_nonzero(tcp | udp | sctp))
    errors = _icmp_errors(data, idx, fam, proto, l4, ipend, counts)
    counts["sctp"] += int(np.count_nonzero(sctp))
    tunnel = np.flatnonzero(np.isin(proto, TUNNEL_PROTOCOLS) & (l4 < ipend))
    carried = IpPayloads(idx[tunnel], proto[tunnel], l4[tunnel], ipend[tunnel])
    known = tcp | udp | sctp
    need = np.where(tcp, 14, np.where(udp, 8, SCTP_COMMON_HEADER))
    short = known & (l4 + need > ipend)
    counts["truncated"] += int(np.count_nonzero(short))
    keep = np.flatnonzero(known & ~short)
    idx, fam, shi, slo, dhi, dlo, proto, l4, ipend, cut = (
        a[keep] for a in (idx, fam, shi, slo, dhi, dlo, proto, l4, ipend, cut)
    )
    tcp, udp = proto == TCP, proto == UDP
    counts["tcp"] += int(np.count_nonzero(tcp))
    counts["udp"] += int(np.count_nonzero(udp))
    sport, dport = read_u16(data, l4), read_u16(data, l4 + 2)
    flags = np.where(tcp, read_u8(data, l4 + 13), 0)
    seq, ack = np.zeros(len(tcp), dtype=np.int64), np.zeros(len(tcp), dtype=np.int64)
    # Inside the 14 bytes checked above. The ISN tells a new connection on a reused port
    # from a retransmitted or twice-captured SYN; set-up segments only, a few per connection.
    setup = np.flatnonzero(tcp & ((flags & SYN) != 0))
    seq[setup] = read_u32(data, l4[setup] + 4)
    ack[setup] = read_u32(data, l4[setup] + 8)
    _sctp_setups(data, proto, l4, ipend, flags, seq, ack)
    doff = (read_u8(data, l4 + 12) >> 4) * 4
    udp_len = read_u16(data, l4 + 4)
    payload = np.where(tcp, l4 + doff, np.where(udp, l4 + 8, ipend))
    udp_end = l4 + np.maximum(udp_len, 8)
    payload_end = np.where(udp, np.minimum(udp_end, ipend), ipend)
    cut = cut | (udp & (udp_end > ipend))
    payload_end = np.maximum(payload_end, np.minimum(payload, payload_end))
    headers = Headers(idx, fam, shi, slo, dhi, dlo, proto, sport, dport, flags, seq, ack,
                      np.minimum(payload, payload_end), payload_end, cut)
    if errors is not None:
        headers = merge(headers, errors)
    return headers, carried


def _icmp_errors(
    data: U8Array, idx: I64Array, fam: I64Array, proto: I64Array, l4: I64Array,
    ipend: I64Array, counts: Counter[str],
) -> Headers | None:
    """Destination-unreachable errors whose quoted packet shows its TCP/UDP/SCTP ports, as
    entries of that packet's flow (see `Headers.flags`). "Fragmentation needed" is left
    out: it asks for smaller packets, it refuses nothing. A quoted IPv6 packet with
    extension headers is left out too (rare; its ports are not where they usually are)."""
    v4 = (proto == ICMP) & (fam == 4) & (l4 + ICMP_HEADER + 20 <= ipend)
    v6 = (proto == ICMPV6) & (fam == 6) & (l4 + ICMP_HEADER + 40 <= ipend)
    at = np.flatnonzero(v4 | v6)
    if not len(at):
        return None
    kind, code = read_u8(data, l4[at]), read_u8(data, l4[at] + 1)
    is6 = fam[at] == 6
    wanted = np.where(is6, kind == ICMPV6_UNREACHABLE,
                      (kind == ICMP_UNREACHABLE) & (code != ICMP_FRAGMENTATION_NEEDED))
    at, is6 = at[wanted], is6[wanted]
    inner = l4[at] + ICMP_HEADER
    inner_l4 = np.where(is6, inner + 40, inner + (read_u8(data, inner) & 0x0F) * 4)
    inner_proto = np.where(is6, read_u8(data, inner + 6), read_u8(data, inner + 9))
    first_fragment = is6 | ((read_u16(data, np.where(is6, inner, inner + 6)) & 0x1FFF) == 0)
    ok = (np.isin(inner_proto, (TCP, UDP, SCTP)) & first_fragment
          & (inner_l4 + 4 <= ipend[at]) & (inner_l4 >= inner + np.where(is6, 40, 20)))
    at, is6, inner, inner_l4, inner_proto = (
        a[ok] for a in (at, is6, inner, inner_l4, inner_proto))
    n = len(at)
    counts["icmp_errors"] += n
    if not n:
        return None
    # The quoted packet went client -> server; the entry goes server -> client.
    src_hi, src_lo = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    dst_hi, dst_lo = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    four = np.flatnonzero(~is6)
    src_lo[four] = read_u32(data, inner[four] + 16).astype(np.uint64)
    dst_lo[four] = read_u32(data, inner[four] + 12).astype(np.uint64)
    six = np.flatnonzero(is6)
    if len(six):
        src_hi[six], src_lo[six] = _address_halves(data, inner[six] + 24)
        dst_hi[six], dst_lo[six] = _address_halves(data, inner[six] + 8)
    zeros = np.zeros(n, dtype=np.int64)
    end = ipend[at]
    return Headers(
        idx[at], fam[at], src_hi, src_lo, dst_hi, dst_lo, inner_proto,
        read_u16(data, inner_l4 + 2), read_u16(data, inner_l4),
        np.full(n, RST | ICMP_ERROR, dtype=np.int64), zeros, zeros.copy(), end, end,
        np.zeros(n, dtype=np.bool_),
    )


def _sctp_setups(
    data: U8Array, proto: I64Array, l4: I64Array, ipend: I64Array,
    flags: I64Array, seq: I64Array, ack: I64Array,
) -> None:
    """Fill `flags`, `seq` and `ack` of SCTP INIT and INIT-ACK packets in place (see
    `Headers`). The Initiate Tag tells a new association on a reused 4-tuple from a
    retransmitted or twice-captured INIT, as a TCP ISN does; an INIT cut before its tag
    is an ordinary packet of an association."""
    at = np.flatnonzero(proto == SCTP)
    if not len(at):
        return
    start = l4[at]
    whole = start + SCTP_SETUP_BYTES <= ipend[at]
    first_chunk = np.where(start + SCTP_COMMON_HEADER < ipend[at],
                           read_u8(data, start + SCTP_COMMON_HEADER), 0)
    chunk = np.where(whole, first_chunk, 0)
    init = at[chunk == SCTP_INIT]
    init_ack = at[chunk == SCTP_INIT_ACK]
    flags[at[first_chunk == SCTP_ABORT]] = RST
    flags[init] = SYN
    seq[init] = read_u32(data, l4[init] + SCTP_COMMON_HEADER + 4)
    flags[init_ack] = SYN | ACK
    seq[init_ack] = read_u32(data, l4[init_ack] + SCTP_COMMON_HEADER + 4)
    ack[init_ack] = (read_u32(data, l4[init_ack] + 4) + 1) & 0xFFFF_FFFF


def select(h: Headers, keep: BoolArray) -> Headers:
    """The entries of `h` where `keep` is True."""
    return Headers(*(getattr(h, f)[keep] for f in Headers.__slots__))


def merge(a: Headers, b: Headers) -> Headers:
    """Entries of both, in frame order (a flow's packets must stay in time order)."""
    order = np.argsort(np.concatenate([a.index, b.index]), kind="stable")
    return Headers(*(np.concatenate([getattr(a, f), getattr(b, f)])[order]
                     for f in Headers.__slots__))


_Part = tuple[I64Array, I64Array, U64Array, U64Array, U64Array, U64Array, I64Array,
              I64Array, I64Array, BoolArray]


def _ipv4(
    data: U8Array, ends: I64Array, l3: I64Array, net: I64Array, counts: Counter[str]
) -> _Part | None:
    idx = np.flatnonzero(net == NET_IPV4)
    if not len(idx):
        return None
    a, e = l3[idx], ends[idx]
    ihl = (read_u8(data, a) & 0x0F) * 4
    total = read_u16(data, a + 2)
    short = a + np.maximum(ihl, 20) > e
    bad = ~short & ((ihl < 20) | ((total != 0) & (total < ihl)))
    frag = read_u16(data, a + 6)
    fragment = ~short & ~bad & ((frag & 0x3FFF) != 0)
    later = fragment & ((frag & 0x1FFF) != 0)
    counts["ipv4"] += len(idx)
    counts["truncated"] += int(np.count_nonzero(short))
    counts["malformed"] += int(np.count_nonzero(bad))
    counts["fragments"] += int(np.count_nonzero(fragment))
    counts["later_fragments"] += int(np.count_nonzero(later))
    keep = np.flatnonzero(~short & ~bad & ~later)
    a, e, ihl, total, idx = a[keep], e[keep], ihl[keep], total[keep], idx[keep]
    full_end = np.where(total == 0, e, a + total)  # 0: TCP segmentation offload
    ipend = np.minimum(full_end, e)
    zero = np.zeros(len(idx), dtype=np.uint64)
    return (
        idx, np.full(len(idx), 4, dtype=np.int64),
        zero, read_u32(data, a + 12).astype(np.uint64),
        zero, read_u32(data, a + 16).astype(np.uint64),
        read_u8(data, a + 9), a + ihl, ipend, fragment[keep] | (full_end > e),
    )


def _ipv6(
    raw: bytes, data: U8Array, ends: I64Array, l3: I64Array, net: I64Array,
    counts: Counter[str],
) -> _Part | None:
    idx = np.flatnonzero(net == NET_IPV6)
    if not len(idx):
        return None
    a, e = l3[idx], ends[idx]
    counts["ipv6"] += len(idx)
    short = a + 40 > e
    counts["truncated"] += int(np.count_nonzero(short))
    keep = np.flatnonzero(~short)
    idx, a, e = idx[keep], a[keep], e[keep]
    plen = read_u16(data, a + 4)
    full_end = np.where(plen == 0, e, a + 40 + plen)  # 0: jumbogram or offload
    ipend = np.minimum(full_end, e)
    nh = read_u8(data, a + 6)
    l4 = a + 40
    cut = full_end > e
    ext = np.flatnonzero(np.isin(nh, IPV6_EXTENSIONS))
    drop = np.zeros(len(idx), dtype=np.bool_)
    for i in ext.tolist():
        proto, offset, state = walk_ipv6_extensions(raw, int(nh[i]), int(l4[i]), int(ipend[i]))
        nh[i], l4[i] = proto, offset
        if state == "truncated":
            counts["truncated"] += 1
            drop[i] = True
        elif state in ("first-fragment", "later-fragment"):
            counts["fragments"] += 1
            cut[i] = True
            if state == "later-fragment":
                counts["later_fragments"] += 1
                drop[i] = True
    counts["ipv6_extension_headers"] += len(ext)
    keep = np.flatnonzero(~drop)
    shi, slo = _address_halves(data, a[keep] + 8)
    dhi, dlo = _address_halves(data, a[keep] + 24)
    return (
        idx[keep], np.full(len(keep), 6, dtype=np.int64), shi, slo, dhi, dlo,
        nh[keep], l4[keep], ipend[keep], cut[keep],
    )


def walk_ipv6_extensions(raw: bytes, nh: int, at: int, end: int) -> tuple[int, int, str]:
    """Follow an IPv6 extension-header chain: (upper protocol, its offset, state), state
    being "ok", "truncated", "first-fragment" or "later-fragment"."""
    state = "ok"
    for _ in range(MAX_EXTENSIONS):
        if nh not in IPV6_EXTENSIONS:
            return nh, at, state
        if at + 8 > end:
            return nh, at, "truncated"
        if nh == 44:  # fragment header: fixed 8 bytes
            offset = int.from_bytes(raw[at + 2 : at + 4], "big") >> 3
            more = raw[at + 3] & 1
            if offset:
                return raw[at], at + 8, "later-fragment"
            if more:
                state = "first-fragment"
            size = 8
        elif nh == 51:  # AH counts 4-byte words, minus 2
            size = (raw[at + 1] + 2) * 4
        else:
            size = (raw[at + 1] + 1) * 8
        nh, at = raw[at], at + size
    return nh, at, "truncated"


def _empty() -> Headers:
    i = np.empty(0, dtype=np.int64)
    u = np.empty(0, dtype=np.uint64)
    return Headers(i, i, u, u, u, u, i, i, i, i, i, i, i, i, np.empty(0, dtype=np.bool_))
