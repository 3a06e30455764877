"""Edge outcomes from packets (issue 13): completed, refused, one-way, unanswered; ICMP
unreachables matched to the edge of the packet they quote; a capture that began mid-way."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.sctp import SCTP, SCTPChunkAbort, SCTPChunkInit, SCTPChunkInitAck

from discover.flows.events import EdgePackets, Outcome, Protocol
from discover.flows.flowtable import FlowTable
from discover.reading.packets import Output, PacketDecoder

CLIENT, SERVER, ROUTER = "10.244.1.5", "10.244.2.9", "10.244.0.1"
CLIENT6, SERVER6 = "fd00::5", "fd00::9"
RAW = 101


def outcomes(batches: list[list[bytes]]) -> dict[tuple[str, str, Protocol, int], Outcome]:
    """Each edge's outcome after decoding the batches (one time step per frame) into a table."""
    decoder, table, now = PacketDecoder(), FlowTable(), 1.0
    for frames in batches:
        times = [now + i * 0.01 for i in range(len(frames))]
        now += 1.0
        table.add_all(e for e in decoder.decode(RAW, times, frames) if _table_event(e))
    return {(str(r.src_ip), str(r.dst_ip), r.protocol, r.dst_port): r.outcome
            for r in table.flow_rows()}


def _table_event(event: Output) -> bool:
    return not hasattr(event, "payload")


def tcp(flags: str, *, to_server: bool = True, sport: int = 40000, dport: int = 8080,
        load: bytes = b"") -> bytes:
    if to_server:
        return bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=dport, flags=flags,
                                                      seq=100) / load)
    return bytes(IP(src=SERVER, dst=CLIENT) / TCP(sport=dport, dport=sport, flags=flags,
                                                  seq=500, ack=101) / load)


def udp(*, to_server: bool = True, sport: int = 40000, dport: int = 8125) -> bytes:
    if to_server:
        return bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=sport, dport=dport) / b"x:1|c")
    return bytes(IP(src=SERVER, dst=CLIENT) / UDP(sport=dport, dport=sport) / b"ok")


def port_unreachable(sport: int = 40000, dport: int = 8125, *, code: int = 3,
                     source: str = SERVER) -> bytes:
    quoted = IPerror(src=CLIENT, dst=SERVER) / UDPerror(sport=sport, dport=dport) / b"x:1|c"
    return bytes(IP(src=source, dst=CLIENT) / ICMP(type=3, code=code) / quoted)


KEY_TCP = (CLIENT, SERVER, Protocol.TCP, 8080)
KEY_UDP = (CLIENT, SERVER, Protocol.UDP, 8125)


def test_a_syn_answered_by_a_syn_ack_completes() -> None:
    assert outcomes([[tcp("S"), tcp("SA", to_server=False)]]) == {KEY_TCP: Outcome.COMPLETED}


def test_the_answer_may_come_in_a_later_batch() -> None:
    assert outcomes([[tcp("S")], [tcp("SA", to_server=False)]]) == {KEY_TCP: Outcome.COMPLETED}


def test_a_syn_answered_by_a_reset_is_refused() -> None:
    assert outcomes([[tcp("S"), tcp("RA", to_server=False)]]) == {KEY_TCP: Outcome.REFUSED}


def test_a_syn_nobody_answers_is_unanswered_even_retransmitted() -> None:
    assert outcomes([[tcp("S")], [tcp("S")], [tcp("S")]]) == {KEY_TCP: Outcome.UNANSWERED}


def test_a_client_reset_after_the_answer_keeps_it_completed() -> None:
    frames = [tcp("S"), tcp("SA", to_server=False), tcp("R")]
    assert outcomes([frames]) == {KEY_TCP: Outcome.COMPLETED}


def test_one_completed_connection_makes_the_edge_completed() -> None:
    frames = [tcp("S", sport=40001), tcp("RA", to_server=False, sport=40001),
              tcp("S", sport=40002), tcp("SA", to_server=False, sport=40002)]
    assert outcomes([frames]) == {KEY_TCP: Outcome.COMPLETED}


