"""The service graph's layout engine is chosen once by the command (--graph-layout) and
passed to the reports: the same inputs and choice give the same bytes with or without
Graphviz installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from discover.cli import main
from reports import graph_dot

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "shop"
INPUTS = [str(SAMPLE / "capture.pcap"), "--inventory", str(SAMPLE / "inventory.json")]


def _analyze(out: Path, *extra: str) -> int:
    return main(["analyze", *INPUTS, "--out", str(out), "--quiet", *extra])


def test_builtin_layout_is_the_same_page_with_and_without_dot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _analyze(tmp_path / "here", "--graph-layout", "builtin") == 0
    monkeypatch.setattr(graph_dot.shutil, "which", lambda name: None)
    assert _analyze(tmp_path / "without", "--graph-layout", "builtin") == 0
    page = (tmp_path / "here" / "report.html").read_bytes()
    assert b"Layout: built-in layered layout." in page
    assert page == (tmp_path / "without" / "report.html").read_bytes()


def test_auto_without_dot_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_dot.shutil, "which", lambda name: None)
    assert _analyze(tmp_path) == 0
    page = (tmp_path / "report.html").read_text()
    assert "Layout: built-in layered layout (the dot command is not installed" in page


def test_graphviz_without_dot_is_one_line_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(graph_dot.shutil, "which", lambda name: None)
    assert _analyze(tmp_path / "out", "--graph-layout", "graphviz") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dot command is not installed" in err[0]
    assert not (tmp_path / "out").exists()


def test_graph_command_takes_the_choice(tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    assert main(["graph", *INPUTS, "-o", str(out), "-q", "--graph-layout", "builtin"]) == 0
    assert "<!-- layout: built-in layered layout -->" in out.read_text()


def test_unknown_layout_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        _analyze(tmp_path, "--graph-layout", "neato")
    assert exited.value.code == 2
