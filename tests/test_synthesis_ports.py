"""Rule ports: names where declared, numbers otherwise, endPort only for long runs."""

from __future__ import annotations

import pytest

from discover.synthesis.ports import MIN_RANGE, PortSpec, port_entries


def test_named_ports_first_then_numbers_sorted() -> None:
    specs = [PortSpec("TCP", 9090), PortSpec("TCP", 8080, "http"), PortSpec("UDP", 53)]
    assert port_entries(specs) == [
        {"protocol": "TCP", "port": "http"},
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 9090},
    ]


def test_names_are_dropped_for_ip_peers() -> None:
    assert port_entries([PortSpec("TCP", 8080, "http")], use_names=False) == [
        {"protocol": "TCP", "port": 8080}]


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (range(30000, 30000 + MIN_RANGE), [(30000, 30000 + MIN_RANGE - 1)]),
        (range(30000, 30000 + MIN_RANGE - 1), [(p, None) for p in range(30000, 30007)]),
        ([*range(100, 108), 109], [(100, 107), (109, None)]),  # a gap is never covered
        ([5, 7], [(5, None), (7, None)]),
    ],
)
def test_end_port_only_for_long_contiguous_runs(
    ports: range | list[int], expected: list[tuple[int, int | None]]
) -> None:
    entries = port_entries(PortSpec("TCP", p) for p in ports)
    assert [(e["port"], e.get("endPort")) for e in entries] == expected


def test_runs_are_per_protocol() -> None:
    specs = [PortSpec("TCP", p) for p in range(1000, 1004)]
    specs += [PortSpec("UDP", p) for p in range(1004, 1008)]
    assert all("endPort" not in e for e in port_entries(specs))
