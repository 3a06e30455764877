"""Hubble flows that happened -> connection set-ups, edge outcomes and DNS answers.

Hubble reports one packet (or one L7 request/response) a flow, and reports the same packet
at several observation points (the client's egress, the overlay, the server's ingress, a
policy verdict event beside the trace events) and on several nodes. So flows are folded by
conversation (the 5-tuple, its two ends in a canonical order), one Python step a flow:

- TCP: a SYN without ACK that is not a reply opens a connection (evidence `syn`); the same
  SYN seen again before the connection closed (another observation point, a retransmit) is
  the same connection. A SYN-ACK, any reply, an L7 response or a client ACK means the
  server answered (`completed`); a RST from the server with no answer is `refused`; a SYN
  nobody answered is `unanswered`, unless only policy verdict events showed it: Cilium
  emits one for a connection's first packet alone (`unknown`). A conversation without a
  set-up was going on before the export began (`completed`), its direction taken from
  `is_reply` or an L7 request (evidence `flow-log`), else from the ports (`inferred`).
- UDP (and DNS by port, 53 being the server's): the first datagram that is not a reply
  opens the flow (`udp-first`); a datagram back makes it `completed`, else `one-way`.
- SCTP: Hubble gives ports but no chunk types, so no INIT: the direction comes from
  `is_reply` (`flow-log`); an answer makes it `completed`, else `unknown` (an INIT nobody
  answered and a one-sided export can't be told apart).

DNS answers come from L7 DNS responses (`l7.dns`: query, ips, ttl, cnames), as the client
received them, deduplicated like packets. A conversation idle for `IDLE_SECONDS` is written
to the table and forgotten, so memory follows the live conversations, not the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from discover.flows.events import (
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    DnsRecordAddress,
    EdgePackets,
    IPAddress,
    Outcome,
    Protocol,
)
from discover.flows.flowtable import FlowTable
from discover.reading.hubble_records import HubbleFlow

DNS_PORT = 53
EPHEMERAL_START = 32768  # Linux's default ip_local_port_range starts here
# The same packet at another observation point or node arrives within milliseconds; a
# retransmitted SYN of the same connection within Linux's retry span (~127 s).
SAME_PACKET_SECONDS = 1.0
SYN_RETRY_SECONDS = 130.0
IDLE_SECONDS = 600.0
# Cilium emits a policy verdict event (monitor message type 5, bpf/lib/notify.h) for the
# first packet of a connection only: alone, such events can't show an answer.
POLICY_VERDICT_EVENT = 5
FLUSH_EVERY = 50_000  # flows between sweeps for idle conversations

End = tuple[IPAddress, int]
ConversationKey = tuple[Protocol, End, End]  # the two ends in canonical order


@dataclass(slots=True)
class _Conversation:
    protocol: Protocol
    ends: tuple[End, End]
    first: float
    last: float
    client: int | None = None  # index into ends, once known
    evidence: DirectionEvidence | None = None
    opens: list[float] = field(default_factory=list)  # set-up times (SYN / first datagram)
    closed_since_open: bool = False
    # Ends (indexes into `ends`) by what they sent: anything but a RST or a bare SYN (an
    # answer, if it's the server), a RST, an ACK (from the client: it had the SYN-ACK).
    answered_by: set[int] = field(default_factory=set)
    rst_from: set[int] = field(default_factory=set)
    acked_from: set[int] = field(default_factory=set)
    sent_by: set[int] = field(default_factory=set)
    traced: bool = False  # seen through more than policy verdict events
    packets: int = 0
    seen: dict[tuple[int, bool, bool, bool, bool, str], float] = field(default_factory=dict)


class HubbleConnections:
    """Folds `HubbleFlow`s that happened into a FlowTable (see the module docstring)."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table
        self._conversations: dict[ConversationKey, _Conversation] = {}
        self._dns_seen: dict[tuple[object, ...], float] = {}
        self._since_flush = 0
        self.dns_answers = 0

    def add(self, flow: HubbleFlow) -> None:
        if flow.protocol is None:
            return
        if flow.dns is not None and flow.l7_type == "RESPONSE":
            self._add_dns(flow)
        a, b = (flow.src_ip, flow.src_port), (flow.dst_ip, flow.dst_port)
        sender = 0 if _order(a) <= _order(b) else 1
        ends = (a, b) if sender == 0 else (b, a)
        key = (flow.protocol, ends[0], ends[1])
        conv = self._conversations.get(key)
        if conv is None:
            conv = self._conversations[key] = _Conversation(flow.protocol, ends, flow.time,
                                                            flow.time)
        conv.first = min(conv.first, flow.time)
        conv.last = max(conv.last, flow.time)
        self._count_packet(conv, flow, sender)
        if flow.event_type != POLICY_VERDICT_EVENT:
            conv.traced = True
        if flow.protocol is Protocol.TCP:
            _tcp(conv, flow, sender)
        else:
            _datagram(conv, flow, sender)
        self._since_flush += 1
        if self._since_flush >= FLUSH_EVERY:
            self._flush(flow.time - IDLE_SECONDS)

    def finish(self) -> None:
        """Write every conversation still held into the table."""
        self._flush(None)

    # -- internals -------------------------------------------------------------------

    def _count_packet(self, conv: _Conversation, flow: HubbleFlow, sender: int) -> None:
        flags = flow.flags
        signature = (sender, flags.syn, flags.ack, flags.rst, flags.fin, flow.l7_type)
        before = conv.seen.get(signature)
        conv.seen[signature] = flow.time
        if before is None or abs(flow.time - before) > SAME_PACKET_SECONDS:
            conv.packets += 1
        conv.sent_by.add(sender)

    def _add_dns(self, flow: HubbleFlow) -> None:
        dns = flow.dns
        assert dns is not None
        if not dns.ips or dns.rcode != 0 or not dns.query:
            return
        # A response travels from the server (source) to the client (destination).
        key = (flow.dst_ip, flow.dst_port, flow.src_ip, dns.query, dns.ips)
        before = self._dns_seen.get(key)
        self._dns_seen[key] = flow.time
        if before is not None and abs(flow.time - before) <= SAME_PACKET_SECONDS:
            return
        self.dns_answers += 1
        self.table.add_dns(DnsAnswer(
            time=flow.time,
            client_ip=flow.dst_ip,
            server_ip=flow.src_ip,
            query_name=dns.query,
            cname_chain=dns.cnames,
            addresses=tuple(DnsRecordAddress(ip, dns.ttl) for ip in dns.ips),
            transport=flow.protocol or Protocol.UDP,
        ))

    def _flush(self, before: float | None) -> None:
        self._since_flush = 0
        done = [k for k, c in self._conversations.items() if before is None or c.last < before]
        for key in done:
            _write(self.table, self._conversations.pop(key))
        if before is None:
            self._dns_seen.clear()
        else:
            self._dns_seen = {k: t for k, t in self._dns_seen.items() if t >= before}


