"""load_inputs: format sniffing, captures and summaries into one table, damage, parallelism.

Captures are built here with scapy; `write_capture` and `sample_packets` are also used by
tests/test_cli_flows.py.
"""

from __future__ import annotations

import io
import json
import tempfile
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.errors import ConfigurationError, ReadError
from discover.flows.events import DirectionEvidence
from discover.flows.progress import ByteProgress, progress_wanted
from discover.flows.sources import NothingReadError, load_inputs, sniff_format
from discover.flows.summary import SummaryMeta, write_summary
from tests.test_summary import sample_table

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CLIENT, SERVER, COREDNS = "10.244.1.5", "10.244.2.7", "10.244.0.2"


def dns_answer_wire(name: str, address: str, message_id: int = 7) -> bytes:
    query = dns.message.make_query(name, "A")
    query.id = message_id
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(name, 30, "IN", "A", address))
    return reply.to_wire()


def sample_packets(start: float = T0, client: str = CLIENT) -> list[Any]:
    """A DNS lookup over UDP, then a TCP connection to the answer with some data."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    query = dns.message.make_query("api.example.com.", "A")
    query.id = 7
    packets = [
        Ether() / IP(src=client, dst=COREDNS) / UDP(sport=41000, dport=53) / Raw(query.to_wire()),
        Ether()
        / IP(src=COREDNS, dst=client)
        / UDP(sport=53, dport=41000)
        / Raw(dns_answer_wire("api.example.com.", SERVER)),
        Ether() / IP(src=client, dst=SERVER) / TCP(sport=40000, dport=8080, flags="S", seq=1),
        Ether()
        / IP(src=SERVER, dst=client)
        / TCP(sport=8080, dport=40000, flags="SA", seq=9, ack=2),
        Ether()
        / IP(src=client, dst=SERVER)
        / TCP(sport=40000, dport=8080, flags="A", seq=2, ack=10),
        Ether()
        / IP(src=client, dst=SERVER)
        / TCP(sport=40000, dport=8080, flags="PA", seq=2, ack=10)
        / Raw(b"GET / HTTP/1.1\r\n\r\n"),
    ]
    for offset, packet in enumerate(packets):
        packet.time = start + offset * 0.5
    return packets


def write_capture(path: Path, packets: list[Any] | None = None, *, pcapng: bool = False) -> Path:
    from scapy.utils import wrpcap, wrpcapng

    (wrpcapng if pcapng else wrpcap)(str(path), packets or sample_packets())
    return path


def test_sniffing_goes_by_content_not_name(tmp_path: Path) -> None:
    pcap = write_capture(tmp_path / "capture.json")
    pcapng = write_capture(tmp_path / "capture.pcap", pcapng=True)
    summary = tmp_path / "summary.pcap"
    summary.write_bytes(b"\xef\xbb\xbf \n\t{}")
    nanos = tmp_path / "nanos.bin"
    nanos.write_bytes(bytes.fromhex("4d3cb2a1") + b"\0" * 20)
    assert sniff_format(pcap) == "pcap"
    assert sniff_format(pcapng) == "pcapng"
    assert sniff_format(summary) == "summary"
    assert sniff_format(nanos) == "pcap"
    text = tmp_path / "notes.pcap"
    text.write_text("hello")
    with pytest.raises(
        ReadError,
        match=r"notes\.pcap: not a pcap, pcapng, netpol-discover "
        r"summary or Hubble flow file \(starts with 68656c6c\)",
    ):
        sniff_format(text)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(ReadError, match="empty file"):
        sniff_format(empty)


def test_a_capture_becomes_edges_and_dns_rows(tmp_path: Path) -> None:
    loaded = load_inputs([write_capture(tmp_path / "a.pcap")])
    rows = {
        (str(r.src_ip), str(r.dst_ip), r.protocol.value, r.dst_port): r
        for r in loaded.table.flow_rows()
    }
    tcp = rows[(CLIENT, SERVER, "TCP", 8080)]
    assert tcp.connections == 1
    assert tcp.direction is DirectionEvidence.SYN
    assert (CLIENT, COREDNS, "UDP", 53) in rows
    (dns_row,) = loaded.table.dns_rows()
    assert (str(dns_row.client_ip), dns_row.name, str(dns_row.address)) == (
        CLIENT,
        "api.example.com",
        SERVER,
    )
    (stats,) = loaded.files
    assert (stats.format, stats.packets, stats.dns_answers, stats.complete) == ("pcap", 6, 1, True)
    assert stats.counters["dns_answers"] == 1
    assert loaded.warnings == []
    assert loaded.window_start is not None and loaded.window_start.timestamp() == T0
    assert loaded.window_end is not None and loaded.window_end.timestamp() == T0 + 2.5


def test_without_dns_only_responses_are_counted(tmp_path: Path) -> None:
    loaded = load_inputs([write_capture(tmp_path / "a.pcap")], dns=False)
    assert loaded.table.dns_row_count == 0
    assert loaded.dns_answers == 1
    assert loaded.table.edge_count == 2


def test_parallel_reading_matches_sequential_and_keeps_input_order(tmp_path: Path) -> None:
    paths = [
        write_capture(tmp_path / "one.pcap"),
        write_capture(tmp_path / "two.pcapng", sample_packets(T0 + 100, "10.244.1.6"), pcapng=True),
        write_capture(tmp_path / "three.pcap", sample_packets(T0 + 50, "10.244.1.5")),
    ]
    sequential = load_inputs(paths, jobs=1)
    parallel = load_inputs(paths, jobs=2)
    assert list(parallel.table.flow_rows()) == list(sequential.table.flow_rows())
    assert list(parallel.table.dns_rows()) == list(sequential.table.dns_rows())
    assert [f.path for f in parallel.files] == [str(p) for p in paths]
    assert parallel.packets == 18
    dns_edge = next(parallel.table.flow_rows())
    assert (dns_edge.dst_port, dns_edge.connections, dns_edge.packets) == (53, 2, 4)
    tcp = [r for r in parallel.table.flow_rows() if r.dst_port == 8080]
    assert [(str(r.src_ip), r.connections) for r in tcp] == [("10.244.1.5", 2), ("10.244.1.6", 1)]
    assert parallel.window_end is not None and parallel.window_end.timestamp() == T0 + 102.5


def test_a_truncated_capture_keeps_what_came_before(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "cut.pcap")
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record loses its end
    loaded = load_inputs([path])
    (warning,) = loaded.warnings
    assert warning.startswith(f"{path}: record 6 at byte ")
    assert "kept the 5 records before it" in warning
    (stats,) = loaded.files
    assert (stats.complete, stats.packets) == (False, 5)
    assert loaded.table.edge_count == 2


def test_nothing_usable_is_an_error_with_every_warning(tmp_path: Path) -> None:
    header_only = write_capture(tmp_path / "cut.pcap")
    header_only.write_bytes(header_only.read_bytes()[:30])  # header + a piece of record 1
    notes = tmp_path / "notes.txt"
    notes.write_text("not a capture")
    with pytest.raises(NothingReadError) as raised:
        load_inputs([header_only, notes], jobs=2)
    assert str(raised.value).startswith("all 2 inputs: nothing usable read: ")
    assert len(raised.value.warnings) == 2
    assert raised.value.warnings[1].startswith(f"{notes}: not a pcap")
    with pytest.raises(NothingReadError, match=rf"^{notes}: nothing usable read: not a pcap"):
        load_inputs([notes])
    short = tmp_path / "short.pcap"
    short.write_bytes(bytes.fromhex("d4c3b2a10200"))  # a pcap file header cut short
    with pytest.raises(NothingReadError) as raised:
        load_inputs([short])
    assert str(raised.value).startswith(f"{short}: nothing usable read: at byte 0: ")


def test_one_bad_input_among_good_ones_is_a_warning(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a capture")
    loaded = load_inputs([write_capture(tmp_path / "a.pcap"), notes], jobs=1)
    assert len(loaded.files) == 1
    assert loaded.warnings == [
        f"{notes}: not a pcap, pcapng, netpol-discover summary or Hubble flow file "
        "(starts with 6e6f7420)"
    ]


def test_missing_paths_fail_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no input files"):
        load_inputs([])
    with pytest.raises(ReadError, match=r"absent\.pcap: no such file"):
        load_inputs([write_capture(tmp_path / "a.pcap"), tmp_path / "absent.pcap"])
    with pytest.raises(ReadError, match="not a regular file"):
        load_inputs([tmp_path])


def test_summaries_and_captures_merge(tmp_path: Path) -> None:
    summary = tmp_path / "agent.json"
    meta = SummaryMeta.for_agent(
        node_name="n1",
        interface="any",
        window_start=T0 - 3600,
        window_end=T0 + 3600,
        counters={"packets": 500},
    )
    write_summary(sample_table(), meta, summary)
    loaded = load_inputs([summary, write_capture(tmp_path / "a.pcap")])
    assert [f.format for f in loaded.files] == ["summary", "pcap"]
    assert loaded.packets == 506
    assert loaded.table.edge_count == sample_table().edge_count + 2
    assert loaded.window_start is not None and loaded.window_start.timestamp() == T0 - 3600
    assert loaded.dns_answers == 2 + 1  # the summary's two address rows, the capture's answer


def test_a_bad_summary_is_a_warning_naming_the_json_path(tmp_path: Path) -> None:
    summary = tmp_path / "agent.json"
    summary.write_text(json.dumps({"schema_version": 1, "kind": "netpol-discover-summary"}))
    loaded = load_inputs([summary, write_capture(tmp_path / "a.pcap")])
    assert loaded.warnings == [f"{summary}: agent: missing"]


def test_progress_counts_bytes_per_file_and_stays_silent_when_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ByteProgress(300, enabled=False) as bar:
        bar.update(0, 100)
        bar.update(1, 50)
        bar.update(0, 200)
        assert bar.bytes_done == 250
    assert capsys.readouterr() == ("", "")
    assert progress_wanted(quiet=True) is False
    # Under pytest stderr is not a terminal: no bar even without --quiet.
    assert progress_wanted(quiet=False) is False


def test_progress_bar_draws_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    buffer = io.StringIO()
    monkeypatch.setattr(
        "rich.console.Console", lambda **_: Console(file=buffer, force_terminal=True, width=80)
    )
    with ByteProgress(1000, enabled=True, description="reading") as bar:
        bar.update(0, 1000)
    assert "reading" in buffer.getvalue()


# -- public captures -------------------------------------------------------------------


def test_sniffing_matches_the_real_format_of_public_captures(corpora: Path) -> None:
    root = corpora / "scapy-pcaps"
    rows = [line.split("\t") for line in (root / "pcap_index.tsv").read_text().splitlines()[1:]]
    expected = {"pcap": "pcap", "pcap-ns": "pcap", "pcapng": "pcapng"}
    checked = 0
    for name, _size, real_format, *_ in rows:
        assert sniff_format(root / name) == expected[real_format], name
        checked += 1
    assert checked >= 40
    # pfcp.pcap and ecu_trace.pcap are pcapng under a .pcap name.
    assert sniff_format(root / "pcaps" / "pfcp.pcap") == "pcapng"
    assert sniff_format(root / "pcaps" / "ecu_trace.pcap.gz") == "pcap.gz"


@pytest.mark.slow
def test_every_public_scapy_capture_loads_in_parallel(corpora: Path) -> None:
    paths = sorted((corpora / "scapy-pcaps" / "pcaps").iterdir())
    loaded = load_inputs(paths, jobs=2)
    assert [f.path for f in loaded.files] == [str(p) for p in paths]  # all usable, in order
    assert loaded.packets > 10_000
    assert all("\n" not in w for w in loaded.warnings)
    # The one damaged file (trailing garbage) is named with its record and byte.
    assert any(
        w.startswith(f"{paths[0]}: record 2 at byte 359: truncated record") for w in loaded.warnings
    )
    assert loaded.table.edge_count > 0


def test_otterize_frames_give_the_expected_edges_and_names(corpora: Path) -> None:
    root = corpora / "k8s-traffic" / "otterize-network-mapper"
    cases = json.loads((root / "cases.json").read_text())
    loaded = load_inputs([root / case["pcap"] for case in cases], jobs=2)
    assert loaded.warnings == []
    names = {(str(r.client_ip), r.name, str(r.address), r.ttl) for r in loaded.table.dns_rows()}
    edges = {(str(r.src_ip), str(r.dst_ip), r.dst_port) for r in loaded.table.flow_rows()}
    for case in cases:
        want = case["expected"]
        if "DestinationPort" in want:
            assert (want["SrcIp"], want["Destination"], want["DestinationPort"]) in edges
        else:
            key = (want["SrcIp"], want["Destination"], want["DestinationIP"], want["TTL"])
            assert key in names


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(
        [
            bytes.fromhex("d4c3b2a1"),
            bytes.fromhex("a1b2c3d4"),
            bytes.fromhex("4d3cb2a1"),
            bytes.fromhex("0a0d0d0a"),
            b"{",
            b'{"schema_version": 0, ',
            b"\x1f\x8b",
            b"",
        ]
    ),
    st.binary(max_size=400),
)
def test_any_bytes_load_or_fail_with_a_read_error(magic: bytes, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_bytes(magic + body)
        try:
            loaded = load_inputs([path], dns=True)
        except ReadError as error:
            assert str(error).startswith(str(path))
            assert "\n" not in str(error)
        else:
            assert all(w.startswith(str(path)) for w in loaded.warnings)


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_reaches_every_byte_of_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    seen: dict[int, int] = {}

    class Recording(ByteProgress):
        def update(self, index: int, bytes_done: int) -> None:
            seen[index] = bytes_done
            super().update(index, bytes_done)

    monkeypatch.setattr("discover.flows.sources.ByteProgress", Recording)
    paths = [write_capture(tmp_path / "a.pcap"), write_capture(tmp_path / "b.pcapng", pcapng=True)]
    load_inputs(paths, jobs=jobs, progress=True)
    assert seen == {i: path.stat().st_size for i, path in enumerate(paths)}


# Zeek decapsulates tunnels and reads mDNS (port 5353); this reader does neither.
ZEEK_OUT_OF_SCOPE = {
    "core.tunnels.gre-over-udp": "DNS inside a GRE-over-UDP tunnel",
    "scripts.base.protocols.dns.mdns-no-assoc": "mDNS on port 5353",
}


def _zeek_answers(log: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """(query, address) -> CNAME chain, from the answers column of a Zeek dns.log."""
    lines = log.read_text().splitlines()
    fields = next(line for line in lines if line.startswith("#fields")).split("\t")[1:]
    found = {}
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        row = dict(zip(fields, line.split("\t"), strict=False))
        if row.get("answers", "-") == "-":
            continue
        answers = row["answers"].split(",")
        addresses, chain = [], []
        for item in answers:
            try:
                addresses.append(str(ip_address(item)))
            except ValueError:
                if " " not in item:  # "RRSIG 5 cmu.edu" and the like are other records
                    chain.append(item.lower())
        for address in addresses:
            found[(row["query"].lower(), address)] = tuple(chain)
    return found


def test_dns_answers_match_zeek_logs(corpora: Path) -> None:
    root = corpora / "zeek-traces"
    tests = json.loads((root / "baselines" / "index.json").read_text())
    compared = answers = 0
    for entry in tests:
        if "dns.log" not in entry["logs"] or entry["test"] in ZEEK_OUT_OF_SCOPE:
            continue
        expected = _zeek_answers(root / "baselines" / entry["test"] / "dns.log")
        loaded = load_inputs([root / entry["trace"]], jobs=1)
        got = {(r.name, str(r.address)): r.cname_chain for r in loaded.table.dns_rows()}
        assert got == expected, entry["test"]
        compared += 1
        answers += len(expected)
    assert compared >= 20
    assert answers >= 10


def test_many_summaries_fold_in_input_order_whichever_worker_finishes_first(
    tmp_path: Path,
) -> None:
    # More files than are read ahead (READ_AHEAD x 2 workers); each answer for the same
    # name at the same time comes from another server: the last input's must win.
    from discover.flows.events import ConnectionOpen, DnsAnswer, DnsRecordAddress, Protocol
    from discover.flows.flowtable import FlowTable
    from discover.flows.sources import READ_AHEAD

    count = READ_AHEAD * 2 * 3 + 1
    paths = []
    for index in range(count):
        table = FlowTable()
        table.add(ConnectionOpen(T0 + index, ip_address(CLIENT), 40000,
                                 ip_address(f"10.244.9.{index % 7}"), 8080, Protocol.TCP,
                                 DirectionEvidence.SYN))  # fmt: skip
        table.add(DnsAnswer(T0, ip_address(CLIENT), ip_address(f"10.96.0.{index + 1}"),
                            "api.example.com", (), (DnsRecordAddress(ip_address(SERVER), index),),
                            Protocol.UDP))  # fmt: skip
        path = tmp_path / f"agent-{index:02d}.json"
        write_summary(table, SummaryMeta(node_name=f"node-{index}"), path)
        paths.append(path)
    sequential = load_inputs(paths, jobs=1)
    parallel = load_inputs(paths, jobs=2)
    assert [f.path for f in parallel.files] == [str(p) for p in paths]
    assert list(parallel.table.flow_rows()) == list(sequential.table.flow_rows())
    assert list(parallel.table.dns_rows()) == list(sequential.table.dns_rows())
    assert [r.connections for r in parallel.table.flow_rows()] == [4, 4, 4, 4, 3, 3, 3]
    (answer,) = parallel.table.dns_rows()
    assert (str(answer.server_ip), answer.ttl, answer.answers) == (f"10.96.0.{count}",
                                                                    count - 1, count)  # fmt: skip
