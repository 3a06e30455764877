"""The packet decoder on real bytes built with scapy: link types, IP versions, TCP/UDP,
connection dedupe and direction, DNS payload selection, robustness."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.mpls import MPLS
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.sctp import SCTP, SCTPChunkInit
from scapy.packet import Packet, Raw

from discover.flows.events import ConnectionOpen, DirectionEvidence, EdgePackets, Protocol
from discover.reading.packets import DnsPayload, Output, PacketDecoder

CLIENT, SERVER = "10.244.1.5", "10.244.2.9"
CLIENT6, SERVER6 = "fd00:10:244::5", "fd00:10:244::9"

Wrap = Callable[[Packet], bytes]


def _af(value: int, order: str) -> Wrap:
    return lambda p: struct.pack(order + "I", value) + bytes(p)


def _null(p: Packet) -> bytes:
    return _af(2 if p.version == 4 else 24, "<")(p)


def _null_be(p: Packet) -> bytes:
    return _af(2 if p.version == 4 else 30, ">")(p)


def _loop(p: Packet) -> bytes:
    return _af(2 if p.version == 4 else 24, ">")(p)


LINKS: dict[str, tuple[int, Wrap]] = {
    "ethernet": (1, lambda p: bytes(Ether(src="02:00:00:00:00:01") / p)),
    "vlan": (1, lambda p: bytes(Ether() / Dot1Q(vlan=5) / p)),
    "qinq": (1, lambda p: bytes(Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=5) / p)),
    "qinqinq": (1, lambda p: bytes(Ether() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / p)),
    "pppoe-vlan": (1, lambda p: bytes(Ether() / Dot1Q(vlan=7) / PPPoE(sessionid=3)
                                     / PPP(proto=0x21 if p.version == 4 else 0x57) / p)),
    "mpls": (1, lambda p: bytes(Ether(type=0x8847) / MPLS(label=16, s=0)
                                / MPLS(label=17, s=1) / p)),
    "pbb": (1, lambda p: bytes(Ether(dst="02:00:00:00:00:02", type=0x88E7)) + b"\0\0\1\0"
            + bytes(Ether(dst="02:00:00:00:00:03") / Dot1Q(vlan=9) / p)),
    "sll": (113, lambda p: bytes(CookedLinux() / p)),
    "sll2": (276, lambda p: bytes(CookedLinuxV2() / p)),
    "raw": (101, bytes),
    "raw12": (12, bytes),
    "raw14": (14, bytes),
    "null-le": (0, _null),
    "null-be": (0, _null_be),
    "loop": (108, _loop),
}


def decode_one(linktype: int, frame: bytes, when: float = 100.0) -> list[Output]:
    return PacketDecoder().decode(linktype, [when], [frame])


def opens(events: list[Output]) -> list[ConnectionOpen]:
    return [e for e in events if isinstance(e, ConnectionOpen)]


def dns_of(events: list[Output]) -> list[DnsPayload]:
    return [e for e in events if isinstance(e, DnsPayload)]


@pytest.mark.parametrize("link", sorted(LINKS))
@pytest.mark.parametrize("family", [4, 6])
def test_syn_on_every_link_type(link: str, family: int) -> None:
    linktype, wrap = LINKS[link]
    ip = IP(src=CLIENT, dst=SERVER) if family == 4 else IPv6(src=CLIENT6, dst=SERVER6)
    events = decode_one(linktype, wrap(ip / TCP(sport=40001, dport=8080, flags="S")), 5.5)
    (conn,) = opens(events)
    assert conn == ConnectionOpen(
        time=5.5,
        client_ip=ip_address(CLIENT if family == 4 else CLIENT6),
        client_port=40001,
        server_ip=ip_address(SERVER if family == 4 else SERVER6),
        server_port=8080,
        protocol=Protocol.TCP,
        evidence=DirectionEvidence.SYN,
    )
    (edge,) = [e for e in events if isinstance(e, EdgePackets)]
    assert edge.packets == 1 and edge.server_port == 8080


@pytest.mark.parametrize("linktype,family", [(228, 4), (229, 6)])
def test_ipv4_and_ipv6_link_types(linktype: int, family: int) -> None:
    ip = IP(src=CLIENT, dst=SERVER) if family == 4 else IPv6(src=CLIENT6, dst=SERVER6)
    (conn,) = opens(decode_one(linktype, bytes(ip / UDP(sport=5000, dport=9999))))
    assert conn.evidence is DirectionEvidence.UDP_FIRST and conn.server_port == 9999


def test_wrong_link_type_declaration_is_not_ip() -> None:
    decoder = PacketDecoder()
    arp = bytes(Ether() / ARP())
    frame = bytes(Ether(type=0x0800) / IPv6(src=CLIENT6, dst=SERVER6) / TCP(flags="S"))
    assert decoder.decode(1, [1.0, 2.0], [arp, frame]) == []
    assert decoder.stats.non_ip == 1 and decoder.stats.malformed == 1


def test_unsupported_link_type_is_counted() -> None:
    decoder = PacketDecoder()
    assert decoder.decode(127, [1.0], [b"\x00" * 60]) == []
    assert decoder.stats.unsupported_link == 1


def test_ipv6_extension_headers_are_walked() -> None:
    pkt = (IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
           / IPv6ExtHdrRouting(addresses=[SERVER6]) / TCP(sport=40002, dport=443, flags="S"))
    decoder = PacketDecoder()
    (conn,) = opens(decoder.decode(101, [1.0], [bytes(pkt)]))
    assert (conn.client_port, conn.server_port) == (40002, 443)
    assert decoder.stats.ipv6_extension_headers == 1


def test_ipv6_fragments_first_decoded_later_counted() -> None:
    first = (IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(offset=0, m=1, id=7)
             / UDP(sport=5353, dport=7000) / Raw(b"x" * 16))
    later = (IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(offset=3, m=0, id=7, nh=17)
             / Raw(b"y" * 16))
    decoder = PacketDecoder()
    events = decoder.decode(229, [1.0, 1.1], [bytes(first), bytes(later)])
    assert [c.server_port for c in opens(events)] == [7000]
    assert decoder.stats.fragments == 2 and decoder.stats.later_fragments == 1


def test_ipv4_fragments_never_crash_and_count() -> None:
    big = IP(src=SERVER, dst=CLIENT, id=9) / UDP(sport=53, dport=41000) / DNS(
        id=1, qr=1, qd=DNSQR(qname="big.example."),
        an=[DNSRR(rrname="big.example.", rdata=f"192.0.2.{i}") for i in range(1, 60)])
    parts = fragment(big, fragsize=256)  # type: ignore[no-untyped-call]
    assert len(parts) > 2
    decoder = PacketDecoder()
    events = decoder.decode(101, [1.0 + i for i in range(len(parts))], [bytes(p) for p in parts])
    assert decoder.stats.fragments == len(parts)
    assert decoder.stats.later_fragments == len(parts) - 1
    assert dns_of(events) == []  # half a message is not handed to dnspython
    assert decoder.stats.dns_truncated == 1
    (conn,) = opens(events)  # the first fragment still says who talks to whom
    assert conn.server_port == 53 and str(conn.client_ip) == CLIENT


ISN = 1000  # the client's initial sequence number in a default handshake


def _tcp(
    src: str, dst: str, sport: int, dport: int, flags: str, load: bytes = b"",
    isn: int = ISN, server_isn: int = 7000,
) -> bytes:
    """A TCP segment of the connection whose client ISN is `isn`: a SYN carries it, a
    SYN-ACK acknowledges isn + 1 (as real stacks do; scapy's default 0/0 would not pair)."""
    if flags == "SA":
        seq, ack = server_isn, (isn + 1) & 0xFFFFFFFF
    else:
        seq, ack = isn, 0
    segment = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    return bytes(IP(src=src, dst=dst) / segment / load)


def test_syn_seen_twice_on_two_interfaces_is_one_connection() -> None:
    decoder = PacketDecoder()
    syn = _tcp(CLIENT, SERVER, 40003, 80, "S")
    synack = _tcp(SERVER, CLIENT, 80, 40003, "SA")
    ack = _tcp(CLIENT, SERVER, 40003, 80, "A")
    frames = [syn, syn, synack, synack, ack, ack, syn]  # + a retransmit
    times = [1.0, 1.00001, 1.001, 1.00101, 1.002, 1.00201, 2.0]
    events = decoder.decode(101, times, frames)
    (conn,) = opens(events)
    assert conn.evidence is DirectionEvidence.SYN and conn.time == 1.0
    assert decoder.stats.duplicate_syns == 2
    (edge,) = [e for e in events if isinstance(e, EdgePackets)]
    assert edge.packets == 7 and str(edge.client_ip) == CLIENT


def test_same_tuple_after_the_window_is_a_new_connection() -> None:
    decoder = PacketDecoder(syn_window=30.0)
    syn = _tcp(CLIENT, SERVER, 40004, 80, "S")
    first = opens(decoder.decode(101, [1.0], [syn]))
    second = opens(decoder.decode(101, [100.0], [syn]))
    assert len(first) == len(second) == 1


def test_syn_ack_only_swaps_client_and_server() -> None:
    (conn,) = opens(decode_one(101, _tcp(SERVER, CLIENT, 8443, 51000, "SA")))
    assert conn.evidence is DirectionEvidence.SYN_ACK
    assert (str(conn.client_ip), conn.client_port) == (CLIENT, 51000)
    assert (str(conn.server_ip), conn.server_port) == (SERVER, 8443)


def test_syn_after_its_syn_ack_on_another_interface_is_not_a_second_connection() -> None:
    decoder = PacketDecoder()
    frames = [_tcp(SERVER, CLIENT, 8443, 51000, "SA"), _tcp(CLIENT, SERVER, 51000, 8443, "S")]
    (conn,) = opens(decoder.decode(101, [1.0, 1.0001], frames))
    assert conn.evidence is DirectionEvidence.SYN_ACK and conn.server_port == 8443
    assert decoder.stats.duplicate_syns == 1


@pytest.mark.parametrize(
    "sport,dport,server_port,counter",
    [
        (443, 51000, 443, "inferred_by_well_known_port"),
        (51000, 443, 443, "inferred_by_well_known_port"),
        (45000, 6379, 6379, "inferred_by_ephemeral_port"),
        (8080, 9090, 8080, "inferred_by_lower_port"),
    ],
)
def test_mid_connection_direction_from_ports(
    sport: int, dport: int, server_port: int, counter: str
) -> None:
    decoder = PacketDecoder()
    frames = [_tcp(CLIENT, SERVER, sport, dport, "PA", b"data"),
              _tcp(SERVER, CLIENT, dport, sport, "A")]
    (conn,) = opens(decoder.decode(101, [1.0, 1.1], frames))
    assert conn.evidence is DirectionEvidence.INFERRED
    assert conn.server_port == server_port
    assert getattr(decoder.stats, counter) == 1


def test_mid_connection_direction_from_a_known_listener() -> None:
    decoder = PacketDecoder()
    decoder.decode(101, [1.0], [_tcp("10.244.3.3", SERVER, 40000, 7000, "S")])
    # Port 7000 vs 7001: neither well-known nor ephemeral; the known listener decides.
    (conn,) = opens(decoder.decode(101, [2.0], [_tcp(SERVER, CLIENT, 7000, 7001, "PA", b"x")]))
    assert conn.server_port == 7000 and str(conn.server_ip) == SERVER
    assert decoder.stats.inferred_by_listener == 1


def test_udp_flows_have_an_idle_timeout() -> None:
    decoder = PacketDecoder(udp_idle=60.0)
    q = bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=5000, dport=8125) / Raw(b"m"))
    events = decoder.decode(101, [1.0, 30.0, 80.0, 200.0], [q, q, q, q])
    assert [c.time for c in opens(events)] == [1.0, 200.0]
    assert all(c.evidence is DirectionEvidence.UDP_FIRST for c in opens(events))
    assert sum(e.packets for e in events if isinstance(e, EdgePackets)) == 4


