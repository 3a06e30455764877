"""Input selection (discover/flows/inputs.py): flows files beside captures, the inventory
source, and analyze on a flows file (with what it lacks said)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from discover.cli import main
from discover.errors import ConfigurationError
from discover.flows.flowfiles import write_table
from discover.flows.frames import flows_frame
from discover.flows.inputs import (
    NO_DNS_WARNING,
    InventorySource,
    is_flows_file,
    lost_data_notes,
    read_traffic,
)
from discover.flows.sources import load_inputs
from discover.inventory.model import Inventory
from tests.test_enrich import t
from tests.test_workload_graph import flow_rows

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "shop"
CAPTURE = SAMPLE / "capture.pcap"
INVENTORY = SAMPLE / "inventory.json"

ROWS = flow_rows([
    ("10.244.2.40", "10.96.10.10", "TCP", 80, 5, 50, t(13), t(13, 5)),
    ("10.244.1.11", "10.96.0.10", "UDP", 53, 9, 18, t(13), t(13, 1)),
])


@pytest.fixture
def flows_csv(tmp_path: Path) -> Path:
    path = tmp_path / "flows.csv"
    write_table(flows_frame(ROWS), path)
    return path


@pytest.mark.parametrize(("name", "expected"), [
    ("a.csv", True), ("a.PARQUET", True), ("a.pcap", False), ("summary.json", False),
    ("hubble.json.gz", False), ("csv", False),
])
def test_flows_files_are_told_by_extension(name: str, expected: bool) -> None:
    assert is_flows_file(Path(name)) is expected


def test_flows_file_rows_come_first_then_the_captures(flows_csv: Path) -> None:
    traffic = read_traffic([CAPTURE, flows_csv], jobs=1)
    captured = load_inputs([CAPTURE], jobs=1)
    assert traffic.flows[:2] == ROWS
    assert traffic.flows[2:] == tuple(captured.table.flow_rows())
    assert traffic.dns == tuple(captured.table.dns_rows())
    described = [(f.path, f.format, f.edges, f.packets) for f in traffic.loaded.files]
    assert described[0] == (str(flows_csv), "flows.csv", 2, 68)
    assert described[1][:2] == (str(CAPTURE), "pcap")
    assert traffic.loaded.warnings[-1] == NO_DNS_WARNING


def test_only_flows_files_need_no_capture(flows_csv: Path) -> None:
    traffic = read_traffic([flows_csv])
    assert traffic.flows == ROWS and traffic.dns == ()
    assert traffic.loaded.warnings == [NO_DNS_WARNING]
    assert traffic.loaded.packets == 68 and traffic.loaded.table.edge_count == 0


def test_a_flows_file_without_times_is_said(tmp_path: Path) -> None:
    path = tmp_path / "four.csv"
    path.write_text("src_ip,dst_ip,protocol,dst_port\n10.0.0.1,10.0.0.2,TCP,80\n")
    traffic = read_traffic([path])
    assert traffic.flows[0].first_seen is None
    assert any(w.startswith(f"{path}: no first_seen/last_seen") for w in traffic.loaded.warnings)


def test_no_inputs_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        read_traffic([])


@pytest.mark.parametrize(("source", "problem"), [
    (InventorySource(), "an inventory is needed"),
    (InventorySource((Path("a.json"),), context="prod"), "not both"),
    (InventorySource((Path("a.json"),)), None),
    (InventorySource(kubeconfig="k"), None),
])
def test_inventory_source_problems(source: InventorySource, problem: str | None) -> None:
    found = source.problem()
    assert found is None if problem is None else (found is not None and problem in found)
    if problem is not None:
        with pytest.raises(ConfigurationError):
            source.load()


def test_inventory_files_are_loaded() -> None:
    inventory = InventorySource((INVENTORY,)).load()
    assert {p.namespace for p in inventory.pods} >= {"shop", "payments"}


def test_lost_data_notes_are_only_those() -> None:
    inventory = Inventory(notes=("skipped: pod x/y: bad ip", "ignored kind Foo",
                                 "pods: forbidden"))
    assert lost_data_notes(inventory) == ["skipped: pod x/y: bad ip", "pods: forbidden"]


# -- analyze on flows files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def from_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("capture")
    assert main(["analyze", str(CAPTURE), "--inventory", str(INVENTORY), "--out", str(out),
                 "-q"]) == 0
    return out


def test_analyze_reads_its_own_flows_csv(from_capture: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "again"
    assert main(["analyze", str(from_capture / "flows.csv"), "--inventory", str(INVENTORY),
                 "--out", str(out), "-q"]) == 0
    assert NO_DNS_WARNING in capsys.readouterr().err
    before = (from_capture / "policies.yaml").read_text()
    after = (out / "policies.yaml").read_text()
    # The same workloads get policies; what the DNS names described becomes addresses.
    assert before.count("kind: NetworkPolicy") == after.count("kind: NetworkPolicy")
    assert "api.payments.example.com" in before and "api.payments.example.com" not in after
    assert "cidr: 192.0.2.10/32" in after
    assert "api.payments.example.com" not in (out / "fqdn-dependencies.yaml").read_text()


def test_analyze_on_a_four_column_file_has_no_made_up_times(
        from_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    four = tmp_path / "four.csv"
    columns = ["src_ip", "dst_ip", "protocol", "dst_port"]
    pd.read_csv(from_capture / "flows.csv")[columns].to_csv(four, index=False)
    out = tmp_path / "out"
    assert main(["analyze", str(four), "--inventory", str(INVENTORY), "--out", str(out),
                 "-q"]) == 0
    assert "no first_seen/last_seen" in capsys.readouterr().err
    policies = (out / "policies.yaml").read_text()
    assert "learning window: unknown .. unknown" in policies
    assert "9999" not in policies and "9999" not in (out / "report.md").read_text()
