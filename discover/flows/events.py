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
    UDP_FIRST = "udp-first"  # first datagram of a UDP flow: its sender is the client
    INFERRED = "inferred"  # mid-connection capture: decided from ports and later packets


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
    agent only sees set-up packets, so its counts are those.
    """

    first_time: float
    last_time: float
    client_ip: IPAddress
    server_ip: IPAddress
    protocol: Protocol
    server_port: int
    packets: int


Event = ConnectionOpen | DnsAnswer | EdgePackets
