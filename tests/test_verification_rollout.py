"""Staged rollout (issue 14 part 2): the order, the stage files, the rollback commands."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from discover.cli import main
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.proposal import Finding, PolicyDocument, Severity
from discover.synthesis.synthesize import propose
from discover.verification.rollout import plan_rollout
from reports.rollout_report import rollout_files, stage_file
from tests.factories import (
    external_peer,
    make_edge,
    make_graph,
    make_inventory,
    make_pod,
    shop_pods,
    workload_peer,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "shop"


def _plan(edges: list, findings: tuple[Finding, ...] = ()):  # type: ignore[no-untyped-def,type-arg]
    pods = [*shop_pods(), make_pod("quiet", "svc", {"app": "svc"}, "10.244.3.10"),
            make_pod("busy", "svc", {"app": "svc"}, "10.244.3.11")]
    inventory = make_inventory(pods)
    proposal = propose(make_graph(edges), inventory,
                       SynthesisOptions(include_system=True))
    proposal = replace(proposal, findings=proposal.findings + findings)
    return plan_rollout(proposal, edges, inventory)


def test_order_findings_then_external_then_inbound_system_and_ingress_last() -> None:
    quiet, busy = workload_peer("quiet", "svc"), workload_peer("busy", "svc")
    edges = [make_edge(busy, external_peer("192.0.2.1", fqdn="api.example.com"), 443),
             make_edge(workload_peer("front", "ui"), quiet, 8080)]
    finding = Finding(Severity.WARNING, "x", "front/deployment/ui", "to settle")
    plan = _plan(edges, (finding,))
    order = [s.namespace for s in plan.stages]
    # shop (nothing open, no peers) before quiet (one inbound peer); then those with open
    # findings: front (no external) before busy (one FQDN, and its any-ip warning); then
    # ingress-nginx and kube-system, whatever their scores
    assert order[:4] == ["shop", "quiet", "front", "busy"]
    [busy_stage] = [s for s in plan.stages if s.namespace == "busy"]
    assert busy_stage.external == ("api.example.com",) and busy_stage.open_findings
    assert order[-2:] == ["ingress-nginx", "kube-system"] or order[-2:] == [
        "kube-system", "ingress-nginx"]
    held = {s.namespace: s.last for s in plan.stages}
    assert "ingress controller" in held["ingress-nginx"] and "system" in held["kube-system"]
    assert [s.number for s in plan.stages] == list(range(1, len(plan.stages) + 1))
    [front] = [s for s in plan.stages if s.namespace == "front"]
    assert front.open_findings == (finding,)


def test_a_hostile_namespace_is_quoted_in_commands_and_tamed_in_file_names() -> None:
    plan = _plan([])
    doc = PolicyDocument({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": "x; rm -rf /", "namespace": "a b$(id)"},
                          "spec": {"podSelector": {}}}, ("evil\n---\nkind: Secret",))
    stage = replace(plan.stages[0], namespace="a b$(id)", documents=(doc,))
    plan = replace(plan, stages=(stage,))
    assert stage_file(stage) == "stage-01-a_b__id_.yaml"
    text = rollout_files(plan)["rollout.md"]
    line = next(x for x in text.splitlines() if x.startswith("# or: kubectl delete"))
    assert shlex.split(line.removeprefix("# or: "))[-3:] == ["-n", "a b$(id)", "x; rm -rf /"]
    stage_yaml = rollout_files(plan)["stage-01-a_b__id_.yaml"]
    assert [d["kind"] for d in yaml.safe_load_all(stage_yaml) if d] == ["NetworkPolicy"]


@pytest.fixture(scope="module")
def shop_rollout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    assert main(["analyze", str(SAMPLE / "capture.pcap"), "--inventory",
                 str(SAMPLE / "inventory.json"), "--out", str(out), "-q", "--rollout"]) == 0
    return out


def test_the_shop_sample_gets_a_plan_whose_stages_hold_the_whole_proposal(
        shop_rollout: Path) -> None:
    rollout = shop_rollout / "rollout"
    text = (rollout / "rollout.md").read_text(encoding="utf-8")
    proposed = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in
                yaml.safe_load_all((shop_rollout / "policies.yaml").read_text()) if d}
    staged: dict[tuple[str, str], dict] = {}  # type: ignore[type-arg]
    plain: dict[tuple[str, str], dict] = {}  # type: ignore[type-arg]
    for path in sorted(rollout.glob("stage-*.yaml")):
        target = staged if path.name.endswith(".calico-staged.yaml") else plain
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                target[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    assert plain == proposed  # every policy in exactly one stage, unchanged
    # the sample runs Calico: each stage also comes staged, with the same spec
    assert set(staged) == set(proposed)
    assert all(d["kind"] == "StagedKubernetesNetworkPolicy"
               and d["apiVersion"] == "projectcalico.org/v3"
               and d["spec"] == proposed[key]["spec"] for key, d in staged.items())
    # ingress-nginx goes last; each stage's rollback names exactly its policies
    stages = [line.split("`")[1] for line in text.splitlines() if line.startswith("## Stage")]
    assert stages[-1] == "ingress-nginx" and "kube-system" not in stages  # held back
    commands = [shlex.split(line.removeprefix("# or: ")) for line in text.splitlines()
                if line.startswith("# or: kubectl delete networkpolicy")]
    assert len(commands) == len(stages)
    for namespace, command in zip(stages, commands, strict=True):
        assert command[:5] == ["kubectl", "delete", "networkpolicy", "-n", namespace]
        assert sorted(command[5:]) == sorted(name for ns, name in proposed if ns == namespace)
