"""Damaged records in captures: a warning naming file, record and byte; the rest is kept
(issue 15 item 5: a pcapng timestamp with the high word 0xFFFFFFFF, year 586524, ended the
whole run in a ValueError; a pcapng warning counted the records kept before the damage as 0)."""

from __future__ import annotations

import struct
from pathlib import Path

from discover.flows.sources import load_inputs
from discover.reading.capture_file import CaptureFile
from tests.test_capture_file import block, epb, idb, pcap, shb, syn_ip, syns

GOOD = 1_700_000_000 * 10**6  # microsecond ticks


def _pcapng(blocks: list[bytes]) -> bytes:
    return shb("<") + idb("<", 101) + b"".join(blocks)


def _offset_of(data: bytes, blocks: list[bytes], index: int) -> int:
    return len(shb("<") + idb("<", 101)) + sum(len(b) for b in blocks[:index])


def test_pcapng_timestamp_past_year_9999_skips_that_record(tmp_path: Path) -> None:
    blocks = [epb("<", 0, GOOD + i, syn_ip(41000 + i)) for i in range(10)]
    blocks.append(epb("<", 0, (0xFFFFFFFF << 32) | 5, syn_ip(41010)))  # year 586524
    blocks += [epb("<", 0, GOOD + 20 + i, syn_ip(41011 + i)) for i in range(2)]
    path = tmp_path / "year586524.pcapng"
    path.write_bytes(data := _pcapng(blocks))
    capture = CaptureFile(path)
    ports = [e.client_port for e in syns(list(capture))]
    assert ports == [*range(41000, 41010), 41011, 41012]
    assert not capture.complete
    assert capture.warnings == [
        f"{path}: record 11 at byte {_offset_of(data, blocks, 10)}: timestamp "
        f"{((0xFFFFFFFF << 32) | 5) // 10**6} s since the epoch is out of range (past 9999); "
        "record skipped"
    ]


def test_times_before_1970_are_skipped_and_counted(tmp_path: Path) -> None:
    # pcap seconds are unsigned (never before 1970); a pcapng interface's negative
    # if_tsoffset puts its small timestamps there.
    option = struct.pack("<HHq", 14, 8, -(10**9)) + struct.pack("<HH", 0, 0)
    interface = block("<", 1, struct.pack("<HHI", 101, 0, 0) + option)
    blocks = [
        epb("<", 0, GOOD, syn_ip(43000)),
        epb("<", 0, 5, syn_ip(43001)),
        epb("<", 0, 6, syn_ip(43002)),
        epb("<", 0, GOOD + 1, syn_ip(43003)),
    ]
    path = tmp_path / "early.pcapng"
    path.write_bytes(shb("<") + interface + b"".join(blocks))
    capture = CaptureFile(path)
    assert [e.client_port for e in syns(list(capture))] == [43000, 43003]
    assert (capture.skipped, capture.records) == (2, 4)
    (warning,) = capture.warnings
    assert "record 2 at byte " in warning and "is before 1970" in warning
    assert warning.endswith("record skipped (and 1 more such records, skipped too)")


def test_one_damaged_input_does_not_lose_the_others(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(
        _pcapng([epb("<", 0, (0xFFFFFFFF << 32), syn_ip(44000)), epb("<", 0, GOOD, syn_ip(44001))])
    )
    only_bad = tmp_path / "only-bad.pcapng"
    only_bad.write_bytes(_pcapng([epb("<", 0, (0xFFFFFFFF << 32), syn_ip(44002))]))
    good = tmp_path / "good.pcap"
    good.write_bytes(pcap([(1.7e9, syn_ip(44003, 443))], 101))
    loaded = load_inputs([bad, only_bad, good], jobs=1)
    assert [Path(f.path).name for f in loaded.files] == ["bad.pcapng", "good.pcap"]
    assert loaded.table.edge_count == 2
    assert loaded.window_start is not None and loaded.window_start.year == 2023
    assert len(loaded.warnings) == 2
    assert all("out of range (past 9999); record skipped" in w for w in loaded.warnings)


def test_pcapng_damage_counts_the_records_kept_before_it(tmp_path: Path) -> None:
    blocks = [epb("<", 0, GOOD + i, syn_ip(45000 + i)) for i in range(10)]
    broken = struct.pack("<II", 0x00000BAD, 13)  # a block length that is not a multiple of 4
    path = tmp_path / "broken.pcapng"
    path.write_bytes(data := _pcapng(blocks) + broken + b"\0" * 20)
    capture = CaptureFile(path)
    assert len(syns(list(capture))) == 10
    (warning,) = capture.warnings
    assert warning == (
        f"{path}: record 11 at byte {_offset_of(data, blocks, 10)}: block length 13 is invalid; "
        "kept the 10 records before it"
    )
