"""ClusterNetworkPolicy: reading (schema and CEL rules as the API server checks them) and the
tiers (Admin, NetworkPolicy, Baseline; Accept, Deny, Pass; priorities and their ties)."""

from __future__ import annotations

import copy
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from discover.inventory.model import ContainerPort
from discover.netpol import IpEndpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.cluster_evaluate import TieredEvaluator, domain_matches
from discover.netpol.cluster_policy import InvalidClusterPolicyError, parse_cluster_policy
from discover.netpol.files import PolicyFileError, load_policy_file, load_policy_files

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "network-policy-api"
NAME = "kubernetes.io/metadata.name"


def pod(ns: str, app: str, ip: str, ports: tuple[ContainerPort, ...] = ()) -> PodEndpoint:
    return PodEndpoint(ns, {"app": app}, {NAME: ns}, ip_address(ip), ports, app)


API = pod("shop", "api", "10.0.0.1", (ContainerPort(8080, "TCP", "http"),))
WEB = pod("shop", "web", "10.0.0.2")
DB = pod("data", "db", "10.0.1.1", (ContainerPort(5432, "TCP", "pg"),))
METADATA = IpEndpoint(ip_address("169.254.169.254"))


def cnp(name: str, tier: str, priority: int, *, subject: dict[str, Any] | None = None,
        ingress: list[dict[str, Any]] | None = None,
        egress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"tier": tier, "priority": priority,
                            "subject": subject or {"namespaces": {}}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def rule(action: str, peers: list[dict[str, Any]], key: str = "to",
         protocols: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"action": action, key: peers}
    if protocols:
        out["protocols"] = protocols
    return out


def tcp(port: int) -> dict[str, Any]:
    return {"tcp": {"destinationPort": {"number": port}}}


ALL_PODS: dict[str, Any] = {"namespaces": {}}
NETWORK_ALL = {"networks": ["0.0.0.0/0"]}


def np_allow_web_to_api() -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "api"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                  "ports": [{"port": 8080}]}]}}


# -- tiers -------------------------------------------------------------------------------


def test_admin_deny_overrides_a_networkpolicy_allow() -> None:
    deny = cnp("deny", "Admin", 10, ingress=[rule("Deny", [ALL_PODS], "from")])
    verdict = TieredEvaluator([np_allow_web_to_api()], [deny]).check(WEB, API, "TCP", 8080)
    assert not verdict.allowed
    assert "Deny by Admin ClusterNetworkPolicy deny (priority 10) ingress rule 1" in verdict.reason


def test_admin_pass_hands_over_to_networkpolicy_then_baseline() -> None:
    passing = cnp("pass", "Admin", 1, ingress=[rule("Pass", [ALL_PODS], "from")])
    baseline_deny = cnp("base", "Baseline", 1, ingress=[rule("Deny", [ALL_PODS], "from")])
    evaluator = TieredEvaluator([np_allow_web_to_api()], [passing, baseline_deny])
    # api is isolated by its NetworkPolicy: that tier decides, the baseline is never reached
    assert evaluator.check(WEB, API, "TCP", 8080).allowed
    assert not evaluator.check(WEB, API, "TCP", 9090).allowed
    # db has no NetworkPolicy: the baseline decides
    verdict = evaluator.check(WEB, DB, "TCP", 5432)
    assert not verdict.allowed and "Baseline ClusterNetworkPolicy base" in verdict.reason
    assert "after Pass by Admin" in verdict.reason


def test_no_tier_decides_means_allowed() -> None:
    other = cnp("other", "Admin", 1, subject={"namespaces": {"matchLabels": {NAME: "x"}}},
                ingress=[rule("Deny", [ALL_PODS], "from")])
    assert TieredEvaluator([], [other]).check(WEB, DB, "TCP", 5432).allowed


def test_egress_accept_still_needs_the_destination_ingress() -> None:
    accept = cnp("accept", "Admin", 1, egress=[rule("Accept", [ALL_PODS])])
    evaluator = TieredEvaluator([np_allow_web_to_api()], [accept])
    assert not evaluator.check(DB, API, "TCP", 8080).allowed  # api's NetworkPolicy denies db
    assert evaluator.check(WEB, API, "TCP", 8080).allowed


def test_lower_priority_number_first_and_rules_in_order() -> None:
    accept = cnp("a", "Admin", 5, egress=[rule("Accept", [NETWORK_ALL], protocols=[tcp(80)]),
                                          rule("Deny", [NETWORK_ALL])])
    deny = cnp("b", "Admin", 6, egress=[rule("Deny", [NETWORK_ALL])])
    evaluator = TieredEvaluator([], [deny, accept])
    assert evaluator.check(WEB, METADATA, "TCP", 80).allowed
    assert not evaluator.check(WEB, METADATA, "TCP", 81).allowed
    swapped = TieredEvaluator([], [cnp("b", "Admin", 4, egress=[rule("Deny", [NETWORK_ALL])]),
                                   accept])
    assert not swapped.check(WEB, METADATA, "TCP", 80).allowed


