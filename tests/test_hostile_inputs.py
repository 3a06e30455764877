"""Hostile inputs that used to take minutes or gigabytes (issue 15 item 10): a DNS response
of thousands of answers, a gzip bomb, a huge file that starts with '{'. Each is built here,
sized so the test stays fast (the limits are lowered by a parameter where needed)."""

from __future__ import annotations

import gzip
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import dns.message
import dns.rrset
import pytest

from discover.errors import ReadError
from discover.flows.events import (
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    DnsRecordAddress,
    IPAddress,
    Protocol,
)
from discover.flows.flowtable import FlowTable
from discover.flows.sources import load_inputs
from discover.flows.summary import (
    LOOK_BEFORE_READING,
    MAX_SUMMARY_BYTES,
    SummaryMeta,
    read_summary,
    summary_text,
)
from discover.reading.dns_wire import MAX_ANSWER_RECORDS, MAX_CNAME_CHAIN, DnsDecoder


@dataclass(frozen=True)
class Payload:
    payload: bytes
    time: float = 1.7e9
    client_ip: IPAddress = IPv4Address("10.244.1.5")
    server_ip: IPAddress = IPv4Address("10.96.0.10")
    transport: Protocol = Protocol.UDP


def many_answers(count: int, *, first: int = 0, txt: bool = False) -> bytes:
    """A response for big.example.com with `count` A records (10.0.x.y, in order)."""
    query = dns.message.make_query("big.example.com", "A")
    reply = dns.message.make_response(query)
    if txt:  # a record the fast path leaves to dnspython
        reply.answer.append(dns.rrset.from_text("big.example.com.", 60, "IN", "TXT", '"x"'))
    addresses = [str(IPv4Address(0x0A000000 + first + i)) for i in range(count)]
    reply.answer.append(dns.rrset.from_text_list("big.example.com.", 60, "IN", "A", addresses))
    reply.additional.append(dns.rrset.from_text("ns.example.com.", 60, "IN", "A", "192.0.2.1"))
    return reply.to_wire(max_size=65535)


def test_answers_past_the_cap_are_dropped_and_counted() -> None:
    for txt in (False, True):  # the fast path and dnspython alike
        decoder = DnsDecoder(max_records=8)
        answer = decoder.decode(Payload(many_answers(20, txt=txt)))
        assert answer is not None
        kept = 7 if txt else 8  # the TXT record is one of the first eight
        sent = {ip_address(0x0A000000 + i) for i in range(20)}
        assert len(answer.addresses) == kept  # the first `kept` records of the message
        assert {a.address for a in answer.addresses} <= sent
        assert decoder.counters["capped"] == 1
        assert decoder.counters["records_dropped"] == (13 if txt else 12)
        assert decoder.cap_warning("x.pcap") == (
            "x.pcap: 1 DNS responses had more than 8 answer records: only the first 8 of each "
            f"were read ({13 if txt else 12} records dropped)"
        )
    small = DnsDecoder(max_records=8)
    assert small.decode(Payload(many_answers(8))) is not None
    assert small.counters["capped"] == 0 and small.cap_warning("x.pcap") is None


def _udp_frame(payload: bytes, client_port: int) -> bytes:
    udp = struct.pack("!HHHH", 53, client_port, 8 + len(payload), 0) + payload
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0,
            0,
            64,
            17,
            0,
            bytes([10, 96, 0, 10]),
            bytes([10, 244, 1, 5]),
        )
        + udp
    )


def test_a_capture_of_huge_responses_is_read_capped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "dns-flood.pcap"
    records = b""
    for i in range(3):
        frame = _udp_frame(many_answers(MAX_ANSWER_RECORDS + 100, first=i * 1000), 40000 + i)
        records += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101) + records)
    loaded = load_inputs([path], jobs=1)
    assert loaded.warnings == [
        f"{path}: 3 DNS responses had more than {MAX_ANSWER_RECORDS} answer records: only the "
        f"first {MAX_ANSWER_RECORDS} of each were read (300 records dropped)"
    ]
    assert len(list(loaded.table.dns_rows())) == 3 * MAX_ANSWER_RECORDS


