"""CaptureFile on pcap and pcapng bytes: byte orders, resolutions, sections, interfaces,
block kinds, sniffing by magic, damaged files, chunk boundaries, any bytes."""

from __future__ import annotations

import gzip
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import CookedLinuxV2, Ether
from scapy.utils import PcapNgWriter, PcapWriter

from discover.errors import ReadError
from discover.flows.events import ConnectionOpen, DirectionEvidence
from discover.reading.capture_file import CaptureFile
from discover.reading.packets import Output

CLIENT, SERVER = "10.244.1.5", "10.244.2.9"


def syn_ip(sport: int, dport: int = 80) -> bytes:
    return bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=dport, flags="S"))


def syn_eth(sport: int, dport: int = 80) -> bytes:
    return bytes(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=dport, flags="S"))


def pcap(records: list[tuple[float, bytes]], linktype: int, order: str = "<",
         nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for when, frame in records:
        sec = int(when)
        frac = round((when - sec) * (1e9 if nano else 1e6))
        out += struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(order + "II", btype, size) + body + struct.pack(order + "I", size)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, tsresol: int | None = None) -> bytes:
    options = b""
    if tsresol is not None:
        options = struct.pack(order + "HHB3x", 9, 1, tsresol) + struct.pack(order + "HH", 0, 0)
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + options)


def epb(order: str, ifid: int, ticks: int, frame: bytes) -> bytes:
    head = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                       len(frame))
    return block(order, 6, head + frame)


def spb(order: str, frame: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def opb(order: str, ifid: int, ticks: int, frame: bytes) -> bytes:
    head = struct.pack(order + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                       len(frame))
    return block(order, 2, head + frame)


def read(path: Path, **kwargs: int) -> tuple[CaptureFile, list[Output]]:
    capture = CaptureFile(path, **kwargs)  # type: ignore[arg-type]
    return capture, list(capture)


def syns(events: list[Output]) -> list[ConnectionOpen]:
    return [e for e in events if isinstance(e, ConnectionOpen)
            and e.evidence is DirectionEvidence.SYN]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(1700000000.25, syn_ip(40000)), (1700000001.5, syn_ip(40001))],
                          101, order, nano))
    capture, events = read(path)
    assert [(e.time, e.client_port) for e in syns(events)] == [
        (1700000000.25, 40000), (1700000001.5, 40001)]
    assert capture.complete and capture.warnings == [] and capture.records == 2
    assert capture.format == "pcap" and capture.linktypes == {101}


def test_scapy_writers_pcap_sll2_and_pcapng(tmp_path: Path) -> None:
    sll2 = tmp_path / "any.pcap"
    writer = PcapWriter(str(sll2), linktype=276)
    pkt = CookedLinuxV2() / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=443, flags="S")
    pkt.time = 10.0
    writer.write(pkt)
    writer.close()
    ng = tmp_path / "named-pcap-but-pcapng.pcap"
    ngw = PcapNgWriter(str(ng))
    for i in range(3):
        p = Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=5000 + i, dport=8125)
        p.time = 20.0 + i
        ngw.write(p)
    ngw.close()
    _, events = read(sll2)
    assert [e.server_port for e in syns(events)] == [443]
    capture, events = read(ng)
    assert capture.format == "pcapng" and capture.records == 3
    assert sorted(e.client_port for e in events if isinstance(e, ConnectionOpen)) == [
        5000, 5001, 5002]


def _two_sections() -> bytes:
    # Section 1, big-endian: Ethernet in microseconds and raw IP in nanoseconds.
    out = shb(">") + idb(">", 1) + idb(">", 101, tsresol=9)
    out += epb(">", 0, 1_700_000_000_500_000, syn_eth(41000))
    out += epb(">", 1, 1_700_000_001_250_000_000, syn_ip(41001))
    out += spb(">", syn_eth(41002))  # no time: borrows the last one
    out += block(">", 0x0BAD, b"custom block, skipped")
    # Section 2, little-endian: interface numbering starts again; binary resolution 2^-10.
    out += shb("<") + idb("<", 101, tsresol=0x80 | 10)
    out += epb("<", 0, 1024 * 1_700_000_005, syn_ip(41003))
    out += opb("<", 0, 1024 * 1_700_000_006 + 512, syn_ip(41004))
    return out


def test_pcapng_sections_interfaces_resolutions_and_block_kinds(tmp_path: Path) -> None:
    path = tmp_path / "multi.pcapng"
    path.write_bytes(_two_sections())
    capture, events = read(path)
    assert capture.complete and capture.warnings == [], capture.warnings
    assert capture.records == 5 and capture.linktypes == {1, 101}
    got = [(e.client_port, e.time) for e in syns(events)]
    assert got == [(41000, 1_700_000_000.5), (41001, 1_700_000_001.25),
                   (41002, 1_700_000_001.25), (41003, 1_700_000_005.0),
                   (41004, 1_700_000_006.5)]


