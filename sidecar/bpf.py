"""The kernel BPF filter: which packets reach Python at all.

The capture socket is an AF_PACKET SOCK_DGRAM socket, so every packet starts at its IP
header whatever the interface's link layer (Ethernet, a tunnel, `any`), and a VLAN tag is
never in the way: the kernel strips it on receive (or keeps it in front of the network
header on send, which a cooked socket skips). The filter is therefore compiled for
LINKTYPE_RAW, where libpcap tells IPv4 from IPv6 by the version nibble.

What passes:
- TCP segments with SYN set (SYN and SYN-ACK). `tcp[tcpflags]` matches IPv4 only, so IPv6
  has its own clause, valid when TCP follows the fixed header directly (no extension
  headers, the common case on pod networks).
- TCP segments with RST set: the refusal of a closed port (issue 13: an attempt is not a
  dependency). IPv6 as for SYNs. A reset carries no data, so this lets no data through.
- ICMP and ICMPv6 destination unreachable (type 3, type 1): the refusal of a UDP port or
  a firewall's reject; the decoder matches the packet they quote to its edge.
- TCP from port 53: DNS answers over TCP are data segments, not set-ups.
- SCTP set-ups: packets whose first chunk is an INIT (type 1) or INIT-ACK (type 2), or an
  ABORT (type 6), the refusal of an association; an
  INIT is alone in its packet (RFC 4960), so the first chunk is the one to test. libpcap's
  `sctp[]` is relative to the IPv4 header length and skips later fragments; IPv6 has its
  own clause for SCTP right after the fixed header (chunk type at 40 + 12).
- All UDP: a stateless filter can't pick a flow's first datagram, so user space dedupes
  per flow (the decoder) and samples under load (the capture loop). The replies that tell
  a completed UDP exchange from a one-way one are datagrams too, so they pass already.
What never passes: data segments of TCP connections and SCTP associations (the bulk of
traffic), and set-ups of TCP connections to the agent's own HTTP port, so that probes and
scrapes don't show up as edges (a client that happens to use that port number as its
ephemeral port still does), nor resets to or from that port.
"""

from __future__ import annotations

import ctypes
import socket

from discover.errors import ConfigurationError

LINKTYPE_RAW = 101  # packets begin with the IPv4 or IPv6 header
SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>

TCP_SYN_IPV4 = "(ip and tcp[tcpflags] & tcp-syn != 0)"
TCP_SYN_IPV6 = "(ip6 and ip6[6] == 6 and ip6[53] & 0x02 != 0)"
TCP_RST_IPV4 = "(ip and tcp[tcpflags] & tcp-rst != 0)"
TCP_RST_IPV6 = "(ip6 and ip6[6] == 6 and ip6[53] & 0x04 != 0)"
ICMP_UNREACHABLE = "(icmp[icmptype] == icmp-unreach)"
ICMPV6_UNREACHABLE = "(ip6 and ip6[6] == 58 and ip6[40] == 1)"
DNS_OVER_TCP = "(tcp src port 53)"
SCTP_SETUP_IPV4 = "(ip and (sctp[12] == 1 or sctp[12] == 2 or sctp[12] == 6))"
SCTP_SETUP_IPV6 = (
    "(ip6 and ip6[6] == 132 and (ip6[52] == 1 or ip6[52] == 2 or ip6[52] == 6))"
)
ALL_UDP = "udp"


class FilterError(ConfigurationError):
    """libpcap rejected the filter expression (or could not be loaded)."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(f"BPF filter {expression!r}: {reason}")


def own_port_clause(port: int) -> str:
    """Set-ups of connections *to* the agent's listening `port`: a SYN to it or a SYN-ACK
    from it. A connection that merely uses `port` as its ephemeral client port (a SYN from
    it, a SYN-ACK to it) is somebody else's and stays in."""
    v4 = (
        f"(ip and ((tcp dst port {port} and tcp[tcpflags] & tcp-ack == 0)"
        f" or (tcp src port {port} and tcp[tcpflags] & tcp-ack != 0)"
        f" or (tcp port {port} and tcp[tcpflags] & tcp-rst != 0)))"
    )
    v6 = (
        f"(ip6 and ip6[6] == 6 and ((tcp dst port {port} and ip6[53] & 0x10 == 0)"
        f" or (tcp src port {port} and ip6[53] & 0x10 != 0)"
        f" or (tcp port {port} and ip6[53] & 0x04 != 0)))"
    )
    return f"{v4} or {v6}"


def filter_expression(exclude_tcp_ports: tuple[int, ...] = ()) -> str:
    """The libpcap expression for TCP and SCTP set-ups and refusals, ICMP unreachables,
    DNS answers and UDP.

    `exclude_tcp_ports` are the agent's own listening ports (its HTTP endpoint): probes
    and scrapes are not traffic to learn from.
    """
    wanted = " or ".join(
        (TCP_SYN_IPV4, TCP_SYN_IPV6, TCP_RST_IPV4, TCP_RST_IPV6, ICMP_UNREACHABLE,
         ICMPV6_UNREACHABLE, SCTP_SETUP_IPV4, SCTP_SETUP_IPV6, DNS_OVER_TCP, ALL_UDP)
    )
    if not exclude_tcp_ports:
        return wanted
    excluded = " or ".join(own_port_clause(port) for port in sorted(set(exclude_tcp_ports)))
    return f"({wanted}) and not ({excluded})"


def compile_expression(expression: str) -> list[tuple[int, int, int, int]]:
    """BPF instructions `(code, jt, jf, k)` for `expression`, compiled by libpcap.

    scapy's `compile_filter` drives libpcap through ctypes (no tcpdump process), with a
    "dead" handle for LINKTYPE_RAW, so compiling needs no interface and no privilege.
    """
    from scapy.arch.common import compile_filter, free_filter
    from scapy.error import Scapy_Exception

    try:
        program = compile_filter(expression, linktype=LINKTYPE_RAW)
    except (ImportError, Scapy_Exception, OSError) as error:
        raise FilterError(expression, str(error)) from error
    try:
        instructions = [
            (int(i.code), int(i.jt), int(i.jf), int(i.k))
            for i in program.bf_insns[: program.bf_len]
        ]
    finally:
        free_filter(program)
    return instructions


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach(sock: socket.socket, instructions: list[tuple[int, int, int, int]]) -> None:
    """Attach the program in the kernel (SO_ATTACH_FILTER needs no capability)."""
    array = (_SockFilter * len(instructions))(*(_SockFilter(*i) for i in instructions))
    program = _SockFprog(len(instructions), array)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(program))
