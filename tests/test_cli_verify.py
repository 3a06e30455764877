"""`netpol-discover verify` end to end through the CLI dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discover.cli import main

DATA = Path(__file__).parent / "data" / "netpol"
INVENTORY = str(DATA / "shop-inventory.json")
POLICIES = str(DATA / "policies.yaml")
FLOWS = str(DATA / "flows.csv")


def verify(*extra: str, policies: str = POLICIES, flows: str = FLOWS) -> list[str]:
    return ["verify", "--policies", policies, "--flows", flows, "--inventory", INVENTORY, *extra]


def test_denied_flows_are_listed_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(verify()) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(
        "DENIED 10.244.0.10 -> 10.244.0.13 TCP/5432 (shop/web -> shop/db:5432): egress of shop/web"
    )
    assert [line.split()[1:4] for line in lines[:3]] == [
        ["10.244.0.10", "->", "10.244.0.13"],
        ["10.244.1.5", "->", "10.96.0.20"],
        ["10.244.0.10", "->", "203.0.113.5"],
    ]
    assert lines[3] == "3 of 7 flows denied by 4 policies"
    assert "ignored objects that are not NetworkPolicies: Service x1" in err


def test_all_allowed_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text("src_ip,dst_ip,protocol,dst_port\n10.244.0.10,10.96.0.20,TCP,80\n")
    assert main(verify(flows=str(flows))) == 0
    assert capsys.readouterr().out == "all 1 flows allowed by 4 policies\n"


def test_json_lists_every_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(verify("--format", "json")) == 1
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 7
    assert set(records[0]) == {"src_ip", "dst_ip", "protocol", "dst_port", "allowed", "reason"}
    assert [r["allowed"] for r in records] == [True, True, True, True, False, False, False]
    assert records[3]["reason"].endswith("(always allowed)")


def test_matrix_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(verify("--matrix")) == 1
    out = capsys.readouterr().out
    assert "source \\ destination" in out
    assert "2. shop/deployment/api" in out
    assert main(verify("--matrix", "--format", "json")) == 1
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["flows"]) == 7
    assert {"src": "shop/deployment/web", "dst": "shop/deployment/api", "conn": "TCP 8080"} in (
        doc["matrix"]
    )


def test_bad_policy_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "policies.yaml").read_text() + "---\nkind: NetworkPolicy\n  x: [\n")
    assert main(verify(policies=str(bad))) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"netpol-discover: error: {bad}: document 6: invalid YAML at line")
    assert err.count("\n") == 1


def test_invalid_policy_names_document_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: NetworkPolicy\nmetadata: {name: p, namespace: n}\n"
        "spec: {podSelector: {matchExpressions: [{key: a, operator: Is}]}}\n"
    )
    assert main(verify(policies=str(bad))) == 1
    assert capsys.readouterr().err == (
        f"netpol-discover: error: {bad}: document 1: NetworkPolicy n/p: "
        "spec.podSelector.matchExpressions[0]: operator 'Is' is not one of In, NotIn, Exists, "
        "DoesNotExist\n"
    )


def test_bad_flows_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text("src_ip,dst_ip\n1.2.3.4,5.6.7.8\n")
    assert main(verify(flows=str(flows))) == 1
    assert "missing column(s) protocol, dst_port" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["verify", "--policies", POLICIES, "--flows", FLOWS])
    assert caught.value.code == 2
    assert "--inventory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(verify("--format", "xml"))
    assert caught.value.code == 2


def test_inventory_is_one_file_per_flag_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = json.loads(Path(INVENTORY).read_text())
    pods = [i for i in whole["items"] if i["kind"] == "Pod"]
    others = [i for i in whole["items"] if i["kind"] != "Pod"]
    first, second = tmp_path / "pods.json", tmp_path / "others.json"
    first.write_text(json.dumps({**whole, "items": pods}))
    second.write_text(json.dumps({**whole, "items": others}))
    assert main(verify()) == 1
    expected = capsys.readouterr().out
    base = ["verify", "--policies", POLICIES, "--flows", FLOWS]
    assert main([*base, "--inventory", str(first), "--inventory", str(second)]) == 1
    assert capsys.readouterr().out == expected
    # Several files after one flag: a usage error, as in analyze and graph.
    with pytest.raises(SystemExit) as caught:
        main([*base, "--inventory", str(first), str(second)])
    assert caught.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_help_documents_exit_codes_format_and_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "1 a flow is denied (each listed on stdout) OR an error explained on stderr" in out
    assert "--format {text,json} text: the denied flows and a count (default)" in out
    assert ("examples: netpol-discover verify --policies proposal/policies.yaml --flows "
            "proposal/flows.csv \\ --inventory cluster.json --format json") in out
