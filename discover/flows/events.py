"""Events extracted from packets: the only records that leave the packet readers.

Times are float seconds since the Unix epoch (UTC), as pcap and the kernel give them;
later stages convert to `datetime` where a person reads them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address


class Protocol(enum.StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class DirectionEvidence(enum.StrEnum):
    """How the client/server direction of a connection was decided, most certain first.

    SCTP has values of its own rather than reusing SYN/SYN-ACK, so that a flows file or
    summary row never says "syn" for a protocol without SYNs: an association's INIT chunk
    ("init") names its sender the client, an INIT-ACK ("init-ack") its receiver.
    """

    SYN = "syn"  # the client's SYN was seen
    INIT = "init"  # the client's SCTP INIT was seen
    SYN_ACK = "syn-ack"  # only the server's SYN-ACK was seen
    INIT_ACK = "init-ack"  # only the server's SCTP INIT-ACK was seen
    # Found already established in the kernel's socket table by the live agent (opened
    # before its window, or a set-up the capture missed): the end a listening socket
    # covers is the server (sidecar/established.py).
    ESTABLISHED = "established"
    # A flow log (Hubble) marked which packets were replies, from its datapath's connection
    # tracking (`is_reply`), or an L7 request/response named them; no set-up was seen.
    FLOW_LOG = "flow-log"
    UDP_FIRST = "udp-first"  # first datagram of a UDP flow: its sender is the client
    INFERRED = "inferred"  # mid-connection capture: decided from ports and later packets


class Outcome(enum.StrEnum):
    """What became of an edge's set-ups: did the server take part in an exchange?

    An edge shows the most telling outcome any of its connections had (`OUTCOME_ORDER`):
    an answer, else an error, else silence. One answered connection makes the port a
    dependency whatever other tries met; one ICMP error among datagrams that got none
    (Linux rate-limits them) says nobody listened.
    """

    COMPLETED = "completed"  # TCP: SYN-ACK or data both ways; UDP: a datagram back; SCTP: INIT-ACK
    UNKNOWN = "unknown"  # not recorded (an agent summary of schema 1, a flows file without it)
    ONE_WAY = "one-way"  # UDP datagrams with neither answer nor error
    REFUSED = "refused"  # answered with a TCP RST, an SCTP ABORT or an ICMP unreachable
    UNANSWERED = "unanswered"  # TCP/SCTP set-ups nobody answered


# Most telling first. UNKNOWN ranks above the attempts so that old evidence keeps allowing
# what it allowed before outcomes were recorded.
OUTCOME_ORDER = (
    Outcome.COMPLETED,
    Outcome.UNKNOWN,
    Outcome.REFUSED,
    Outcome.ONE_WAY,
    Outcome.UNANSWERED,
)


@dataclass(frozen=True, slots=True)
class ConnectionOpen:
    """One connection set-up (an SCTP association's; for UDP, the first datagram of a flow)."""

    time: float
    client_ip: IPAddress
    client_port: int
    server_ip: IPAddress
    server_port: int
    protocol: Protocol
    evidence: DirectionEvidence


@dataclass(frozen=True, slots=True)
class DnsRecordAddress:
    address: IPAddress
    ttl: int


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """A DNS response that carried addresses, as the client that asked received it.

    `query_name` is what the client asked (lower case, no trailing dot); `cname_chain` the
    CNAME targets in order from the query name to the name that holds the addresses.
    """

    time: float
    client_ip: IPAddress
    server_ip: IPAddress
    query_name: str
    cname_chain: tuple[str, ...]
    addresses: tuple[DnsRecordAddress, ...]
    transport: Protocol


@dataclass(frozen=True, slots=True)
class EdgePackets:
    """Packets counted for one edge (client, server, protocol, server port) over a span.

    The offline decoder emits these per chunk for packets of connections whose direction it
    knows, so packet counts cost one record per edge and chunk, not one per packet. The live
    agent only sees set-up packets, so its counts are those. `outcome` is the best the
    connections of the edge reached so far (a later batch may improve it: the answer to a
    SYN can come in the next one).
    """

    first_time: float
    last_time: float
    client_ip: IPAddress
    server_ip: IPAddress
    protocol: Protocol
    server_port: int
    packets: int
    outcome: Outcome = Outcome.UNKNOWN


Event = ConnectionOpen | DnsAnswer | EdgePackets