def _order(end: End) -> tuple[int, int, int]:
    return end[0].version, int(end[0]), end[1]


def _tcp(conv: _Conversation, flow: HubbleFlow, sender: int) -> None:
    flags = flow.flags
    if flags.syn and not flags.ack and flow.is_reply is not True:
        _decide(conv, sender, DirectionEvidence.SYN)
        recent = conv.opens and flow.time - conv.opens[-1] <= SYN_RETRY_SECONDS
        if not recent or (conv.closed_since_open and flow.time - conv.opens[-1] >
                          SAME_PACKET_SECONDS):
            conv.opens.append(flow.time)
            conv.closed_since_open = False
        return
    if flags.syn and flags.ack:
        _decide(conv, 1 - sender, DirectionEvidence.SYN_ACK)
        conv.answered_by.add(sender)
        return
    _by_reply_flag(conv, flow, sender)
    if flags.rst or flags.fin:
        conv.closed_since_open = True
    if flags.rst:
        conv.rst_from.add(sender)
    else:
        # Whoever this is, it took part in the exchange; which end it was is decided when
        # the conversation is written (the direction may only be known later).
        conv.answered_by.add(sender)
        if flags.ack:
            conv.acked_from.add(sender)


def _datagram(conv: _Conversation, flow: HubbleFlow, sender: int) -> None:
    ports = (conv.ends[0][1], conv.ends[1][1])
    if conv.protocol is Protocol.UDP and (DNS_PORT in ports) and ports[0] != ports[1]:
        # DNS by port, as the packet path does: the end on 53 serves.
        server = 0 if ports[0] == DNS_PORT else 1
        _decide(conv, 1 - server, DirectionEvidence.UDP_FIRST)
    else:
        _by_reply_flag(conv, flow, sender)
    if not conv.opens and conv.client == sender:
        conv.opens.append(flow.time)  # the first datagram the client sent
    conv.answered_by.add(sender)