def test_same_priority_that_disagrees_takes_the_stricter_and_says_so() -> None:
    accept = cnp("a-accept", "Admin", 5, egress=[rule("Accept", [NETWORK_ALL])])
    deny = cnp("z-deny", "Admin", 5, egress=[rule("Deny", [NETWORK_ALL])])
    verdict = TieredEvaluator([], [accept, deny]).check(WEB, METADATA, "TCP", 80)
    assert not verdict.allowed
    assert "ambiguous: a-accept has the same priority" in verdict.reason


def test_networks_match_pod_addresses_and_nodes_match_by_node_labels() -> None:
    deny_pods_net = cnp("n", "Admin", 1, egress=[rule("Deny", [{"networks": ["10.0.1.0/24"]}])])
    assert not TieredEvaluator([], [deny_pods_net]).check(WEB, DB, "TCP", 5432).allowed
    node = IpEndpoint(ip_address("172.18.0.2"))
    deny_nodes = cnp("nodes", "Admin", 1, egress=[rule("Deny", [{"nodes": {"matchLabels": {
        "role": "control-plane"}}}])])
    labelled = TieredEvaluator([], [deny_nodes], {node.ip: {"role": "control-plane"}})
    assert not labelled.check(WEB, node, "TCP", 6443).allowed
    assert TieredEvaluator([], [deny_nodes], {node.ip: {"role": "worker"}}).check(
        WEB, node, "TCP", 6443).allowed


def test_domain_names_match_the_resolved_name() -> None:
    allow = cnp("fqdn", "Admin", 1, egress=[
        rule("Accept", [{"domainNames": ["api.example.com", "*.cdn.example.net"]}]),
        rule("Deny", [NETWORK_ALL])])
    evaluator = TieredEvaluator([], [allow])
    out = ip_address("192.0.2.1")
    assert evaluator.check(WEB, IpEndpoint(out, ("api.example.com",)), "TCP", 443).allowed
    assert evaluator.check(WEB, IpEndpoint(out, ("a.b.cdn.example.net.",)), "TCP", 1).allowed
    assert not evaluator.check(WEB, IpEndpoint(out, ("cdn.example.net",)), "TCP", 1).allowed
    assert not evaluator.check(WEB, IpEndpoint(out), "TCP", 443).allowed
    assert domain_matches("*.kubernetes.io", "latest.blog.kubernetes.io")
    assert not domain_matches("kubernetes.io", "www.kubernetes.io")
    assert not domain_matches("*.kubernetes.io", "my-kubernetes.io")


def test_named_ports_resolve_against_the_destination_pod() -> None:
    deny = cnp("np", "Admin", 1, ingress=[rule("Deny", [ALL_PODS], "from",
                                                [{"destinationNamedPort": "http"}])])
    evaluator = TieredEvaluator([], [deny])
    assert not evaluator.check(WEB, API, "TCP", 8080).allowed
    assert evaluator.check(WEB, API, "TCP", 8081).allowed
    assert evaluator.check(WEB, DB, "TCP", 5432).allowed  # db has no port named http


def test_without_cluster_policies_it_is_the_networkpolicy_evaluator() -> None:
    policies = [np_allow_web_to_api()]
    plain, tiered = PolicyEvaluator(policies), TieredEvaluator(policies, [])
    for src, dst, port in [(WEB, API, 8080), (WEB, API, 9), (DB, API, 8080), (API, DB, 5432)]:
        assert plain.check(src, dst, "TCP", port) == tiered.check(src, dst, "TCP", port)
        assert plain.connections(src, dst) == tiered.connections(src, dst)


CASES = [
    cnp("pass", "Admin", 1, ingress=[rule("Pass", [ALL_PODS], "from", [tcp(8080)])]),
    cnp("deny", "Admin", 2, ingress=[rule("Deny", [ALL_PODS], "from",
                                          [{"tcp": {"destinationPort": {"range": {
                                              "start": 8000, "end": 8100}}}}])]),
    cnp("accept", "Admin", 2, egress=[rule("Accept", [ALL_PODS], protocols=[tcp(5432)])]),
    cnp("base", "Baseline", 1, ingress=[rule("Accept", [ALL_PODS], "from", [tcp(5432)]),
                                        rule("Deny", [ALL_PODS], "from")]),
]


@pytest.mark.parametrize("chosen", [CASES[:n] for n in range(1, len(CASES) + 1)])
def test_connections_agree_with_check(chosen: list[dict[str, Any]]) -> None:
    evaluator = TieredEvaluator([np_allow_web_to_api()], chosen)
    for src, dst in [(WEB, API), (WEB, DB), (DB, API), (API, DB)]:
        allowed = evaluator.connections(src, dst)
        for port in (1, 5432, 7999, 8000, 8080, 8100, 8101, 65535):
            assert allowed.contains("TCP", port) == evaluator.check(
                src, dst, "TCP", port).allowed, (src.name, dst.name, port)


