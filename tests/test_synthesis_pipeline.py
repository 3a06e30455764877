"""Synthesis on a graph the real enrichment built from flow rows, proven with the same
verification `netpol-discover verify` runs: every flow is allowed, or denied on purpose."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import ip_address

import pandas as pd

from discover.enrichment.workload_graph import build_graph
from discover.flows.events import DirectionEvidence, Protocol
from discover.flows.flowtable import DnsRow, FlowRow
from discover.inventory.model import Service, ServicePort
from discover.netpol.evaluate import PolicyEvaluator
from discover.synthesis import SynthesisOptions, propose, render_policies_yaml
from discover.synthesis.fqdn import dns_observations
from discover.verification.verify import verify_flows
from tests.factories import make_inventory, shop_pods
from tests.test_synthesis_rules import validate_documents

WHEN = pd.Timestamp(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
KUBE_DNS = Service("kube-system", "kube-dns", "ClusterIP", {"k8s-app": "kube-dns"},
                   cluster_ips=(ip_address("10.96.0.10"),),
                   ports=(ServicePort(53, "UDP", "dns", 53), ServicePort(53, "TCP", "dns-tcp", 53)))
API_SVC = Service("shop", "api", "ClusterIP", {"app": "api"},
                  cluster_ips=(ip_address("10.96.0.20"),),
                  ports=(ServicePort(80, "TCP", None, 9090),))

FLOWS = [  # src, dst, protocol, port
    ("10.244.2.20", "10.244.1.10", "TCP", 8080),  # ui -> web pod
    ("10.244.1.10", "10.96.0.20", "TCP", 80),  # web -> api ClusterIP (targetPort 9090)
    ("10.244.1.10", "10.96.0.10", "UDP", 53),  # web -> kube-dns
    ("10.244.1.11", "10.96.0.10", "UDP", 53),  # api -> kube-dns
    ("10.244.1.11", "203.0.113.7", "TCP", 443),  # api -> pay.example.com
    ("10.244.1.11", "10.244.1.12", "TCP", 5432),  # api -> db
    ("10.0.0.1", "10.244.1.10", "TCP", 8080),  # kubelet probe on node-1
    ("192.0.2.50", "10.244.1.11", "TCP", 9090),  # external, not exposed: denied on purpose
]


def _frames() -> tuple[tuple[FlowRow, ...], tuple[DnsRow, ...]]:
    when = WHEN.timestamp()
    flows = tuple(
        FlowRow(ip_address(src), ip_address(dst), Protocol(protocol), port, 2, 10, when, when,
                DirectionEvidence.SYN)
        for src, dst, protocol, port in FLOWS)
    dns = (DnsRow(ip_address("10.244.1.11"), "pay.example.com", ip_address("203.0.113.7"), (),
                  ip_address("10.96.0.10"), 60, 1, when - 1, when),)
    return flows, dns


def test_every_flow_is_allowed_or_denied_on_purpose() -> None:
    inventory = replace(make_inventory(shop_pods()), services=(KUBE_DNS, API_SVC))
    flows, dns = _frames()
    graph = build_graph(flows, dns, inventory)
    proposal = propose(graph, inventory, SynthesisOptions(), dns_observations(dns))
    verdicts = verify_flows(flows, PolicyEvaluator(proposal.policies), inventory)
    denied = {(str(v.src_ip), str(v.dst_ip), v.dst_port) for v in verdicts if not v.allowed}
    assert denied == {("192.0.2.50", "10.244.1.11", 9090)}
    (dependency,) = proposal.fqdn_dependencies
    assert dependency.fqdn == "pay.example.com" and dependency.ttls == (60,)
    web = next(p for p in proposal.policies if p["metadata"]["name"] == "web-netpol")
    # the ClusterIP flow became egress to the api pods on the targetPort
    assert {"protocol": "TCP", "port": 9090} in [
        port for rule in web["spec"]["egress"] for port in rule["ports"]]
    assert "ingress-2-external-source" in {f.rule for f in proposal.findings}
    assert validate_documents(render_policies_yaml(proposal)) == len(proposal.policies)
