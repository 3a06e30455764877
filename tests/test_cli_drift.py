"""`netpol-discover drift` on the shop sample: a second window with a new dependency,
against the policies analyze proposed for the first (issue 14 part 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from discover.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "shop"
INVENTORY = str(SAMPLE / "inventory.json")
# catalog -> cart:8080, which the first window never saw (at the window's end, when the
# inventory's pods hold those addresses)
NEW_ROW = "10.244.0.7,10.244.0.10,TCP,8080,3,30,{time},{time},syn,completed"


@pytest.fixture(scope="module")
def proposal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first-window")
    assert main(["analyze", str(SAMPLE / "capture.pcap"), "--inventory", INVENTORY,
                 "--out", str(out), "-q"]) == 0
    return out


def _second_window(proposal: Path, tmp_path: Path) -> Path:
    lines = (proposal / "flows.csv").read_text(encoding="utf-8").splitlines()
    header = ",".join(lines[0].split(",")[:10])
    rows = [",".join(line.split(",")[:10]) for line in lines[1:]]
    end = max(row.split(",")[7] for row in rows)  # last_seen
    flows = tmp_path / "window2.csv"
    flows.write_text("\n".join([header, *rows, NEW_ROW.format(time=end)]) + "\n",
                     encoding="utf-8")
    return flows


def _drift(flows: Path, proposal: Path, *extra: str) -> list[str]:
    return ["drift", str(flows), "--inventory", INVENTORY, "--policies",
            str(proposal / "policies.yaml"), "-q", *extra]


def test_the_first_window_against_its_own_proposal_is_quiet(
        proposal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", str(SAMPLE / "capture.pcap"), "--inventory", INVENTORY,
                 "--policies", str(proposal / "policies.yaml"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Drift")
    assert "0 denied edge(s), 0 blocked attempt(s)" in out


def test_a_new_dependency_fails_and_its_patch_allows_it(
        proposal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = _second_window(proposal, tmp_path)
    patch = tmp_path / "patch.yaml"
    assert main(_drift(flows, proposal, "--format", "json", "--patch-out", str(patch))) == 1
    report = json.loads(capsys.readouterr().out)
    [denied] = report["denied"]
    assert (denied["source"], denied["destination"]) == ("shop/deployment/catalog",
                                                          "shop/deployment/cart")
    assert {p["name"] for p in report["patches"]} == {"catalog-netpol", "cart-netpol"}
    # the proposal with the patch applied allows the new edge (verify, the same evaluator
    # analyze proves its proposals with)
    merged: dict[tuple[str, str], Any] = {}
    for path in (proposal / "policies.yaml", patch):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                merged[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    patched = tmp_path / "patched.yaml"
    patched.write_text(yaml.safe_dump_all(list(merged.values())), encoding="utf-8")
    new_only = tmp_path / "new.csv"
    new_only.write_text("src_ip,dst_ip,protocol,dst_port\n10.244.0.7,10.244.0.10,TCP,8080\n",
                        encoding="utf-8")
    assert main(["verify", "--policies", str(proposal / "policies.yaml"), "--flows",
                 str(new_only), "--inventory", INVENTORY]) == 1
    assert main(["verify", "--policies", str(patched), "--flows", str(new_only),
                 "--inventory", INVENTORY]) == 0
    # and drift over the second window against the patched policies is quiet again
    capsys.readouterr()
    assert main(["drift", str(flows), "--inventory", INVENTORY, "--policies", str(patched),
                 "-q"]) == 0


def test_a_broken_policy_file_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NetworkPolicy\nmetadata: {name: x, namespace: shop}\n"
                   "spec: {podSelector: {matchLabels: 3}}\n", encoding="utf-8")
    assert main(["drift", str(SAMPLE / "capture.pcap"), "--inventory", INVENTORY,
                 "--policies", str(bad), "-q"]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err
