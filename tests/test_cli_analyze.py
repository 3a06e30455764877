"""`netpol-discover analyze` on the bundled shop sample: its six files, the flows.csv columns
as seen on the wire, exit codes, verify accepting what it proposed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from discover.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "shop"
CAPTURE = SAMPLE / "capture.pcap"
INVENTORY = SAMPLE / "inventory.json"
OUTPUTS = ("policies.yaml", "flows.csv", "fqdn-dependencies.yaml", "cilium-policies.yaml",
           "report.md", "report.html")


def analyze(out: Path, *extra: str) -> int:
    return main(["analyze", str(CAPTURE), "--inventory", str(INVENTORY), "--out", str(out),
                 "--quiet", *extra])


@pytest.fixture(scope="module")
def proposal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proposal")
    assert analyze(out) == 0
    return out


def test_writes_the_six_files(proposal: Path) -> None:
    for name in OUTPUTS:
        assert (proposal / name).stat().st_size > 0, name


def test_policies_validate_against_the_kubernetes_schema(proposal: Path) -> None:
    documents = [d for d in yaml.safe_load_all((proposal / "policies.yaml").read_text()) if d]
    assert {d["kind"] for d in documents} == {"NetworkPolicy"}
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    deny = {
        d["metadata"]["namespace"] for d in documents if d["metadata"]["name"] == "default-deny"
    }
    # kube-system is held back by default (issue 16): the report shows its policies
    assert deny == {"shop", "payments", "monitoring", "ingress-nginx"}


def test_flows_csv_keeps_wire_addresses_and_says_who(proposal: Path) -> None:
    with open(proposal / "flows.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows
    assert {"src_ip", "dst_ip", "protocol", "dst_port", "src_peer", "allowed"} <= set(rows[0])
    # a ClusterIP stays a ClusterIP on the wire; resolution is in dst_peer
    kube_dns = [r for r in rows if r["dst_ip"] == "10.96.0.10"]
    assert kube_dns and all(r["dst_peer"] == "kube-system/coredns:53" for r in kube_dns)


def test_same_input_gives_byte_identical_output(proposal: Path, tmp_path: Path) -> None:
    assert analyze(tmp_path) == 0
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (proposal / name).read_bytes(), name


def test_verify_accepts_every_flow_but_the_unattributable_ones(
    proposal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample reuses a deleted pod's IP: flows of the earlier pod can't be attributed
    (the snapshot doesn't know it) and are denied on purpose; everything else passes."""
    code = main(["verify", "--policies", str(proposal / "policies.yaml"),
                 "--flows", str(proposal / "flows.csv"), "--inventory", str(INVENTORY)])
    denied = [line for line in capsys.readouterr().out.splitlines() if line.startswith("DENIED")]
    assert code == 1
    assert denied and all("10.244.0.16" in line for line in denied)


def test_namespace_scope_limits_the_proposal(tmp_path: Path) -> None:
    assert analyze(tmp_path, "-n", "payments") == 0
    documents = [d for d in yaml.safe_load_all((tmp_path / "policies.yaml").read_text()) if d]
    assert {d["metadata"]["namespace"] for d in documents} == {"payments"}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["analyze", str(CAPTURE), "--out", str(tmp_path)])  # no inventory
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        analyze(tmp_path, "--cloud", "mars")
    assert exited.value.code == 2


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all")
    code = main(["analyze", str(garbage), "--inventory", str(INVENTORY), "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "garbage.pcap" in err and "Traceback" not in err
    broken = tmp_path / "inventory.json"
    broken.write_text('{"kind": "List", "items": [')
    code = main(["analyze", str(CAPTURE), "--inventory", str(broken), "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "inventory.json" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "policies.yaml").exists()


def test_truncated_capture_warns_and_keeps_what_was_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = CAPTURE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    code = main(["analyze", str(cut), "--inventory", str(INVENTORY), "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert "cut.pcap" in err and "warning" in err
    assert (tmp_path / "out" / "policies.yaml").stat().st_size > 0


def test_a_bad_inventory_object_is_skipped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(INVENTORY.read_text())
    pod = next(item for item in document["items"] if item["kind"] == "Pod")
    pod["status"]["podIP"] = "10.244.0.999"
    broken = tmp_path / "inventory.json"
    broken.write_text(json.dumps(document))
    code = main(["analyze", str(CAPTURE), "--inventory", str(broken), "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: skipped: inventory.json: items[" in err
    assert "'10.244.0.999' is not an IP address" in err


def test_an_sctp_association_gets_a_rule_that_verify_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit, SCTPChunkInitAck
    from scapy.utils import wrpcap

    # storefront (10.244.0.5) opens an association to cart (10.244.0.10) on 3868; the INIT
    # is retransmitted once: one association, one connection.
    client, server = "10.244.0.5", "10.244.0.10"
    init = (Ether() / IP(src=client, dst=server) / SCTP(sport=40000, dport=3868, tag=0)
            / SCTPChunkInit(init_tag=0x1234ABCD))
    answer = (Ether() / IP(src=server, dst=client) / SCTP(sport=3868, dport=40000, tag=0x1234ABCD)
              / SCTPChunkInitAck(init_tag=0x0BADF00D))
    data = (Ether() / IP(src=client, dst=server) / SCTP(sport=40000, dport=3868, tag=0x0BADF00D)
            / SCTPChunkData(data=b"x"))
    capture = tmp_path / "sctp.pcap"
    wrpcap(str(capture), [init, init, answer, data])
    out = tmp_path / "out"
    assert main(["analyze", str(CAPTURE), str(capture), "--inventory", str(INVENTORY), "--out",
                 str(out), "--quiet"]) == 0
    with (out / "flows.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["protocol"] == "SCTP"]
    assert [(r["src_ip"], r["dst_ip"], r["dst_port"], r["connections"], r["packets"],
             r["direction"]) for r in rows] == [(client, server, "3868", "1", "4", "init")]
    policies = list(yaml.safe_load_all((out / "policies.yaml").read_text()))
    sctp_ports = [
        (doc["metadata"]["name"], port)
        for doc in policies if doc
        for rule in doc["spec"].get("ingress", []) + doc["spec"].get("egress", [])
        for port in rule.get("ports", [])
        if port.get("protocol") == "SCTP"
    ]
    assert sctp_ports and all(port["port"] == 3868 for _, port in sctp_ports)
    report = (out / "report.md").read_text()
    assert "input-sctp-not-analysed" not in report
    assert "input-sctp-cni-support" in report and "4 SCTP packets" in report
    # The sample's own flows include some analyze denies on purpose: verify the SCTP one.
    sctp_flows = tmp_path / "sctp-flows.csv"
    with sctp_flows.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    assert main(["verify", "--policies", str(out / "policies.yaml"), "--flows",
                 str(sctp_flows), "--inventory", str(INVENTORY)]) == 0
    assert capsys.readouterr().out.startswith("all 1 flows allowed by ")
