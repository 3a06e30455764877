"""Selectors: the smallest stable label set that selects exactly the workload's pods."""

from __future__ import annotations

from discover.inventory.model import WorkloadTemplate
from discover.synthesis.factories import make_inventory, make_pod, ref
from discover.synthesis.selectors import choose_selector, is_stable_key


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
