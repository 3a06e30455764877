"""Selectors: the smallest stable label set that selects exactly the workload's pods."""

from __future__ import annotations

from discover.inventory.model import WorkloadTemplate
from discover.synthesis.selectors import choose_selector, is_stable_key
from tests.factories import make_inventory, make_pod, ref


def test_unstable_keys() -> None:
    for key in ("pod-template-hash", "controller-revision-hash", "job-name", "controller-uid",
                "statefulset.kubernetes.io/pod-name", "batch.kubernetes.io/job-name",
                "apps.kubernetes.io/pod-index"):
        assert not is_stable_key(key)
    assert is_stable_key("app")


def test_prefers_a_well_known_key() -> None:
    inventory = make_inventory([make_pod("ns", "web", {
        "zeta": "1", "app.kubernetes.io/name": "web", "pod-template-hash": "abc"}, "10.244.0.1")])
    choice = choose_selector(ref("ns", "web"), inventory)
    assert choice.labels == {"app.kubernetes.io/name": "web"} and choice.exact


def test_adds_a_key_when_one_is_not_enough() -> None:
    inventory = make_inventory([
        make_pod("ns", "web-blue", {"app": "web", "track": "blue"}, "10.244.0.1"),
        make_pod("ns", "web-green", {"app": "web", "track": "green"}, "10.244.0.2"),
    ])
    choice = choose_selector(ref("ns", "web-blue"), inventory)
    assert choice.labels == {"track": "blue"} and choice.exact


def test_same_labels_in_another_namespace_do_not_matter() -> None:
    inventory = make_inventory([
        make_pod("a", "web", {"app": "web"}, "10.244.0.1"),
        make_pod("b", "web", {"app": "web"}, "10.244.0.2"),
    ])
    assert choose_selector(ref("a", "web"), inventory).exact


def test_inexact_selector_names_the_other_pods() -> None:
    inventory = make_inventory([
        make_pod("ns", "api", {"app": "api"}, "10.244.0.1"),
        make_pod("ns", "api-canary", {"app": "api"}, "10.244.0.2"),
    ])
    choice = choose_selector(ref("ns", "api"), inventory)
    assert not choice.exact
    assert choice.labels == {"app": "api"}
    assert choice.extra_pods == ("api-canary-5d8f7-00000",)
    assert "api-canary" in choice.note


def test_no_labels_selects_the_namespace_and_says_so() -> None:
    inventory = make_inventory([
        make_pod("ns", "bare", {"pod-template-hash": "x"}, "10.244.0.1"),
        make_pod("ns", "other", {"app": "other"}, "10.244.0.2"),
    ])
    choice = choose_selector(ref("ns", "bare"), inventory)
    assert choice.labels == {} and not choice.exact and "no stable pod labels" in choice.note


def test_template_labels_win_over_pod_labels() -> None:
    pod = make_pod("ns", "web", {"app": "web", "version": "v2"}, "10.244.0.1")
    template = WorkloadTemplate(ref("ns", "web"), {"app": "web", "pod-template-hash": "1"})
    inventory = make_inventory([pod], workloads=(template,))
    assert choose_selector(ref("ns", "web"), inventory).labels == {"app": "web"}


def test_no_labels_alone_in_the_namespace_is_still_not_exact() -> None:
    # {} selects every pod created there later: never a podSelector or a peer
    inventory = make_inventory([make_pod("solo", "bare", {"pod-template-hash": "x"},
                                         "10.244.0.1")])
    choice = choose_selector(ref("solo", "bare"), inventory)
    assert choice.labels == {} and not choice.exact


def test_a_workload_without_a_selector_of_its_own_gets_no_policy_and_its_flows_are_denied(
) -> None:
    from dataclasses import replace
    from ipaddress import ip_address

    from discover.analysis import _check_denials
    from discover.enrichment.peers import FlowKey
    from discover.netpol.evaluate import PolicyEvaluator
    from discover.synthesis import SynthesisOptions, propose
    from discover.synthesis.selfcheck import EndpointFactory
    from discover.verification.verify import FlowVerdict
    from tests.factories import make_edge, make_graph, workload_peer

    pods = [make_pod("solo", "bare", {"pod-template-hash": "x"}, "10.244.0.1"),
            make_pod("shop", "web", {"app": "web"}, "10.244.0.2"),
            make_pod("shop", "api", {"app": "api"}, "10.244.0.3")]
    inventory = make_inventory(pods)
    bare, web, api = (workload_peer("solo", "bare"), workload_peer("shop", "web"),
                      workload_peer("shop", "api"))
    key = FlowKey(ip_address("10.244.0.2"), ip_address("10.244.0.1"), "TCP", 80)
    edges = [replace(make_edge(web, bare, 80), evidence=(key,)), make_edge(bare, api, 9090),
             make_edge(web, api, 9090)]
    proposal = propose(make_graph(edges), inventory, SynthesisOptions())
    names = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in proposal.policies}
    assert ("solo", "default-deny") in names and ("solo", "bare-netpol") not in names
    for manifest in proposal.policies:
        assert manifest["spec"]["podSelector"] != {} or \
            manifest["metadata"]["name"] == "default-deny"
    finding = next(f for f in proposal.findings if f.rule == "selector-no-exact-label")
    assert finding.severity.value == "critical" and finding.subject == "solo/deployment/bare"
    assert "add a label that identifies workload solo/deployment/bare" in finding.message
    decisions = {(str(d.edge.source.workload), str(d.edge.destination.workload), d.direction):
                 d.allowed for d in proposal.decisions}
    assert decisions[("shop/deployment/web", "solo/deployment/bare", "egress")] is False
    assert decisions[("solo/deployment/bare", "shop/deployment/api", "ingress")] is False
    assert decisions[("shop/deployment/web", "shop/deployment/api", "ingress")] is True
    evaluator, endpoints = PolicyEvaluator(proposal.policies), EndpointFactory(inventory)
    for edge in edges:
        src, dst = endpoints.endpoint(edge.source), endpoints.endpoint(edge.destination)
        assert src is not None and dst is not None
        allowed = evaluator.check(src, dst, edge.protocol, edge.port).allowed
        assert allowed == (edge.destination != bare and edge.source != bare)
    # analyze accepts the denial: it was decided on purpose
    verdict = FlowVerdict(key.src_ip, key.dst_ip, "TCP", 80, False, "denied", "web", ("bare",))
    _check_denials((verdict,), proposal)
