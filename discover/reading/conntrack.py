"""Connection tracking over batches of decoded headers: one Python step per flow, not per
packet.

The packets of a batch are grouped by their flow (the 5-tuple with its two ends in a
canonical order) with one stable numpy sort; each group then updates the flow table once.
TCP set-up packets (SYN, SYN-ACK), a few per connection, are looked at one by one, in
order, and matched by the client's initial sequence number: a SYN seen on two interfaces
or retransmitted (same ISN) opens one connection, a client reusing the 4-tuple (another
ISN) opens another. SCTP associations take the same path: `packet_headers` gives an INIT
and an INIT-ACK the flags and numbers of a SYN and a SYN-ACK, the client's Initiate Tag
standing for its ISN.

Each flow also records its outcome (`Outcome`): whether its server answered (a SYN-ACK, an
INIT-ACK, any other packet from the server, a UDP datagram back), refused (a TCP RST, an
SCTP ABORT, or an ICMP unreachable, which `packet_headers` files under the flow as a
packet from the server), or neither. A TCP or SCTP flow first seen mid-way (no set-up) is
completed: it was going on before the capture began.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address

import numpy as np
import numpy.typing as npt

from discover.flows.events import (
    OUTCOME_ORDER,
    ConnectionOpen,
    DirectionEvidence,
    EdgePackets,
    IPAddress,
    Outcome,
    Protocol,
)
from discover.reading.packet_headers import ACK, RST, SCTP, SYN, TCP, UDP, Headers

F64Array = npt.NDArray[np.float64]
WELL_KNOWN_END = 1024
EPHEMERAL_START = 32768  # Linux's default ip_local_port_range starts here
MAX_LISTENERS = 200_000

SEQ_MASK = 0xFFFF_FFFF
CLIENT_A_MARK = 1 << 32  # set in a set-up mark when the client is end "a"
NEVER = float("-inf")
FlowKey = tuple[int, int, int, int, int, int, int, int]  # proto, family, a(hi, lo, port), b
_PROTOCOLS = {TCP: Protocol.TCP, UDP: Protocol.UDP, SCTP: Protocol.SCTP}
# Evidence and counter of a set-up: (by its SYN or INIT, by its SYN-ACK or INIT-ACK).
_SETUP_EVIDENCE = {
    TCP: (DirectionEvidence.SYN, DirectionEvidence.SYN_ACK),
    SCTP: (DirectionEvidence.INIT, DirectionEvidence.INIT_ACK),
}
_SETUP_COUNTERS = {
    TCP: ("connections_syn", "connections_syn_ack"),
    SCTP: ("associations_init", "associations_init_ack"),
}
Setup = tuple[float, int, bool, int, int, int]  # time, flags, sent by "b", seq, ack, data size
_OUTCOME_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOME_ORDER)}
COMPLETED = _OUTCOME_RANK[Outcome.COMPLETED]
ONE_WAY = _OUTCOME_RANK[Outcome.ONE_WAY]
REFUSED = _OUTCOME_RANK[Outcome.REFUSED]
UNANSWERED = _OUTCOME_RANK[Outcome.UNANSWERED]
# What each end of a group sent: bit 0 a packet from "a", bit 1 one from "b", bits 2 and 3
# a refusal (RST, ABORT, ICMP error) from "a" and from "b".
_SENT_A, _SENT_B, _REFUSED_BY_A, _REFUSED_BY_B = 1, 2, 4, 8


class Flow:
    """What is known of one 4-tuple (5-tuple with the protocol): which end is the client of
    its latest connection, when it was last seen, and for TCP and SCTP the set-ups seen
    lately, as {client side | client ISN or Initiate Tag: last seen} (the marks of
    `ConnectionTracker._tcp`); `outcome` the best rank in OUTCOME_ORDER it reached so far,
    `midway` whether it was first seen without its set-up."""

    __slots__ = ("client_is_a", "last", "midway", "outcome", "setups")

    def __init__(
        self, client_is_a: bool, last: float, setups: dict[int, float] | None,
        midway: bool = False,
    ) -> None:
        self.client_is_a = client_is_a
        self.last = last
        self.setups = setups
        self.midway = midway
        self.outcome = len(OUTCOME_ORDER)  # none yet


def _outcome(proto: int, flow: Flow, bits: int) -> int:
    """The outcome rank of one batch's packets of `flow` (`bits`: what each end sent)."""
    if flow.client_is_a:
        answered, refused = bits & _SENT_B, bits & _REFUSED_BY_B
    else:
        answered, refused = bits & _SENT_A, bits & _REFUSED_BY_A
    if answered or (flow.midway and proto != UDP):
        # A connection seen mid-way was set up before the capture began, even when all
        # that is left of it is a reset.
        return COMPLETED
    if refused:
        return REFUSED
    return ONE_WAY if proto == UDP else UNANSWERED


