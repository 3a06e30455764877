"""One sniffer (discover/reading/formats.py): every reader gets the same answer for the same
bytes (issue 10: a pcap with Kuznetsov's magic 0xA1B2CD34 passed pcap_format and was "not a
pcap" to sources.py)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from discover.errors import ReadError
from discover.flows.sources import load_inputs, sniff_format
from discover.reading.capture_file import CaptureFile
from discover.reading.formats import PCAP_MAGICS, capture_kind, is_parquet, sniff_input
from tests.test_capture_file import syn_ip, syns


def kuznetsov_pcap(order: str, ports: list[int]) -> bytes:
    """A pcap of Kuznetsov's patched libpcap: each record header is libpcap's
    pcap_sf_patched_pkthdr, 16 bytes as usual, then ifindex (int), protocol (ushort),
    pkt_type (uchar) and a pad byte."""
    out = struct.pack(order + "IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 101)
    for i, port in enumerate(ports):
        frame = syn_ip(port)
        out += struct.pack(order + "IIII", 1_700_000_000 + i, 250_000, len(frame), len(frame))
        out += struct.pack(order + "iHBx", 3, 0x0800, 0) + frame
    return out


@pytest.mark.parametrize("order", ["<", ">"])
def test_kuznetsov_pcap_is_read_by_every_reader(tmp_path: Path, order: str) -> None:
    path = tmp_path / "patched.pcap"
    path.write_bytes(kuznetsov_pcap(order, [41000, 41001, 41002]))
    assert sniff_format(path) == sniff_input(path) == "pcap"
    capture = CaptureFile(path)
    opened = syns(list(capture))
    assert [(e.client_port, e.time) for e in opened] == [
        (41000, 1_700_000_000.25),
        (41001, 1_700_000_001.25),
        (41002, 1_700_000_002.25),
    ]
    assert capture.complete and capture.warnings == []
    loaded = load_inputs([path], jobs=1)
    assert loaded.warnings == [] and loaded.table.edge_count == 1
    assert [f.format for f in loaded.files] == ["pcap"]


def test_the_sniffer_and_the_capture_reader_agree_on_every_magic(tmp_path: Path) -> None:
    for magic in PCAP_MAGICS:
        head = magic.to_bytes(4, "little") + bytes(20)
        path = tmp_path / f"{magic:08x}"
        path.write_bytes(head)
        assert capture_kind(head) == sniff_input(path) == "pcap"
    pcapng = tmp_path / "x"
    pcapng.write_bytes(bytes.fromhex("0a0d0d0a") + bytes(24))
    assert sniff_input(pcapng) == "pcapng"
    zipped = tmp_path / "z"
    zipped.write_bytes(gzip.compress(kuznetsov_pcap("<", [42000])))
    assert sniff_input(zipped) == "pcap.gz"
    assert len(syns(list(CaptureFile(zipped)))) == 1


def test_what_is_no_input_is_refused_by_name(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_bytes(b"PAR1 a parquet file is a flows file, not a traffic input")
    assert is_parquet(other.read_bytes()[:4])
    with pytest.raises(ReadError, match=rf"^{other}: not a pcap, pcapng, netpol-discover"):
        sniff_input(other)
    summary = tmp_path / "s.json"
    summary.write_bytes(b"\xef\xbb\xbf \n{}")
    assert sniff_input(summary) == "summary"
