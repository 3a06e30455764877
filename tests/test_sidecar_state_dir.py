"""A state directory the agent can't use at start-up (issue 15, item 9): the agent starts,
captures and serves, says so in its log, /healthz and /metrics, and writes its checkpoint
as soon as the directory works again. An unreadable checkpoint set aside is counted."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.agent import Agent, AgentOptions
from sidecar.metrics import PREFIX


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(PREFIX + name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_state_dir_in_the_way_is_reported_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    agent = Agent(AgentOptions(state_dir=blocker / "state"))  # used to raise StateDirError
    metrics = agent.metrics_text()
    assert _metric(metrics, "checkpoint_failing") == 1
    assert _metric(metrics, "checkpoint_errors_total") == 1
    assert agent.checkpoint_problem == f"state directory {blocker / 'state'}: Not a directory"
    blocker.unlink()  # the directory can be made now: the next checkpoint works
    agent._try_checkpoint()
    assert (blocker / "state" / "summary.json").exists()
    assert _metric(agent.metrics_text(), "checkpoint_failing") == 0
    assert agent.checkpoint_problem is None


@pytest.mark.parametrize("text", ['{"kind": "netpol-discover-summary", "schema_', "[]"])
def test_a_checkpoint_set_aside_is_counted_on_metrics(tmp_path: Path, text: str) -> None:
    (tmp_path / "summary.json").write_text(text)
    metrics = Agent(AgentOptions(state_dir=tmp_path)).metrics_text()
    assert _metric(metrics, "checkpoints_set_aside_total") == 1
    assert _metric(metrics, "checkpoint_failing") == 0
    assert _metric(Agent(AgentOptions(state_dir=tmp_path / "fresh")).metrics_text(),
                   "checkpoints_set_aside_total") == 0  # fmt: skip


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs filled to the last byte: a really full disk."""
    if shutil.which("mount") is None:
        pytest.skip("needs mount")
    mount = tmp_path / "state"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        with open(mount / "filler", "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


@pytest.mark.root
def test_a_full_state_dir_at_start_up_is_reported_and_retried(full_dir: Path) -> None:
    options = AgentOptions(state_dir=full_dir, interface="lo", listen_host="127.0.0.1",
                           listen_port=0, health_host="127.0.0.1", health_port=0,
                           checkpoint_interval=0.3)  # fmt: skip
    agent = Agent(options)
    thread = threading.Thread(target=agent.run, kwargs={"install_signals": False})
    thread.start()
    try:
        _wait(lambda: getattr(agent, "health_port", 0) != 0, "the health server")
        base = f"http://127.0.0.1:{agent.health_port}"
        _wait(lambda: agent.checkpoint_errors >= 2, "a retried checkpoint")
        status, detail = _get(base + "/healthz")
        assert status == 200  # a probe restart would lose the window and fix nothing
        assert "capturing; checkpoints failing" in detail
        assert "No space left on device" in detail
        metrics = _get(base + "/metrics")[1]
        assert _metric(metrics, "checkpoint_failing") == 1
        assert _metric(metrics, "checkpoint_errors_total") >= 2
        assert not (full_dir / "summary.json").exists()
        assert not list(full_dir.glob(".summary.json.*.tmp"))  # no half-written leftovers
        (full_dir / "filler").unlink()  # space again
        _wait(lambda: (full_dir / "summary.json").exists(), "the checkpoint once there is room")
        _wait(lambda: agent.checkpoint_problem is None, "the problem to clear")
        assert _metric(_get(base + "/metrics")[1], "checkpoint_failing") == 0
        assert _get(base + "/healthz") == (200, "capturing\n")
    finally:
        agent.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
