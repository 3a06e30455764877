"""ipBlocks: membership with excepts, intervals, and splitting the address space."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from discover.netpol.ipblock import IpBlock, split_address_space


def block(cidr: str, *excepts: str) -> IpBlock:
    return IpBlock(ipaddress.ip_network(cidr), tuple(ipaddress.ip_network(e) for e in excepts))


def test_contains_with_excepts_and_versions() -> None:
    b = block("10.0.0.0/8", "10.1.0.0/16", "10.2.3.0/24")
    assert b.contains(ipaddress.ip_address("10.0.0.1"))
    assert not b.contains(ipaddress.ip_address("10.1.2.3"))
    assert not b.contains(ipaddress.ip_address("10.2.3.4"))
    assert not b.contains(ipaddress.ip_address("::1"))
    assert block("2001:db8::/32", "2001:db8:1::/48").contains(ipaddress.ip_address("2001:db8::1"))
    assert len(b.intervals()) == 3


networks = st.tuples(st.integers(0, 2**16 - 1), st.integers(16, 32)).map(
    lambda t: ipaddress.IPv4Network((t[0] << 16, t[1]), strict=False)
)


@st.composite
def blocks(draw: st.DrawFn) -> IpBlock:
    cidr = draw(networks)
    subnets = [
        n
        for n in draw(st.lists(networks, max_size=3))
        if n.subnet_of(cidr) and n != cidr  # type: ignore[arg-type]
    ]
    return IpBlock(cidr, tuple(subnets))


@given(st.lists(blocks(), max_size=4))
def test_split_ranges_cover_the_space_and_never_straddle_a_block(items: list[IpBlock]) -> None:
    ranges = split_address_space(items)
    assert int(ranges[0][0]) == 0 and int(ranges[-1][1]) == 2**32 - 1
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert int(end) + 1 == int(start)
    starts = {int(first) for first, _ in ranges}
    ends = {int(last) for _, last in ranges}
    for b in items:
        for low, high in b.intervals():
            assert low in starts and high in ends  # every piece is a union of ranges
        for first, last in ranges:
            assert b.contains(first) == b.contains(last)
