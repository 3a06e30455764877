"""Rendering: byte-identical output, a comment header per document, a parseable file."""

from __future__ import annotations

import yaml

from discover.inventory.model import Pod
from discover.synthesis import (
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
    shop_pods,
    workload_peer,
)
from tests.test_synthesis_rules import validate_cilium, validate_documents

EDGES = [
    make_edge(workload_peer("front", "ui"), workload_peer("shop", "web"), 8080, port_name="http"),
    make_edge(workload_peer("shop", "web"), workload_peer("shop", "api"), 9090),
    make_edge(workload_peer("shop", "api"),
              external_peer("203.0.113.7", fqdn="pay.example.com"), 443),
]


def _render() -> tuple[str, str, str]:
    proposal = propose(make_graph(EDGES), make_inventory(shop_pods()), SynthesisOptions())
    return (render_policies_yaml(proposal), render_fqdn_yaml(proposal),
            render_cilium_yaml(proposal))


def test_rendered_policies_pass_the_schema() -> None:
    policies, _, cilium = _render()
    # 3 default denies, 5 workloads: kube-system (CoreDNS) is held back unless asked for
    assert validate_documents(policies) == 8
    validate_cilium(cilium)


def test_same_input_same_bytes() -> None:
    assert _render() == _render()
    reversed_edges = propose(make_graph(list(reversed(EDGES))), make_inventory(shop_pods()),
                             SynthesisOptions())
    assert render_policies_yaml(reversed_edges) == _render()[0]


def test_every_document_has_a_comment_header() -> None:
    policies, _, cilium = _render()
    for text in (policies, cilium):
        chunks = text.split("---\n")[1:]
        assert chunks
        for chunk in chunks:
            assert chunk.startswith("# ")


def test_documents_parse_and_are_grouped_by_namespace() -> None:
    policies, fqdn, _ = _render()
    documents = [d for d in yaml.safe_load_all(policies) if d]
    namespaces = [d["metadata"]["namespace"] for d in documents]
    assert namespaces == sorted(namespaces)
    firsts = {ns: namespaces.index(ns) for ns in namespaces}
    assert all(documents[i]["metadata"]["name"] == "default-deny" for i in firsts.values())
    (deps,) = [d for d in yaml.safe_load_all(fqdn) if d]
    assert deps["dependencies"][0]["fqdn"] == "pay.example.com"


def test_evidence_annotation_is_compact_and_counts() -> None:
    policies, _, _ = _render()
    web = next(d for d in yaml.safe_load_all(policies)
               if d and d["metadata"]["name"] == "web-netpol")
    annotations = web["metadata"]["annotations"]
    assert annotations["netpol-discover.io/evidence"] == (
        "ingress[0]: front/deployment/ui TCP 8080 x3 conns "
        "2026-01-05T09:00:00Z..2026-01-05T15:00:00Z; "
        "egress[0]: shop/deployment/api TCP 9090 x3 conns "
        "2026-01-05T09:00:00Z..2026-01-05T15:00:00Z")
    assert annotations["netpol-discover.io/learning-window"] == (
        "2026-01-05T09:00:00Z/2026-01-05T15:00:00Z")


def _deny_header(proposal_pods: list[Pod], namespace: str) -> tuple[str, ...]:
    proposal = propose(make_graph(EDGES), make_inventory(proposal_pods), SynthesisOptions())
    (deny,) = [d for d in proposal.documents
               if d.namespace == namespace and d.name == "default-deny"]
    return deny.comments


def test_default_deny_header_says_why_a_namespace_has_no_workload_policy() -> None:
    # ui-twin wears ui's only label: neither can be selected, front gets no workload policy
    twin = make_pod("front", "ui-twin", {"app": "ui"}, "10.244.2.21")
    header = _deny_header([*shop_pods(), twin], "front")
    assert not any("workload polic" in line and " below " in line for line in header)
    assert header[1] == (
        "no workload policy is written in this namespace: no label selects exactly the pods "
        "of front/deployment/ui, front/deployment/ui-twin (see the selector-no-exact-label "
        "findings), so this default deny blocks all of their traffic, also what was observed "
        "from 2026-01-05T09:00:00Z to 2026-01-05T15:00:00Z")
    # beside written policies, the ones left out are named
    canary = make_pod("shop", "api-canary", {"app": "api", "tier": "backend"}, "10.244.1.50")
    header = _deny_header([*shop_pods(), canary], "shop")
    assert header[1].startswith("the 2 workload policies below allow what was observed")
    assert header[2].startswith(
        "no workload policy for shop/deployment/api, shop/deployment/api-canary: no label "
        "selects exactly their pods (see the selector-no-exact-label findings)")
    # every workload selectable: only the count
    assert len(_deny_header(shop_pods(), "shop")) == 2
