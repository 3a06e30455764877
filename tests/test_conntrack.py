"""Connection tracking by the client's initial sequence number: a retransmitted SYN or a
copy from a second interface is one connection, a client reusing its 4-tuple (another ISN)
is a new one; SYN-ACKs pair with their SYN through the acknowledgment number."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinuxV2
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit, SCTPChunkInitAck, SCTPChunkSACK

from discover.flows.events import ConnectionOpen, DirectionEvidence, EdgePackets, Protocol
from discover.reading.packets import Output, PacketDecoder

CLIENT, SERVER = "10.244.1.5", "10.244.2.9"
RAW, SLL2 = 101, 276
MASK = 0xFFFFFFFF


def syn(sport: int, isn: int, dport: int = 8080, load: bytes = b"") -> bytes:
    return bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=dport, flags="S", seq=isn)
                 / load)


def syn_ack(sport: int, isn: int, dport: int = 8080, acked: int = 1) -> bytes:
    """The server's answer to the SYN whose ISN is `isn` (acknowledging `acked` bytes)."""
    segment = TCP(sport=dport, dport=sport, flags="SA", seq=0x5000, ack=(isn + acked) & MASK)
    return bytes(IP(src=SERVER, dst=CLIENT) / segment)


def segment(sport: int, flags: str, from_client: bool = True, dport: int = 8080) -> bytes:
    if from_client:
        return bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=dport, flags=flags))
    return bytes(IP(src=SERVER, dst=CLIENT) / TCP(sport=dport, dport=sport, flags=flags))


def opens(events: list[Output]) -> list[ConnectionOpen]:
    return [e for e in events if isinstance(e, ConnectionOpen)]


def packets(events: list[Output]) -> int:
    return sum(e.packets for e in events if isinstance(e, EdgePackets))


def test_reused_tuple_with_another_isn_is_a_new_connection() -> None:
    decoder = PacketDecoder()
    frames = [syn(40000, 111), syn_ack(40000, 111), segment(40000, "A"), segment(40000, "R"),
              syn(40000, 999_999), syn_ack(40000, 999_999), segment(40000, "A")]
    times = [1.0, 1.001, 1.002, 1.003, 2.0, 2.001, 2.002]
    events = decoder.decode(RAW, times, frames)
    assert [(c.time, c.client_port, c.evidence) for c in opens(events)] == [
        (1.0, 40000, DirectionEvidence.SYN), (2.0, 40000, DirectionEvidence.SYN)]
    assert decoder.stats.reused_tuples == 1 and decoder.stats.duplicate_syns == 0
    assert packets(events) == len(frames)


def test_reused_tuple_across_batches() -> None:
    decoder = PacketDecoder()
    first = decoder.decode(RAW, [1.0, 1.001], [syn(40000, 5), syn_ack(40000, 5)])
    second = decoder.decode(RAW, [1.5, 1.501], [syn(40000, 6), syn_ack(40000, 6)])
    assert len(opens(first)) == len(opens(second)) == 1


def test_retransmitted_syn_with_the_same_isn_is_one_connection() -> None:
    decoder = PacketDecoder()
    frames = [syn(40001, 4242), syn(40001, 4242), syn(40001, 4242), syn_ack(40001, 4242)]
    (conn,) = opens(decoder.decode(RAW, [1.0, 2.0, 4.0, 4.001], frames))
    assert conn.time == 1.0 and conn.evidence is DirectionEvidence.SYN
    assert decoder.stats.duplicate_syns == 2 and decoder.stats.reused_tuples == 0


def test_same_syn_on_two_interfaces_is_one_connection() -> None:
    def on(ifindex: int, frame: bytes) -> bytes:
        return bytes(CookedLinuxV2(ifindex=ifindex, proto=0x0800)) + frame

    decoder = PacketDecoder()
    frames = [on(7, syn(40002, 77)), on(2, syn(40002, 77)),
              on(2, syn_ack(40002, 77)), on(7, syn_ack(40002, 77))]
    events = decoder.decode(SLL2, [1.0, 1.00001, 1.001, 1.00101], frames)
    (conn,) = opens(events)
    assert conn.evidence is DirectionEvidence.SYN and conn.server_port == 8080
    assert decoder.stats.duplicate_syns == 1 and packets(events) == 4


def test_syn_and_its_syn_ack_are_one_connection() -> None:
    decoder = PacketDecoder()
    (conn,) = opens(decoder.decode(RAW, [1.0, 1.001], [syn(40003, 10), syn_ack(40003, 10)]))
    assert conn.evidence is DirectionEvidence.SYN
    assert decoder.stats.connections_syn == 1 and decoder.stats.connections_syn_ack == 0