@pytest.mark.parametrize("chunk", [13, 64, 200, 1 << 20])
def test_chunk_boundaries_do_not_change_results(tmp_path: Path, chunk: int) -> None:
    ng, pc = tmp_path / "a.pcapng", tmp_path / "a.pcap"
    ng.write_bytes(_two_sections())
    pc.write_bytes(pcap([(float(i), syn_ip(42000 + i)) for i in range(20)], 101))
    for path in (ng, pc):
        capture, events = read(path, chunk_bytes=chunk)
        reference = list(CaptureFile(path))
        assert syns(events) == syns(reference)
        assert capture.complete


def test_truncated_file_keeps_what_came_before(tmp_path: Path) -> None:
    data = pcap([(float(i), syn_ip(43000 + i)) for i in range(5)], 101)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-7])
    capture, events = read(path)
    assert [e.client_port for e in syns(events)] == [43000, 43001, 43002, 43003]
    assert not capture.complete
    record_offset = 24 + 4 * (16 + len(syn_ip(0)))
    assert capture.warnings == [
        f"{path}: record 5 at byte {record_offset}: truncated record: "
        f"{16 + len(syn_ip(0)) - 7} bytes at the end do not form a complete record; "
        "kept the 4 records before it"
    ]


def test_corrupt_record_length_stops_with_a_warning(tmp_path: Path) -> None:
    data = bytearray(pcap([(float(i), syn_ip(44000 + i)) for i in range(4)], 101))
    at = 24 + 2 * (16 + len(syn_ip(0)))
    data[at + 8 : at + 12] = struct.pack("<I", 0x7FFFFFF0)
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(data))
    capture, events = read(path)
    assert len(syns(events)) == 2 and not capture.complete
    assert f"record 3 at byte {at}" in capture.warnings[0]


def test_pcapng_packet_for_an_unknown_interface(tmp_path: Path) -> None:
    path = tmp_path / "noif.pcapng"
    path.write_bytes(shb("<") + idb("<", 101) + epb("<", 0, 5, syn_ip(45000))
                     + epb("<", 3, 6, syn_ip(45001)))
    capture, events = read(path)
    assert [e.client_port for e in syns(events)] == [45000]
    assert not capture.complete and "record 2 at byte" in capture.warnings[0]
    assert "interface never described" in capture.warnings[0]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "not a pcap or pcapng file"),
        (b"GET / HTTP/1.1\r\n", "not a pcap or pcapng file (starts with 47455420)"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), "pcap file header cut short"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 65535, 1), "unsupported pcap version"),
        (block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1)),
         "unsupported pcapng version"),
        (block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x11111111, 1, 0, -1)),
         "bad byte-order magic"),
    ],
)
def test_bad_headers_raise_read_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(ReadError) as caught:
        list(CaptureFile(path))
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert caught.value.offset is not None


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="cannot open"):
        list(CaptureFile(tmp_path / "nope.pcap"))


def test_gzip_compressed_capture(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap.gz"
    path.write_bytes(gzip.compress(pcap([(1.0, syn_ip(46000))], 101)))
    capture, events = read(path)
    assert [e.client_port for e in syns(events)] == [46000] and capture.complete


def test_truncated_gzip_stream_is_a_warning(tmp_path: Path) -> None:
    data = gzip.compress(pcap([(float(i), syn_ip(46100 + i)) for i in range(200)], 101))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(data[: len(data) // 2])
    capture, events = read(path)
    assert not capture.complete and "read error" in capture.warnings[0]
    assert 0 < len(syns(events)) < 200


def test_progress_reports_reach_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap"
    path.write_bytes(pcap([(float(i), syn_ip(47000 + i)) for i in range(50)], 101))
    seen: list[tuple[int, int]] = []
    list(CaptureFile(path, on_progress=lambda done, total: seen.append((done, total)),
                     chunk_bytes=256))
    size = path.stat().st_size
    assert seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def _check_any_bytes(content: bytes, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.pcap"
        path.write_bytes(content)
        capture = CaptureFile(path, chunk_bytes=chunk)
        try:
            for _event in capture:
                pass
        except ReadError as error:
            assert str(path) in str(error)
            return
        assert capture.complete == (not any("record" in w for w in capture.warnings))
        assert capture.stats.packets + capture.skipped == capture.records


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=400), chunk=st.sampled_from([7, 64, 4096]))
def test_random_bytes_only_read_errors_or_warnings(content: bytes, chunk: int) -> None:
    _check_any_bytes(content, chunk)


_VALID = [
    _two_sections(),
    pcap([(float(i), syn_eth(48000 + i)) for i in range(4)], 1, ">", True),
]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_captures_only_read_errors_or_warnings(data: st.DataObject) -> None:
    content = bytearray(data.draw(st.sampled_from(_VALID)))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(content)))
    _check_any_bytes(bytes(content[:cut]), data.draw(st.sampled_from([16, 100, 1 << 16])))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_damaged_gzip_captures_only_read_errors_or_warnings(data: st.DataObject) -> None:
    content = bytearray(gzip.compress(data.draw(st.sampled_from(_VALID))))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(2, len(content) - 1))  # keep the magic: exercise gzip
        content[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(2, len(content)))
    _check_any_bytes(bytes(content[:cut]), data.draw(st.sampled_from([16, 1 << 16])))
