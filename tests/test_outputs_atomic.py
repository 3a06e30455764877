"""Outputs land whole or not at all (issue 15 item 6): on a full disk `analyze` leaves the
old set as it was (never new policies beside an old report), `flows -o` never replaces a
good CSV with a truncated one, no temporary file is left behind, and the error is one
line with exit 1."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from discover import atomic
from discover.cli import main
from discover.outputs import OUTPUT_NAMES

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "shop"
CAPTURE = str(SAMPLE / "capture.pcap")
INVENTORY = str(SAMPLE / "inventory.json")


def _old_set(out: Path) -> dict[str, str]:
    out.mkdir()
    contents = {name: f"old {name}\n" for name in OUTPUT_NAMES}
    for name, text in contents.items():
        (out / name).write_text(text, encoding="utf-8")
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    (out / "history").mkdir()
    (out / "history" / "a.yaml").write_text("kept\n", encoding="utf-8")
    return contents


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """os.fsync fails with ENOSPC from its `calls`-th call on, as on a full disk."""
    real = os.fsync
    count = {"n": 0}

    def fsync(descriptor: int) -> None:
        count["n"] += 1
        if count["n"] >= calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.rglob("*") if p.name.endswith((".tmp", ".old")))


@pytest.mark.parametrize("failing_call", [1, 3, 6])
def test_analyze_on_a_full_disk_keeps_the_old_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        failing_call: int) -> None:
    out = tmp_path / "out"
    old = _old_set(out)
    _full_disk_after(monkeypatch, failing_call)
    code = main(["analyze", CAPTURE, "--inventory", INVENTORY, "--out", str(out)])
    assert code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("netpol-discover: error: ") and "No space left" in error[-1]
    assert "Traceback" not in "\n".join(error)
    assert {name: (out / name).read_text(encoding="utf-8") for name in OUTPUT_NAMES} == old
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert (out / "history" / "a.yaml").exists()
    assert _leftovers(tmp_path) == []


def test_analyze_swaps_in_the_new_set_and_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = _old_set(out)
    mode = out.stat().st_mode
    assert main(["analyze", CAPTURE, "--inventory", INVENTORY, "--out", str(out)]) == 0
    for name in OUTPUT_NAMES:
        assert (out / name).read_text(encoding="utf-8") != old[name]
    assert (out / "policies.yaml").read_text(encoding="utf-8").startswith("# netpol-discover")
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert (out / "history" / "a.yaml").read_text(encoding="utf-8") == "kept\n"
    assert out.stat().st_mode == mode
    assert _leftovers(tmp_path) == []


def test_analyze_into_a_new_directory(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert main(["analyze", CAPTURE, "--inventory", INVENTORY, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_NAMES)
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert _leftovers(tmp_path) == []


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(("command", "name"), [("flows", "flows.csv"), ("dns", "dns.csv"),
                                               ("flows", "flows.parquet")])
def test_single_file_on_a_full_disk_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: str, name: str) -> None:
    target = tmp_path / name
    target.write_bytes(b"old,good\n1,2\n")
    _full_disk_after(monkeypatch, 1)
    assert main([command, CAPTURE, "-o", str(target), "--quiet"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "No space left" in error[0] and str(target) in error[0]
    assert target.read_bytes() == b"old,good\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_graph_picture_on_a_full_disk_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "graph.json"
    target.write_text("{}\n", encoding="utf-8")
    _full_disk_after(monkeypatch, 1)
    assert main(["graph", CAPTURE, "--inventory", INVENTORY, "-o", str(target)]) == 1
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.json"]


def test_replace_file_writes_and_syncs(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    def write(path: Path) -> None:
        path.write_text("new\n", encoding="utf-8")

    atomic.replace_file(target, write)
    assert target.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