def test_syn_ack_alone_is_one_connection_with_syn_ack_evidence() -> None:
    decoder = PacketDecoder()
    (conn,) = opens(decoder.decode(RAW, [1.0, 1.001], [syn_ack(40004, 10), segment(40004, "A")]))
    assert conn.evidence is DirectionEvidence.SYN_ACK
    assert (str(conn.client_ip), conn.client_port, conn.server_port) == (CLIENT, 40004, 8080)


def test_syn_seen_after_its_syn_ack_is_not_a_second_connection() -> None:
    decoder = PacketDecoder()
    frames = [syn_ack(40005, 31337), syn(40005, 31337), syn_ack(40005, 31337)]
    (conn,) = opens(decoder.decode(RAW, [1.0, 1.0001, 1.0002], frames))
    assert conn.evidence is DirectionEvidence.SYN_ACK


def test_syn_ack_of_another_isn_is_another_connection() -> None:
    # The second connection's SYN was missed; its SYN-ACK acknowledges another ISN.
    decoder = PacketDecoder()
    frames = [syn(40006, 100), syn_ack(40006, 100), syn_ack(40006, 50_000_000)]
    conns = opens(decoder.decode(RAW, [1.0, 1.001, 1.5], frames))
    assert [c.evidence for c in conns] == [DirectionEvidence.SYN, DirectionEvidence.SYN_ACK]


def test_fast_open_syn_ack_acknowledges_the_syn_data() -> None:
    decoder = PacketDecoder()
    frames = [syn(40007, 900, load=b"GET /"), syn_ack(40007, 900, acked=6)]
    (conn,) = opens(decoder.decode(RAW, [1.0, 1.001], frames))
    assert conn.evidence is DirectionEvidence.SYN


def test_isn_wrapping_around_pairs_with_its_syn_ack() -> None:
    decoder = PacketDecoder()
    (conn,) = opens(decoder.decode(RAW, [1.0, 1.001], [syn(40008, MASK), syn_ack(40008, MASK)]))
    assert conn.evidence is DirectionEvidence.SYN


def test_new_connection_after_one_seen_mid_way() -> None:
    decoder = PacketDecoder()
    frames = [segment(40009, "PA"), segment(40009, "A", from_client=False),
              segment(40009, "R"), syn(40009, 12), syn_ack(40009, 12), segment(40009, "PA")]
    events = decoder.decode(RAW, [1.0, 1.1, 1.2, 1.3, 1.301, 1.302], frames)
    assert [c.evidence for c in opens(events)] == [
        DirectionEvidence.INFERRED, DirectionEvidence.SYN]
    assert decoder.stats.connections_inferred == 1 and packets(events) == len(frames)


def test_set_up_memory_is_dropped_after_the_window() -> None:
    decoder = PacketDecoder(syn_window=30.0)
    for k in range(40):  # a connection every 5 s on one 4-tuple, each with its own ISN
        decoder.decode(RAW, [k * 5.0], [syn(40010, k * 1_000_000)])
    assert decoder.stats.connections_syn == 40
    (flow,) = decoder._tracker._flows.values()  # the one 4-tuple
    assert flow.setups is not None and len(flow.setups) <= 8  # only the last ~30 s


def test_long_lived_connection_forgets_its_set_up() -> None:
    decoder = PacketDecoder(syn_window=30.0)
    decoder.decode(RAW, [0.0, 0.001], [syn(40011, 3), syn_ack(40011, 3)])
    (flow,) = decoder._tracker._flows.values()
    assert flow.setups is not None
    decoder.decode(RAW, [45.0], [segment(40011, "PA")])  # the periodic prune runs here
    assert flow.setups is None and decoder.stats.connections_inferred == 0
    assert len(decoder._tracker) == 1


@dataclass(frozen=True)
class Setup:
    """One connection set-up as the capture saw it."""

    client_port: int
    server_port: int
    isn: int
    start: float
    shape: str  # which set-up segments were captured


SHAPES = ("syn", "syn+syn-ack", "syn-ack", "retransmit", "two-interfaces")