def _dns_response(qid: int, answers: int, rcode: int = 0) -> DNS:
    return DNS(id=qid, qr=1, rcode=rcode, qd=DNSQR(qname="api.example.com."),
               an=[DNSRR(rrname="api.example.com.", rdata=f"192.0.2.{i + 1}")
                   for i in range(answers)])


def test_dns_response_with_answers_only() -> None:
    decoder = PacketDecoder()
    query = IP(src=CLIENT, dst=SERVER) / UDP(sport=41000, dport=53) / DNS(
        id=5, qd=DNSQR(qname="api.example.com."))
    answer = IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=41000) / _dns_response(5, 2)
    miss = IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=41001) / _dns_response(6, 0, 3)
    mdns = IP(src=SERVER, dst="224.0.0.251") / UDP(sport=5353, dport=5353) / _dns_response(0, 1)
    frames = [bytes(p) for p in (query, answer, miss, mdns)]
    events = decoder.decode(101, [1.0, 1.01, 1.02, 1.03], frames)
    (payload,) = dns_of(events)
    assert payload.payload == bytes(answer[DNS])
    assert (str(payload.client_ip), payload.client_port) == (CLIENT, 41000)
    assert (str(payload.server_ip), payload.server_port) == (SERVER, 53)
    assert payload.transport is Protocol.UDP and payload.time == 1.01
    assert decoder.stats.dns_responses == 1 and decoder.stats.dns_without_answers == 1
    conns = opens(events)
    assert conns[0].evidence is DirectionEvidence.UDP_FIRST and conns[0].server_port == 53
    # The NXDOMAIN's query was not captured: its flow is still a client -> :53 flow.
    assert {c.server_port for c in conns} == {53, 5353}


