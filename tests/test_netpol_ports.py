"""Connection sets and rule ports: set algebra against brute force, formatting, names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from discover.inventory.model import ContainerPort
from discover.netpol.ports import ConnectionSet, RulePort, intersect, normalize

ranges = st.lists(
    st.tuples(st.integers(1, 40), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=5,
)
sets = st.lists(st.tuples(st.sampled_from(["TCP", "UDP", "SCTP"]), ranges), max_size=3).map(
    lambda pairs: ConnectionSet.of((p, tuple(r)) for p, r in pairs)
)


def members(conns: ConnectionSet) -> set[tuple[str, int]]:
    return {
        (p, port) for p, rs in conns.ports.items() for lo, hi in rs for port in range(lo, hi + 1)
    }


@given(sets, sets)
def test_union_and_intersection_match_brute_force(a: ConnectionSet, b: ConnectionSet) -> None:
    assert members(a.union(b)) == members(a) | members(b)
    assert members(a.intersection(b)) == members(a) & members(b)
    for protocol, port in members(a):
        assert a.contains(protocol.lower(), port)


@given(ranges)
def test_normalize_is_sorted_disjoint_and_not_adjacent(raw: list[tuple[int, int]]) -> None:
    out = normalize(raw)
    assert all(lo <= hi for lo, hi in out)
    assert all(prev[1] + 1 < nxt[0] for prev, nxt in zip(out, out[1:], strict=False))
    assert intersect(out, out) == out


def test_formatting_like_the_oracle() -> None:
    assert str(ConnectionSet.all()) == "All Connections"
    assert str(ConnectionSet.none()) == "No Connections"
    conns = ConnectionSet.of(
        [("UDP", ((8080, 8080),)), ("TCP", ((9090, 9090), (8080, 8080))), ("SCTP", ((1, 65535),))]
    )
    assert str(conns) == "SCTP 1-65535,TCP 8080,9090,UDP 8080"
    assert ConnectionSet.of([("TCP", ((1, 10),)), ("TCP", ((11, 12),))]).ports == {
        "TCP": ((1, 12),)
    }


def test_rule_port_resolution() -> None:
    pod_ports = (ContainerPort(53, "UDP", "dns"), ContainerPort(8080, "TCP", "http"))
    assert RulePort("TCP").resolve(None) == ((1, 65535),)
    assert RulePort("TCP", 80, 90).resolve(None) == ((80, 90),)
    assert RulePort("TCP", "http").resolve(pod_ports) == ((8080, 8080),)
    assert RulePort("TCP", "dns").resolve(pod_ports) == ()  # name found, protocol differs
    assert RulePort("UDP", "dns").resolve(pod_ports) == ((53, 53),)
    assert RulePort("TCP", "http").resolve(None) == ()  # an IP has no named ports
    assert [str(RulePort("UDP")), str(RulePort("TCP", 1, 9)), str(RulePort("SCTP", "x"))] == [
        "UDP (all ports)",
        "TCP 1-9",
        "SCTP x",
    ]
