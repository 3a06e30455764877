"""Hubble flow files in: sniffing, records, connections, DNS, blocked flows, bad lines.

tests/data/hubble/ holds small exports written for the cases the public corpus lacks
(two nodes, DROPPED, AUDIT, IPv6, SCTP, RST, L7 DNS, destination_service, gzip, the bare
and lowerCamelCase forms, damaged lines); the public exports are read at the end.
"""

from __future__ import annotations

import json
from ipaddress import ip_address
from pathlib import Path

import pytest

from discover.flows.events import DirectionEvidence, Outcome, Protocol
from discover.flows.sources import load_inputs, read_input, sniff_format
from discover.reading.hubble_records import NotAFlow, Verdict, parse_flow, parse_time

DATA = Path(__file__).parent / "data" / "hubble"


def _rows(path: Path) -> dict[tuple[str, str, str, int], tuple[int, str, str]]:
    result = read_input(path)
    assert result.table is not None
    return {
        (str(r.src_ip), str(r.dst_ip), r.protocol.value, r.dst_port):
        (r.connections, r.direction.value, r.outcome.value)
        for r in result.table.flow_rows()
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [("two-nodes.json", "hubble"), ("two-nodes.json.gz", "hubble.gz"),
     ("bare-camel.json", "hubble")],
)
def test_sniffed_by_content(name: str, kind: str, tmp_path: Path) -> None:
    assert sniff_format(DATA / name) == kind
    renamed = tmp_path / "capture.pcap"  # the name says nothing
    renamed.write_bytes((DATA / name).read_bytes())
    assert sniff_format(renamed) == kind


def test_a_summary_is_still_a_summary(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    summary.write_text(json.dumps({"schema_version": 2, "flows": []}))
    assert sniff_format(summary) == "summary"


def test_two_nodes_one_connection_each() -> None:
    rows = _rows(DATA / "two-nodes.json")
    # The first SYN at four observation points on two nodes and a SYN-ACK at two: one
    # connection; a second source port: another.
    assert rows[("10.0.1.5", "10.0.2.7", "TCP", 8080)] == (2, "syn", "completed")
    assert rows[("10.0.1.5", "10.0.2.7", "TCP", 9000)] == (1, "syn", "refused")
    assert rows[("fd00:10::5", "fd00:20::7", "TCP", 8443)] == (1, "syn", "completed")
    assert rows[("10.0.2.7", "10.0.2.9", "SCTP", 3868)] == (1, "flow-log", "completed")
    assert rows[("10.0.1.5", "10.0.1.53", "UDP", 53)] == (1, "udp-first", "completed")
    # AUDIT happened (would have been dropped when enforcing): it is a connection
    assert rows[("10.0.2.7", "10.0.2.9", "TCP", 5433)] == (1, "syn", "completed")
    # DROPPED never is, and ICMP has no port
    assert ("10.0.2.7", "10.0.2.9", "TCP", 5432) not in rows
    assert len(rows) == 9


def test_gzip_and_plain_give_the_same_table() -> None:
    assert _rows(DATA / "two-nodes.json.gz") == _rows(DATA / "two-nodes.json")


def test_bare_flows_camel_case_and_numeric_enums() -> None:
    rows = _rows(DATA / "bare-camel.json")
    assert rows == {("10.0.1.5", "10.0.2.7", "TCP", 8080): (1, "syn", "completed")}


def test_dns_answers_from_l7_records() -> None:
    result = read_input(DATA / "two-nodes.json")
    assert result.table is not None
    dns = list(result.table.dns_rows())
    assert {(str(d.client_ip), d.name, str(d.address), d.cname_chain, d.ttl) for d in dns} == {
        ("10.0.1.5", "payments.example.com", "203.0.113.10", ("edge.example.net",), 300),
        ("10.0.1.5", "payments.example.com", "2001:db8::10", ("edge.example.net",), 300),
    }
    assert {str(d.server_ip) for d in dns} == {"10.0.1.53"}


def test_blocked_services_and_audit_are_facts() -> None:
    facts = read_input(DATA / "two-nodes.json").hubble
    assert facts is not None
    (blocked,) = facts.blocked
    assert (str(blocked.client_ip), str(blocked.server_ip), blocked.port) == \
        ("10.0.2.7", "10.0.2.9", 5432)
    assert blocked.reason == "POLICY_DENIED"
    assert blocked.policies == ("CiliumNetworkPolicy shop/db-lockdown",)
    assert blocked.flows == 2 and blocked.client == "shop/api-5f6d7c8b9-xyz12"
    assert [(s.namespace, s.name, s.port) for s in facts.services] == [("shop", "api", 8080)]
    assert facts.audited == 1


def test_damaged_lines_are_warnings_with_line_numbers() -> None:
    result = read_input(DATA / "damaged.json")
    assert result.stats is not None and result.hubble is not None
    path = DATA / "damaged.json"
    assert result.warnings[0].startswith(f"{path}: line 2: not JSON")
    assert result.warnings[1] == f"{path}: line 4: not a JSON object; line skipped"
    assert result.stats.counters["bad_lines"] == 2
    assert result.hubble.flows_lost == 17
    assert result.stats.edges == 1


def test_many_files_in_parallel_merge_like_one(tmp_path: Path) -> None:
    lines = (DATA / "two-nodes.json").read_text().splitlines()
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text("\n".join(lines[:14]) + "\n")
    second.write_text("\n".join(lines[14:]) + "\n")
    loaded = load_inputs([first, second], jobs=2)
    assert [f.format for f in loaded.files] == ["hubble", "hubble"]
    assert loaded.hubble is not None and len(loaded.hubble.blocked) == 1
    assert loaded.hubble.files == (str(first), str(second))
    edges = {(str(r.src_ip), r.dst_port) for r in loaded.table.flow_rows()}
    assert ("10.0.1.5", 8080) in edges and ("fd00:10::5", 8443) in edges


def test_a_file_with_no_flow_is_a_warning(tmp_path: Path) -> None:
    empty = tmp_path / "status.json"
    empty.write_text('{"node_status":{"state":"NODE_CONNECTED"}}\n')
    result = read_input(empty)
    assert result.table is None
    assert result.warnings == (f"{empty}: no Hubble flow in it",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2021-06-16T16:52:13.136834446Z", 1623862333.136834446),
     ("2021-06-16T16:52:13Z", 1623862333.0),
     ("2021-06-16T18:52:13.5+02:00", 1623862333.5)],
)
def test_times_to_the_nanosecond(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds, abs=1e-6)