def test_dns_cut_by_snap_length_is_counted_not_emitted() -> None:
    decoder = PacketDecoder()
    answer = bytes(IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=41000) / _dns_response(5, 3))
    assert dns_of(decoder.decode(101, [1.0], [answer[:-10]])) == []
    assert decoder.stats.dns_truncated == 1


def test_dns_over_tcp_messages_in_one_segment() -> None:
    one, two = bytes(_dns_response(1, 1)), bytes(_dns_response(2, 2))
    nx = bytes(_dns_response(3, 0, 3))
    stream = b"".join(struct.pack(">H", len(m)) + m for m in (one, nx, two))
    partial = struct.pack(">H", len(one) + 40) + one
    decoder = PacketDecoder()
    frames = [_tcp(SERVER, CLIENT, 53, 42000, "PA", stream),
              _tcp(SERVER, CLIENT, 53, 42000, "PA", partial)]
    found = dns_of(decoder.decode(101, [1.0, 2.0], frames))
    assert [p.payload for p in found] == [one, two]
    assert all(p.transport is Protocol.TCP and p.client_port == 42000 for p in found)
    assert decoder.stats.dns_tcp_partial == 1 and decoder.stats.dns_without_answers == 1


def test_other_protocols_and_short_frames_are_counted() -> None:
    decoder = PacketDecoder()
    icmp = bytes(IP(src=CLIENT, dst=SERVER) / ICMP())
    syn = _tcp(CLIENT, SERVER, 40000, 80, "S")
    frames = [icmp, syn[:30], syn[:10], b""]
    assert decoder.decode(101, [1.0] * 4, frames) == []
    stats = decoder.stats.as_dict()
    assert stats["other_protocol"] == 1 and stats["truncated"] == 3 and stats["packets"] == 4