@lru_cache(maxsize=65536)
def address(family: int, hi: int, lo: int) -> IPAddress:
    return IPv4Address(lo) if family == 4 else IPv6Address((hi << 64) | lo)


class ConnectionTracker:
    def __init__(
        self, *, syn_window: float, udp_idle: float, tcp_idle: float, max_flows: int
    ) -> None:
        self.syn_window = syn_window
        self.udp_idle = udp_idle
        self.tcp_idle = tcp_idle
        self.max_flows = max_flows
        self._flows: dict[FlowKey, Flow] = {}
        self._listeners: set[tuple[int, int, int, int, int]] = set()
        self._last_prune = float("-inf")

    def __len__(self) -> int:
        return len(self._flows)

    def clear(self) -> None:
        self._flows.clear()
        self._listeners.clear()

    def track(
        self, h: Headers, when: F64Array, counts: Counter[str]
    ) -> tuple[list[ConnectionOpen], list[EdgePackets]]:
        n = len(h.index)
        if n == 0:
            return [], []
        # Canonical order of the two ends: "a" is the smaller (address, port).
        swap = (h.src_hi > h.dst_hi) | (
            (h.src_hi == h.dst_hi)
            & ((h.src_lo > h.dst_lo) | ((h.src_lo == h.dst_lo) & (h.sport > h.dport)))
        )
        a_hi = np.where(swap, h.dst_hi, h.src_hi)
        a_lo = np.where(swap, h.dst_lo, h.src_lo)
        b_hi = np.where(swap, h.src_hi, h.dst_hi)
        b_lo = np.where(swap, h.src_lo, h.dst_lo)
        a_port = np.where(swap, h.dport, h.sport)
        b_port = np.where(swap, h.sport, h.dport)
        tag = (h.proto << 40 | h.family << 32 | a_port << 16 | b_port).astype(np.uint64)
        mixed = (a_hi * np.uint64(0x9E3779B97F4A7C15)) ^ (a_lo * np.uint64(0xC2B2AE3D27D4EB4F))
        mixed ^= (b_hi * np.uint64(0x165667B19E3779F9)) ^ (b_lo * np.uint64(0xD6E8FEB86659FD93))
        mixed ^= tag * np.uint64(0xFF51AFD7ED558CCD)
        order = np.argsort(mixed, kind="stable")
        cols = [c[order] for c in (h.proto, h.family, a_hi, a_lo, a_port, b_hi, b_lo, b_port)]
        t = when[order]
        # A new group where any key field changes (exact even if two keys share a hash), or
        # where a UDP flow was idle long enough to count as a new flow.
        change = np.zeros(n, dtype=np.bool_)
        change[0] = True
        for c in cols:
            change[1:] |= c[1:] != c[:-1]
        udp_gap = (cols[0][1:] == UDP) & (np.diff(t) > self.udp_idle)
        change[1:] |= udp_gap
        first = np.flatnonzero(change)
        sizes = np.diff(np.append(first, n))
        t_first = np.minimum.reduceat(t, first)
        t_last = np.maximum.reduceat(t, first)
        flags = h.flags[order]
        sender_b = swap[order]
        refusal = (flags & RST) != 0
        sent_bits = np.where(sender_b, np.where(refusal, _REFUSED_BY_B, _SENT_B),
                             np.where(refusal, _REFUSED_BY_A, _SENT_A))
        sent = np.bitwise_or.reduceat(sent_bits, first)
        setup = np.flatnonzero((flags & SYN) != 0)  # UDP's flags are 0
        setups: dict[int, list[Setup]] = {}
        if len(setup):
            group_of = np.searchsorted(first, setup, side="right") - 1
            at = order[setup]
            # SYN data (TCP Fast Open) moves the SYN-ACK's acknowledgment number past ISN + 1.
            size = np.maximum(h.payload_end[at] - h.payload[at], 0)
            for g, ts, fl, sb, seq, ack, sz in zip(
                group_of.tolist(), t[setup].tolist(), flags[setup].tolist(),
                sender_b[setup].tolist(), h.seq[at].tolist(), h.ack[at].tolist(),
                size.tolist(), strict=True,
            ):
                setups.setdefault(g, []).append((ts, fl, sb, seq, ack, sz))
        keys = zip(*(c[first].tolist() for c in cols), strict=True)
        opens: list[ConnectionOpen] = []
        edges: dict[tuple[int, int, int, int, int, int, int], list[float]] = {}
        for g, (key, tf, tl, size, fflags, fsender_b, bits) in enumerate(zip(
            keys, t_first.tolist(), t_last.tolist(), sizes.tolist(),
            flags[first].tolist(), sender_b[first].tolist(), sent.tolist(), strict=True,
        )):
            if key[0] != UDP:  # TCP, SCTP
                state = self._tcp(key, tf, fflags, fsender_b, setups.get(g), opens, counts)
            else:
                state = self._udp(key, tf, fflags, fsender_b, opens, counts)
            if tl > state.last:
                state.last = tl
            outcome = _outcome(key[0], state, bits)
            if outcome < state.outcome:
                state.outcome = outcome
            proto, fam, ahi, alo, aport, bhi, blo, bport = key
            if state.client_is_a:
                edge = (fam, ahi, alo, bhi, blo, proto, bport)
            else:
                edge = (fam, bhi, blo, ahi, alo, proto, aport)
            seen = edges.get(edge)
            if seen is None:
                edges[edge] = [tf, tl, size, state.outcome]
            else:
                seen[0] = min(seen[0], tf)
                seen[1] = max(seen[1], tl)
                seen[2] += size
                seen[3] = min(seen[3], state.outcome)
        self._prune(float(t_last.max()), counts)
        return opens, [
            EdgePackets(
                first_time=v[0], last_time=v[1], client_ip=address(k[0], k[1], k[2]),
                server_ip=address(k[0], k[3], k[4]), protocol=_PROTOCOLS[k[5]],
                server_port=k[6], packets=int(v[2]), outcome=OUTCOME_ORDER[int(v[3])],
            )
            for k, v in edges.items()
        ]

    def _tcp(
        self, key: FlowKey, tf: float, fflags: int, fsender_b: bool,
        setups: list[Setup] | None,
        opens: list[ConnectionOpen], counts: Counter[str],
    ) -> Flow:
        flow = self._flows.get(key)
        if flow is not None and tf - flow.last > self.tcp_idle:
            flow = None
        if flow is None and not fflags & SYN:
            # Mid-connection: nobody saw this connection start.
            client_is_a = self._infer(key, not fsender_b, counts)
            flow = self._open(key, tf, client_is_a, DirectionEvidence.INFERRED, opens, None)
            flow.midway = True
            counts["connections_inferred"] += 1
        window = self.syn_window
        for ts, fl, sender_b, seq, ack, size in setups or ():
            # A connection's set-up segments are known by a mark, (client end, client ISN): a
            # SYN carries the ISN, its SYN-ACK acknowledges ISN + 1 (+ the SYN's data with TCP
            # Fast Open, hence a SYN's second mark). Retransmits and copies from a second
            # interface repeat them; a new connection on the same 4-tuple has another ISN.
            if fl & ACK:  # SYN-ACK: its receiver is the client
                client_is_a = sender_b
                mark, extra = (ack - 1) & SEQ_MASK, -1
            else:
                client_is_a = not sender_b
                mark, extra = seq, ((seq + size) & SEQ_MASK) if size else -1
            if client_is_a:
                mark |= CLIENT_A_MARK
                extra = extra | CLIENT_A_MARK if extra >= 0 else -1
            seen = flow.setups if flow is not None else None
            if seen is not None and (
                ts - seen.get(mark, NEVER) <= window
                or (extra >= 0 and ts - seen.get(extra, NEVER) <= window)
            ):
                if not fl & ACK:
                    counts["duplicate_syns"] += 1
                seen[mark] = max(seen.get(mark, ts), ts)
                if extra >= 0:
                    seen[extra] = max(seen.get(extra, ts), ts)
                continue
            if seen:
                # Keep the other set-ups seen lately: a late copy of one is no new connection.
                seen = {m: t for m, t in seen.items() if ts - t <= window}
                if seen:
                    counts["reused_tuples"] += 1
            if not seen:
                seen = {}
            seen[mark] = ts
            if extra >= 0:
                seen[extra] = ts
            answer = 1 if fl & ACK else 0
            evidence = _SETUP_EVIDENCE[key[0]][answer]
            flow = self._open(key, ts, client_is_a, evidence, opens, seen)
            counts[_SETUP_COUNTERS[key[0]][answer]] += 1
            self._listen(key, client_is_a)
        if flow is None:  # unreachable: a group starting with a SYN has it in `setups`
            flow = self._open(key, tf, not fsender_b, DirectionEvidence.INFERRED, opens, None)
        return flow

    def _udp(
        self, key: FlowKey, tf: float, fflags: int, fsender_b: bool,
        opens: list[ConnectionOpen], counts: Counter[str],
    ) -> Flow:
        state = self._flows.get(key)
        if state is not None and tf - state.last <= self.udp_idle:
            return state
        counts["udp_flows"] += 1
        if fflags & RST:
            # An ICMP error first (its datagram went uncaptured): it quotes the client's
            # datagram, so its receiver is the client.
            return self._open(key, tf, fsender_b, DirectionEvidence.UDP_FIRST, opens, None)
        sender_is_a = not fsender_b
        sport, dport = (key[4], key[7]) if sender_is_a else (key[7], key[4])
        if sport < WELL_KNOWN_END <= dport:
            # A reply (a DNS answer whose query came before the capture): the receiver asked.
            counts["inferred_by_well_known_port"] += 1
            return self._open(key, tf, not sender_is_a, DirectionEvidence.INFERRED, opens, None)
        return self._open(key, tf, sender_is_a, DirectionEvidence.UDP_FIRST, opens, None)

    def _open(
        self, key: FlowKey, when: float, client_is_a: bool, evidence: DirectionEvidence,
        opens: list[ConnectionOpen], setups: dict[int, float] | None,
    ) -> Flow:
        state = Flow(client_is_a, when, setups)
        self._flows[key] = state
        proto, fam, ahi, alo, aport, bhi, blo, bport = key
        a, b = address(fam, ahi, alo), address(fam, bhi, blo)
        opens.append(ConnectionOpen(
            time=when,
            client_ip=a if client_is_a else b,
            client_port=aport if client_is_a else bport,
            server_ip=b if client_is_a else a,
            server_port=bport if client_is_a else aport,
            protocol=_PROTOCOLS[proto],
            evidence=evidence,
        ))
        return state

    def _listen(self, key: FlowKey, client_is_a: bool) -> None:
        if len(self._listeners) >= MAX_LISTENERS:
            self._listeners.clear()
        proto, fam, ahi, alo, aport, bhi, blo, bport = key
        server = (proto, fam, bhi, blo, bport) if client_is_a else (proto, fam, ahi, alo, aport)
        self._listeners.add(server)

    def _infer(self, key: FlowKey, sender_is_a: bool, counts: Counter[str]) -> bool:
        """Which end is the client of a connection seen mid-way; True for end "a".

        The server is, in this order: an end already seen accepting connections, the end
        on a well-known port, the end outside the ephemeral range, the lower port; with
        equal ports, the receiver of the first packet seen."""
        proto, fam, ahi, alo, aport, bhi, blo, bport = key
        a_listens = (proto, fam, ahi, alo, aport) in self._listeners
        b_listens = (proto, fam, bhi, blo, bport) in self._listeners
        if a_listens != b_listens:
            counts["inferred_by_listener"] += 1
            return b_listens
        if (aport < WELL_KNOWN_END) != (bport < WELL_KNOWN_END):
            counts["inferred_by_well_known_port"] += 1
            return bport < WELL_KNOWN_END
        if (aport >= EPHEMERAL_START) != (bport >= EPHEMERAL_START):
            counts["inferred_by_ephemeral_port"] += 1
            return aport >= EPHEMERAL_START
        if aport != bport:
            counts["inferred_by_lower_port"] += 1
            return bport < aport
        counts["inferred_by_first_packet"] += 1
        return sender_is_a

    def _prune(self, now: float, counts: Counter[str]) -> None:
        """Forget idle flows, so memory follows concurrent flows, not packets."""
        if now - self._last_prune < min(self.udp_idle, 30.0) and len(self._flows) < self.max_flows:
            return
        self._last_prune = now
        udp_before, tcp_before = now - self.udp_idle, now - self.tcp_idle
        before = len(self._flows)
        self._flows = {
            k: s for k, s in self._flows.items()
            if s.last >= (udp_before if k[0] == UDP else tcp_before)
        }
        if len(self._flows) >= self.max_flows:
            # Still too many live flows: keep the most recently active half.
            recent = sorted(self._flows.items(), key=lambda kv: kv[1].last)
            self._flows = dict(recent[len(recent) // 2 :])
        counts["flows_pruned"] += before - len(self._flows)
        syn_before = now - self.syn_window
        for flow in self._flows.values():
            # A long-lived connection needs no memory of its set-up once the window passed.
            if flow.setups is not None and max(flow.setups.values()) < syn_before:
                flow.setups = None
