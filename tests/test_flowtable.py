"""FlowTable aggregation, caps, merging, frames, and flow files on disk."""

from __future__ import annotations

import pickle
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.errors import ReadError
from discover.flows.events import (
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    DnsRecordAddress,
    EdgePackets,
    IPAddress,
    Protocol,
)
from discover.flows.flowfiles import (
    FlowsFileError,
    OutputError,
    read_flow_rows,
    read_flows_file,
    write_flow_table,
    write_table,
)
from discover.flows.flowtable import DNS_COLUMNS, FLOW_COLUMNS, FlowTable
from discover.inventory.files import load_inventory_files
from discover.netpol import PolicyEvaluator
from discover.netpol.files import load_policy_file
from discover.verification.verify import verify_flows

T0 = 1_700_000_000.0
A = IPv4Address("10.0.0.2")
B = IPv4Address("10.0.0.10")
C = IPv4Address("10.0.0.9")
V6 = IPv6Address("fd00::5")

FLOW_DTYPES = {
    "src_ip": "str",
    "dst_ip": "str",
    "protocol": "str",
    "dst_port": "int64",
    "connections": "int64",
    "packets": "int64",
    "first_seen": "datetime64[ns, UTC]",
    "last_seen": "datetime64[ns, UTC]",
    "direction": "str",
    "outcome": "str",
}
DNS_DTYPES = {
    "client_ip": "str",
    "name": "str",
    "address": "str",
    "cname_chain": "str",
    "server_ip": "str",
    "ttl": "int64",
    "answers": "int64",
    "first_seen": "datetime64[ns, UTC]",
    "last_seen": "datetime64[ns, UTC]",
}


def conn(
    time: float,
    client: IPAddress = A,
    server: IPAddress = B,
    port: int = 80,
    protocol: Protocol = Protocol.TCP,
    evidence: DirectionEvidence = DirectionEvidence.SYN,
) -> ConnectionOpen:
    return ConnectionOpen(time, client, 40000, server, port, protocol, evidence)


def packets(
    first: float, last: float, count: int, client: IPAddress = A, server: IPAddress = B
) -> EdgePackets:
    return EdgePackets(first, last, client, server, Protocol.TCP, 80, count)


def answer(
    time: float,
    name: str,
    *addresses: str,
    chain: tuple[str, ...] = (),
    ttl: int = 30,
    server: str = "10.96.0.10",
) -> DnsAnswer:
    records = tuple(DnsRecordAddress(ip_address(a), ttl) for a in addresses)
    return DnsAnswer(time, A, ip_address(server), name, chain, records, Protocol.UDP)


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


def test_connections_and_packets_fold_into_one_edge() -> None:
    table = FlowTable()
    table.add(conn(T0 + 5, evidence=DirectionEvidence.SYN_ACK))
    table.add(packets(T0 + 5, T0 + 9, 12))
    table.add(conn(T0 + 1, evidence=DirectionEvidence.SYN))
    table.add(packets(T0 + 20, T0 + 30, 3))
    assert table.edge_count == 1
    (row,) = table.flow_rows()
    assert (row.connections, row.packets) == (2, 15)
    assert (row.first_seen, row.last_seen) == (T0 + 1, T0 + 30)
    assert row.direction is DirectionEvidence.SYN  # the best evidence any connection had


def test_packets_before_their_connection_give_the_weakest_direction() -> None:
    table = FlowTable()
    table.add(packets(T0, T0 + 1, 4))
    (row,) = table.flow_rows()
    assert (row.connections, row.packets, row.direction) == (0, 4, DirectionEvidence.INFERRED)
    table.add(conn(T0 + 2, evidence=DirectionEvidence.UDP_FIRST))
    (row,) = table.flow_rows()
    assert row.direction is DirectionEvidence.UDP_FIRST


def test_memory_grows_with_edges_not_events() -> None:
    table = FlowTable()
    for i in range(10_000):
        table.add(conn(T0 + i))
    assert table.edge_count == 1
    assert next(table.flow_rows()).connections == 10_000


