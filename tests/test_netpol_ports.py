"""Connection sets and rule ports: set algebra against brute force, formatting, names."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discover.flows.events import Protocol
from discover.inventory.model import ContainerPort
from discover.netpol.ports import (
    ConnectionSet,
    RulePort,
    intersect,
    normalize,
    parse_rule_port,
    port_name_problem,
)
from discover.netpol.selectors import InvalidPolicyError

ranges = st.lists(
    st.tuples(st.integers(1, 40), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=5,
)
sets = st.lists(st.tuples(st.sampled_from(list(Protocol)), ranges), max_size=3).map(
    lambda pairs: ConnectionSet.of((p, tuple(r)) for p, r in pairs)
)


def members(conns: ConnectionSet) -> set[tuple[Protocol, int]]:
    return {
        (p, port) for p, rs in conns.ports.items() for lo, hi in rs for port in range(lo, hi + 1)
    }


@given(sets, sets)
def test_union_and_intersection_match_brute_force(a: ConnectionSet, b: ConnectionSet) -> None:
    assert members(a.union(b)) == members(a) | members(b)
    assert members(a.intersection(b)) == members(a) & members(b)
    for protocol, port in members(a):
        assert a.contains(protocol, port)
        assert not a.contains(protocol, 49)  # the ranges end at 48


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


def parse(raw: Any) -> RulePort:
    return parse_rule_port(raw, policy="ns/p", field="spec.ingress[0].ports[0]")


def test_rule_ports_the_api_server_accepts() -> None:
    assert parse({}) == RulePort("TCP")
    assert parse({"protocol": None, "port": 80}) == RulePort("TCP", 80)
    assert parse({"protocol": "UDP", "port": 53}) == RulePort("UDP", 53)
    assert parse({"protocol": "SCTP", "port": 1, "endPort": 65535}) == RulePort("SCTP", 1, 65535)
    assert parse({"port": 80, "endPort": 80}) == RulePort("TCP", 80, 80)
    # A string is always a name, even when it looks like a number with a letter in it.
    assert parse({"port": "http"}) == RulePort("TCP", "http")
    assert parse({"port": "h2c-8080"}) == RulePort("TCP", "h2c-8080")
    assert parse({"port": "a23456789012345"}).port == "a23456789012345"  # 15 characters


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"port": "\u00b2"}, "port", "invalid port name '\u00b2'"),  # was a ValueError traceback
        ({"port": "80"}, "port", "at least one letter"),  # a quoted number is a name
        ({"port": "HTTP"}, "port", "lowercase"),
        ({"port": "my_port"}, "port", "lowercase"),
        ({"port": ""}, "port", "1-15 characters"),
        ({"port": "a234567890123456"}, "port", "1-15 characters"),
        ({"port": "-http"}, "port", "begin or end with '-'"),
        ({"port": "http-"}, "port", "begin or end with '-'"),
        ({"port": "my--port"}, "port", "'--'"),
        ({"port": 0}, "port", "port 0 out of range 1-65535"),
        ({"port": 65536}, "port", "out of range"),
        ({"port": True}, "port", "expected a number or name"),
        ({"port": 8.5}, "port", "expected a number or name"),
        ({"protocol": "tcp", "port": 80}, "protocol", "unsupported protocol 'tcp'"),
        ({"protocol": "", "port": 80}, "protocol", "unsupported protocol ''"),
        ({"protocol": 6, "port": 80}, "protocol", "unsupported protocol 6"),
        ({"port": "http", "endPort": 90}, "endPort", "needs a numeric port"),
        ({"endPort": 90}, "endPort", "needs a numeric port"),
        ({"port": 90, "endPort": 80}, "endPort", "endPort 80 must be in 90-65535"),
        ({"port": 90, "endPort": 65536}, "endPort", "must be in 90-65535"),
        ({"port": 90, "endPort": "100"}, "endPort", "expected a number"),
        ("80", None, "expected a port entry"),
    ],
)
def test_rule_ports_the_api_server_rejects(raw: Any, field: str | None, message: str) -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        parse(raw)
    where = "spec.ingress[0].ports[0]" + (f".{field}" if field else "")
    assert caught.value.field == where
    assert message in caught.value.message


@given(st.text(max_size=20))
def test_port_names_follow_iana_svc_name(name: str) -> None:
    valid = (
        re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) is not None
        and len(name) <= 15
        and re.search(r"[a-z]", name) is not None
    )
    assert (port_name_problem(name) == "") == valid
    if not valid:
        with pytest.raises(InvalidPolicyError):
            parse({"port": name})
