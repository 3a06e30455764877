"""The workload graph from flow rows: DNAT duplicates, time, named ports, frame shape."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.enrichment.peers import EarlierPodPeer, ExternalPeer, workload_of
from discover.enrichment.workload_graph import UndeclaredPort, build_graph
from discover.flows.events import DirectionEvidence, Protocol
from discover.flows.flowtable import FlowRow
from discover.inventory.files import load_inventory_files
from discover.inventory.model import Inventory, Pod, WorkloadRef
from reports.tables import GRAPH_COLUMNS, graph_frame
from tests.test_enrich import dns_rows, t

CLUSTER = Path(__file__).parent / "data" / "inventory" / "cluster.json"
WEB = WorkloadRef("shop", "Deployment", "web")
API = WorkloadRef("shop", "Deployment", "api")
DEBUG = WorkloadRef("default", "Pod", "debug")


def flow_rows(rows: list[tuple[str, str, str, int, int, int, datetime, datetime]]
              ) -> tuple[FlowRow, ...]:
    """Flow table rows (src, dst, proto, port, connections, packets, first, last)."""
    return tuple(
        FlowRow(ip_address(s), ip_address(d), Protocol(p), port, c, k, f.timestamp(),
                last.timestamp(), DirectionEvidence.SYN)
        for s, d, p, port, c, k, f, last in rows)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory_files([CLUSTER])


def edges_to(graph, workload):  # type: ignore[no-untyped-def]
    return [e for e in graph.edges if e.destination.workload == workload]


def test_dnat_duplicate_is_one_edge_with_max_counts(inventory: Inventory) -> None:
    flows = flow_rows([
        # debug -> web Service (before DNAT) and debug -> web pod (after DNAT), same capture.
        ("10.244.2.40", "10.96.10.10", "TCP", 80, 5, 50, t(13), t(13, 5)),
        ("10.244.2.40", "10.244.1.11", "TCP", 8080, 5, 48, t(13), t(13, 6)),
    ])
    graph = build_graph(flows, dns_rows([]), inventory)
    [edge] = graph.edges
    assert workload_of(edge.source) == DEBUG and workload_of(edge.destination) == WEB
    assert (edge.protocol, edge.port, edge.port_name) == ("TCP", 8080, "http")
    assert (edge.connections, edge.packets) == (5, 50)  # max, not 10 / 98
    assert (edge.first_seen, edge.last_seen) == (t(13), t(13, 6))
    assert [str(f.dst_ip) for f in edge.evidence] == ["10.96.10.10", "10.244.1.11"]  # numeric
    assert edge.destination.via_service is not None
    assert edge.destination.via_service.name == "web"


def test_distinct_clients_are_summed(inventory: Inventory) -> None:
    flows = flow_rows([
        ("10.244.2.40", "10.96.10.10", "TCP", 80, 3, 30, t(13), t(13)),
        ("10.244.2.40", "10.244.1.11", "TCP", 8080, 2, 20, t(13), t(13)),
        ("10.244.2.20", "10.244.1.11", "TCP", 8080, 4, 40, t(13), t(13)),
    ])
    graph = build_graph(flows, None, inventory)
    web_edges = edges_to(graph, WEB)
    by_source = {e.source.workload: e for e in web_edges}
    assert by_source[DEBUG].connections == 3
    assert by_source[WorkloadRef("shop", "StatefulSet", "db")].connections == 4


def test_same_ip_two_owners_over_time(inventory: Inventory) -> None:
    flows = flow_rows([
        ("10.244.1.10", "10.244.2.20", "TCP", 5432, 1, 10, t(11), t(11)),  # old web pod
        ("10.244.1.10", "10.244.2.20", "TCP", 5433, 1, 10, t(12, 5), t(12, 5)),  # api pod
        ("10.244.1.10", "10.244.2.20", "TCP", 5434, 1, 10, t(9), t(9)),  # before both
    ])
    graph = build_graph(flows, None, inventory)
    sources = {e.port: e.source for e in graph.edges}
    assert workload_of(sources[5432]) == WEB
    assert workload_of(sources[5433]) == API
    assert isinstance(sources[5434], EarlierPodPeer) and sources[5434].note


def test_row_spanning_an_owner_change_goes_to_both_and_is_noted(inventory: Inventory) -> None:
    flows = flow_rows([("10.244.1.10", "10.244.2.20", "TCP", 5432, 4, 40, t(11), t(12, 5))])
    graph = build_graph(flows, None, inventory)
    assert {workload_of(e.source) for e in graph.edges} == {WEB, API}
    assert any("changed owner" in n for n in graph.notes)


def test_external_edge_carries_fqdn_and_cname_chain(inventory: Inventory) -> None:
    dns = dns_rows([("10.244.1.11", "cdn.example.com", "203.0.113.20",
                      "cdn.example.com.edgekey.net > e1.a.akamaiedge.net", 60, t(13), t(13))])
    flows = flow_rows([("10.244.1.11", "203.0.113.20", "TCP", 443, 2, 9, t(13, 0, 1),
                          t(13, 0, 2))])
    graph = build_graph(flows, dns, inventory)
    [edge] = graph.edges
    assert isinstance(edge.destination, ExternalPeer)
    assert edge.destination.fqdn == "cdn.example.com"
    frame = graph_frame(graph)
    assert frame.loc[0, "cname_chain"] == "cdn.example.com.edgekey.net > e1.a.akamaiedge.net"
    assert frame.loc[0, "destination"] == "cdn.example.com (203.0.113.20)"


def test_undeclared_ports_are_reported(inventory: Inventory) -> None:
    flows = flow_rows([
        ("10.244.2.40", "10.244.1.11", "TCP", 8080, 1, 1, t(13), t(13)),  # declared: http
        ("10.244.2.40", "10.244.1.11", "TCP", 9999, 1, 1, t(13), t(13)),  # admin port
        ("10.244.1.11", "10.244.2.40", "TCP", 7000, 1, 1, t(13), t(13)),  # pod declares none
    ])
    graph = build_graph(flows, None, inventory)
    assert graph.undeclared_ports == (
        UndeclaredPort(DEBUG, "TCP", 7000, pod_declares_ports=False),
        UndeclaredPort(WEB, "TCP", 9999, pod_declares_ports=True),
    )
    named = {e.port: e.port_name for e in graph.edges}
    assert named == {8080: "http", 9999: None, 7000: None}


def test_frame_shape_and_deterministic_order(inventory: Inventory) -> None:
    rows = [
        ("10.244.2.40", "10.96.0.10", "UDP", 53, 7, 14, t(13), t(13, 1)),
        ("10.244.2.40", "10.96.10.10", "TCP", 80, 1, 5, t(13), t(13)),
        ("10.0.0.12", "10.244.2.20", "TCP", 5432, 3, 6, t(13), t(13)),
        ("10.244.2.40", "10.244.2.99", "TCP", 80, 1, 1, t(13), t(13)),
    ]
    first = graph_frame(build_graph(flow_rows(rows), None, inventory))
    second = graph_frame(build_graph(flow_rows(rows[::-1]), None, inventory))
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == GRAPH_COLUMNS
    assert str(first["first_seen"].dtype) == "datetime64[ns, UTC]"
    assert first["port"].dtype == "int64"
    dns = first[first["destination_workload"] == "Deployment/coredns"].iloc[0]
    assert (dns["service"], dns["port_name"], dns["connections"]) == ("kube-system/kube-dns:53",
                                                                      "dns", 7)
    assert dns["evidence"] == "10.244.2.40>10.96.0.10/UDP/53"
    node = first[first["source_kind"] == "node"].iloc[0]
    assert node["source"] == "node/node-b"
    unknown = first[first["destination_kind"] == "cluster-unknown"].iloc[0]
    assert "pod range" in unknown["note"]


def test_flows_without_times_resolve_against_the_inventory(inventory: Inventory) -> None:
    # the four required columns of a flows file; the rest are FlowRow's defaults
    flows = (FlowRow(ip_address("10.244.1.10"), ip_address("10.96.10.10"), Protocol.TCP, 80),)
    graph = build_graph(flows, None, inventory)
    [edge] = graph.edges
    assert workload_of(edge.source) == API  # the IP's current holder
    assert edge.connections == 1
    assert any("without times" in n for n in graph.notes)


def test_empty_flows(inventory: Inventory) -> None:
    graph = build_graph(flow_rows([]), None, inventory)
    assert graph.edges == () and graph.window_start is None
    assert list(graph_frame(graph).columns) == GRAPH_COLUMNS


def test_row_resolving_to_the_same_edge_at_both_ends_counts_once(
        inventory: Inventory) -> None:
    # At 11:00 no api pod existed yet (the selector's workload is used, with a note); at
    # 12:05 the api pod did: the same edge, which must not get the row twice.
    flows = flow_rows([("10.244.2.40", "10.96.10.20", "TCP", 80, 3, 30, t(11), t(12, 5))])
    [edge] = build_graph(flows, None, inventory).edges
    assert workload_of(edge.destination) == API and (edge.connections, edge.packets) == (3, 30)
    assert "selector" in edge.destination.note


POOL = [
    ("10.244.2.40", "10.96.10.10", "TCP", 80),  # web Service
    ("10.244.2.40", "10.244.1.11", "TCP", 8080),  # web pod after DNAT
    ("10.244.2.20", "10.96.10.10", "TCP", 80),
    ("10.244.2.20", "10.244.1.11", "TCP", 8080),
    ("10.244.1.11", "10.96.0.10", "UDP", 53),
    ("10.244.1.11", "10.244.2.2", "UDP", 53),
    ("10.244.1.11", "203.0.113.5", "TCP", 443),
    ("10.0.0.12", "10.244.2.20", "TCP", 5432),
    ("198.51.100.9", "198.51.100.7", "TCP", 443),  # LB IP
    ("198.51.100.9", "10.244.1.11", "TCP", 8080),
]


@given(st.dictionaries(st.sampled_from(range(len(POOL))),
                       st.tuples(st.integers(1, 50), st.integers(0, 500)), min_size=1))
@settings(max_examples=60, deadline=None)
def test_edge_counts_lie_between_the_largest_row_and_the_sum(
        chosen: dict[int, tuple[int, int]]) -> None:
    inventory = load_inventory_files([CLUSTER])
    rows = [(*POOL[i], c, p, t(13), t(13, 1)) for i, (c, p) in sorted(chosen.items())]
    graph = build_graph(flow_rows(rows), None, inventory)
    by_key = {r[:4]: r for r in rows}
    covered = set()
    for edge in graph.edges:
        evidence = [by_key[(str(f.src_ip), str(f.dst_ip), f.protocol, f.dst_port)]
                    for f in edge.evidence]
        covered.update(r[:4] for r in evidence)
        assert max(r[4] for r in evidence) <= edge.connections <= sum(r[4] for r in evidence)
        assert edge.packets <= sum(r[5] for r in evidence)
    assert covered == set(by_key)  # every row is evidence of some edge


def test_rows_without_times_among_rows_with_times(inventory: Inventory) -> None:
    flows = flow_rows([("10.244.1.10", "10.244.2.20", "TCP", 5432, 1, 1, t(11), t(11)),
                         ("10.244.1.10", "10.244.2.20", "TCP", 5433, 1, 1, t(11), t(11))])
    flows = (flows[0], replace(flows[1], first_seen=None, last_seen=None))
    sources = {e.port: workload_of(e.source) for e in build_graph(flows, None, inventory).edges}
    assert sources == {5432: WEB, 5433: API}  # the untimed row: the IP's holder at the end


def relay_inventory() -> tuple[Inventory, datetime, list[WorkloadRef]]:
    """10.244.3.7 held by pod a [0, 10 min), pod b [10, 20), pod c [20, 30); a client
    at 10.244.3.50 the whole time."""
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    owners = [WorkloadRef("ns", "Deployment", name) for name in ("a", "b", "c")]
    pods = [Pod("ns", f"{w.name}-1", w.name, {"app": w.name}, (ip_address("10.244.3.7"),), w,
                created=t0 + timedelta(minutes=10 * i),
                deleted=t0 + timedelta(minutes=10 * (i + 1)))
            for i, w in enumerate(owners)]
    client = WorkloadRef("ns", "Deployment", "client")
    pods.append(Pod("ns", "client-1", "client", {"app": "client"},
                    (ip_address("10.244.3.50"),), client, created=t0))
    return Inventory(pods=tuple(pods)), t0, owners


@pytest.mark.parametrize("side", ["source", "destination"])
def test_every_pod_that_held_an_ip_during_a_row_gets_the_row(side: str) -> None:
    inventory, t0, owners = relay_inventory()
    first, last = t0 + timedelta(minutes=5), t0 + timedelta(minutes=25)
    moving, fixed = "10.244.3.7", "10.244.3.50"
    src, dst = (moving, fixed) if side == "source" else (fixed, moving)
    graph = build_graph(flow_rows([(src, dst, "TCP", 8080, 3, 30, first, last)]), None,
                        inventory)
    ends = {workload_of(e.source if side == "source" else e.destination): e for e in graph.edges}
    assert set(ends) == set(owners)  # b held the IP only in the middle of the row
    assert all((e.connections, e.packets) == (3, 30) for e in ends.values())
    [note] = [n for n in graph.notes if "changed owner" in n]
    assert note.startswith(f"{moving} changed owner between {first.isoformat()}")
    assert note.endswith("counted for each of ns/deployment/a, ns/deployment/b, "
                         "ns/deployment/c")


def test_a_row_inside_one_holding_has_one_owner_and_no_note() -> None:
    inventory, t0, owners = relay_inventory()
    graph = build_graph(flow_rows([("10.244.3.7", "10.244.3.50", "TCP", 8080, 1, 1,
                                      t0 + timedelta(minutes=11),
                                      t0 + timedelta(minutes=19))]), None, inventory)
    assert [workload_of(e.source) for e in graph.edges] == [owners[1]]
    assert not any("changed owner" in n for n in graph.notes)