def test_cap_drops_new_edges_but_existing_edges_keep_counting() -> None:
    table = FlowTable(max_edges=2)
    table.add(conn(T0, port=1))
    table.add(conn(T0, port=2))
    table.add(conn(T0, port=3))
    table.add(packets(T0, T0, 5, server=C))
    table.add(conn(T0 + 1, port=1))
    assert table.edge_count == 2
    assert table.edges_dropped == 2
    assert [r.connections for r in table.flow_rows()] == [2, 1]


def test_dns_cap_counts_dropped_rows() -> None:
    table = FlowTable(max_edges=10, max_dns_rows=1)
    table.add(answer(T0, "a.example.com", "192.0.2.1", "192.0.2.2"))
    assert (table.dns_row_count, table.dns_rows_dropped) == (1, 1)


def test_dns_rows_keep_the_latest_answer_values() -> None:
    table = FlowTable()
    table.add(answer(T0 + 10, "api.example.com", "192.0.2.1", chain=("new.cdn.net",), ttl=60))
    table.add(answer(T0, "api.example.com", "192.0.2.1", chain=("old.cdn.net",), ttl=5))
    table.add(answer(T0 + 3, "api.example.com", "192.0.2.2"))
    rows = list(table.dns_rows())
    assert [(str(r.address), r.answers) for r in rows] == [("192.0.2.1", 2), ("192.0.2.2", 1)]
    assert rows[0].cname_chain == ("new.cdn.net",)
    assert rows[0].ttl == 60
    assert (rows[0].first_seen, rows[0].last_seen) == (T0, T0 + 10)


def test_frames_have_contract_dtypes_and_numeric_sort() -> None:
    table = FlowTable()
    table.add(conn(T0, client=V6, server=V6, port=443))
    table.add(
        conn(
            T0,
            client=A,
            server=B,
            port=80,
            protocol=Protocol.UDP,
            evidence=DirectionEvidence.UDP_FIRST,
        )
    )
    table.add(conn(T0, client=A, server=B, port=53))
    table.add(conn(T0 + 0.25, client=A, server=C, port=8080))
    table.add(answer(T0, "z.example.com", "192.0.2.9", chain=("a.net", "b.net")))
    table.add(answer(T0, "a.example.com", "2001:db8::1"))
    flows = table.flows_frame()
    assert list(flows.columns) == FLOW_COLUMNS
    assert dtypes(flows) == FLOW_DTYPES
    # 10.0.0.9 sorts before 10.0.0.10 (numerically), IPv4 before IPv6, then protocol, port.
    assert flows[["dst_ip", "protocol", "dst_port"]].values.tolist() == [
        ["10.0.0.9", "TCP", 8080],
        ["10.0.0.10", "TCP", 53],
        ["10.0.0.10", "UDP", 80],
        ["fd00::5", "TCP", 443],
    ]
    assert flows["first_seen"][0] == pd.Timestamp(T0 + 0.25, unit="s", tz="UTC")
    dns_rows = table.dns_frame()
    assert list(dns_rows.columns) == DNS_COLUMNS
    assert dtypes(dns_rows) == DNS_DTYPES
    assert dns_rows["cname_chain"].tolist() == ["", "a.net > b.net"]


def test_empty_frames_have_contract_dtypes() -> None:
    assert dtypes(FlowTable().flows_frame()) == FLOW_DTYPES
    assert dtypes(FlowTable().dns_frame()) == DNS_DTYPES
    assert FlowTable().time_range() is None


event_strategy = st.one_of(
    st.builds(
        conn,
        st.floats(0, 1000),
        st.sampled_from([A, B, C, V6]),
        st.sampled_from([A, B, C]),
        st.sampled_from([53, 80]),
        st.sampled_from(list(Protocol)),
        st.sampled_from(list(DirectionEvidence)),
    ),
    st.builds(
        lambda first, span, count, client: packets(first, first + span, count, client=client),
        st.floats(0, 1000),
        st.floats(0, 10),
        st.integers(1, 50),
        st.sampled_from([A, C, V6]),
    ),
    st.builds(
        lambda time, name, address: answer(time, name, address),
        st.floats(0, 1000),
        st.sampled_from(["a.io", "b.io"]),
        st.sampled_from(["192.0.2.1", "2001:db8::2"]),
    ),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(event_strategy, max_size=40), st.integers(0, 40))