def test_sctp_is_decoded_not_counted_as_another_protocol() -> None:
    decoder = PacketDecoder()
    init = bytes(IP(src=CLIENT, dst=SERVER) / SCTP(sport=40000, dport=3868)
                 / SCTPChunkInit(init_tag=9))
    events = decoder.decode(101, [1.0, 1.0], [init, init[:20 + 11]])
    assert [(c.protocol, c.evidence) for c in opens(events)] == [
        (Protocol.SCTP, DirectionEvidence.INIT)]
    stats = decoder.stats.as_dict()
    assert stats["sctp"] == 2 and stats["truncated"] == 1 and stats["other_protocol"] == 0
    assert stats["tcp"] == 0 and stats["udp"] == 0


def test_memory_follows_concurrent_flows_not_packets() -> None:
    decoder = PacketDecoder(udp_idle=60.0)
    for batch in range(50):
        frames = [bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=10000 + batch * 20 + i, dport=53))
                  for i in range(20)]
        decoder.decode(101, [batch * 10.0] * 20, frames)
    assert decoder.stats.udp_flows == 1000
    assert decoder.stats.flows_tracked <= 20 * 10  # about 60-90 s of flows, not all 1000
    assert decoder.stats.flows_pruned >= 700


def test_flow_table_has_a_hard_cap() -> None:
    decoder = PacketDecoder(max_flows=100, udp_idle=3600.0)
    for batch in range(5):
        frames = [bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=20000 + batch * 60 + i, dport=9))
                  for i in range(60)]
        decoder.decode(101, [float(batch)] * 60, frames)
        assert decoder.stats.flows_tracked <= 100
    assert decoder.stats.udp_flows == 300


def test_times_and_frames_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 times for 1 frames"):
        PacketDecoder().decode(101, [1.0, 2.0], [b""])


def _mixed_frames() -> tuple[list[float], list[bytes]]:
    frames: list[bytes] = []
    for k in range(12):
        sport = 40000 + k
        frames += [
            _tcp(CLIENT, SERVER, sport, 80, "S"), _tcp(SERVER, CLIENT, 80, sport, "SA"),
            _tcp(CLIENT, SERVER, sport, 80, "PA", b"GET"), _tcp(SERVER, CLIENT, 80, sport, "A"),
        ]
        frames.append(bytes(IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=sport)
                            / _dns_response(k, 1)))
    frames += [_tcp(CLIENT, SERVER, 50000, 8080, "PA", b"mid")]
    return [1.0 + i * 0.01 for i in range(len(frames))], frames


