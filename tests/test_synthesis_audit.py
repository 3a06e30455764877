"""Audit of existing policies: default denies, rules nothing observed used, blocked flows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from discover.inventory.model import NetworkPolicy
from discover.synthesis.audit import audit_existing
from discover.synthesis.options import SynthesisOptions
from tests.factories import (
    make_edge,
    make_inventory,
    node_peer,
    shop_pods,
    workload_peer,
)

WEB = workload_peer("shop", "web")
API = workload_peer("shop", "api")
DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
API_FROM_WEB = {
    "podSelector": {"matchLabels": {"app": "api"}},
    "ingress": [{
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}},
                 {"podSelector": {"matchLabels": {"app": "ui"}}}],
        "ports": [{"protocol": "TCP", "port": 9090}, {"protocol": "TCP", "port": 9443}],
    }],
}


def _audit(policies: dict[str, dict[str, Any]], edges: list[Any],
           namespaces: tuple[str, ...] = ("shop",)) -> set[tuple[str, str, str]]:
    inventory = replace(make_inventory(shop_pods()), network_policies=tuple(
        NetworkPolicy("shop", name, spec) for name, spec in policies.items()))
    findings = audit_existing(inventory, edges, namespaces, SynthesisOptions())
    return {(f.rule, f.subject, f.message) for f in findings}


def test_a_default_deny_is_recognised_and_blocks_what_it_must() -> None:
    found = _audit({"deny": DENY_ALL}, [make_edge(WEB, API, 9090)])
    assert not any(rule == "audit-no-default-deny" for rule, _, _ in found)
    assert any(rule == "audit-blocked-flow" and subject == "shop/deployment/web -> "
               "shop/deployment/api" for rule, subject, _ in found)


def test_traffic_from_the_pods_own_node_is_never_reported_blocked() -> None:
    probe = make_edge(node_peer("10.0.0.1", node="node-1"), API, 9090)
    other_node = make_edge(node_peer("10.0.0.2", node="node-2"), API, 9090)
    found = _audit({"deny": DENY_ALL}, [probe, other_node])
    blocked = [subject for rule, subject, _ in found if rule == "audit-blocked-flow"]
    assert blocked == ["node/node-2 -> shop/deployment/api"]


def test_unused_peers_and_ports_are_named() -> None:
    deny_ingress = {"podSelector": {}, "policyTypes": ["Ingress"]}
    found = _audit({"deny": deny_ingress, "api-from-web": API_FROM_WEB},
                   [make_edge(WEB, API, 9090)])
    subject = "networkpolicy/shop/api-from-web"
    assert ("audit-unused-peer", subject, "ingress rule 1: peer pods app=ui was never seen"
            ) in found
    assert ("audit-unused-port", subject, "ingress rule 1: port TCP 9443 was never seen"
            ) in found
    assert not any(rule == "audit-unused-rule" for rule, _, _ in found)
    assert not any(rule == "audit-blocked-flow" for rule, _, _ in found)
    assert ("audit-no-default-deny", "namespace/shop",
            "no existing default deny for egress (a policy with podSelector {} and no rules)"
            ) in found


def test_an_unreadable_policy_is_a_finding_not_a_crash() -> None:
    found = _audit({"bad": {"podSelector": {}, "policyTypes": ["Sideways"]}}, [])
    assert any(rule == "audit-invalid-policy" for rule, _, _ in found)


def test_no_policies_at_all() -> None:
    found = _audit({}, [make_edge(WEB, API, 9090)])
    assert {rule for rule, _, _ in found} == {"audit-no-policies"}