def test_merging_split_tables_equals_one_table(events: list, split: int) -> None:
    whole, left, right = FlowTable(), FlowTable(), FlowTable()
    whole.add_all(events)
    left.add_all(events[:split])
    right.add_all(events[split:])
    left.merge(right)
    assert list(left.flow_rows()) == list(whole.flow_rows())
    merged_dns = [
        (r.client_ip, r.name, r.address, r.answers, r.first_seen, r.last_seen)
        for r in left.dns_rows()
    ]
    whole_dns = [
        (r.client_ip, r.name, r.address, r.answers, r.first_seen, r.last_seen)
        for r in whole.dns_rows()
    ]
    assert merged_dns == whole_dns


def test_merge_respects_the_cap_and_sums_drops() -> None:
    capped = FlowTable(max_edges=1)
    capped.add(conn(T0, port=1))
    other = FlowTable(max_edges=1)
    other.add(conn(T0, port=1))
    other.add(conn(T0, port=2))  # dropped in `other`
    capped.merge(other)
    assert capped.edge_count == 1
    assert capped.edges_dropped == 1
    other.add(conn(T0, port=1))
    capped.merge(other)
    assert capped.edges_dropped == 2  # 1 carried over again, 0 new edges
    assert next(capped.flow_rows()).connections == 4


def test_table_survives_pickling() -> None:
    table = FlowTable(max_edges=5)
    table.add(conn(T0))
    table.add(answer(T0, "a.example.com", "192.0.2.1"))
    copy = pickle.loads(pickle.dumps(table))
    assert list(copy.flow_rows()) == list(table.flow_rows())
    assert list(copy.dns_rows()) == list(table.dns_rows())
    assert copy.max_edges == 5


def test_unknown_events_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        FlowTable().add("not an event")  # type: ignore[arg-type]


# -- files ------------------------------------------------------------------------------


def sample_frame() -> pd.DataFrame:
    table = FlowTable()
    table.add(conn(T0 + 0.123456))
    table.add(conn(T0, client=V6, server=V6, port=443, evidence=DirectionEvidence.INFERRED))
    table.add(packets(T0, T0 + 2, 9))
    return table.flows_frame()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_written_flows_read_back_identical(tmp_path: Path, suffix: str) -> None:
    frame = sample_frame()
    path = tmp_path / f"flows{suffix}"
    write_table(frame, path)
    pd.testing.assert_frame_equal(read_flows_file(path), frame)


def test_csv_times_are_iso8601_utc(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    write_table(sample_frame(), path)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(FLOW_COLUMNS)
    assert lines[1] == (
        "10.0.0.2,10.0.0.10,TCP,80,1,9,2023-11-14T22:13:20.000000Z,2023-11-14T22:13:22.000000Z,syn,unknown"
    )


def test_a_file_with_only_the_four_contract_columns_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "src_ip,dst_ip,protocol,dst_port,workload\n"
        "10.0.0.1, 10.0.0.2,tcp,443,web\n\n2001:DB8::1,2001:db8::2,UDP,53,dns\n"
    )
    frame = read_flows_file(path)
    assert list(frame.columns) == [*FLOW_COLUMNS, "workload"]
    assert frame["src_ip"].tolist() == ["10.0.0.1", "2001:db8::1"]
    assert frame["protocol"].tolist() == ["TCP", "UDP"]
    assert frame["connections"].tolist() == [1, 1]
    assert frame["direction"].tolist() == ["inferred", "inferred"]
    assert frame["outcome"].tolist() == ["unknown", "unknown"]
    assert frame["first_seen"].isna().all()
    assert dtypes(frame[FLOW_COLUMNS]) == FLOW_DTYPES


