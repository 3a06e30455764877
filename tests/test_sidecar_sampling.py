from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from sidecar.sampling import MAX_KEEP_ONE_IN, UdpSampler, is_sampleable_udp

UDP4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=8125) / Raw(b"m"))
UDP6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=4000, dport=8125))
DNS_QUERY = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=53) / Raw(b"q"))
DNS_ANSWER = bytes(IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=53, dport=4000))
SYN = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=80, flags="S"))
FRAGMENT = bytes(IP(src="10.0.0.1", dst="10.0.0.2", proto=17, frag=100) / Raw(b"z" * 8))


def test_only_non_dns_udp_is_sampleable() -> None:
    assert is_sampleable_udp(UDP4) and is_sampleable_udp(UDP6) and is_sampleable_udp(FRAGMENT)
    for packet in (DNS_QUERY, DNS_ANSWER, SYN, b"", b"\x45", b"\x60" + b"\x00" * 10):
        assert not is_sampleable_udp(packet)


def test_no_backlog_keeps_everything() -> None:
    sampler = UdpSampler()
    frames = [UDP4] * 100
    times = [float(i) for i in range(100)]
    assert sampler.sample(times, frames, backlog=False) == (times, frames)
    assert sampler.sampled_out == 0


def test_backlog_samples_udp_counts_it_and_never_touches_dns_or_tcp() -> None:
    sampler = UdpSampler()
    frames = [UDP4, DNS_QUERY, SYN, DNS_ANSWER] * 200
    times = [float(i) for i in range(len(frames))]
    kept_times, kept = sampler.sample(times, frames, backlog=True)
    assert sampler.keep_one_in == 2
    assert kept.count(DNS_QUERY) == kept.count(SYN) == kept.count(DNS_ANSWER) == 200
    assert kept.count(UDP4) == 100
    assert sampler.sampled_out == 100
    assert len(kept_times) == len(kept) == len(frames) - sampler.sampled_out
    assert kept_times == sorted(kept_times)


def test_rate_doubles_to_a_ceiling_then_recovers() -> None:
    sampler = UdpSampler()
    for _ in range(20):
        sampler.sample([0.0], [UDP4], backlog=True)
    assert sampler.keep_one_in == MAX_KEEP_ONE_IN
    for _ in range(20):
        sampler.sample([0.0], [UDP4], backlog=False)
    assert sampler.keep_one_in == 1


@given(st.binary(max_size=80))
def test_any_bytes_are_classified_without_error(packet: bytes) -> None:
    assert isinstance(is_sampleable_udp(packet), bool)


@given(st.lists(st.sampled_from([UDP4, UDP6, DNS_QUERY, DNS_ANSWER, SYN]), max_size=300),
       st.lists(st.booleans(), min_size=1, max_size=10))  # fmt: skip
def test_sampling_keeps_order_and_counts_every_skip(
    frames: list[bytes], backlogs: list[bool]
) -> None:
    sampler = UdpSampler()
    kept_total = 0
    for backlog in backlogs:
        times = [float(i) for i in range(len(frames))]
        kept_times, kept = sampler.sample(times, frames, backlog=backlog)
        assert kept_times == sorted(kept_times)
        assert [f for f in frames if not is_sampleable_udp(f)] == [
            f for f in kept if not is_sampleable_udp(f)
        ]
        kept_total += len(kept)
    assert kept_total + sampler.sampled_out == len(frames) * len(backlogs)
