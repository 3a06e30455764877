"""The capped FlowTable keeps room for what matters (issue 15 item 7): UDP has a budget of
its own within --max-edges, one client a share of it, and what is refused is counted by
protocol."""

from __future__ import annotations

import pickle
from ipaddress import IPv4Address

from discover.flows.events import ConnectionOpen, DirectionEvidence, EdgePackets, Protocol
from discover.flows.flowtable import DROP_COUNTERS, FlowTable

T0 = 1_700_000_000.0
NOISY = IPv4Address("10.244.9.9")


def udp_open(client: IPv4Address, server: IPv4Address, port: int) -> ConnectionOpen:
    return ConnectionOpen(T0, client, 40000, server, port, Protocol.UDP,
                          DirectionEvidence.UDP_FIRST)  # fmt: skip


def tcp_open(client: IPv4Address, server: IPv4Address, port: int = 443) -> ConnectionOpen:
    return ConnectionOpen(T0 + 1, client, 40000, server, port, Protocol.TCP,
                          DirectionEvidence.SYN)  # fmt: skip


def udp_flood(count: int, client: IPv4Address = NOISY) -> list[ConnectionOpen]:
    """`count` distinct UDP 4-tuples from one client: each a new edge (server, port)."""
    base = int(IPv4Address("10.96.0.0"))
    return [udp_open(client, IPv4Address(base + i // 1000), 1000 + i % 1000)
            for i in range(count)]  # fmt: skip


def tcp_clients(count: int) -> list[ConnectionOpen]:
    base = int(IPv4Address("10.244.1.0"))
    return [tcp_open(IPv4Address(base + i), IPv4Address("10.244.2.1")) for i in range(count)]


def protocols(table: FlowTable) -> dict[Protocol, int]:
    counts = dict.fromkeys(Protocol, 0)
    for row in table.flow_rows():
        counts[row.protocol] += 1
    return counts


def test_a_udp_flood_from_one_client_leaves_the_tcp_connections_their_room() -> None:
    # The hostile input of the issue: 200,000 UDP 4-tuples, then TCP connections.
    table = FlowTable(max_edges=100_000)
    table.add_all(udp_flood(200_000))
    table.add_all(tcp_clients(1_000))
    kept = protocols(table)
    assert kept[Protocol.TCP] == 1_000
    # The flooder got one client's share of the UDP quarter: 100,000 / 4 / 10.
    assert kept[Protocol.UDP] == table.max_udp_edges_per_source == 2_500
    counters = table.drop_counters()
    assert counters["edges_dropped"] == 197_500
    assert counters["edges_dropped_udp"] == 197_500
    assert counters["udp_edges_dropped_per_source"] == 197_500
    assert counters["edges_dropped_tcp"] == 0


def test_many_udp_clients_fill_only_the_udp_budget() -> None:
    table = FlowTable(max_edges=100)  # UDP budget 25, 3 per client
    for client in range(30):
        table.add_all(udp_flood(10, IPv4Address(int(NOISY) + client)))
    assert table.udp_edge_count == protocols(table)[Protocol.UDP] == 25
    table.add_all(tcp_clients(80))
    assert protocols(table)[Protocol.TCP] == 75  # the rest of the table, to the total cap
    assert table.edge_count == 100
    counters = table.drop_counters()
    assert counters["edges_dropped_udp"] == 300 - 25
    # 8 clients got their 3 each and were refused 7; the 9th got the last 1 of the budget.
    assert counters["udp_edges_dropped_per_source"] == 8 * 7
    assert counters["edges_dropped_tcp"] == 5


def test_tcp_and_sctp_may_fill_the_whole_cap() -> None:
    # --max-edges keeps its meaning: the total, all of it for set-ups when UDP is quiet.
    table = FlowTable(max_edges=10)
    table.add_all(tcp_clients(9))
    table.add(ConnectionOpen(T0, NOISY, 5000, IPv4Address("10.0.0.1"), 3868, Protocol.SCTP,
                             DirectionEvidence.INIT))  # fmt: skip
    table.add_all(tcp_clients(12))  # 9 known edges count on, 3 new ones are refused
    assert table.edge_count == 10
    assert table.edges_dropped == table.edges_dropped_by_protocol[Protocol.TCP] == 3
    table.add(udp_open(NOISY, IPv4Address("10.96.0.10"), 53))
    assert table.drop_counters()["edges_dropped_udp"] == 1  # the total cap holds for UDP too


def test_a_client_over_its_share_still_counts_on_its_known_edges() -> None:
    table = FlowTable(max_edges=40)  # UDP 10, 1 per client
    first, second = udp_flood(2)
    table.add(first)
    table.add(second)
    table.add(EdgePackets(T0, T0 + 5, NOISY, first.server_ip, Protocol.UDP, first.server_port, 7))
    rows = list(table.flow_rows())
    assert len(rows) == 1 and rows[0].packets == 7 and rows[0].last_seen == T0 + 5
    assert table.udp_edges_dropped_per_source == 1


def test_explicit_budgets_replace_the_shares() -> None:
    table = FlowTable(max_edges=100, max_udp_edges=100, max_udp_edges_per_source=100)
    table.add_all(udp_flood(150))
    assert table.edge_count == 100  # UDP limited by the total only
    assert table.drop_counters()["udp_edges_dropped_per_source"] == 0
    small = FlowTable(max_udp_edges=5)  # a UDP budget without a total cap
    small.add_all(tcp_clients(50))
    small.add_all(udp_flood(50))
    assert small.max_udp_edges_per_source == 1
    assert protocols(small) == {Protocol.TCP: 50, Protocol.UDP: 1, Protocol.SCTP: 0}


def test_an_uncapped_table_has_no_budgets_and_keeps_no_per_client_counts() -> None:
    table = FlowTable()
    table.add_all(udp_flood(5_000))
    assert table.edge_count == table.udp_edge_count == 5_000
    assert table.max_udp_edges is None and table.max_udp_edges_per_source is None
    assert not table._udp_edges_by_source  # offline tables don't pay for the bookkeeping
    assert set(table.drop_counters().values()) == {0}


def test_merging_applies_the_budgets_and_sums_the_counters() -> None:
    flooded = FlowTable(max_edges=100)
    flooded.add_all(udp_flood(50))
    flooded.add_all(tcp_clients(2))
    assert flooded.udp_edges_dropped_per_source == 47
    capped = FlowTable(max_edges=100)
    capped.merge(flooded)
    capped.merge(flooded)  # the same edges again: nothing new, drops carried twice
    assert protocols(capped) == {Protocol.TCP: 2, Protocol.UDP: 3, Protocol.SCTP: 0}
    assert capped.drop_counters()["edges_dropped_udp"] == 2 * 47
    assert capped.drop_counters()["udp_edges_dropped_per_source"] == 2 * 47
    uncapped = FlowTable()
    uncapped.merge(flooded)
    assert uncapped.drop_counters() == flooded.drop_counters()
    # A capped table fed a bigger table's UDP edges applies its own budget to them.
    wide = FlowTable()
    wide.add_all(udp_flood(50))
    capped = FlowTable(max_edges=100)
    capped.merge(wide)
    assert capped.udp_edge_count == 3 and capped.udp_edges_dropped_per_source == 47


def test_drop_counters_are_named_as_summaries_carry_them_and_add_up() -> None:
    table = FlowTable(max_edges=8)  # UDP 2, 1 per client
    table.add_all(udp_flood(10))
    table.add_all(tcp_clients(10))
    counters = table.drop_counters()
    assert tuple(counters) == DROP_COUNTERS
    by_protocol = sum(counters[f"edges_dropped_{p.value.lower()}"] for p in Protocol)
    assert by_protocol == counters["edges_dropped"] == 9 + 3


def test_the_budgets_and_per_client_counts_survive_pickling() -> None:
    table = FlowTable(max_edges=40)  # UDP 10, 1 per client
    table.add_all(udp_flood(10))
    restored = pickle.loads(pickle.dumps(table))
    assert restored.drop_counters() == table.drop_counters()
    restored.add_all(udp_flood(2))  # the known edge and a new one
    assert restored.udp_edge_count == 1
    assert restored.udp_edges_dropped_per_source == 9 + 1
