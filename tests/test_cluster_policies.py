"""cluster-policies.yaml: valid against the CRD's openAPIV3Schema (jsonschema) and its CEL
rules (checked here in Python), read back by the evaluator, and verified together with
policies.yaml against every observed flow."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from discover.cli import main
from discover.netpol.cluster_policy import DOMAIN_NAME
from discover.netpol.files import load_policy_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "shop"
SCHEMAS = Path(__file__).parent / "data" / "cluster_policy"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("analyze") / "out"
    code = main(["analyze", str(SAMPLE / "capture.pcap"), "--inventory",
                 str(SAMPLE / "inventory.json"), "--out", str(directory)])
    assert code == 0
    return directory


def documents(out: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((out / "cluster-policies.yaml").read_text()) if d]


def schema(channel: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"schema-{channel}.json").read_text())
    return loaded


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def cel_problems(document: dict[str, Any]) -> list[str]:
    """The CRD's x-kubernetes-validations, and what its schema says in words only."""
    problems = []
    spec = document["spec"]
    for key in ("ingress", "egress"):
        rules = spec.get(key, [])
        if len(rules) > 25:
            problems.append(f"{key}: {len(rules)} rules")
        for rule in rules:
            peers = rule["from" if key == "ingress" else "to"]
            addressed = any(set(p) & {"networks", "nodes", "domainNames"} for p in peers)
            named = any("destinationNamedPort" in p for p in rule.get("protocols", []))
            if addressed and named:
                problems.append("named port with networks/nodes/domainNames")
            for peer in peers:
                for cidr in peer.get("networks", []):
                    try:
                        ipaddress.ip_network(cidr, strict=False)  # isCIDR
                    except ValueError:
                        problems.append(f"not a CIDR {cidr}")
                if peer.get("domainNames") and rule["action"] != "Accept":
                    problems.append("domainNames outside an Accept rule")
    for value in _walk(spec):
        if isinstance(value, dict) and "range" in value and value["range"]["start"] >= \
                value["range"]["end"]:
            problems.append("port range start >= end")
    return problems


def test_every_document_validates_against_its_channel(out: Path) -> None:
    docs = documents(out)
    header = (out / "cluster-policies.yaml").read_text().splitlines()
    experimental = [d for d in docs
                    if d["metadata"].get("annotations", {}).get(
                        "netpol-discover.io/needs-channel") == "experimental"]
    assert any("the last 2 the experimental channel" in line for line in header)
    assert len(experimental) == 2 and docs[-2:] == experimental
    for document in docs:
        uses_domains = any("domainNames" in p for r in document["spec"].get("egress", [])
                           for p in r["to"])
        channel = "experimental" if document in experimental else "standard"
        assert uses_domains == (channel == "experimental")
        jsonschema.validate(document, schema(channel))
        assert cel_problems(document) == []
    # the standard schema refuses the experimental documents (domainNames is unknown there,
    # so the API server prunes it and the peer has no field left)
    standard = schema("standard")
    for document in experimental:
        pruned = json.loads(json.dumps(document))
        for rule in pruned["spec"]["egress"]:
            rule["to"] = [{k: v for k, v in p.items() if k != "domainNames"} for p in rule["to"]]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(pruned, standard)


def test_the_checks_here_catch_what_the_crd_refuses(out: Path) -> None:
    document = json.loads(json.dumps(documents(out)[0]))
    document["spec"]["egress"][0]["protocols"].append({"destinationNamedPort": "dns"})
    document["spec"]["egress"][0]["to"].append({"networks": ["10.0.0.0/8"]})
    assert cel_problems(document) == ["named port with networks/nodes/domainNames"]
    document["spec"]["egress"] = document["spec"]["egress"][:1] * 26
    with pytest.raises(jsonschema.ValidationError, match="too long"):
        jsonschema.validate(document, schema("standard"))
    assert not DOMAIN_NAME.match("localhost") and DOMAIN_NAME.match("*.example.com")


def test_the_baseline_closes_analysed_and_new_namespaces_not_system_ones(out: Path) -> None:
    baseline, deny = documents(out)[:2]
    assert baseline["spec"]["tier"] == "Baseline"
    expression = baseline["spec"]["subject"]["namespaces"]["matchExpressions"][0]
    assert expression["operator"] == "NotIn"
    # 'default' exists (default/kubernetes lives there) but has no workload: not analysed
    assert expression["values"] == ["default", "kube-node-lease", "kube-public", "kube-system"]
    egress = baseline["spec"]["egress"]
    assert [r["action"] for r in egress] == ["Accept", "Deny"]
    assert egress[0]["to"][0]["pods"]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert deny["spec"]["egress"][0]["to"] == [
        {"networks": ["169.254.169.254/32", "fd00:ec2::254/128"]}]


def test_read_back_and_verified_with_the_proposal(out: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load_policy_file(out / "cluster-policies.yaml")
    assert [(p.tier, p.priority) for p in loaded.cluster_policies] == [
        ("Admin", 110), ("Admin", 200), ("Admin", 200), ("Baseline", 100)]
    args = ["verify", "--policies", str(out / "policies.yaml"), "--policies",
            str(out / "cluster-policies.yaml"), "--flows", str(out / "flows.csv"),
            "--inventory", str(SAMPLE / "inventory.json"), "--format", "json"]
    main(args)
    combined = json.loads(capsys.readouterr().out)
    main(args[:3] + args[5:])
    alone = json.loads(capsys.readouterr().out)
    # the guardrails change no observed flow's verdict: what the proposal allows stays
    # allowed, what it denies on purpose stays denied
    assert [r["allowed"] for r in combined] == [r["allowed"] for r in alone]
    assert sum(r["allowed"] for r in combined) == len(combined) - 3
    # a flows file carries no DNS names: domainNames match nothing there, and the
    # proposal's any-IP rules allow those flows
    assert not any("netpol-discover-fqdn" in r["reason"] for r in combined)


def test_report_says_the_file_needs_a_cni(out: Path) -> None:
    report = (out / "report.md").read_text()
    assert "cluster-policies-cni" in report and "a CNI that implements" in report
    assert "cluster-policies-cni" not in (out / "policies.yaml").read_text()
