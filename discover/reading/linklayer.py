"""Find the IP header behind each frame's link layer, for a whole batch of frames at once.

Frames live in one byte buffer (`data`) at `starts`, `ends`; every read goes through
`read_u8`/`read_u16`, which clamp indexes into the buffer so that a short frame reads
garbage instead of crashing; callers mask such reads with length checks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Link types (LINKTYPE_* numbers as written in pcap/pcapng files).
NULL, ETHERNET, RAW_OLD_A, RAW_OLD_B, RAW = 0, 1, 12, 14, 101
LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2 = 108, 113, 228, 229, 276
SUPPORTED = frozenset({NULL, ETHERNET, RAW_OLD_A, RAW_OLD_B, RAW, LOOP, LINUX_SLL, IPV4, IPV6,
                       LINUX_SLL2})

# Network-layer codes in the result.
NET_IPV4, NET_IPV6 = 4, 6
NET_OTHER = 0  # a frame carrying something that is not IP (ARP, LLC, ...)
NET_TRUNCATED = -1  # the link header is cut short
NET_UNSUPPORTED = -2  # a link type this decoder does not know
NET_MALFORMED = -3  # the link header says IP, the bytes behind it disagree

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
MAX_VLAN_TAGS = 4
ETHERTYPE_PBB = 0x88E7
ETHERTYPE_PPPOE = 0x8864  # PPPoE session stage
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
ETHERTYPES_MPLS = (0x8847, 0x8848)
MAX_MPLS_LABELS = 8
# BSD address families for IPv6 differ by OS (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS).
AF_INET6_VALUES = (24, 28, 30, 10)


def read_u8(data: U8Array, idx: I64Array) -> I64Array:
    last = len(data) - 1
    return data[np.minimum(idx, last)].astype(np.int64)


def read_u16(data: U8Array, idx: I64Array) -> I64Array:
    return (read_u8(data, idx) << 8) | read_u8(data, idx + 1)


def read_u32(data: U8Array, idx: I64Array) -> I64Array:
    return (read_u16(data, idx) << 16) | read_u16(data, idx + 2)


def locate_network(
    data: U8Array, starts: I64Array, ends: I64Array, linktypes: I64Array
) -> tuple[I64Array, I64Array]:
    """(absolute offset of the network header, network code) for each frame."""
    n = len(starts)
    l3 = np.zeros(n, dtype=np.int64)
    net = np.full(n, NET_UNSUPPORTED, dtype=np.int64)
    if n == 0 or len(data) == 0:
        return l3, net
    kinds = np.unique(linktypes)
    for lt in kinds.tolist():
        sel = slice(None) if len(kinds) == 1 else np.flatnonzero(linktypes == lt)
        s, e = starts[sel], ends[sel]
        if lt in (ETHERNET, LINUX_SLL, LINUX_SLL2):
            l3[sel], net[sel] = _ethertype_based(data, s, e, lt)
        elif lt in (RAW, RAW_OLD_A, RAW_OLD_B, IPV4, IPV6):
            l3[sel], net[sel] = s, _version(data, s, e)
        elif lt in (NULL, LOOP):
            l3[sel], net[sel] = _address_family(data, s, e)
    return l3, net


def _ethertype_based(
    data: U8Array, s: I64Array, e: I64Array, linktype: int
) -> tuple[I64Array, I64Array]:
    if linktype == ETHERNET:
        etype, l3 = read_u16(data, s + 12), s + 14
    elif linktype == LINUX_SLL:
        etype, l3 = read_u16(data, s + 14), s + 16
    else:  # SLL2: protocol first, 20-byte header
        etype, l3 = read_u16(data, s), s + 20
    short = l3 > e
    for _ in range(MAX_VLAN_TAGS):
        tagged = np.isin(etype, VLAN_TPIDS) & ~short
        # 802.1ah: a 4-byte I-TAG, then the customer's whole Ethernet header.
        backbone = (etype == ETHERTYPE_PBB) & ~short
        if not (tagged.any() or backbone.any()):
            break
        etype = np.where(tagged, read_u16(data, l3 + 2),
                         np.where(backbone, read_u16(data, l3 + 16), etype))
        l3 = l3 + np.where(tagged, 4, np.where(backbone, 18, 0))
        short |= l3 > e
    etype, l3, short = _pppoe(data, etype, l3, e, short)
    etype, l3, short = _mpls(data, etype, l3, e, short)
    net = np.where(etype == ETHERTYPE_IPV4, NET_IPV4,
                   np.where(etype == ETHERTYPE_IPV6, NET_IPV6, NET_OTHER))
    net = _check_version(data, l3, e, net)
    return l3, np.where(short, NET_TRUNCATED, net)


def _pppoe(
    data: U8Array, etype: I64Array, l3: I64Array, e: I64Array, short: BoolArray
) -> tuple[I64Array, I64Array, BoolArray]:
    """PPPoE session frames: 6 bytes of PPPoE, then the 2-byte PPP protocol."""
    pppoe = (etype == ETHERTYPE_PPPOE) & ~short
    if not pppoe.any():
        return etype, l3, short
    proto = read_u16(data, l3 + 6)
    inner = np.where(proto == PPP_IPV4, ETHERTYPE_IPV4, np.where(proto == PPP_IPV6,
                                                                 ETHERTYPE_IPV6, 0))
    l3 = np.where(pppoe, l3 + 8, l3)
    return np.where(pppoe, inner, etype), l3, short | (l3 > e)


def _mpls(
    data: U8Array, etype: I64Array, l3: I64Array, e: I64Array, short: BoolArray
) -> tuple[I64Array, I64Array, BoolArray]:
    """MPLS: skip labels up to the bottom of the stack; the IP version says the rest."""
    mpls = np.isin(etype, ETHERTYPES_MPLS) & ~short
    if not mpls.any():
        return etype, l3, short
    bottom = np.zeros(len(l3), dtype=np.bool_)
    for _ in range(MAX_MPLS_LABELS):
        active = mpls & ~bottom & (l3 + 4 <= e)
        if not active.any():
            break
        last = (read_u8(data, l3 + 2) & 1) != 0
        l3 = np.where(active, l3 + 4, l3)
        bottom |= active & last
    nibble = read_u8(data, l3) >> 4
    inner = np.where(bottom & (nibble == 4), ETHERTYPE_IPV4,
                     np.where(bottom & (nibble == 6), ETHERTYPE_IPV6, 0))
    return np.where(mpls, inner, etype), l3, short | (l3 > e)


def _version(data: U8Array, s: I64Array, e: I64Array) -> I64Array:
    """Raw IP: the version nibble says which."""
    nibble = read_u8(data, s) >> 4
    net = np.where(nibble == 4, NET_IPV4, np.where(nibble == 6, NET_IPV6, NET_OTHER))
    return np.where(s >= e, NET_TRUNCATED, net)


def _address_family(data: U8Array, s: I64Array, e: I64Array) -> tuple[I64Array, I64Array]:
    """BSD null/loop: a 4-byte address family in host (null) or network (loop) byte order;
    both orders are tried, the writer's host order being unknown."""
    be = read_u32(data, s)
    le = ((be & 0xFF) << 24) | ((be & 0xFF00) << 8) | ((be >> 8) & 0xFF00) | (be >> 24)
    v4 = (be == 2) | (le == 2)
    v6 = np.isin(be, AF_INET6_VALUES) | np.isin(le, AF_INET6_VALUES)
    net = np.where(v4, NET_IPV4, np.where(v6, NET_IPV6, NET_OTHER))
    l3 = s + 4
    net = _check_version(data, l3, e, net)
    return l3, np.where(l3 > e, NET_TRUNCATED, net)


def _check_version(data: U8Array, l3: I64Array, e: I64Array, net: I64Array) -> I64Array:
    """A header that says IPv4 must start with version 4 (and 6 for IPv6)."""
    nibble = read_u8(data, l3) >> 4
    ip = (net == NET_IPV4) | (net == NET_IPV6)
    wrong = ip & (l3 < e) & (nibble != net)
    return np.where(wrong, NET_MALFORMED, net)
