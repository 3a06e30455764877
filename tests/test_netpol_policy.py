"""Reading NetworkPolicy objects: defaults, and the errors the API server would give."""

from __future__ import annotations

from typing import Any

import pytest

from discover.netpol import InvalidPolicyError
from discover.netpol.policy import parse_policy
from discover.netpol.selectors import parse_selector


def policy(spec: Any, **metadata: Any) -> dict[str, Any]:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "ns", **metadata},
        "spec": spec,
    }


def test_defaults() -> None:
    parsed = parse_policy(policy({}))
    assert parsed.ref == "ns/p"
    assert parsed.pod_selector.empty
    assert (parsed.affects_ingress, parsed.affects_egress) == (True, False)
    assert parse_policy(policy({"egress": [{}]})).affects_egress
    assert not parse_policy(policy({"egress": []})).affects_egress
    assert parse_policy({"kind": "NetworkPolicy", "metadata": {"name": "p"}}).namespace == "default"


def test_rules_and_peers() -> None:
    parsed = parse_policy(
        policy(
            {
                "ingress": [
                    {"from": [{"podSelector": {}, "namespaceSelector": {"matchLabels": {"a": 1}}}]},
                    None,
                ],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": "10.0.0.1/8", "except": ["10.1.0.0/16"]}}],
                        "ports": [{"port": 53, "protocol": "UDP"}],
                    }
                ],
            }
        )
    )
    first = parsed.ingress[0].peers[0]
    assert first.pod_selector is not None and first.pod_selector.empty
    assert first.namespace_selector is not None and first.namespace_selector.match_labels == (
        ("a", "1"),
    )
    assert parsed.ingress[1].peers == () and parsed.ingress[1].number == 2
    block = parsed.egress[0].peers[0].ip_block
    assert block is not None and str(block) == "10.0.0.0/8 except 10.1.0.0/16"
    assert str(parsed.egress[0].ports[0]) == "UDP 53"
    assert str(parsed.egress[0].peers[0]) == "ipBlock 10.0.0.0/8 except 10.1.0.0/16"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]", "needs podSelector"),
        (
            {"ingress": [{"from": [{"ipBlock": {"cidr": "1.0.0.0/8"}, "podSelector": {}}]}]},
            "spec.ingress[0].from[0]",
            "can't be combined",
        ),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "nonsense"}}]}]},
            "spec.egress[0].to[0].ipBlock.cidr",
            "not a CIDR",
        ),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["11.0.0.0/24"]}}]}]},
            "spec.egress[0].to[0].ipBlock.except[0]",
            "not inside",
        ),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}},
            "spec.podSelector.matchExpressions[0]",
            "not one of",
        ),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "spec.podSelector.matchExpressions[0]",
            "needs values",
        ),
        (
            {
                "podSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]
                }
            },
            "spec.podSelector.matchExpressions[0]",
            "takes no values",
        ),
        ({"ingress": [{"ports": [{"port": 70000}]}]}, "spec.ingress[0].ports[0].port", "range"),
        (
            {"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
            "spec.ingress[0].ports[0].endPort",
            "numeric port",
        ),
        (
            {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
            "spec.ingress[0].ports[0].endPort",
            "must be in 90-65535",
        ),
        (
            {"ingress": [{"ports": [{"port": 90, "protocol": "ICMP"}]}]},
            "spec.ingress[0].ports[0].protocol",
            "unsupported protocol",
        ),
        ({"policyTypes": ["Inbound"]}, "spec.policyTypes[0]", "expected Ingress/Egress"),
        # YAML lets anything in: a mapping was an unhashable-type traceback.
        ({"policyTypes": ["Ingress", {"a": 1}]}, "spec.policyTypes[1]",
         "expected Ingress/Egress, got {'a': 1}"),
        ({"policyTypes": [["Egress"]]}, "spec.policyTypes[0]", "expected Ingress/Egress"),
        ({"policyTypes": "Ingress"}, "spec.policyTypes", "expected a list"),
        ({"policyTypes": ["Ingress", "Egress", "Ingress"]}, "spec.policyTypes",
         "more than two policyTypes"),
        ({"ingress": {"from": []}}, "spec.ingress", "expected a list"),
        ({"podSelector": {"matchLabel": {}}}, "spec.podSelector", "unknown selector field"),
    ],
)
def test_invalid_policies_name_the_field(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(policy(spec))
    assert caught.value.policy == "ns/p"
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"NetworkPolicy ns/p: {field}: ")


def test_missing_name_and_wrong_kind() -> None:
    with pytest.raises(InvalidPolicyError, match="metadata.name: missing"):
        parse_policy({"kind": "NetworkPolicy", "metadata": {}})
    with pytest.raises(InvalidPolicyError, match="expected NetworkPolicy"):
        parse_policy({"kind": "Pod", "metadata": {"name": "x"}})


def test_selector_rendering_and_yaml_scalars() -> None:
    selector = parse_selector(
        {
            "matchLabels": {"on": True, "tier": 1},
            "matchExpressions": [
                {"key": "k", "operator": "NotIn", "values": ["b", "a"]},
                {"key": "e", "operator": "DoesNotExist"},
            ],
        },
        policy="ns/p",
        field="f",
    )
    assert str(selector) == "on=true,tier=1,k notin (a,b),!e"
    assert selector.matches({"on": "true", "tier": "1"})
    assert not selector.matches({"on": "true", "tier": "1", "e": ""})
    assert str(parse_selector(None, policy="", field="f")) == "{}"
