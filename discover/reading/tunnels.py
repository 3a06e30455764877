"""Overlay networks: the pod-to-pod packets inside VXLAN, Geneve, IP-in-IP and GRE.

A capture on a node's uplink sees traffic between pods of different nodes only
encapsulated (flannel and Cilium: VXLAN; OVN-Kubernetes: Geneve; Calico: IP-in-IP or
VXLAN). The inner packet is what a NetworkPolicy is about, so it replaces the outer one;
one level of encapsulation is decoded, which is all these CNIs use.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt

from discover.reading.linklayer import ETHERNET, RAW, locate_network, read_u8, read_u16
from discover.reading.packet_headers import UDP, Headers, IpPayloads, extract, merge, select

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]

VXLAN_PORTS = (4789, 8472)  # IANA's, and the Linux kernel's / flannel's default
GENEVE_PORT = 6081
TRANSPARENT_ETHERNET = 0x6558
ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
GRE = 47


def decapsulate(
    raw: bytes, data: U8Array, ends: I64Array, h: Headers, carried: IpPayloads,
    counts: Counter[str],
) -> Headers:
    """`h` with every tunnel packet replaced by the TCP/UDP packet inside it."""
    index, start, linktype, outer = _inner_frames(data, h, carried)
    if not len(index):
        return h
    counts["tunneled"] += len(index)
    inner_ends = ends[index]
    l3, net = locate_network(data, start, inner_ends, linktype)
    # Inner counters would count the frame a second time (ipv4, tcp, ...): kept apart.
    inner, _nested = extract(raw, data, inner_ends, l3, net, Counter())
    inner.index = index[inner.index]
    return merge(select(h, ~outer), inner)


def _inner_frames(
    data: U8Array, h: Headers, carried: IpPayloads
) -> tuple[I64Array, I64Array, I64Array, npt.NDArray[np.bool_]]:
    """(frame index, start of the inner frame, its link type, which `h` entries were
    tunnels) for every encapsulated packet of a batch."""
    udp = h.proto == UDP
    p, pe = h.payload, h.payload_end
    first = read_u8(data, p)
    vxlan = (udp & np.isin(h.dport, VXLAN_PORTS) & (p + 8 + 14 <= pe)
             & ((first & 0x08) != 0))  # the I flag: a valid VNI follows
    geneve_proto = read_u16(data, p + 2)
    geneve_start = p + 8 + (first & 0x3F) * 4
    geneve = (udp & (h.dport == GENEVE_PORT) & (first >> 6 == 0) & (geneve_start < pe)
              & np.isin(geneve_proto, (TRANSPARENT_ETHERNET, ETHERTYPE_IPV4, ETHERTYPE_IPV6)))
    outer = vxlan | geneve
    parts_index = [h.index[vxlan], h.index[geneve]]
    parts_start = [p[vxlan] + 8, geneve_start[geneve]]
    parts_link = [np.full(int(vxlan.sum()), ETHERNET, dtype=np.int64),
                  np.where(geneve_proto[geneve] == TRANSPARENT_ETHERNET, ETHERNET, RAW)]

    ipip = carried.proto != GRE
    parts_index.append(carried.index[ipip])
    parts_start.append(carried.start[ipip])
    parts_link.append(np.full(int(ipip.sum()), RAW, dtype=np.int64))

    gre = np.flatnonzero(carried.proto == GRE)
    if len(gre):
        g, g_end = carried.start[gre], carried.end[gre]
        flags, proto = read_u16(data, g), read_u16(data, g + 2)
        # Optional checksum(+reserved), key and sequence fields, 4 bytes each.
        size = 4 + 4 * (((flags & 0x8000) != 0).astype(np.int64) + ((flags & 0x2000) != 0)
                        + ((flags & 0x1000) != 0))
        ok = ((flags & 0x0007) == 0) & (g + size < g_end) & np.isin(
            proto, (TRANSPARENT_ETHERNET, ETHERTYPE_IPV4, ETHERTYPE_IPV6))
        parts_index.append(carried.index[gre][ok])
        parts_start.append((g + size)[ok])
        parts_link.append(np.where(proto[ok] == TRANSPARENT_ETHERNET, ETHERNET, RAW))
    return (np.concatenate(parts_index), np.concatenate(parts_start),
            np.concatenate(parts_link).astype(np.int64), outer)