def _syn_frame(client_port: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", client_port, 80, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            40,
            0,
            0,
            64,
            6,
            0,
            bytes([10, 244, 1, 5]),
            bytes([10, 244, 2, 9]),
        )
        + tcp
    )


def _pcap(records: list[bytes]) -> bytes:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101)
    return header + b"".join(
        struct.pack("<IIII", 1_700_000_000, 0, len(r), len(r)) + r for r in records
    )


def test_a_gzip_bomb_stops_with_a_warning_and_keeps_what_came_before(tmp_path: Path) -> None:
    from discover.reading.capture_file import CaptureFile

    # Two SYNs, then identical empty records: 500x smaller compressed, as a bomb is.
    data = _pcap([_syn_frame(40000), _syn_frame(40001)] + [b""] * 400_000)
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(gzip.compress(data))
    assert len(data) > 200 * path.stat().st_size
    capture = CaptureFile(path, chunk_bytes=1 << 16, expansion_floor=1 << 20)
    events = list(capture)
    assert sorted(e.client_port for e in events if hasattr(e, "client_port")) == [40000, 40001]
    assert not capture.complete
    (warning,) = capture.warnings
    assert warning.startswith(f"{path}: record ")
    assert "more than 100 times (a decompression bomb?): reading stopped" in warning
    assert capture.records < 400_000  # stopped early, not at the end
    # A real capture compressed (about 5x) is no bomb, even checked from the first byte.
    normal = tmp_path / "normal.pcap.gz"
    normal.write_bytes(
        gzip.compress((Path(__file__).parent.parent / "samples/shop/capture.pcap").read_bytes())
    )
    capture = CaptureFile(normal, expansion_floor=0)
    list(capture)
    assert capture.complete and capture.warnings == []


def _summary_of(table: FlowTable) -> str:
    return "".join(summary_text(table, SummaryMeta(node_name="n", interface="any")))


def test_the_summary_size_bound_holds_for_the_largest_rows() -> None:
    """MAX_SUMMARY_BYTES leaves room for an agent at its default caps (100,000 edges and
    as many DNS rows) whose every row is as long as a row can be."""
    empty = len(_summary_of(FlowTable()))
    flow, dns = FlowTable(), FlowTable()
    longest = "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 61  # 253 characters
    v6 = ip_address("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
    flow.add(ConnectionOpen(2e9, v6, 65535, v6, 65535, Protocol.SCTP, DirectionEvidence.SYN))
    dns.add(
        DnsAnswer(
            2e9,
            v6,
            v6,
            longest,
            (longest,) * MAX_CNAME_CHAIN,
            (DnsRecordAddress(v6, 2**31 - 1),),
            Protocol.TCP,
        )
    )
    per_flow = len(_summary_of(flow)) - empty
    per_dns = len(_summary_of(dns)) - empty
    assert 100_000 * (per_flow + per_dns) < 600_000_000 < MAX_SUMMARY_BYTES


def test_a_file_too_large_for_a_summary_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    table = FlowTable()
    table.add(
        ConnectionOpen(
            1.7e9,
            ip_address("10.0.0.1"),
            1,
            ip_address("10.0.0.2"),
            80,
            Protocol.TCP,
            DirectionEvidence.SYN,
        )
    )
    path.write_text(_summary_of(table))
    size = path.stat().st_size
    with pytest.raises(ReadError, match=rf"^{path}: {size:,} bytes: larger than any summary"):
        read_summary(path, max_bytes=size - 1)
    assert read_summary(path, max_bytes=size)[0].edge_count == 1


def test_a_large_json_that_is_no_summary_is_refused_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    with log.open("w") as stream:  # 8 MB of one JSON object that is no summary
        stream.write('{"log": [')
        stream.write(",".join(['{"msg": "hello"}'] * 500_000))
        stream.write("]}")
    started = time.process_time()
    with pytest.raises(ReadError, match="no netpol-discover summary"):
        read_summary(log)
    assert time.process_time() - started < 0.5  # not parsed: 8 MB of JSON takes longer
    # A real summary padded past the look-ahead size (whitespace is valid JSON) still loads.
    real = tmp_path / "padded.json"
    text = _summary_of(FlowTable())
    real.write_text(text[:1] + " " * (LOOK_BEFORE_READING + 10) + text[1:])
    assert read_summary(real)[1].node_name == "n"