def _frames(s: Setup) -> list[tuple[float, bytes]]:
    sp, dp, isn, t = s.client_port, s.server_port, s.isn, s.start
    first = syn(sp, isn, dp)
    answer = syn_ack(sp, isn, dp)
    ack = segment(sp, "A", dport=dp)
    out = {
        "syn": [(t, first)],
        "syn+syn-ack": [(t, first), (t + 0.001, answer), (t + 0.002, ack)],
        "syn-ack": [(t, answer), (t + 0.001, ack)],
        "retransmit": [(t, first), (t + 1.0, first), (t + 1.001, answer)],
        "two-interfaces": [(t, first), (t + 1e-5, first), (t + 0.001, answer),
                           (t + 0.00101, answer), (t + 0.002, ack), (t + 0.00201, ack)],
    }
    return out[s.shape]


SETUPS = st.builds(
    Setup,
    client_port=st.sampled_from([40000, 40001]),
    server_port=st.sampled_from([80, 8080]),
    # Small ISNs collide often (the same set-up seen again); wide ones rarely.
    isn=st.one_of(st.sampled_from([0, 1, 2, MASK]), st.integers(0, MASK)),
    start=st.floats(0.0, 20.0, allow_nan=False),  # all inside the 30 s window
    shape=st.sampled_from(SHAPES),
)


@settings(max_examples=200, deadline=None)
@given(setups=st.lists(SETUPS, min_size=1, max_size=12), batch=st.integers(1, 9))
def test_connections_are_the_distinct_tuple_and_isn_set_ups(
    setups: list[Setup], batch: int
) -> None:
    timed = sorted((f for s in setups for f in _frames(s)), key=lambda f: f[0])
    times, frames = [t for t, _ in timed], [f for _, f in timed]
    decoder = PacketDecoder(syn_window=30.0)
    events: list[Output] = []
    for i in range(0, len(frames), batch):
        events += decoder.decode(RAW, times[i : i + batch], frames[i : i + batch])
    # The evidence of a set-up is what arrived first for it: its SYN, or its SYN-ACK.
    first_seen: dict[tuple[int, int, int], tuple[float, DirectionEvidence]] = {}
    for s in setups:
        t, frame = _frames(s)[0]
        evidence = DirectionEvidence.SYN_ACK if s.shape == "syn-ack" else DirectionEvidence.SYN
        key = (s.client_port, s.server_port, s.isn)
        # Same start time: frames sort stably in `setups` order, so the earlier entry wins.
        if key not in first_seen or t < first_seen[key][0]:
            first_seen[key] = (t, evidence)
    expected = Counter((k[0], k[1], e) for k, (_, e) in first_seen.items())
    found = Counter((c.client_port, c.server_port, c.evidence) for c in opens(events))
    assert found == expected
    assert all(str(c.client_ip) == CLIENT for c in opens(events))
    assert packets(events) == len(frames)


# SCTP: an association's INIT names its sender the client and carries the Initiate Tag
# that plays the ISN's part; the INIT-ACK echoes it as the common header's verification tag.

def sctp_init(sport: int, tag: int, dport: int = 3868, src: str = CLIENT, dst: str = SERVER,
              family: int = 4) -> bytes:
    ip = IP(src=src, dst=dst) if family == 4 else IPv6(src=src, dst=dst)
    return bytes(ip / SCTP(sport=sport, dport=dport, tag=0) / SCTPChunkInit(init_tag=tag))


def sctp_init_ack(sport: int, tag: int, dport: int = 3868) -> bytes:
    """The server's answer to the INIT whose Initiate Tag is `tag`."""
    return bytes(IP(src=SERVER, dst=CLIENT) / SCTP(sport=dport, dport=sport, tag=tag)
                 / SCTPChunkInitAck(init_tag=0x5EA5E))


def sctp_data(sport: int, from_client: bool = True, dport: int = 3868) -> bytes:
    if from_client:
        return bytes(IP(src=CLIENT, dst=SERVER) / SCTP(sport=sport, dport=dport, tag=0x5EA5E)
                     / SCTPChunkData(data=b"ping"))
    return bytes(IP(src=SERVER, dst=CLIENT) / SCTP(sport=dport, dport=sport, tag=0x77)
                 / SCTPChunkSACK())


def test_sctp_init_opens_one_association() -> None:
    decoder = PacketDecoder()
    events = decoder.decode(RAW, [1.0], [sctp_init(40000, 0x1234)])
    assert [(str(c.client_ip), c.client_port, str(c.server_ip), c.server_port, c.protocol,
             c.evidence) for c in opens(events)] == [
        (CLIENT, 40000, SERVER, 3868, Protocol.SCTP, DirectionEvidence.INIT)]
    assert decoder.stats.associations_init == 1 and decoder.stats.sctp == 1
    assert decoder.stats.connections_syn == 0 and decoder.stats.other_protocol == 0


