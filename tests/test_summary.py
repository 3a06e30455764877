"""Agent summaries: to_dict/from_dict pairs, strict validation, migrations, merging."""

from __future__ import annotations

import copy
import gc
import json
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

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
    Protocol,
)
from discover.flows.flowfiles import OutputError
from discover.flows.flowtable import FlowTable
from discover.flows.summary import (
    KIND,
    SCHEMA_VERSION,
    SummaryError,
    SummaryMeta,
    dumps_summary,
    merge_summaries,
    migrate,
    read_summary,
    summary_from_dict,
    summary_text,
    summary_to_dict,
    write_summary,
)

DATA = Path(__file__).parent / "data" / "summary"
T0 = 1_700_000_000.0


def sample_table() -> FlowTable:
    table = FlowTable()
    for port in (8080, 8080, 9090):
        table.add(
            ConnectionOpen(
                T0 + port / 1000,
                ip_address("10.244.1.7"),
                40000,
                ip_address("10.244.2.9"),
                port,
                Protocol.TCP,
                DirectionEvidence.SYN,
            )
        )
    table.add(
        EdgePackets(T0, T0 + 3, ip_address("fd00::1"), ip_address("fd00::2"), Protocol.UDP, 53, 4)
    )
    table.add(
        DnsAnswer(
            T0 + 0.5,
            ip_address("10.244.1.7"),
            ip_address("10.96.0.10"),
            "api.example.com",
            ("edge.example.net",),
            (
                DnsRecordAddress(ip_address("192.0.2.10"), 60),
                DnsRecordAddress(ip_address("2001:db8::10"), 60),
            ),
            Protocol.UDP,
        )
    )
    return table


def sample_meta(**changes: Any) -> SummaryMeta:
    values: dict[str, Any] = {
        "node_name": "kind-worker",
        "interface": "any",
        "window_start": T0 - 60,
        "window_end": T0 + 3600,
        "counters": {"packets": 1000, "kernel_drops": 2, "parse_errors": 0},
    }
    values.update(changes)
    return SummaryMeta.for_agent(**values)


def sample_doc() -> dict[str, Any]:
    return json.loads(json.dumps(summary_to_dict(sample_table(), sample_meta())))


def test_document_round_trips_through_json() -> None:
    doc = sample_doc()
    assert doc["kind"] == KIND
    assert doc["schema_version"] == SCHEMA_VERSION
    table, meta = summary_from_dict(doc, "agent.json")
    assert summary_to_dict(table, meta) == doc
    assert list(table.flow_rows()) == list(sample_table().flow_rows())
    assert meta.window_start == datetime(2023, 11, 14, 22, 12, 20, tzinfo=UTC)
    assert meta.node_name == "kind-worker"


def test_an_sctp_association_round_trips() -> None:
    table = FlowTable()
    table.add(ConnectionOpen(T0, ip_address("10.244.1.7"), 40000, ip_address("10.244.2.9"),
                             3868, Protocol.SCTP, DirectionEvidence.INIT))
    table.add(EdgePackets(T0, T0 + 1, ip_address("10.244.1.7"), ip_address("10.244.2.9"),
                          Protocol.SCTP, 3868, 5))
    doc = json.loads(json.dumps(summary_to_dict(table, sample_meta())))
    assert [(f["protocol"], f["dst_port"], f["packets"], f["direction"]) for f in doc["flows"]] \
        == [("SCTP", 3868, 5, "init")]
    again, meta = summary_from_dict(doc, "agent.json")
    assert list(again.flow_rows()) == list(table.flow_rows())
    assert summary_to_dict(again, meta) == doc


def test_document_is_deterministic_and_sorted() -> None:
    doc = sample_doc()
    assert [(f["src_ip"], f["dst_port"]) for f in doc["flows"]] == [
        ("10.244.1.7", 8080),
        ("10.244.1.7", 9090),
        ("fd00::1", 53),
    ]
    assert doc["flows"][0]["first_seen"] == "2023-11-14T22:13:28.080000Z"
    assert doc["dns"][0]["cname_chain"] == ["edge.example.net"]
    assert dumps_summary(doc) == dumps_summary(sample_doc())