def test_a_flows_file_with_sctp_rows_reads(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "src_ip,dst_ip,protocol,dst_port,direction\n"
        "10.0.0.1,10.0.0.2,sctp,3868,init\n10.0.0.1,10.0.0.3,SCTP,38412,init-ack\n"
        "10.0.0.1,10.0.0.4,TCP,80,syn\n"
    )
    frame = read_flows_file(path)
    assert frame["protocol"].tolist() == ["SCTP", "SCTP", "TCP"]
    assert frame["direction"].tolist() == ["init", "init-ack", "syn"]
    assert frame["dst_port"].tolist() == [3868, 38412, 80]


def test_an_sctp_edge_keeps_its_best_evidence_and_writes_back(tmp_path: Path) -> None:
    table = FlowTable()
    for evidence in (DirectionEvidence.INIT_ACK, DirectionEvidence.INIT):
        table.add(ConnectionOpen(T0, ip_address("10.0.0.2"), 40000, ip_address("10.0.0.10"),
                                 3868, Protocol.SCTP, evidence))
    frame = table.flows_frame()
    assert frame[["protocol", "connections", "direction"]].values.tolist() == [
        ["SCTP", 2, "init"]]
    path = tmp_path / "flows.csv"
    write_table(frame, path)
    pd.testing.assert_frame_equal(read_flows_file(path), frame)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "src_ip,dst_ip,protocol,dst_port\n10.0.0.1,10.0.0.2,TCP,80\n10.0.0.1,10.0.0.2,TCP,http\n",
            "flows.csv: line 3: dst_port: expected a port number 0-65535, got 'http'",
        ),
        (
            "src_ip,dst_ip,protocol,dst_port\n10.0.0.1,10.0.0.2,TCP,80\n\n10.0.0.x,10.0.0.2,TCP,1\n",
            "flows.csv: line 4: src_ip: expected an IP address, got '10.0.0.x'",
        ),
        (
            "src_ip,dst_ip,protocol,dst_port\n10.0.0.1,10.0.0.2,ICMP,0\n",
            "flows.csv: line 2: protocol: expected TCP, UDP or SCTP, got 'ICMP'",
        ),
        (
            "src_ip,dst_ip,protocol,dst_port\n10.0.0.1,10.0.0.2,TCP,70000\n",
            "flows.csv: line 2: dst_port: expected a port number 0-65535, got '70000'",
        ),
        (
            "src_ip,dst_ip,protocol,dst_port,first_seen\n10.0.0.1,10.0.0.2,TCP,1,\n"
            "10.0.0.1,10.0.0.2,TCP,1,yesterday\n",
            "flows.csv: line 3: first_seen: expected an ISO-8601 time, got 'yesterday'",
        ),
        (
            "src_ip,dst_ip,proto,port\n10.0.0.1,10.0.0.2,TCP,80\n",
            "flows.csv: missing column(s) protocol, dst_port; a flows file needs at least "
            "src_ip,dst_ip,protocol,dst_port",
        ),
        ("", "flows.csv: empty file; expected a header line"),
    ],
    ids=["port", "ip-after-blank-line", "protocol", "port-range", "time", "columns", "empty"],
)
def test_bad_flow_files_name_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(content)
    with pytest.raises(ReadError) as raised:
        read_flows_file(path)
    assert str(raised.value) == message.replace("flows.csv", str(path), 1)


def test_bad_parquet_row_is_named_by_row(tmp_path: Path) -> None:
    path = tmp_path / "flows.parquet"
    pd.DataFrame(
        {
            "src_ip": ["10.0.0.1", "10.0.0.1"],
            "dst_ip": ["10.0.0.2", "nope"],
            "protocol": ["TCP", "TCP"],
            "dst_port": [80, 81],
        }
    ).to_parquet(path)
    with pytest.raises(FlowsFileError, match=r"flows.parquet: line 2: dst_ip: expected an IP"):
        read_flows_file(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="cannot read"):
        read_flows_file(tmp_path / "absent.csv")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1" + b"\x00" * 40)
    with pytest.raises(ReadError, match="junk.parquet: not a readable Parquet file"):
        read_flows_file(junk)


