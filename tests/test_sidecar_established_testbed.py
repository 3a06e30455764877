"""On the testbed: connections opened before the agent started are in its summary, once,
and `analyze`'s proposal allows them (checked with `verify`); without the socket-table
read the database pool's edge would be missing and the proposal would cut it.

The node runs in its own PID namespace (tests/established_node.py), the hostPID view of a
real node, so the agent reads only this node's pods' tables."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from discover.cli import main

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parent.parent
WINDOW = 4.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    out = tmp_path_factory.mktemp("established-node")
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc",
         sys.executable, "-m", "tests.established_node", str(out), str(WINDOW)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "node.json").read_text())["agent_exit"] == 0
    return out


def _flows(node: Path) -> dict[tuple[str, str, int], dict[str, object]]:
    document = json.loads((node / "state" / "summary.json").read_text())
    return {(f["src_ip"], f["dst_ip"], f["dst_port"]): f for f in document["flows"]}


def test_connections_older_than_the_window_are_in_the_summary_once(node: Path) -> None:
    ips = json.loads((node / "node.json").read_text())["ips"]
    flows = _flows(node)
    pool = flows[(ips["api"], ips["db"], 5432)]
    assert pool["direction"] == "established" and pool["connections"] == 2
    # The stream to the ClusterIP, from the client's table, and after DNAT from the
    # server's: the same two edges a capture of its set-up gives. Each also got one new
    # connection in the window (its SYN captured): two connections, not three.
    for key in [(ips["frontend"], "10.96.20.11", 80), (ips["frontend"], ips["api"], 8000)]:
        assert flows[key]["connections"] == 2 and flows[key]["direction"] == "syn"
    document = json.loads((node / "state" / "summary.json").read_text())
    assert document["counters"]["established"] == 4  # 2 pool + the stream, seen at 2 ends


def _verify(node: Path, summary: Path, tmp_path: Path) -> int:
    out = tmp_path / summary.stem
    inventory = str(node / "inventory.json")
    assert main(["analyze", str(summary), "--inventory", inventory, "--out", str(out), "-q"]) == 0
    ips = json.loads((node / "node.json").read_text())["ips"]
    flows = tmp_path / "old-connections.csv"
    flows.write_text(
        "src_ip,dst_ip,protocol,dst_port\n"
        f"{ips['api']},{ips['db']},TCP,5432\n"
        f"{ips['frontend']},10.96.20.11,TCP,80\n"
    )
    return main(["verify", "--policies", str(out / "policies.yaml"), "--flows", str(flows),
                 "--inventory", inventory])  # fmt: skip


def test_the_proposal_allows_them(node: Path, tmp_path: Path) -> None:
    assert _verify(node, node / "state" / "summary.json", tmp_path) == 0


def test_without_the_socket_tables_the_pool_would_be_cut(node: Path, tmp_path: Path) -> None:
    document = json.loads((node / "state" / "summary.json").read_text())
    document["flows"] = [f for f in document["flows"] if f["direction"] != "established"]
    blind = tmp_path / "capture-only.json"
    blind.write_text(json.dumps(document))
    assert _verify(node, blind, tmp_path) == 1
