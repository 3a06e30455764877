"""Drift (issue 14 part 1): a newer window against the policies a first window proposed."""

from __future__ import annotations

from dataclasses import replace

from discover.flows.events import Outcome
from discover.inventory.model import NetworkPolicy
from discover.netpol import PolicyEvaluator
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.selfcheck import EndpointFactory
from discover.synthesis.synthesize import propose
from discover.verification.drift import Drift, compute_drift
from reports.drift_report import drift_dict, render_markdown, render_patch_yaml
from tests.factories import (
    make_edge,
    make_graph,
    make_inventory,
    make_pod,
    shop_pods,
    workload_peer,
)

WEB = workload_peer("shop", "web")
API = workload_peer("shop", "api")
DB = workload_peer("shop", "db", "StatefulSet")
UI = workload_peer("front", "ui")
OPTIONS = SynthesisOptions()


def _first_window_policies() -> tuple[NetworkPolicy, ...]:
    """What analyze proposed for a first window: ui -> web, web -> api."""
    inventory = make_inventory(shop_pods())
    proposal = propose(make_graph([make_edge(UI, WEB, 8080), make_edge(WEB, API, 9090)]),
                       inventory, OPTIONS)
    return tuple(NetworkPolicy(d.namespace, d.name, d.manifest["spec"])
                 for d in proposal.documents)


def _drift(edges: list, pods: list | None = None) -> Drift:  # type: ignore[type-arg]
    inventory = make_inventory(pods or shop_pods())
    return compute_drift(make_graph(edges), inventory, _first_window_policies(), OPTIONS)


def _allowed(policies: list, edge) -> bool:  # type: ignore[no-untyped-def,type-arg]
    factory = EndpointFactory(make_inventory(shop_pods()))
    src, dst = factory.endpoint(edge.source), factory.endpoint(edge.destination)
    assert src is not None and dst is not None
    return PolicyEvaluator(policies).check(src, dst, edge.protocol, edge.port).allowed


def test_the_same_traffic_again_is_no_drift() -> None:
    drift = _drift([make_edge(UI, WEB, 8080), make_edge(WEB, API, 9090)])
    assert not drift.failed
    assert drift.denied == () and drift.blocked_attempts == () and drift.patches == ()


def test_a_new_dependency_is_denied_with_a_patch_that_allows_it() -> None:
    new = make_edge(API, DB, 5432)
    drift = _drift([make_edge(UI, WEB, 8080), make_edge(WEB, API, 9090), new])
    assert drift.failed
    [denied] = drift.denied
    assert denied.edge == new
    # api's egress and db's ingress both deny (db's policy had no ingress rule)
    assert set(denied.sides) == {"Egress", "Ingress"}
    assert {"shop/api-netpol", "shop/db-netpol", "shop/default-deny"} <= set(denied.isolating)
    by_ref = {f.ref: f for f in denied.fixes}
    # the rules have the shape analyze writes: the peer by its labels, the pod's port
    rule = by_ref["shop/api-netpol"].rule
    assert rule is not None
    assert rule["to"] == [{"podSelector": {"matchLabels": {"app": "db"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert by_ref["shop/db-netpol"].rule == {
        "from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
        "ports": [{"protocol": "TCP", "port": 5432}]}
    # applying the patch: every edge of the window allowed
    patched = {(p.namespace, p.name): p.manifest for p in drift.patches}
    policies = [manifest for manifest in patched.values()] + [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": p.name, "namespace": p.namespace}, "spec": p.spec}
        for p in _first_window_policies() if (p.namespace, p.name) not in patched]
    assert _allowed(policies, new)
    assert _allowed(policies, make_edge(WEB, API, 9090))
    assert not _allowed(policies, make_edge(UI, DB, 5432))  # nothing more than needed
    # api-netpol had no egress rule: the JSON patch adds the list whole
    [api_patch] = [p for p in drift.patches if p.name == "api-netpol"]
    assert api_patch.json_patch() == [{"op": "add", "path": "/spec/egress", "value": [rule]}]


def test_the_json_patch_appends_to_a_list_the_policy_has() -> None:
    drift = _drift([make_edge(WEB, API, 9090), make_edge(WEB, DB, 5432)])
    [web_patch] = [p for p in drift.patches if p.name == "web-netpol"]
    [operation] = web_patch.json_patch()
    assert operation["path"] == "/spec/egress/-"
    assert operation["value"]["to"] == [{"podSelector": {"matchLabels": {"app": "db"}}}]
    assert web_patch.manifest["spec"]["egress"][-1] == operation["value"]


def test_a_workload_with_only_the_default_deny_gets_the_proposed_policy_whole() -> None:
    pods = [*shop_pods(), make_pod("shop", "reports", {"app": "reports"}, "10.244.1.40")]
    new = make_edge(workload_peer("shop", "reports"), API, 9090)
    drift = _drift([new], pods)
    [denied] = drift.denied
    created = [f for f in denied.fixes if f.create is not None]
    assert [f.ref for f in created] == ["shop/reports-netpol"]
    assert created[0].create["spec"]["podSelector"] == {"matchLabels": {"app": "reports"}}
    assert any(p.created and p.name == "reports-netpol" for p in drift.patches)


def test_an_attempt_towards_a_denied_peer_is_a_blocked_attempt() -> None:
    tried = replace(make_edge(WEB, DB, 5432), outcome=Outcome.UNANSWERED)
    drift = _drift([make_edge(UI, WEB, 8080), make_edge(WEB, API, 9090), tried])
    assert drift.denied == ()
    [blocked] = drift.blocked_attempts
    assert blocked.edge == tried and blocked.fixes
    assert drift.failed


def test_rules_the_window_never_used_are_candidates_to_remove() -> None:
    drift = _drift([make_edge(UI, WEB, 8080)])
    subjects = {(f.rule, f.subject) for f in drift.unused}
    assert ("audit-unused-rule", "networkpolicy/shop/api-netpol") in subjects
    assert not drift.failed


def test_a_new_workload_without_a_policy_of_its_own_is_named() -> None:
    pods = [*shop_pods(), make_pod("shop", "reports", {"app": "reports"}, "10.244.1.40")]
    drift = _drift([make_edge(UI, WEB, 8080)], pods)
    assert [str(u.workload) for u in drift.unselected] == ["shop/deployment/reports"]
    assert not drift.unselected[0].open  # the namespace's default deny selects it


def test_outputs_escape_names_and_carry_the_patch() -> None:
    new = make_edge(API, DB, 5432)
    drift = _drift([new])
    text = render_markdown(drift, "patch.yaml")
    assert "## Denied edges" in text and "`patch.yaml`" in text
    data = drift_dict(drift)
    assert data["failed"] is True and data["denied"][0]["destination"] == "shop/statefulset/db"
    patch = render_patch_yaml(drift)
    assert "kubectl patch networkpolicy -n shop api-netpol --type=json" in patch
    assert patch.count("\n---\n") == len(drift.patches)
