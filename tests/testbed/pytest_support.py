"""Helpers for the tests that run the testbed: run a scenario once per test session (as a
subprocess, the way a person runs it) and look for anything it may have left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.testbed.netns import leftover_namespaces

REPO = Path(__file__).resolve().parents[2]
_RUNS: dict[str, ScenarioRun] = {}


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    out: Path
    capture: Path
    inventory: Path
    truth_path: Path
    truth: dict[str, Any]
    stderr: str


def run_testbed(scenario: str, out: Path, timeout: float = 120.0) -> ScenarioRun:
    """`python -m tests.testbed run SCENARIO --out OUT`; raises AssertionError with the
    runner's stderr when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.testbed", "run", scenario, "--out", str(out),
         "--timeout", str(timeout)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout + 30, check=False,
    )
    assert done.returncode == 0, f"testbed run failed ({done.returncode}):\n{done.stderr}"
    truth_path = out / "ground-truth.json"
    return ScenarioRun(out, out / "capture.pcap", out / "inventory.json", truth_path,
                       json.loads(truth_path.read_text(encoding="utf-8")), done.stderr)


def cached_run(scenario: str, base: Path) -> ScenarioRun:
    """One run per scenario per test process, shared by the test modules that need it."""
    if scenario not in _RUNS:
        _RUNS[scenario] = run_testbed(scenario, base / scenario)
    return _RUNS[scenario]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain `text` (our workdir or out dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            raw = Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmdline:
            found.append(f"{entry}: {cmdline.strip()}")
    return found


def leftovers(prefix: str) -> list[str]:
    return leftover_namespaces(prefix) + processes_mentioning(prefix)