# -- reading: the API server's checks ----------------------------------------------------


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid policy with one field changed; `path` is dotted, with list indexes."""
    base = cnp("x", "Admin", 1, egress=[rule("Accept", [NETWORK_ALL], protocols=[tcp(80)])])
    document = copy.deepcopy(base)
    target: Any = document
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return document


@pytest.mark.parametrize(("path", "value", "message"), [
    ("spec.tier", "Developer", "expected Admin or Baseline"),
    ("spec.priority", 1001, "0..1000"),
    ("spec.subject", {}, "exactly one of namespaces, pods"),
    ("spec.subject", {"namespaces": {}, "pods": {"podSelector": {}}}, "exactly one"),
    ("spec.egress", [rule("Accept", [NETWORK_ALL])] * 26, "at most 25 rules"),
    ("spec.egress.0.action", "Allow", "expected Accept, Deny or Pass"),
    ("spec.egress.0.to", [], "at least 1 item"),
    ("spec.egress.0.to.0", {"networks": ["10.0.0.0/8"], "namespaces": {}}, "exactly one"),
    ("spec.egress.0.to.0", {"networks": ["10.0.0.300/8"]}, "Invalid CIDR"),
    ("spec.egress.0.to.0", {"domainNames": ["bad name.example"]}, "not a domain name"),
    ("spec.egress.0.to.0", {"domainNames": ["foo*.example.com"]}, "not a domain name"),
    ("spec.egress.0.protocols", [{"destinationNamedPort": "http"}], "namedPorts"),
    ("spec.egress.0.protocols", [{"tcp": {"destinationPort": {"range": {
        "start": 90, "end": 80}}}}], "Start port must be less than End port"),
    ("spec.egress.0.protocols", [{"tcp": {"destinationPort": {"number": 0}}}], "1..65535"),
    ("spec.egress.0.action", "Deny", None),  # valid: networks with Deny
])
def test_invalid_documents_are_refused_naming_the_field(path: str, value: Any,
                                                        message: str | None) -> None:
    document = _with(path, value)
    if message is None:
        parse_cluster_policy(document)
        return
    with pytest.raises(InvalidClusterPolicyError) as caught:
        parse_cluster_policy(document)
    assert message in str(caught.value)
    assert str(caught.value).startswith("ClusterNetworkPolicy x: ")


def test_domain_names_only_in_accept_rules() -> None:
    document = _with("spec.egress.0", rule("Deny", [{"domainNames": ["a.example.com"]}]))
    with pytest.raises(InvalidClusterPolicyError, match="only supported for Accept"):
        parse_cluster_policy(document)


def test_a_file_mixing_both_kinds_and_several_files(tmp_path: Path) -> None:
    import yaml

    first = tmp_path / "a.yaml"
    first.write_text(yaml.safe_dump_all([np_allow_web_to_api(), CASES[0]]))
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(CASES[1]))
    loaded = load_policy_files([first, second])
    assert [p.ref for p in loaded.policies] == ["shop/api"]
    assert [p.name for p in loaded.cluster_policies] == ["pass", "deny"]
    second.write_text(yaml.safe_dump(CASES[0]))
    with pytest.raises(PolicyFileError, match="ClusterNetworkPolicy pass is also in"):
        load_policy_files([first, second])


needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(),
    reason=f"{REFERENCE} (the team's network-policy-api reference) is not here",
)


@needs_reference
@pytest.mark.parametrize("path", sorted((REFERENCE / "crdtest" / "valid").glob("*.yaml"))
                         if REFERENCE.is_dir() else [])
def test_the_projects_valid_documents_read(path: Path) -> None:
    loaded = load_policy_file(path)
    assert len(loaded.cluster_policies) == 1 and not loaded.policies
    policy = loaded.cluster_policies[0]
    assert policy.tier == "Admin" and policy.ingress[0].action == "Deny"


@needs_reference
@pytest.mark.parametrize("path", sorted((REFERENCE / "crdtest" / "invalid").glob("*.yaml"))
                         if REFERENCE.is_dir() else [])
def test_the_projects_invalid_documents_are_refused(path: Path) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(path)
    text = str(caught.value)
    assert str(path) in text and "document 1" in text and "ClusterNetworkPolicy" in text
    assert "\n" not in text


@needs_reference
def test_the_valid_deny_with_ports_is_evaluated() -> None:
    evaluator = TieredEvaluator([], load_policy_file(
        REFERENCE / "crdtest" / "valid" / "deny-with-ports.yaml").cluster_policies)
    sensitive = PodEndpoint("sensitive-ns", {"app": "x"}, {NAME: "sensitive-ns"},
                            ip_address("10.0.2.1"), (ContainerPort(7000, "TCP", "monitoring"),))
    assert not evaluator.check(WEB, sensitive, "TCP", 8500).allowed
    assert not evaluator.check(WEB, sensitive, "TCP", 7000).allowed  # named port monitoring
    assert not evaluator.check(WEB, sensitive, "UDP", 9090).allowed
    assert evaluator.check(WEB, sensitive, "UDP", 9091).allowed
