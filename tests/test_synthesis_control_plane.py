"""Issue 16: what keeps the cluster running is never cut. One case per rule: API-server
egress for known watchers, webhook backends admitting the API server, cluster DNS from
the nodes and to its upstreams, kubelet probes by CNI, system namespaces held back, and
the invariant check that refuses a proposal breaking one of them."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from typing import Any

import pytest

from discover.analysis import InvariantBrokenError, analyze
from discover.inventory.model import (
    ApiCallback,
    CalledService,
    DnsForwarding,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Inventory,
    ProbePort,
    RoleBinding,
    Service,
    ServicePort,
)
from discover.synthesis import Proposal, SynthesisOptions, propose
from discover.synthesis.options import ProbeRules
from discover.verification.invariants import check_invariants
from tests.factories import make_edge, make_graph, make_inventory, make_pod, workload_peer

API_IP = "203.0.113.200"
UPSTREAM = "198.51.100.53"


def cluster(*, api: bool = True, cni: str = "calico/node:v3", rbac: bool = False) -> Inventory:
    dns = make_pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, "10.244.0.2",
                   ports=[(53, "UDP", "dns"), (53, "TCP", "dns-tcp")])
    pods = [
        dns,
        make_pod("kube-system", "calico-node", {"k8s-app": "calico-node"}, "10.0.0.1",
                 host_network=True, images=[cni]),
        make_pod("ingress-nginx", "controller", {"app.kubernetes.io/name": "ingress-nginx"},
                 "10.244.1.2", ports=[(80, "TCP", "http")]),
        replace(make_pod("shop", "hook", {"app": "hook"}, "10.244.1.3",
                         ports=[(8443, "TCP", "webhook")]),
                probes=(ProbePort("readiness", 8443, "main"),)),
        replace(make_pod("shop", "worker", {"app": "worker"}, "10.244.1.4"),
                service_account="worker"),
    ]
    objects: dict[str, Any] = {
        "services": (
            Service("shop", "hook", selector={"app": "hook"},
                    cluster_ips=(ip_address("10.96.0.50"),),
                    ports=(ServicePort(443, target_port="webhook"),)),
        ),
        "api_callbacks": (ApiCallback("ValidatingWebhookConfiguration", "hooks",
                                      (CalledService("shop", "hook", 443),)),),
        "dns_forwarding": (DnsForwarding("kube-system/coredns", (ip_address(UPSTREAM),),
                                         (53,)),),
    }
    if api:
        objects["services"] += (Service("default", "kubernetes",
                                        cluster_ips=(ip_address("10.96.0.1"),),
                                        ports=(ServicePort(443, target_port=6443),)),)
        objects["endpoint_slices"] = (EndpointSlice(
            "default", "kubernetes", "kubernetes", (EndpointPort(6443),),
            (Endpoint((ip_address(API_IP),)),)),)
    if rbac:
        objects["role_bindings"] = (RoleBinding("shop", "worker", "Role/lease",
                                                (("shop", "worker"),)),)
        objects["has_rbac"] = True
    return make_inventory(pods, **objects)


EDGES = [make_edge(workload_peer("shop", "worker"),
                   workload_peer("kube-system", "coredns", dns=True), 53, protocol="UDP")]


def run(inventory: Inventory, **options: Any) -> Proposal:
    return propose(make_graph(EDGES), inventory, SynthesisOptions(**options))


def policy(proposal: Proposal, namespace: str, name: str) -> dict[str, Any]:
    return next(dict(p) for p in proposal.policies
                if p["metadata"]["namespace"] == namespace and p["metadata"]["name"] == name)


def rules_to(proposal: Proposal, namespace: str, name: str, direction: str,
             cidr: str) -> list[dict[str, Any]]:
    key = "to" if direction == "egress" else "from"
    return [r for r in policy(proposal, namespace, name)["spec"].get(direction, [])
            if {"ipBlock": {"cidr": cidr}} in r[key]]


@pytest.mark.parametrize(("namespace", "name", "direction", "cidr", "ports"), [
    # a known watcher gets egress to the API server's endpoint, not its ClusterIP
    ("ingress-nginx", "controller-netpol", "egress", f"{API_IP}/32", [("TCP", 6443)]),
    # CoreDNS: the API server, its upstream resolver, and port 53 from the nodes
    ("kube-system", "coredns-netpol", "egress", f"{API_IP}/32", [("TCP", 6443)]),
    ("kube-system", "coredns-netpol", "egress", f"{UPSTREAM}/32", [("TCP", 53), ("UDP", 53)]),
    ("kube-system", "coredns-netpol", "ingress", "10.0.0.1/32", [("TCP", 53), ("UDP", 53)]),
    # the webhook backend accepts the API server on the Service's target port
    ("shop", "hook-netpol", "ingress", f"{API_IP}/32", [("TCP", 8443)]),
])
def test_control_plane_rules(namespace: str, name: str, direction: str, cidr: str,
                             ports: list[tuple[str, int]]) -> None:
    proposal = run(cluster(), include_system=True)
    (rule,) = rules_to(proposal, namespace, name, direction, cidr)
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == ports
    assert check_invariants(proposal, cluster()) == []


def test_without_the_api_server_the_watchers_get_a_critical_finding() -> None:
    proposal = run(cluster(api=False))
    found = {(f.rule, f.subject, f.severity.value) for f in proposal.findings}
    assert ("control-plane-unknown", "ingress-nginx/deployment/controller", "critical") in found
    # kube-system is held back: its would-be policy cuts nothing yet
    assert ("control-plane-unknown", "kube-system/deployment/coredns", "info") in found


@pytest.mark.parametrize(("options", "written"), [
    ({}, False),
    ({"include_system": True}, True),
    ({"namespaces": ("kube-system", "shop")}, True),
])
def test_system_namespaces_are_opt_in(options: dict[str, Any], written: bool) -> None:
    proposal = run(cluster(), **options)
    assert ("kube-system" in proposal.namespaces) is written
    held = [f for f in proposal.findings if f.rule == "system-namespace-held-back"]
    assert bool(held) is not written
    if held:
        assert "coredns-netpol" in held[0].message and f"{UPSTREAM}/32" in held[0].evidence
        assert all(d.allowed is None for d in proposal.decisions
                   if d.policy and d.policy.startswith("kube-system/"))


@pytest.mark.parametrize(("cni", "choice", "probe_rule"), [
    ("calico/node:v3", ProbeRules.AUTO, False),
    ("cilium/cilium:v1.15", ProbeRules.AUTO, False),
    ("antrea/antrea-agent:v2", ProbeRules.AUTO, True),
    ("calico/node:v3", ProbeRules.ALWAYS, True),
    ("antrea/antrea-agent:v2", ProbeRules.NEVER, False),
])
def test_probe_rules_follow_the_cni(cni: str, choice: ProbeRules, probe_rule: bool) -> None:
    proposal = run(cluster(cni=cni), probe_rules=choice)
    assert bool(rules_to(proposal, "shop", "hook-netpol", "ingress", "10.0.0.1/32")) is probe_rule
    assert any(f.rule == "probes-unaffected" for f in proposal.findings) is not probe_rule


@pytest.mark.parametrize(("rbac", "rule"), [
    (True, "control-plane-unseen-client"),
    (False, "control-plane-rbac-unknown"),
])
def test_token_and_rbac_without_a_seen_connection(rbac: bool, rule: str) -> None:
    proposal = run(cluster(rbac=rbac))
    assert rule in {f.rule for f in proposal.findings}


def test_a_proposal_that_cuts_a_watcher_is_refused() -> None:
    inventory = cluster()
    proposal = run(inventory)
    cut = tuple(replace(d, manifest={**d.manifest, "spec": {
        **d.manifest["spec"], "egress": []}}) if d.name == "controller-netpol" else d
        for d in proposal.documents)
    broken = check_invariants(replace(proposal, documents=cut), inventory)
    assert [f.rule for f in broken] == ["invariant-broken:api-server-watchers"]
    assert broken[0].severity.value == "critical"


def test_analyze_refuses_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    import discover.analysis as analysis

    inventory = cluster()

    def cutting(*args: Any, **kwargs: Any) -> Proposal:
        proposal = propose(*args, **kwargs)
        return replace(proposal, documents=tuple(
            replace(d, manifest={**d.manifest, "spec": {**d.manifest["spec"], "egress": []}})
            if d.name == "controller-netpol" else d for d in proposal.documents))

    monkeypatch.setattr(analysis, "propose", cutting)
    with pytest.raises(InvariantBrokenError, match="api-server-watchers"):
        analyze((), (), inventory, SynthesisOptions())
    result = analyze((), (), inventory, SynthesisOptions(accept_broken_invariants=True))
    assert any(f.rule == "invariant-broken:api-server-watchers" for f in result.proposal.findings)