def test_drop_counters_come_from_the_table_unless_the_meta_has_them() -> None:
    table = FlowTable(max_edges=1)
    table.add(
        ConnectionOpen(
            T0,
            ip_address("10.0.0.1"),
            1,
            ip_address("10.0.0.2"),
            80,
            Protocol.TCP,
            DirectionEvidence.SYN,
        )
    )
    table.add(
        ConnectionOpen(
            T0,
            ip_address("10.0.0.1"),
            1,
            ip_address("10.0.0.3"),
            80,
            Protocol.TCP,
            DirectionEvidence.SYN,
        )
    )
    assert summary_to_dict(table, sample_meta())["counters"]["edges_dropped"] == 1
    with_base = sample_meta(counters={"edges_dropped": 7})
    doc = summary_to_dict(table, with_base)
    assert doc["counters"]["edges_dropped"] == 7
    restored, meta = summary_from_dict(doc, "agent.json")
    # Dropped edges live in the counters only, so a resumed agent doesn't count them twice.
    assert restored.edges_dropped == 0
    assert meta.counters["edges_dropped"] == 7


def test_version0_draft_migrates_to_the_current_document() -> None:
    table, meta = read_summary(DATA / "summary-v0.json")
    expected = json.loads((DATA / "summary-v0-migrated.json").read_text())
    assert summary_to_dict(table, meta) == expected
    assert meta.counters["kernel_drops"] == 3  # "drops" renamed
    flows = {(f["dst_port"], f["direction"], f["connections"]) for f in expected["flows"]}
    assert flows == {(53, "udp-first", 40), (8080, "syn", 15)}  # two v0 edges merged
    (row,) = [r for r in table.dns_rows() if str(r.address) == "192.0.2.10"]
    assert (row.answers, row.ttl, row.cname_chain) == (2, 30, ())  # latest answer wins


def test_migrate_leaves_current_documents_alone() -> None:
    doc = sample_doc()
    assert migrate(doc, "agent.json") is doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["flows"][2].update(dst_port="53"), "flows[2].dst_port: expected an integer"),
        (lambda d: d["flows"][0].update(dst_port=True), "flows[0].dst_port: expected an integer"),
        (
            lambda d: d["flows"][1].update(dst_port=70000),
            "flows[1].dst_port: expected a port number 0-65535, got 70000",
        ),
        (
            lambda d: d["flows"][0].update(protocol="tcp"),
            "flows[0].protocol: expected one of TCP, UDP, SCTP, got 'tcp'",
        ),
        (
            lambda d: d["flows"][0].update(src_ip="10.0.0.300"),
            "flows[0].src_ip: expected an IP address, got '10.0.0.300'",
        ),
        (
            lambda d: d["flows"][0].update(direction="guess"),
            "flows[0].direction: expected one of syn, init, syn-ack, init-ack, established, "
            "flow-log, udp-first, inferred, got 'guess'",
        ),
        (
            lambda d: d["flows"][0].update(first_seen="2099-01-01T00:00:00Z"),
            "flows[0].first_seen: is after last_seen",
        ),
        (lambda d: d["flows"][0].pop("packets"), "flows[0].packets: missing"),
        (lambda d: d["flows"][0].update(extra=1), "flows[0].extra: unknown field"),
        (
            lambda d: d["dns"][1].update(name="API.example.com"),
            "dns[1].name: expected a lower-case name without trailing dot, got 'API.example.com'",
        ),
        (
            lambda d: d["dns"][0]["cname_chain"].append(5),
            "dns[0].cname_chain[1]: expected a string",
        ),
        (
            lambda d: d["dns"][0].update(last_seen="2023-11-14 22:13"),
            "dns[0].last_seen: expected a time with a zone (…Z), got '2023-11-14 22:13'",
        ),
        (
            lambda d: d["flows"][1].update(last_seen="2300-01-01T00:00:00Z"),
            "flows[1].last_seen: expected a time from 1970 to 2262, got '2300-01-01T00:00:00Z'",
        ),
        (
            lambda d: d["dns"][0].update(first_seen="0001-01-01T00:00:00+01:00"),
            "dns[0].first_seen: expected a time from 1970 to 2262",
        ),
        (
            lambda d: d["window"].update(start="soon"),
            "window.start: expected an ISO-8601 time, got 'soon'",
        ),
        (
            lambda d: d["counters"].update(packets=-1),
            "counters.packets: expected an integer >= 0, got -1",
        ),
        (lambda d: d.update(flows={}), "flows: expected an array"),
        (lambda d: d.update(agent=[]), "agent: expected an object"),
        (
            lambda d: d.update(kind="something-else"),
            "kind: expected 'netpol-discover-summary', got 'something-else'",
        ),
        (lambda d: d.update(color="blue"), "color: unknown field"),
        (lambda d: d.pop("window"), "window: missing"),
        (
            lambda d: d.pop("schema_version"),
            "schema_version: missing; is this a netpol-discover summary?",
        ),
        (lambda d: d.update(schema_version=3), "schema_version: version 3 is newer"),
        (lambda d: d.update(schema_version=-1), "schema_version: unknown version -1"),
    ],
)
def test_bad_documents_name_the_source_and_json_path(change: Any, message: str) -> None:
    doc = sample_doc()
    change(doc)
    with pytest.raises(SummaryError) as raised:
        summary_from_dict(doc, "summary.json")
    assert str(raised.value).startswith(f"summary.json: {message}")
    assert isinstance(raised.value, ReadError)