@pytest.mark.parametrize("size", [1, 3, 7])
def test_small_batches_give_the_same_events(size: int) -> None:
    times, frames = _mixed_frames()
    whole = PacketDecoder().decode(101, times, frames)
    decoder = PacketDecoder()
    parts: list[Output] = []
    for i in range(0, len(frames), size):
        parts += decoder.decode(101, times[i : i + size], frames[i : i + size])
    assert opens(parts) == opens(whole)
    assert dns_of(parts) == dns_of(whole)

    def edge_totals(events: list[Output]) -> Counter[tuple[str, str, int]]:
        totals: Counter[tuple[str, str, int]] = Counter()
        for e in events:
            if isinstance(e, EdgePackets):
                totals[(str(e.client_ip), str(e.server_ip), e.server_port)] += e.packets
        return totals

    assert edge_totals(parts) == edge_totals(whole)
    assert sum(edge_totals(whole).values()) == len(frames)


@settings(max_examples=300, deadline=None)
@given(
    linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
    frames=st.lists(st.binary(max_size=120), min_size=1, max_size=8),
)
def test_any_bytes_decode_without_exceptions(linktype: int, frames: list[bytes]) -> None:
    decoder = PacketDecoder()
    decoder.decode(linktype, [float(i) for i in range(len(frames))], frames)
    assert decoder.stats.packets == len(frames)


_SAMPLES = {
    link: (linktype, [wrap(p) for p in (
        IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrHopByHop() / UDP(sport=53, dport=4000)
        / _dns_response(1, 2),
        IP(src=SERVER, dst=CLIENT) / TCP(sport=53, dport=4000, flags="PA")
        / struct.pack(">H", 45) / _dns_response(1, 1),
    )])
    for link, (linktype, wrap) in LINKS.items()
}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_frames_decode_without_exceptions(data: st.DataObject) -> None:
    linktype, samples = _SAMPLES[data.draw(st.sampled_from(sorted(_SAMPLES)))]
    base = bytearray(data.draw(st.sampled_from(samples)))
    for _ in range(data.draw(st.integers(1, 6))):
        base[data.draw(st.integers(0, len(base) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    decoder = PacketDecoder()
    decoder.decode(linktype, [1.0, 2.0], [bytes(base), bytes(base[:cut])])
    assert decoder.stats.packets == 2


NODE1, NODE2 = "192.0.2.1", "192.0.2.2"
INNER = Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=40100, dport=8080, flags="S")
TUNNELS = {
    "vxlan-flannel": IP(src=NODE1, dst=NODE2) / UDP(sport=33000, dport=8472)
    / Raw(b"\x08\0\0\0\0\0\x01\0") / INNER,
    "vxlan-iana": IP(src=NODE1, dst=NODE2) / UDP(sport=33000, dport=4789)
    / Raw(b"\x08\0\0\0\0\0\x01\0") / INNER,
    "geneve": IP(src=NODE1, dst=NODE2) / UDP(sport=33000, dport=6081)
    / Raw(b"\x02\0\x65\x58\0\0\x01\0" + b"\x01\x02\x03\x01" + b"\0" * 4) / INNER,
    "ipip": IP(src=NODE1, dst=NODE2, proto=4) / INNER[IP],
    "gre-key": IP(src=NODE1, dst=NODE2, proto=47) / Raw(b"\x20\x00\x08\x00" + b"\0\0\0\x07")
    / INNER[IP],
}


@pytest.mark.parametrize("tunnel", sorted(TUNNELS))
def test_overlay_packets_are_decoded_by_their_inner_packet(tunnel: str) -> None:
    decoder = PacketDecoder()
    events = decoder.decode(101, [1.0], [bytes(TUNNELS[tunnel])])
    (conn,) = opens(events)
    assert (str(conn.client_ip), str(conn.server_ip), conn.server_port) == (CLIENT, SERVER, 8080)
    assert conn.evidence is DirectionEvidence.SYN
    assert decoder.stats.tunneled == 1


def test_plain_and_encapsulated_copies_of_a_syn_are_one_connection() -> None:
    decoder = PacketDecoder()
    frames = [bytes(INNER[IP]), bytes(TUNNELS["vxlan-flannel"])]
    (conn,) = opens(decoder.decode(101, [1.0, 1.0001], frames))
    assert conn.server_port == 8080 and decoder.stats.duplicate_syns == 1