def test_write_table_refuses_unknown_extensions_and_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"flows\.xlsx: unknown output format"):
        write_table(sample_frame(), tmp_path / "flows.xlsx")
    with pytest.raises(OutputError, match="cannot write"):
        write_table(sample_frame(), tmp_path / "missing" / "flows.csv")


@pytest.mark.parametrize("which", ["flows", "dns"])
def test_direct_csv_is_byte_for_byte_what_write_table_writes(tmp_path: Path, which: str) -> None:
    table = FlowTable()
    table.add(conn(0.0000005))  # rounds half to even at the microsecond, like numpy
    table.add(conn(T0 + 0.1234565, client=V6, server=V6, port=443))
    table.add(packets(T0 - 86400 * 365 * 30, T0 + 2.999999, 9))
    table.add(answer(T0 + 1e-7, "a,b.example.com", "192.0.2.1", chain=('q"uote.net', "x.net")))
    table.add(answer(T0, "a.example.com", "2001:db8::1"))
    direct, framed = tmp_path / "direct.csv", tmp_path / "framed.csv"
    rows = write_flow_table(table, direct, which)
    frame = table.flows_frame() if which == "flows" else table.dns_frame()
    write_table(frame, framed)
    assert direct.read_bytes() == framed.read_bytes()
    assert rows == len(frame)


def test_write_goes_through_write_table_for_parquet_and_refuses_other_names(
    tmp_path: Path,
) -> None:
    table = FlowTable()
    table.add(conn(T0))
    assert write_flow_table(table, tmp_path / "flows.parquet") == 1
    assert len(read_flows_file(tmp_path / "flows.parquet")) == 1
    with pytest.raises(OutputError, match="unknown output format"):
        write_flow_table(table, tmp_path / "flows.json")


def test_reading_many_rows_parses_each_distinct_value_once(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    body = "".join(f"10.0.{i % 250}.{i % 7},10.1.0.1,tcp,{80 + i % 3}\n" for i in range(5000))
    path.write_text("src_ip,dst_ip,protocol,dst_port\n" + body + "10.0.0.1,10.1.0.1,tcp,x\n")
    with pytest.raises(FlowsFileError, match=r"line 5002: dst_port: expected a port number"):
        read_flows_file(path)
    path.write_text("src_ip,dst_ip,protocol,dst_port\n" + body)
    frame = read_flows_file(path)
    assert len(frame) == 5000
    assert frame["dst_port"].tolist()[:4] == [80, 81, 82, 80]


def test_ipv4_mapped_addresses_are_read_as_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "src_ip,dst_ip,protocol,dst_port\n"
        "::ffff:af4:b,::FFFF:10.244.0.13,TCP,5432\n"
        "2001:db8::1,::ffff:0:a00:1,TCP,443\n"  # not mapped (::ffff:0:/96 is translated)
    )
    frame = read_flows_file(path)
    assert frame["src_ip"].tolist() == ["10.244.0.11", "2001:db8::1"]
    assert frame["dst_ip"].tolist() == ["10.244.0.13", "::ffff:0:a00:1"]


def test_verify_matches_a_mapped_address_to_its_ipv4_pod(tmp_path: Path) -> None:
    netpol = Path(__file__).parent / "data" / "netpol"
    inventory = load_inventory_files([netpol / "shop-inventory.json"])
    evaluator = PolicyEvaluator(load_policy_file(netpol / "policies.yaml").policies)
    path = tmp_path / "flows.csv"
    # shop/api (10.244.0.11) to shop/db (10.244.0.13): allowed by the sample policies.
    path.write_text("src_ip,dst_ip,protocol,dst_port\n::ffff:af4:b,::ffff:af4:d,TCP,5432\n")
    [verdict] = verify_flows(read_flow_rows(path), evaluator, inventory)
    assert verdict.allowed, verdict.reason
    assert (verdict.source, verdict.destinations) == ("shop/api", ("shop/db:5432",))