def test_bad_version0_documents_name_the_draft_path() -> None:
    doc = json.loads((DATA / "summary-v0.json").read_text())
    broken = copy.deepcopy(doc)
    broken["edges"][1] = ["10.0.0.1", "10.0.0.2", "tcp", 80]
    with pytest.raises(SummaryError, match=r"^old\.json: edges\[1\]: expected \[src, dst"):
        summary_from_dict(broken, "old.json")
    broken = copy.deepcopy(doc)
    broken["dns"][0]["time"] = "noon"
    with pytest.raises(SummaryError, match=r"^old\.json: dns\[0\]\.time: expected epoch"):
        summary_from_dict(broken, "old.json")


def test_not_an_object_at_all() -> None:
    with pytest.raises(SummaryError, match="^s.json: expected a JSON object$"):
        summary_from_dict([1, 2], "s.json")


def test_read_summary_reports_json_syntax_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_text('{\n "kind": "netpol-discover-summary",\n "schema_version" 1\n}\n')
    with pytest.raises(ReadError, match=r"agent\.json: line 3 column 19: invalid JSON"):
        read_summary(path)
    path.write_bytes(b"{\xff}")
    with pytest.raises(ReadError, match="not UTF-8 text"):
        read_summary(path)
    with pytest.raises(ReadError, match="cannot read"):
        read_summary(tmp_path / "absent.json")
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ReadError, match="nested too deeply"):
        read_summary(path)


def test_write_then_read_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_summary(sample_table(), sample_meta(), path)
    table, meta = read_summary(path)
    assert list(table.dns_rows()) == list(sample_table().dns_rows())
    assert meta.counters["packets"] == 1000
    with pytest.raises(OutputError, match="cannot write"):
        write_summary(sample_table(), sample_meta(), tmp_path / "missing" / "summary.json")


def test_merge_summaries_spans_windows_and_sums_counters() -> None:
    first = (sample_table(), sample_meta(node_name="b-node", window_start=T0 - 100))
    second = (
        sample_table(),
        sample_meta(
            node_name="a-node", window_end=T0 + 7200, counters={"packets": 5, "edges_dropped": 1}
        ),
    )
    table, meta = merge_summaries([first, second])
    assert meta.node_name == "a-node,b-node"
    assert meta.window_start == datetime.fromtimestamp(T0 - 100, UTC)
    assert meta.window_end == datetime.fromtimestamp(T0 + 7200, UTC)
    assert meta.counters["packets"] == 1005
    assert meta.counters["edges_dropped"] == 1
    assert [r.connections for r in table.flow_rows()] == [4, 2, 0]


