"""Cluster facts: one rule for the cluster DNS pods, one label matcher, one set of indexes
shared by enrichment and synthesis."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from discover.enrichment.resolver import Resolver
from discover.inventory.facts import NODELOCAL_DNS, facts_for, is_dns_pod, selects
from discover.inventory.model import Service
from discover.netpol.selectors import parse_selector
from discover.synthesis.cluster_dns import find_cluster_dns
from discover.synthesis.context import SynthesisContext
from discover.synthesis.options import SynthesisOptions
from tests.factories import T0, make_inventory, make_pod, ref


def test_coredns_by_its_helm_label_is_dns_for_enrichment_too() -> None:
    """Regression: `app.kubernetes.io/name=coredns` (the CoreDNS Helm chart's label) made a
    pod DNS for synthesis only; enrichment called its peer an ordinary workload."""
    dns = make_pod("kube-system", "coredns", {"app.kubernetes.io/name": "coredns"},
                   "10.244.0.2", ports=[(53, "UDP", "dns")])
    inventory = make_inventory([dns])
    peer = Resolver(inventory).resolve_source(ip_address("10.244.0.2"), T0)
    assert peer.workload == ref("kube-system", "coredns")
    assert peer.is_cluster_dns
    assert find_cluster_dns([], inventory).workloads == (ref("kube-system", "coredns"),)


def test_node_local_dns_in_the_pod_network_is_dns_for_synthesis_too() -> None:
    """Regression: `k8s-app=node-local-dns` made a pod DNS for enrichment only; synthesis
    neither wrote its port-53 ingress nor named it in the DNS egress rule."""
    cache = make_pod("kube-system", "node-local-dns", {"k8s-app": "node-local-dns"},
                     "10.244.0.3", kind="DaemonSet", ports=[(53, "UDP", "dns")])
    inventory = make_inventory([cache])
    peer = Resolver(inventory).resolve_source(ip_address("10.244.0.3"), T0)
    assert peer.is_cluster_dns
    workload = ref("kube-system", "node-local-dns", "DaemonSet")
    assert find_cluster_dns([], inventory).workloads == (workload,)


def test_host_network_node_local_dns_is_dns_but_reached_by_its_address() -> None:
    cache = make_pod("kube-system", "node-local-dns", {"k8s-app": "node-local-dns"},
                     "10.0.0.1", kind="DaemonSet", host_network=True)
    inventory = make_inventory([cache])
    assert facts_for(inventory).dns_workloads == {cache.workload}
    # no podSelector reaches a host-network pod: the DNS rule keeps its guess and the
    # NodeLocal ipBlock when lookups to it are seen
    assert find_cluster_dns([], inventory).workloads == ()
    [(local, _, _)] = Resolver(inventory).resolve_destination(
        NODELOCAL_DNS, "UDP", 53, T0, ip_address("10.244.1.5"))
    assert local.is_cluster_dns and local.workload == cache.workload


@pytest.mark.parametrize(("namespace", "labels", "images", "expected"), [
    ("kube-system", {"k8s-app": "kube-dns"}, (), True),
    ("kube-system", {"k8s-app": "coredns"}, (), True),
    ("kube-system", {"app.kubernetes.io/name": "coredns"}, (), True),
    ("kube-system", {"k8s-app": "node-local-dns"}, (), True),
    ("kube-system", {"app": "x"}, ("registry.k8s.io/coredns/coredns:v1.11.1",), True),
    ("kube-system", {"app": "x"}, (), False),
    ("default", {"k8s-app": "kube-dns"}, ("registry.k8s.io/coredns/coredns:v1.11.1",), False),
])
def test_one_dns_rule(namespace: str, labels: dict[str, str], images: tuple[str, ...],
                      expected: bool) -> None:
    pod = make_pod(namespace, "x", labels, "10.244.0.9", images=images)
    assert is_dns_pod(pod) is expected


def test_pods_selected_by_a_dns_service_are_dns() -> None:
    pod = make_pod("kube-system", "resolver", {"app": "my-dns"}, "10.244.0.9")
    service = Service("kube-system", "kube-dns", selector={"app": "my-dns"})
    inventory = make_inventory([pod], services=(service,))
    assert facts_for(inventory).dns_workloads == {pod.workload}
    assert not is_dns_pod(pod)  # without the Service, nothing says it is DNS


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {"a": "1"}, True),
    ({"a": "1"}, {"a": "1", "b": "2"}, True),
    ({"a": "1", "b": "3"}, {"a": "1", "b": "2"}, False),
    ({"a": ""}, {}, False),
])
def test_one_label_matcher(selector: dict[str, str], labels: dict[str, str],
                           expected: bool) -> None:
    assert selects(selector.items(), labels) is expected
    parsed = parse_selector({"matchLabels": selector}, policy="p", field="f")
    assert parsed.matches(labels) is expected


def test_enrichment_and_synthesis_share_one_index() -> None:
    inventory = make_inventory([make_pod("shop", "web", {"app": "web"}, "10.244.1.10")])
    resolver = Resolver(inventory)
    context = SynthesisContext(inventory, SynthesisOptions())
    assert resolver.facts is context.facts is facts_for(inventory)
    assert context.pods_by_workload[ref("shop", "web")][0].name == "web-5d8f7-00000"