def _by_reply_flag(conv: _Conversation, flow: HubbleFlow, sender: int) -> None:
    """`is_reply`, or which end an L7 request/response came from, says who the client is."""
    reply = flow.is_reply
    if flow.l7_type == "REQUEST":
        reply = False
    elif flow.l7_type == "RESPONSE":
        reply = True
    if reply is None:
        return
    client = 1 - sender if reply else sender
    evidence = (DirectionEvidence.UDP_FIRST if conv.protocol is Protocol.UDP
                else DirectionEvidence.FLOW_LOG)
    _decide(conv, client, evidence)
    if flow.l7_type == "REQUEST" and conv.protocol is Protocol.TCP:
        # The proxy read a request: the connection's handshake was answered.
        conv.acked_from.add(sender)


_STRENGTH = {
    DirectionEvidence.SYN: 0,
    DirectionEvidence.SYN_ACK: 1,
    DirectionEvidence.UDP_FIRST: 2,
    DirectionEvidence.FLOW_LOG: 2,
    DirectionEvidence.INFERRED: 9,
}


def _decide(conv: _Conversation, client: int, evidence: DirectionEvidence) -> None:
    """The first decision stands unless stronger evidence comes (a SYN beats is_reply)."""
    if conv.client is None or _STRENGTH[evidence] < _STRENGTH[conv.evidence or evidence]:
        conv.client = client
        conv.evidence = evidence


def _by_ports(conv: _Conversation) -> int:
    """The client end when nothing said it: the server is the end on the lower port,
    unless that port is ephemeral and the other not (then it's the other way round)."""
    (_, port0), (_, port1) = conv.ends
    if (port0 >= EPHEMERAL_START) != (port1 >= EPHEMERAL_START):
        return 0 if port0 >= EPHEMERAL_START else 1
    return 0 if port0 > port1 else 1


def _write(table: FlowTable, conv: _Conversation) -> None:
    if conv.client is None:
        conv.client = _by_ports(conv)
        conv.evidence = DirectionEvidence.INFERRED
    client = conv.client
    server = 1 - client
    client_ip, client_port = conv.ends[client]
    server_ip, server_port = conv.ends[server]
    evidence = conv.evidence or DirectionEvidence.INFERRED
    if server in conv.answered_by:
        outcome = Outcome.COMPLETED
    elif not conv.traced:
        outcome = Outcome.UNKNOWN  # only first-packet policy verdicts: no answer could show
    elif conv.protocol is Protocol.TCP:
        if server in conv.rst_from:
            outcome = Outcome.REFUSED
        elif client in conv.acked_from or not conv.opens:
            # A client ACK acknowledges the SYN-ACK; no set-up seen: going on before.
            outcome = Outcome.COMPLETED
        else:
            outcome = Outcome.UNANSWERED
    elif conv.protocol is Protocol.UDP:
        outcome = Outcome.ONE_WAY
    else:
        outcome = Outcome.UNKNOWN
    for time in conv.opens or [conv.first]:
        table.add_connection(ConnectionOpen(time, client_ip, client_port, server_ip,
                                            server_port, conv.protocol, evidence))
    table.add_packets(EdgePackets(conv.first, conv.last, client_ip, server_ip, conv.protocol,
                                  server_port, conv.packets, outcome))