def test_sctp_init_retransmitted_is_one_association() -> None:
    decoder = PacketDecoder()
    events = decoder.decode(RAW, [1.0, 2.0, 3.5],
                            [sctp_init(40000, 0x1234), sctp_init(40000, 0x1234),
                             sctp_init(40000, 0x1234)])
    assert len(opens(events)) == 1
    assert decoder.stats.duplicate_syns == 2 and decoder.stats.reused_tuples == 0


def test_sctp_init_then_init_ack_is_one_association_and_every_packet_counts() -> None:
    decoder = PacketDecoder()
    frames = [sctp_init(40000, 0xCAFE), sctp_init_ack(40000, 0xCAFE), sctp_data(40000),
              sctp_data(40000, from_client=False)]
    events = decoder.decode(RAW, [1.0, 1.001, 1.002, 1.003], frames)
    assert [(c.client_port, c.evidence) for c in opens(events)] == [
        (40000, DirectionEvidence.INIT)]
    edges = [e for e in events if isinstance(e, EdgePackets)]
    assert [(str(e.client_ip), str(e.server_ip), e.protocol, e.server_port, e.packets)
            for e in edges] == [(CLIENT, SERVER, Protocol.SCTP, 3868, 4)]
    assert decoder.stats.associations_init_ack == 0


def test_sctp_init_ack_across_batches_pairs_with_its_init() -> None:
    decoder = PacketDecoder()
    first = decoder.decode(RAW, [1.0], [sctp_init(40000, 0xCAFE)])
    second = decoder.decode(RAW, [1.2], [sctp_init_ack(40000, 0xCAFE)])
    assert len(opens(first)) == 1 and opens(second) == []


def test_sctp_init_ack_alone_names_its_receiver_the_client() -> None:
    decoder = PacketDecoder()
    events = decoder.decode(RAW, [1.0, 1.1], [sctp_init_ack(40000, 0xCAFE), sctp_data(40000)])
    assert [(str(c.client_ip), c.client_port, str(c.server_ip), c.server_port, c.evidence)
            for c in opens(events)] == [
        (CLIENT, 40000, SERVER, 3868, DirectionEvidence.INIT_ACK)]
    assert decoder.stats.associations_init_ack == 1


def test_two_associations_on_one_tuple_with_other_initiate_tags() -> None:
    decoder = PacketDecoder()
    frames = [sctp_init(40000, 0x1111), sctp_init_ack(40000, 0x1111), sctp_data(40000),
              sctp_init(40000, 0x2222), sctp_init_ack(40000, 0x2222)]
    events = decoder.decode(RAW, [1.0, 1.001, 1.002, 2.0, 2.001], frames)
    assert [(c.time, c.evidence) for c in opens(events)] == [
        (1.0, DirectionEvidence.INIT), (2.0, DirectionEvidence.INIT)]
    assert decoder.stats.reused_tuples == 1 and decoder.stats.associations_init == 2


def test_sctp_init_over_ipv6_and_a_second_interface_is_one_association() -> None:
    decoder = PacketDecoder()
    frame = sctp_init(40000, 0xBEEF, src="2001:db8::5", dst="2001:db8::9", family=6)
    wrapped = bytes(CookedLinuxV2(proto=0x86DD)) + frame
    events = decoder.decode(RAW, [1.0], [frame]) + decoder.decode(SLL2, [1.0005], [wrapped])
    assert [(str(c.client_ip), c.protocol) for c in opens(events)] == [
        ("2001:db8::5", Protocol.SCTP)]
    assert decoder.stats.duplicate_syns == 1


def test_sctp_mid_association_and_a_cut_init_are_inferred_from_ports() -> None:
    decoder = PacketDecoder()
    cut = sctp_init(40001, 0x1234)[: 20 + 16]  # IPv4 header, common header, chunk header
    events = decoder.decode(RAW, [1.0, 1.0], [sctp_data(40000, from_client=False), cut])
    found = sorted((c.client_port, c.server_port, c.evidence) for c in opens(events))
    assert found == [(40000, 3868, DirectionEvidence.INFERRED),
                     (40001, 3868, DirectionEvidence.INFERRED)]
    assert decoder.stats.connections_inferred == 2


def test_tcp_and_sctp_on_the_same_ports_are_two_edges() -> None:
    decoder = PacketDecoder()
    tcp_syn = syn(40000, 7, dport=3868)
    events = decoder.decode(RAW, [1.0, 1.0], [tcp_syn, sctp_init(40000, 7)])
    assert sorted(c.protocol for c in opens(events)) == [Protocol.SCTP, Protocol.TCP]
