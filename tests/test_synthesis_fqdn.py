"""FQDN dependencies: DNS rows in, TTLs and moving addresses out; the proxy must exist."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address

import pytest
import yaml

from discover.enrichment.peers import GraphEdge
from discover.flows.flowtable import DnsRow
from discover.netpol.evaluate import IpEndpoint, PolicyEvaluator
from discover.synthesis import FqdnMode, Proposal, ProxyRef, SynthesisOptions, propose
from discover.synthesis.fqdn import DnsObservation, EgressProxyError, dns_observations
from discover.synthesis.selfcheck import EndpointFactory
from tests.factories import (
    T0,
    T1,
    external_peer,
    make_edge,
    make_graph,
    make_inventory,
    shop_pods,
    workload_peer,
)

API = workload_peer("shop", "api")


def _edge(address: str) -> GraphEdge:
    return make_edge(API, external_peer(address, fqdn="s3.example.com"), 443)


def test_dns_table_rows_become_records() -> None:
    table_row = DnsRow(ip_address("10.244.1.11"), "s3.example.com", ip_address("203.0.113.5"),
                       ("a.example.net", "b.example.net"), ip_address("10.96.0.10"), 30, 4,
                       T0.timestamp(), T1.timestamp())
    (row,) = dns_observations([table_row])
    assert row == DnsObservation("s3.example.com", ip_address("203.0.113.5"), 30, T0, T1,
                                 ("a.example.net", "b.example.net"))


def test_moving_addresses_and_ttls_are_reported() -> None:
    later = T0 + timedelta(hours=3)
    dns = [
        DnsObservation("s3.example.com", ip_address("203.0.113.5"), 60, T0, T0),
        DnsObservation("s3.example.com", ip_address("203.0.113.6"), 30, later, T1),
    ]
    proposal = propose(make_graph([_edge("203.0.113.5"), _edge("203.0.113.6")]),
                       make_inventory(shop_pods()), SynthesisOptions(), dns)
    (dep,) = proposal.fqdn_dependencies
    assert dep.ttls == (30, 60)
    assert dep.addresses_changed is True
    assert [str(a) for a in dep.addresses] == ["203.0.113.5", "203.0.113.6"]
    assert dep.connections == 6 and dep.handling == "any-ip"


def test_stable_addresses_are_not_changed() -> None:
    dns = [DnsObservation("s3.example.com", ip_address("203.0.113.5"), 60, T0, T1),
           DnsObservation("s3.example.com", ip_address("203.0.113.6"), 60, T0, T1)]
    proposal = propose(make_graph([_edge("203.0.113.5")]), make_inventory(shop_pods()),
                       SynthesisOptions(fqdn_mode=FqdnMode.PIN), dns)
    assert proposal.fqdn_dependencies[0].addresses_changed is False
    # pinning covers the round-robin sibling DNS answered too, on the port seen
    api = next(p for p in proposal.policies if p["metadata"]["name"] == "api-netpol")
    pinned = [(r["to"][0]["ipBlock"]["cidr"], r["ports"]) for r in api["spec"]["egress"]
              if "ipBlock" in r["to"][0]]
    assert pinned == [("203.0.113.5/32", [{"protocol": "TCP", "port": 443}]),
                      ("203.0.113.6/32", [{"protocol": "TCP", "port": 443}])]


def test_unknown_proxy_is_a_configuration_error() -> None:
    with pytest.raises(EgressProxyError, match="egress/nope"):
        propose(make_graph([_edge("203.0.113.5")]), make_inventory(shop_pods()),
                SynthesisOptions(egress_proxy=ProxyRef("egress", "nope")))


def test_proxy_without_ports_needs_one_named() -> None:
    # web declares 8080 only as the port; ui declares none at all
    with pytest.raises(EgressProxyError, match="NS/NAME:PORT"):
        propose(make_graph([_edge("203.0.113.5")]), make_inventory(shop_pods()),
                SynthesisOptions(egress_proxy=ProxyRef("front", "ui")))
    proposal = propose(make_graph([_edge("203.0.113.5")]), make_inventory(shop_pods()),
                       SynthesisOptions(egress_proxy=ProxyRef("front", "ui", 8888)))
    assert "front" in str(proposal.policies)


def _any_ip_blocks(proposal: Proposal) -> list[dict[str, object]]:
    api = next(p for p in proposal.policies if p["metadata"]["name"] == "api-netpol")
    return [r["to"][0]["ipBlock"] for r in api["spec"]["egress"]
            if "ipBlock" in r["to"][0] and "except" in r["to"][0]["ipBlock"]]


def test_any_ip_excepts_nodes_and_cloud_metadata() -> None:
    edges = [_edge("203.0.113.5"), make_edge(API, external_peer("2001:db8::5",
                                                          fqdn="s3.example.com"), 443)]
    proposal = propose(make_graph(edges), make_inventory(shop_pods()), SynthesisOptions())
    blocks = _any_ip_blocks(proposal)
    assert {"cidr": "0.0.0.0/0",
            "except": ["10.0.0.1/32", "10.0.0.2/32", "10.244.0.0/16", "169.254.0.0/16"]
            } in blocks
    assert {"cidr": "::/0", "except": ["fd00:ec2::254/128", "fe80::/10"]} in blocks
    evaluator = PolicyEvaluator(proposal.policies)
    api = EndpointFactory(make_inventory(shop_pods())).endpoint(API)
    assert api is not None
    for address in ("169.254.169.254", "10.0.0.1", "10.0.0.2", "fd00:ec2::254", "fe80::1"):
        assert not evaluator.check(api, IpEndpoint(ip_address(address)), "TCP", 443).allowed
    for address in ("203.0.113.5", "198.51.100.1", "2001:db8::9"):
        assert evaluator.check(api, IpEndpoint(ip_address(address)), "TCP", 443).allowed
    finding = next(f for f in proposal.findings if f.rule == "egress-fqdn-any-ip")
    assert "2 node addresses" in finding.message and "169.254.0.0/16" in finding.message
    assert "egress-fqdn-any-ip-not-excepted" not in {f.rule for f in proposal.findings}


def test_any_ip_keeps_open_what_a_name_resolved_to() -> None:
    edges = [make_edge(API, external_peer("169.254.169.254",
                                    fqdn="metadata.example.internal"), 80)]
    dns = [DnsObservation("metadata.example.internal", ip_address("169.254.169.254"), 60,
                          T0, T1)]
    proposal = propose(make_graph(edges), make_inventory(shop_pods()), SynthesisOptions(), dns)
    assert _any_ip_blocks(proposal) == [{"cidr": "0.0.0.0/0",
                                         "except": ["10.0.0.1/32", "10.0.0.2/32",
                                                    "10.244.0.0/16"]}]
    finding = next(f for f in proposal.findings if f.rule == "egress-fqdn-any-ip-not-excepted")
    assert "169.254.0.0/16" in finding.message and finding.evidence == "169.254.169.254"


def test_any_ip_excepts_the_api_server_endpoints() -> None:
    # a managed control plane: the API server's address is no node's
    from dataclasses import replace

    from discover.inventory.model import Endpoint, EndpointSlice

    master = EndpointSlice("default", "kubernetes-abc", "kubernetes",
                           endpoints=(Endpoint((ip_address("192.0.2.44"),)),))
    inventory = replace(make_inventory(shop_pods()), endpoint_slices=(master,))
    proposal = propose(make_graph([_edge("203.0.113.5")]), inventory, SynthesisOptions())
    assert _any_ip_blocks(proposal) == [{"cidr": "0.0.0.0/0", "except": [
        "10.0.0.1/32", "10.0.0.2/32", "10.244.0.0/16", "169.254.0.0/16", "192.0.2.44/32"]}]
    finding = next(f for f in proposal.findings if f.rule == "egress-fqdn-any-ip")
    assert "the API server endpoint 192.0.2.44/32" in finding.message


def test_a_workload_without_a_policy_keeps_its_names_listed_but_unhandled() -> None:
    # api-canary shares api's labels: api gets no policy, yet its names stay listed
    from discover.synthesis import render_fqdn_yaml
    from tests.factories import make_pod

    canary = make_pod("shop", "api-canary", {"app": "api", "tier": "backend"}, "10.244.1.50")
    squid = make_pod("egress", "squid", {"app": "squid"}, "10.244.2.40",
                     ports=[(3128, "TCP", None)])
    web = workload_peer("shop", "web")
    edges = [_edge("203.0.113.5"),
             make_edge(web, external_peer("198.51.100.3", fqdn="cdn.example.org"),
                       443)]
    for options in (SynthesisOptions(), SynthesisOptions(egress_proxy=ProxyRef("egress", "squid"))):
        proposal = propose(make_graph(edges), make_inventory([*shop_pods(), canary, squid]),
                           options)
        by_fqdn = {dep.fqdn: dep for dep in proposal.fqdn_dependencies}
        unhandled = by_fqdn["s3.example.com"]
        assert str(unhandled.workload) == "shop/deployment/api" and not unhandled.has_policy
        assert unhandled.handling.startswith("none (no policy: ")
        assert "selector-no-exact-label" in unhandled.handling
        assert unhandled.connections == 3 and [str(a) for a in unhandled.addresses] == [
            "203.0.113.5"]
        handled = by_fqdn["cdn.example.org"]
        assert handled.has_policy and handled.handling == options.effective_fqdn_mode.value
        # only the workload with a policy feeds the proxy and the Cilium alternative
        assert proposal.proxy_allowlist == ("cdn.example.org:443",)
        assert [d.name for d in proposal.cilium_documents] == ["web-fqdn"]
        assert [d.allowed for d in proposal.decisions
                if d.edge.destination.label().startswith("s3.example.com ")] == [False]
        rendered = render_fqdn_yaml(proposal)
        assert "2 dependencies on external names" in rendered
        assert "1 of them by no rule (their workload gets no policy" in rendered
        (listed,) = [d for d in yaml.safe_load_all(rendered) if d]
        assert [(d["fqdn"], d["handling"] == unhandled.handling)
                for d in listed["dependencies"]] == [("s3.example.com", True),
                                                    ("cdn.example.org", False)]
