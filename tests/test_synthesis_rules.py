"""One case per rule of a good proposal (README: default deny, LoadBalancer sources,
declared ports, consumers only, cluster DNS, egress by destination), each with a golden YAML file in
tests/data/synthesis/ (regenerate: UPDATE_GOLDEN=1 pytest tests/test_synthesis_rules.py),
a targeted assertion, and schema validation of every NetworkPolicy it produces."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from discover.enrichment.peers import ClusterUnknownPeer, GraphEdge, NodePeer
from discover.enrichment.workload_graph import UndeclaredPort
from discover.inventory.model import (
    Ingress,
    IngressBackend,
    Inventory,
    NetworkPolicy,
    Service,
    ServicePort,
)
from discover.synthesis import (
    Cloud,
    FqdnMode,
    Proposal,
    ProxyRef,
    SynthesisOptions,
    propose,
    render_cilium_yaml,
    render_fqdn_yaml,
    render_policies_yaml,
)
from tests.factories import (
    external_peer,
    make_edge,
    make_graph,
    make_inventory,
    make_pod,
    node_peer,
    ref,
    shop_pods,
    workload_peer,
)

GOLDEN = Path(__file__).parent / "data" / "synthesis"
K8S_VERSION = "1.30.0"

WEB = workload_peer("shop", "web")
API = workload_peer("shop", "api")
DB = workload_peer("shop", "db", "StatefulSet")
UI = workload_peer("front", "ui")
DNS = workload_peer("kube-system", "coredns", dns=True)
NGINX = workload_peer("ingress-nginx", "ingress-nginx-controller")


@dataclass
class Case:
    name: str
    edges: list[GraphEdge]
    check: Callable[[Proposal], None]
    inventory: Inventory = field(default_factory=lambda: make_inventory(shop_pods()))
    options: SynthesisOptions = field(default_factory=SynthesisOptions)
    undeclared: list[UndeclaredPort] = field(default_factory=list)


def policy(proposal: Proposal, namespace: str, name: str) -> dict[str, Any]:
    for manifest in proposal.policies:
        if manifest["metadata"] == {**manifest["metadata"], "namespace": namespace,
                                    "name": name}:
            return dict(manifest["spec"])
    raise AssertionError(f"no policy {namespace}/{name}")


def rules(spec: dict[str, Any], direction: str) -> list[dict[str, Any]]:
    return list(spec.get(direction, []))


def rule_ids(proposal: Proposal) -> set[str]:
    return {finding.rule for finding in proposal.findings}


# -- the checks, one per rule ---------------------------------------------------------------

def check_default_deny(p: Proposal) -> None:
    assert p.namespaces == ("front", "ingress-nginx", "kube-system", "shop")
    for namespace in p.namespaces:
        spec = policy(p, namespace, "default-deny")
        assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def check_consumers(p: Proposal) -> None:
    web = policy(p, "shop", "web-netpol")
    assert web["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "web"}}
    assert rules(web, "ingress") == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "front"}},
                  "podSelector": {"matchLabels": {"app": "ui"}}}],
        "ports": [{"protocol": "TCP", "port": "http"}],
    }]
    api = policy(p, "shop", "api-netpol")
    assert rules(api, "ingress") == [{
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}}],
        "ports": [{"protocol": "TCP", "port": 9090}],
    }]
    db = policy(p, "shop", "db-netpol")
    assert db["podSelector"] == {"matchLabels": {"app": "db"}}  # no per-pod labels
    assert "egress" not in policy(p, "shop", "db-netpol")


def check_namespace_label(p: Proposal) -> None:
    assert "ingress-5-namespace-label" in rule_ids(p)
    finding = next(f for f in p.findings if f.rule == "ingress-5-namespace-label")
    assert finding.subject == "namespace/front"


def check_port_range(p: Proposal) -> None:
    ports = rules(policy(p, "shop", "api-netpol"), "ingress")[0]["ports"]
    assert ports == [{"protocol": "TCP", "port": 8443},
                     {"protocol": "TCP", "port": 30000, "endPort": 30009}]


def check_undeclared(p: Proposal) -> None:
    ports = rules(policy(p, "shop", "api-netpol"), "ingress")[0]["ports"]
    assert {"protocol": "TCP", "port": 9091} in ports  # observed, so allowed
    finding = next(f for f in p.findings if f.rule == "ingress-4-undeclared-port")
    assert "9091" in finding.message and finding.subject == "shop/deployment/api"


def check_dns(p: Proposal) -> None:
    dns_rule = rules(policy(p, "shop", "web-netpol"), "egress")[0]
    assert dns_rule["to"] == [
        {"ipBlock": {"cidr": "169.254.20.10/32"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
    ]
    assert dns_rule["ports"] == [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]
    coredns = policy(p, "kube-system", "coredns-netpol")
    # every pod, and the nodes' addresses (host-network clients), never an external IP
    assert rules(coredns, "ingress") == [
        {"from": [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "10.0.0.2/32"}}],
         "ports": dns_rule["ports"]},
        {"from": [{"namespaceSelector": {}}], "ports": dns_rule["ports"]}]
    assert "ingress-6-dns-external" in rule_ids(p)
    assert "egress" not in policy(p, "shop", "api-netpol")  # resolved nothing


def check_external_source(p: Proposal) -> None:
    assert "ingress" not in policy(p, "shop", "api-netpol")
    assert "ingress-2-external-source" in rule_ids(p)


def _lb_rule_cidrs(p: Proposal) -> list[list[str]]:
    return [[peer["ipBlock"]["cidr"] for peer in rule["from"] if "ipBlock" in peer]
            for rule in rules(policy(p, "shop", "web-netpol"), "ingress")]


def check_lb_gke(p: Proposal) -> None:
    cidrs = _lb_rule_cidrs(p)
    assert ["35.191.0.0/16", "130.211.0.0/22"] in cidrs
    assert ["10.0.0.2/32"] in cidrs  # SNAT from the other node, eTP Cluster
    assert not any("192.0.2.50/32" in c for c in cidrs)
    assert {"ingress-3-etp-cluster", "ingress-3-source-outside-lb-ranges",
            "ingress-node-source"} <= rule_ids(p)


def check_lb_aks(p: Proposal) -> None:
    assert ["168.63.129.16/32"] in _lb_rule_cidrs(p)


def check_lb_eks_local(p: Proposal) -> None:
    assert ["198.51.100.20/32"] in _lb_rule_cidrs(p)
    assert {"ingress-3-lb-client-addresses", "ingress-3-eks-vpc-cidrs"} <= rule_ids(p)
    assert "ingress-3-etp-cluster" not in rule_ids(p)


def check_lb_eks_vpc(p: Proposal) -> None:
    assert ["10.20.0.0/16"] in _lb_rule_cidrs(p)
    assert "ingress-3-lb-client-addresses" not in rule_ids(p)


def check_ingress_controller(p: Proposal) -> None:
    web_rules = rules(policy(p, "shop", "web-netpol"), "ingress")
    controller_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
    }
    # the backend's container names the port: the rule uses the name, like observed rules
    assert {"from": [controller_peer], "ports": [{"protocol": "TCP", "port": "http"}]} in web_rules
    controller = policy(p, "ingress-nginx", "ingress-nginx-controller-netpol")
    assert any(r["to"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "web"}}
               for r in rules(controller, "egress"))
    assert "ingress-2-external-source" in rule_ids(p)  # the direct external hit


def check_node_sources(p: Proposal) -> None:
    assert "ingress" not in policy(p, "shop", "web-netpol")  # local kubelet probe only
    api = rules(policy(p, "shop", "api-netpol"), "ingress")
    assert api == [{"from": [{"ipBlock": {"cidr": "10.0.0.2/32"}}],
                    "ports": [{"protocol": "TCP", "port": 9090}]}]
    assert {"ingress-node-local", "ingress-node-source"} <= rule_ids(p)
    web = next(d for d in p.documents if d.name == "web-netpol")
    assert any("kubelet probes" in line for line in web.comments)


def check_external_ip(p: Proposal) -> None:
    assert rules(policy(p, "shop", "api-netpol"), "egress") == [
        {"to": [{"ipBlock": {"cidr": "198.51.100.9/32"}}],
         "ports": [{"protocol": "TCP", "port": 5432}]},
        {"to": [{"ipBlock": {"cidr": "2001:db8::7/128"}}],
         "ports": [{"protocol": "TCP", "port": 443}]},
    ]
    assert "egress" not in policy(p, "shop", "web-netpol")


def check_fqdn_any_ip(p: Proposal) -> None:
    egress = rules(policy(p, "shop", "api-netpol"), "egress")
    blocks = [r["to"][0]["ipBlock"] for r in egress if "ipBlock" in r["to"][0]]
    assert {"cidr": "0.0.0.0/0", "except": ["10.0.0.1/32", "10.0.0.2/32", "10.96.0.0/12",
                                             "10.244.0.0/16", "169.254.0.0/16"]} in blocks
    assert any(r["to"][0].get("namespaceSelector") for r in egress)  # DNS, never captured
    assert "egress-fqdn-any-ip" in rule_ids(p)
    dep = p.fqdn_dependencies[0]
    assert (dep.fqdn, dep.cname_chain) == ("pay.example.com", ("edge.cdn.example.net",))
    assert p.cilium_policies[0]["spec"]["egress"][1]["toFQDNs"] == [
        {"matchName": "pay.example.com"}]


def check_fqdn_pin(p: Proposal) -> None:
    egress = rules(policy(p, "shop", "api-netpol"), "egress")
    cidrs = [r["to"][0]["ipBlock"]["cidr"] for r in egress if "ipBlock" in r["to"][0]]
    assert cidrs == ["203.0.113.7/32", "203.0.113.8/32"]
    assert "egress-fqdn-pin" in rule_ids(p)


def check_fqdn_proxy(p: Proposal) -> None:
    egress = rules(policy(p, "shop", "api-netpol"), "egress")
    proxy_rule = next(r for r in egress if "podSelector" in r["to"][0]
                      and r["to"][0]["podSelector"]["matchLabels"] == {"app": "squid"})
    assert proxy_rule["ports"] == [{"protocol": "TCP", "port": 3128}]
    assert not any("ipBlock" in r["to"][0] for r in egress)
    assert p.proxy_allowlist == ("pay.example.com:443",)
    assert "egress-fqdn-proxy" in rule_ids(p)
    squid = policy(p, "egress", "squid-netpol")
    assert any("ipBlock" in r["to"][0] for r in rules(squid, "egress"))  # the proxy goes out
    assert rules(squid, "ingress") == [{  # and accepts its new client
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                  "podSelector": {"matchLabels": {"app": "api"}}}],
        "ports": [{"protocol": "TCP", "port": 3128}]}]


def check_selector_inexact(p: Proposal) -> None:
    # {app: api} also selects api-canary: as a podSelector it would hand api's rules to
    # the canary, as web's egress peer it would admit the canary; so neither is written
    assert "api-netpol" not in {m["metadata"]["name"] for m in p.policies}
    assert policy(p, "shop", "default-deny")["podSelector"] == {}
    assert "egress" not in policy(p, "shop", "web-netpol")
    assert {"app": "api"} not in [m["spec"]["podSelector"].get("matchLabels")
                                  for m in p.policies]
    finding = next(f for f in p.findings if f.rule == "selector-no-exact-label")
    assert finding.severity.value == "critical" and finding.subject == "shop/deployment/api"
    assert "add a label that identifies workload shop/deployment/api" in finding.message
    assert "api-canary" in finding.message
    assert sorted((d.direction, d.allowed) for d in p.decisions) == [
        ("egress", False), ("ingress", False)]


def check_cni_flannel(p: Proposal) -> None:
    finding = next(f for f in p.findings if f.rule == "cni-no-networkpolicy")
    assert finding.severity.value == "critical" and "flannel" in finding.message


def check_audit(p: Proposal) -> None:
    ids = rule_ids(p)
    assert {"audit-no-default-deny", "audit-allow-all-peers", "audit-allow-all-ports",
            "audit-blocked-flow", "audit-unused-rule"} <= ids
    blocked = next(f for f in p.findings if f.rule == "audit-blocked-flow")
    assert blocked.subject == "shop/deployment/api -> shop/statefulset/db"


# -- the cases -------------------------------------------------------------------------------

def _with(inventory: Inventory, **changes: Any) -> Inventory:
    return replace(inventory, **changes)


BASE = make_inventory(shop_pods())
LB = Service("shop", "web-lb", "LoadBalancer", {"app.kubernetes.io/name": "web"},
             ports=(ServicePort(80, "TCP", "http", "http"),), external_traffic_policy="Cluster")
LB_LOCAL = replace(LB, external_traffic_policy="Local")
CONSUMERS = [
    make_edge(UI, WEB, 8080, port_name="http"),
    make_edge(WEB, API, 9090, connections=42),
    make_edge(API, DB, 5432, port_name="pg"),
]
FQDN_EDGES = [
    make_edge(API, external_peer("203.0.113.7", fqdn="pay.example.com",
                           chain=("edge.cdn.example.net",)), 443),
    make_edge(API, external_peer("203.0.113.8", fqdn="pay.example.com",
                           chain=("edge.cdn.example.net",)), 443),
]
SQUID = make_pod("egress", "squid", {"app": "squid"}, "10.244.2.40", ports=[(3128, "TCP", None)])
EXTERNAL = external_peer("192.0.2.50")
CASES = [
    Case("default-deny", CONSUMERS, check_default_deny),
    Case("consumers", CONSUMERS, check_consumers),
    Case("namespace-label", CONSUMERS, check_namespace_label,
         inventory=make_inventory(shop_pods(), unlabelled=["front"])),
    Case("port-range",
         [make_edge(WEB, API, port) for port in [*range(30000, 30010), 8443]], check_port_range),
    Case("undeclared-port", [make_edge(WEB, API, 9090), make_edge(WEB, API, 9091)],
         check_undeclared, undeclared=[UndeclaredPort(ref("shop", "api"), "TCP", 9091, True)]),
    Case("dns",
         [make_edge(WEB, DNS, 53, protocol="UDP", port_name="dns"),
          make_edge(WEB, DNS, 53, port_name="dns-tcp"),
          make_edge(WEB, ClusterUnknownPeer(ip_address("169.254.20.10")), 53, protocol="UDP"),
          make_edge(EXTERNAL, DNS, 53, protocol="UDP")],
         check_dns),
    Case("external-source", [make_edge(EXTERNAL, API, 9090)], check_external_source),
    Case("lb-gke",
         [make_edge(external_peer("35.191.3.4"), WEB, 8080, port_name="http"),
          make_edge(EXTERNAL, WEB, 8080, port_name="http"),
          make_edge(node_peer("10.0.0.2", node="node-2"), WEB, 8080)],
         check_lb_gke,
         # web runs on node-1 only: node-2's address is another node's (kube-proxy SNAT)
         inventory=_with(make_inventory([p for p in shop_pods() if p.name != "web-5d8f7-00001"],
                                        provider="gke"), services=(LB,))),
    Case("lb-aks", [make_edge(external_peer("168.63.129.16"), WEB, 8080)],
         check_lb_aks, inventory=_with(make_inventory(shop_pods(), provider="aks"),
                                       services=(LB,))),
    Case("lb-eks-local", [make_edge(external_peer("198.51.100.20"), WEB, 8080)],
         check_lb_eks_local, inventory=_with(make_inventory(shop_pods(), provider="eks"),
                                             services=(LB_LOCAL,))),
    Case("lb-eks-vpc", [make_edge(external_peer("10.20.1.5"), WEB, 8080)],
         check_lb_eks_vpc, inventory=_with(make_inventory(shop_pods(), provider="eks"),
                                           services=(LB_LOCAL,)),
         options=SynthesisOptions(aws_vpc_cidrs=(ip_network("10.20.0.0/16"),))),
    Case("ingress-controller", [make_edge(EXTERNAL, WEB, 8080)], check_ingress_controller,
         inventory=_with(BASE, services=(replace(LB, name="web", type="ClusterIP"),),
                         ingresses=(Ingress("shop", "web", "nginx",
                                            (IngressBackend("web", "http"),)),))),
    Case("node-sources",
         [make_edge(node_peer("10.0.0.1", node="node-1"), WEB, 8080),
          make_edge(node_peer("10.0.0.1", node="node-1"), API, 9090),
          make_edge(node_peer("10.0.0.2", node="node-2"), API, 9090)],
         check_node_sources),
    Case("external-ip",
         [make_edge(API, external_peer("198.51.100.9"), 5432),
          make_edge(API, external_peer("2001:db8::7"), 443),
          make_edge(UI, WEB, 8080)],
         check_external_ip),
    Case("fqdn-any-ip", FQDN_EDGES, check_fqdn_any_ip,
         inventory=_with(BASE, services=(Service("kube-system", "kube-dns", cluster_ips=(
             ip_network("10.96.0.10/32").network_address,)),))),
    Case("fqdn-pin", FQDN_EDGES, check_fqdn_pin,
         options=SynthesisOptions(fqdn_mode=FqdnMode.PIN)),
    Case("fqdn-proxy",
         [*FQDN_EDGES, make_edge(workload_peer("egress", "squid"),
                                 external_peer("203.0.113.7",
                                         fqdn="pay.example.com"), 443)],
         check_fqdn_proxy, inventory=make_inventory([*shop_pods(), SQUID]),
         options=SynthesisOptions(egress_proxy=ProxyRef.parse("egress/squid"))),
    Case("selector-inexact", [make_edge(WEB, API, 9090)], check_selector_inexact,
         inventory=make_inventory([*shop_pods(), make_pod(
             "shop", "api-canary", {"app": "api", "tier": "backend"}, "10.244.1.50")])),
    Case("cni-flannel", CONSUMERS, check_cni_flannel,
         inventory=make_inventory([p for p in shop_pods() if "calico" not in p.name] + [
             make_pod("kube-flannel", "kube-flannel-ds", {"app": "flannel"}, "10.0.0.1",
                      kind="DaemonSet", host_network=True,
                      images=["docker.io/flannel/flannel:v0.24.0"])])),
    Case("audit", CONSUMERS, check_audit, inventory=_with(BASE, network_policies=(
        NetworkPolicy("shop", "web-open", {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}, "ingress": [{}]}),
        NetworkPolicy("shop", "db-from-web", {
            "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "ui"}}}]}]}),
    ))),
]


def render_all(proposal: Proposal) -> str:
    findings = "".join(
        f"# {f.severity.value} {f.rule} {f.subject}: {f.message}"
        + (f" [{f.evidence}]" if f.evidence else "") + "\n"
        for f in proposal.findings
    )
    return (render_policies_yaml(proposal) + "\n# ==== fqdn-dependencies.yaml\n"
            + render_fqdn_yaml(proposal) + "\n# ==== cilium-policies.yaml\n"
            + render_cilium_yaml(proposal) + "\n# ==== findings\n" + findings)


def validate_documents(text: str) -> int:
    count = 0
    for document in yaml.safe_load_all(text):
        if not document:
            continue
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        count += 1
    return count


def validate_cilium(text: str) -> None:
    for document in yaml.safe_load_all(text):
        if not document:
            continue
        assert document["apiVersion"] == "cilium.io/v2"
        assert document["kind"] == "CiliumNetworkPolicy"
        assert set(document["spec"]) == {"endpointSelector", "egress"}
        for rule in document["spec"]["egress"]:
            for port_rule in rule["toPorts"]:
                assert all(isinstance(p["port"], str) for p in port_rule["ports"])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case) -> None:
    # these cases test the other rules on kube-system's CoreDNS too: write its policy
    # (system namespaces are held back by default, see test_synthesis_control_plane.py)
    options = replace(case.options, include_system=True)
    if case.name.startswith("lb-"):
        options = replace(options, cloud=Cloud.AUTO)
    proposal = propose(make_graph(case.edges, case.undeclared), case.inventory, options)
    case.check(proposal)
    policies = render_policies_yaml(proposal)
    assert validate_documents(policies) == len(proposal.documents)
    validate_cilium(render_cilium_yaml(proposal))
    assert yaml.safe_load_all(render_fqdn_yaml(proposal))
    rendered = render_all(proposal)
    golden = GOLDEN / f"{case.name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert golden.exists(), f"run UPDATE_GOLDEN=1 to create {golden}"
    assert rendered == golden.read_text()


def test_a_workload_missing_from_the_inventory_is_never_selected_by_an_empty_selector() -> None:
    ghost = workload_peer("shop", "ghost")
    proposal = propose(make_graph([make_edge(WEB, ghost, 80), make_edge(ghost, API, 9090)]),
                       BASE, SynthesisOptions())
    assert "egress" not in policy(proposal, "shop", "web-netpol")
    assert "ingress" not in policy(proposal, "shop", "api-netpol")
    assert {"egress-unresolved-destination", "ingress-unresolved-source"} <= rule_ids(proposal)


def test_scope_limits_policies_to_the_namespaces_asked() -> None:
    proposal = propose(make_graph(CONSUMERS), BASE, SynthesisOptions(namespaces=("front",)))
    assert proposal.namespaces == ("front",)
    assert {m["metadata"]["namespace"] for m in proposal.policies} == {"front"}
    # the UI's egress to shop is still written: the destination is out of scope, not unknown
    assert rules(policy(proposal, "front", "ui-netpol"), "egress")


def test_an_unknown_pod_reached_by_ip_keeps_its_ipblock_with_a_warning() -> None:
    from dataclasses import replace as with_ip

    gone = with_ip(workload_peer("shop", "gone"), ip=ip_address("10.244.1.99"))
    # a host-network pod is a node address served by that pod
    node_pod = NodePeer(ip_address("10.0.0.1"), "node-1",
                        ref("kube-system", "calico-node", "DaemonSet"))
    proposal = propose(make_graph([make_edge(API, gone, 8080), make_edge(API, node_pod, 9099)]),
                       BASE, SynthesisOptions())
    assert rules(policy(proposal, "shop", "api-netpol"), "egress") == [
        {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
         "ports": [{"protocol": "TCP", "port": 9099}]},
        {"to": [{"ipBlock": {"cidr": "10.244.1.99/32"}}],
         "ports": [{"protocol": "TCP", "port": 8080}]},
    ]
    (finding,) = [f for f in proposal.findings if f.rule == "ipblock-pod-ip"]
    assert finding.severity.value == "warning" and finding.subject == "shop/deployment/api"
    assert "Cilium" in finding.message and "10.244.1.99" in finding.message


def test_dns_pods_without_a_selector_of_their_own_are_never_a_peer() -> None:
    # a second workload shares CoreDNS's only label: {k8s-app: kube-dns} would open port
    # 53 (and, via the FQDN rule's DNS, more) to it as well
    twin = make_pod("kube-system", "dns-twin", {"k8s-app": "kube-dns"}, "10.244.0.3")
    inventory = make_inventory([*shop_pods(), twin])
    edges = [make_edge(WEB, DNS, 53, protocol="UDP", port_name="dns"), *FQDN_EDGES]
    proposal = propose(make_graph(edges), inventory, SynthesisOptions())
    for manifest in proposal.policies:
        for rule in manifest["spec"].get("egress", []):
            assert rule["to"], manifest["metadata"]["name"]  # an empty `to` allows all
            assert {"k8s-app": "kube-dns"} not in [
                peer.get("podSelector", {}).get("matchLabels") for peer in rule["to"]]
    assert "egress" not in policy(proposal, "shop", "web-netpol")
    assert "coredns-netpol" not in {m["metadata"]["name"] for m in proposal.policies}
    assert proposal.cilium_documents == ()
    subjects = {f.subject for f in proposal.findings if f.rule == "selector-no-exact-label"}
    assert subjects == {"kube-system/deployment/coredns", "kube-system/deployment/dns-twin"}
    dns_decisions = [d.allowed for d in proposal.decisions if d.edge.port == 53]
    assert dns_decisions and not any(dns_decisions)


def test_a_guessed_dns_selector_is_a_warning() -> None:
    # no CoreDNS in the inventory and no lookup captured: the rule keeps the usual default
    no_dns = make_inventory([p for p in shop_pods() if p.workload.name != "coredns"])
    proposal = propose(make_graph(FQDN_EDGES), no_dns, SynthesisOptions())
    guessed = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    assert any(r["to"] == [guessed] for r in rules(policy(proposal, "shop", "api-netpol"),
                                                    "egress"))
    (finding,) = [f for f in proposal.findings if f.rule == "dns-pods-unknown"]
    assert finding.severity.value == "warning" and finding.subject == "cluster/dns"
    assert "k8s-app=kube-dns" in finding.message and "guess" in finding.message
    assert "kubectl get pods -A -l k8s-app=kube-dns" in finding.message
    # known DNS pods, or nobody resolving names: nothing is guessed
    assert "dns-pods-unknown" not in rule_ids(propose(make_graph(FQDN_EDGES), BASE,
                                                      SynthesisOptions()))
    assert "dns-pods-unknown" not in rule_ids(propose(make_graph(CONSUMERS), no_dns,
                                                      SynthesisOptions()))