def test_a_connection_seen_mid_way_is_completed_even_one_sided_or_reset() -> None:
    assert outcomes([[tcp("PA", load=b"GET /")]]) == {KEY_TCP: Outcome.COMPLETED}
    assert outcomes([[tcp("RA", to_server=False)]]) == {KEY_TCP: Outcome.COMPLETED}


def test_udp_with_a_datagram_back_completes_and_without_is_one_way() -> None:
    assert outcomes([[udp(), udp(to_server=False)]]) == {KEY_UDP: Outcome.COMPLETED}
    assert outcomes([[udp(), udp()], [udp()]]) == {KEY_UDP: Outcome.ONE_WAY}


def test_icmp_port_unreachable_refuses_the_udp_edge_it_quotes() -> None:
    assert outcomes([[udp(), port_unreachable()]]) == {KEY_UDP: Outcome.REFUSED}
    # from a router on the way (host unreachable), and in the next batch
    late = port_unreachable(code=1, source=ROUTER)
    assert outcomes([[udp()], [late]]) == {KEY_UDP: Outcome.REFUSED}


def test_an_icmp_error_alone_names_the_client_of_its_quoted_datagram() -> None:
    decoder = PacketDecoder()
    table = FlowTable()
    table.add_all(e for e in decoder.decode(RAW, [1.0], [port_unreachable()])
                  if _table_event(e))
    assert [(str(r.src_ip), r.dst_port, r.outcome) for r in table.flow_rows()] == [
        (CLIENT, 8125, Outcome.REFUSED)]
    assert decoder.stats.icmp_errors == 1


def test_fragmentation_needed_is_no_refusal() -> None:
    assert outcomes([[udp(), port_unreachable(code=4)]]) == {KEY_UDP: Outcome.ONE_WAY}


def test_icmp_unreachable_for_a_tcp_syn_refuses_it() -> None:
    quoted = IPerror(src=CLIENT, dst=SERVER) / TCPerror(sport=40000, dport=8080, flags="S")
    prohibited = bytes(IP(src=ROUTER, dst=CLIENT) / ICMP(type=3, code=13) / quoted)
    assert outcomes([[tcp("S"), prohibited]]) == {KEY_TCP: Outcome.REFUSED}


def test_icmpv6_unreachable_refuses_the_ipv6_edge() -> None:
    query = IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=40000, dport=514) / b"<14>hello"
    error = IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6DestUnreach(code=4) / query
    assert outcomes([[bytes(query), bytes(error)]]) == {
        (CLIENT6, SERVER6, Protocol.UDP, 514): Outcome.REFUSED}


@pytest.mark.parametrize(("answer", "expected"), [
    (SCTPChunkInitAck(init_tag=7), Outcome.COMPLETED),
    (SCTPChunkAbort(), Outcome.REFUSED),
    (None, Outcome.UNANSWERED),
])
def test_sctp_init_outcomes(answer: object, expected: Outcome) -> None:
    init = IP(src=CLIENT, dst=SERVER) / SCTP(sport=5000, dport=3868, tag=0) / SCTPChunkInit(
        init_tag=0x1234)
    frames = [bytes(init)]
    if answer is not None:
        frames.append(bytes(IP(src=SERVER, dst=CLIENT) / SCTP(sport=3868, dport=5000,
                                                              tag=0x1234) / answer))
    assert outcomes([frames]) == {(CLIENT, SERVER, Protocol.SCTP, 3868): expected}


def test_edge_packets_without_an_outcome_read_unknown_and_rank_above_attempts() -> None:
    client, server = ip_address(CLIENT), ip_address(SERVER)
    table = FlowTable()
    table.add(EdgePackets(1.0, 2.0, client, server, Protocol.TCP, 80, 1,
                          outcome=Outcome.UNANSWERED))
    assert [r.outcome for r in table.flow_rows()] == [Outcome.UNANSWERED]
    table.add(EdgePackets(3.0, 4.0, client, server, Protocol.TCP, 80, 1))
    assert [r.outcome for r in table.flow_rows()] == [Outcome.UNKNOWN]
    table.add(EdgePackets(3.0, 4.0, client, server, Protocol.TCP, 80, 1,
                          outcome=Outcome.COMPLETED))
    assert [r.outcome for r in table.flow_rows()] == [Outcome.COMPLETED]