def test_the_drop_breakdown_comes_from_the_table_only_beside_its_total() -> None:
    # A table whose UDP budget refused a flow start: the breakdown is written with its total.
    table = FlowTable(max_edges=4, max_udp_edges=1, max_udp_edges_per_source=5)
    for port in (1000, 1001):
        table.add(ConnectionOpen(T0, ip_address("10.0.0.1"), 1, ip_address("10.0.0.2"), port,
                                 Protocol.UDP, DirectionEvidence.UDP_FIRST))  # fmt: skip
    counters = summary_to_dict(table, sample_meta())["counters"]
    assert {k: v for k, v in counters.items() if "dropped" in k} == {
        "edges_dropped": 1, "edges_dropped_udp": 1, "dns_rows_dropped": 0,
    }  # fmt: skip
    # An older agent's total has no breakdown, and none is made up beside it when merged.
    old = (FlowTable(), sample_meta(counters={"edges_dropped": 500}))
    new = (FlowTable(), sample_meta(counters={"edges_dropped": 10, "edges_dropped_tcp": 10,
                                              "edges_dropped_udp": 0}))  # fmt: skip
    merged = summary_to_dict(*merge_summaries([old, new]))["counters"]
    assert (merged["edges_dropped"], merged["edges_dropped_tcp"]) == (510, 10)
    alone = summary_to_dict(*merge_summaries([old]))["counters"]
    assert "edges_dropped_tcp" not in alone and alone["edges_dropped"] == 500


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(0, 65535),
            st.sampled_from(list(Protocol)),
            st.sampled_from(list(DirectionEvidence)),
            st.floats(0, 4e9),
        ),
        max_size=20,
    )
)
def test_any_table_round_trips(
    edges: list[tuple[int, int, Protocol, DirectionEvidence, float]],
) -> None:
    table = FlowTable()
    for address, port, protocol, evidence, time in edges:
        table.add(
            ConnectionOpen(
                time, ip_address(address), 1, ip_address("10.0.0.1"), port, protocol, evidence
            )
        )
    doc = json.loads(json.dumps(summary_to_dict(table, SummaryMeta())))
    again = summary_to_dict(*summary_from_dict(doc, "h.json"))
    assert again == doc


def test_the_documented_example_is_a_valid_summary() -> None:
    text = (Path(__file__).parent.parent / "docs" / "summary-format.md").read_text()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    doc = json.loads(example)
    table, meta = summary_from_dict(doc, "docs/summary-format.md")
    assert summary_to_dict(table, meta) == doc  # also: the doc lists rows in written order
    assert meta.agent_name == "netpol-discover-agent-x7k2p"
    assert table.edge_count == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 65535), st.floats(0, 4e9),
                  st.sampled_from(list(Protocol)), st.sampled_from(list(DirectionEvidence))),
        max_size=5,
    ),
    st.lists(st.text(max_size=12), max_size=3),
    st.text(max_size=12),
)
def test_summary_text_is_the_bytes_of_the_whole_document(
    edges: list[tuple[int, int, float, Protocol, DirectionEvidence]], chain: list[str], node: str
) -> None:
    # Any rows (none at all too) and any text, line breaks and quotes included.
    table = FlowTable()
    for address, port, time, protocol, evidence in edges:
        table.add(ConnectionOpen(time, ip_address(address), 1, ip_address("10.0.0.1"), port,
                                 protocol, evidence))  # fmt: skip
        table.add(EdgePackets(time, time + 1, ip_address("fd00::1"), ip_address(address),
                              protocol, port, 3))  # fmt: skip
        table.add(DnsAnswer(time, ip_address(address), ip_address("10.96.0.10"), "a.example",
                            tuple(chain), (DnsRecordAddress(ip_address("192.0.2.1"), port),),
                            Protocol.UDP))  # fmt: skip
    meta = sample_meta(node_name=node, counters={"packets": len(edges), node: 1})
    whole = dumps_summary(summary_to_dict(table, meta))
    assert "".join(summary_text(table, meta)) == whole
    assert "".join(summary_text(sample_table(), sample_meta())) == dumps_summary(sample_doc())


def test_merge_summaries_folds_each_part_before_the_next_is_made() -> None:
    # A generator reading one agent at a time: the tables already merged are gone.
    made: list[weakref.ref[FlowTable]] = []

    def parts() -> Iterator[tuple[FlowTable, SummaryMeta]]:
        for index in range(5):
            gc.collect()
            assert [ref() is None for ref in made[:-1]] == [True] * len(made[:-1])
            table = sample_table()
            made.append(weakref.ref(table))
            yield table, sample_meta(node_name=f"node-{index}")

    table, meta = merge_summaries(parts())
    assert len(made) == 5
    assert [r.connections for r in table.flow_rows()] == [10, 5, 0]
    assert meta.node_name == ",".join(f"node-{i}" for i in range(5))