def test_records_read_reply_flags_and_verdicts() -> None:
    flow = parse_flow({"flow": {
        "time": "2024-01-01T00:00:00Z", "verdict": "REDIRECTED", "reply": True,
        "IP": {"source": "10.0.0.1", "destination": "10.0.0.2"},
        "l4": {"UDP": {"source_port": 53, "destination_port": 40000}},
    }, "node_name": "n1"})
    assert flow.is_reply is True and flow.verdict is Verdict.REDIRECTED
    assert flow.verdict.happened and flow.node_name == "n1"
    assert flow.protocol is Protocol.UDP and flow.src_ip == ip_address("10.0.0.1")
    with pytest.raises(NotAFlow):
        parse_flow({"flow": {"time": "2024-01-01T00:00:00Z", "verdict": "FORWARDED"}})
    with pytest.raises(ValueError, match="port"):
        parse_flow({"time": "2024-01-01T00:00:00Z", "IP": {"source": "10.0.0.1",
                    "destination": "10.0.0.2"}, "l4": {"TCP": {"source_port": 70000}}})


def test_evidence_and_outcome_values_exist() -> None:
    # The flow-log evidence sits between the agent's and the UDP first datagram's.
    assert DirectionEvidence("flow-log") is DirectionEvidence.FLOW_LOG
    assert Outcome("unknown") is Outcome.UNKNOWN


# -- the public exports -------------------------------------------------------------------

CORPUS_FILES = [
    "basic-sample-10-flows.json", "basic-sample-330-dns-flows.json",
    "basic-sample-348-http-flows.json", "basic-sample-400-icmpv4-flows.json",
    "basic-sample-400-l7-redirected-flows.json", "basic-sample-400-tcp-flows.json",
    "basic-sample-400-udp-flows.json", "basic-sample-5-dns-flows.json",
    "basic-sample-5-http-flows.json",
]


@pytest.mark.corpora
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_public_exports_read_whole(corpora: Path, name: str) -> None:
    path = corpora / "hubble-flows" / name
    lines = sum(1 for line in path.read_text().splitlines() if line.strip())
    result = read_input(path)
    assert result.warnings == ()
    assert result.stats is not None and result.stats.format == "hubble"
    assert result.stats.packets == lines  # every line a flow
    assert result.stats.counters.get("bad_lines", 0) == 0


@pytest.mark.corpora
def test_public_exports_dedupe_observation_points(corpora: Path) -> None:
    folder = corpora / "hubble-flows"
    tcp = read_input(folder / "basic-sample-400-tcp-flows.json")
    assert tcp.table is not None
    rows = list(tcp.table.flow_rows())
    # 70 SYN flows (several points and verdict events each) are far fewer connections
    syns = sum(r.connections for r in rows if r.direction is DirectionEvidence.SYN)
    assert 0 < syns < 70
    # every edge of this export was answered: no attempt among them
    assert {r.outcome for r in rows} == {Outcome.COMPLETED}
    udp = read_input(folder / "basic-sample-400-udp-flows.json")
    assert udp.table is not None
    assert udp.table.dns_row_count > 0  # the L7 DNS answers with addresses
    redirected = read_input(folder / "basic-sample-400-l7-redirected-flows.json")
    assert redirected.table is not None
    # only first-packet policy verdict events: no answer could show, none is "unanswered"
    assert Outcome.UNANSWERED not in {r.outcome for r in redirected.table.flow_rows()}
