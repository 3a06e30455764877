"""NetworkPolicy semantics, rule by rule: a table of cases, then invariants (hypothesis)."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.inventory.model import ContainerPort
from discover.netpol import IpEndpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.ports import ConnectionSet


def pod(
    ns: str = "shop",
    name: str = "web",
    ip: str | None = None,
    ports: tuple[ContainerPort, ...] = (),
    ns_labels: dict[str, str] | None = None,
    **labels: str,
) -> PodEndpoint:
    return PodEndpoint(
        namespace=ns,
        labels=labels or {"app": name},
        namespace_labels={"kubernetes.io/metadata.name": ns, **(ns_labels or {})},
        ip=ip_address(ip) if ip else None,
        ports=ports,
        name=name,
    )


def ext(ip: str) -> IpEndpoint:
    return IpEndpoint(ip_address(ip))


def netpol(name: str, spec: dict[str, Any], ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


WEB = pod(name="web", ip="10.0.0.1")
API = pod(
    name="api",
    ip="10.0.0.2",
    ports=(ContainerPort(8080, "TCP", "http"), ContainerPort(9090, "UDP", "metrics")),
)
DB = pod(name="db", ip="10.0.0.3", ports=(ContainerPort(5432, "TCP", "pg"),))
OTHER = pod(ns="billing", name="worker", ip="10.1.0.1", ns_labels={"team": "billing"})
EXTERNAL = ext("203.0.113.7")

DENY_ALL = netpol("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
DENY_INGRESS = netpol("default-deny", {"podSelector": {}})  # policyTypes default: Ingress
API_SEL = {"matchLabels": {"app": "api"}}


def ingress_to_api(*rules: dict[str, Any], name: str = "api-in") -> dict[str, Any]:
    return netpol(name, {"podSelector": API_SEL, "ingress": list(rules)})


CASES: list[tuple[str, list[dict[str, Any]], Any, Any, str, int, bool, str]] = [
    ("no policies: all allowed", [], WEB, API, "TCP", 8080, True, "not isolated"),
    (
        "default deny ingress",
        [DENY_INGRESS],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "denied: ingress of shop/api: isolated by shop/default-deny, no rule matches TCP 8080 "
        "from shop/web",
    ),
    (
        "policyTypes default leaves egress open",
        [DENY_INGRESS],
        API,
        EXTERNAL,
        "TCP",
        443,
        True,
        "egress of shop/api: not isolated",
    ),
    (
        "egress rules present imply Egress type",
        [netpol("e", {"podSelector": API_SEL, "egress": [{"ports": [{"port": 53}]}]})],
        API,
        EXTERNAL,
        "TCP",
        443,
        False,
        "egress of shop/api: isolated by shop/e",
    ),
    (
        "explicit Egress type with no rules denies egress",
        [netpol("e", {"podSelector": {}, "policyTypes": ["Egress"]})],
        WEB,
        EXTERNAL,
        "UDP",
        53,
        False,
        "egress of shop/web",
    ),
    (
        "egress-only policy leaves ingress open",
        [netpol("e", {"podSelector": {}, "policyTypes": ["Egress"]})],
        EXTERNAL,
        API,
        "TCP",
        8080,
        True,
        "ingress of shop/api: not isolated",
    ),
    ("empty ingress list denies", [ingress_to_api()], WEB, API, "TCP", 8080, False, "api-in"),
    (
        "empty rule allows all",
        [ingress_to_api({})],
        EXTERNAL,
        API,
        "UDP",
        1,
        True,
        "allowed by shop/api-in ingress rule 1",
    ),
    (
        "empty from list = all sources",
        [ingress_to_api({"from": [], "ports": [{"port": 8080}]})],
        OTHER,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "absent ports = all ports",
        [ingress_to_api({"from": [{"podSelector": {}}]})],
        WEB,
        API,
        "SCTP",
        7,
        True,
        "rule 1",
    ),
    (
        "union of policies (additive)",
        [
            ingress_to_api({"from": [{"podSelector": {"matchLabels": {"app": "db"}}}]}),
            ingress_to_api({"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}, name="b"),
        ],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "allowed by shop/b ingress rule 1",
    ),
    (
        "podSelector alone = policy namespace only",
        [ingress_to_api({"from": [{"podSelector": {}}]})],
        OTHER,
        API,
        "TCP",
        8080,
        False,
        "from billing/worker",
    ),
    (
        "namespaceSelector alone = all pods of those namespaces",
        [ingress_to_api({"from": [{"namespaceSelector": {"matchLabels": {"team": "billing"}}}]})],
        OTHER,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "empty namespaceSelector = every namespace",
        [ingress_to_api({"from": [{"namespaceSelector": {}}]})],
        OTHER,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "namespaceSelector does not match IPs",
        [ingress_to_api({"from": [{"namespaceSelector": {}}]})],
        EXTERNAL,
        API,
        "TCP",
        8080,
        False,
        "from 203.0.113.7",
    ),
    (
        "both selectors in one peer are ANDed (pod label mismatch)",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "billing"}},
                            "podSelector": {"matchLabels": {"app": "web"}},
                        }
                    ]
                }
            )
        ],
        OTHER,
        API,
        "TCP",
        8080,
        False,
        "isolated by shop/api-in",
    ),
    (
        "both selectors in one peer are ANDed (both match)",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "billing"}},
                            "podSelector": {"matchLabels": {"app": "worker"}},
                        }
                    ]
                }
            )
        ],
        OTHER,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "two peers are ORed",
        [
            ingress_to_api(
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"team": "billing"}}},
                        {"podSelector": {"matchLabels": {"app": "web"}}},
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "matchExpressions In",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "app", "operator": "In", "values": ["web", "db"]}
                                ]
                            }
                        }
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "matchExpressions NotIn",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "app", "operator": "NotIn", "values": ["web"]}
                                ]
                            }
                        }
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "isolated",
    ),
    (
        "matchExpressions NotIn matches pods without the key",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "NotIn", "values": ["x"]}
                                ]
                            }
                        }
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "matchExpressions Exists",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                            }
                        }
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "isolated",
    ),
    (
        "matchExpressions DoesNotExist",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]
                            }
                        }
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "matchLabels and matchExpressions are ANDed",
        [
            ingress_to_api(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": {"app": "web"},
                                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
                            }
                        }
                    ]
                }
            )
        ],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "isolated",
    ),
    (
        "ipBlock matches an external IP",
        [ingress_to_api({"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]})],
        EXTERNAL,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "ipBlock except removes addresses",
        [
            ingress_to_api(
                {"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.0/29"]}}]}
            )
        ],
        EXTERNAL,
        API,
        "TCP",
        8080,
        False,
        "from 203.0.113.7",
    ),
    (
        "ipBlock matches a pod by its IP (common CNI reading)",
        [ingress_to_api({"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]})],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "ipBlock never matches a pod without a known IP",
        [ingress_to_api({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})],
        pod(name="web"),
        API,
        "TCP",
        8080,
        False,
        "isolated",
    ),
    (
        "IPv6 ipBlock",
        [ingress_to_api({"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]})],
        ext("2001:db8::5"),
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "IPv6 ipBlock does not match IPv4",
        [ingress_to_api({"from": [{"ipBlock": {"cidr": "::/0"}}]})],
        EXTERNAL,
        API,
        "TCP",
        8080,
        False,
        "isolated",
    ),
    (
        "port number",
        [ingress_to_api({"ports": [{"port": 8080}]})],
        WEB,
        API,
        "TCP",
        8081,
        False,
        "no rule matches TCP 8081",
    ),
    (
        "protocol defaults to TCP",
        [ingress_to_api({"ports": [{"port": 8080}]})],
        WEB,
        API,
        "UDP",
        8080,
        False,
        "no rule matches UDP 8080",
    ),
    (
        "protocol without port = all its ports",
        [ingress_to_api({"ports": [{"protocol": "UDP"}]})],
        WEB,
        API,
        "UDP",
        12345,
        True,
        "rule 1",
    ),
    (
        "endPort range inclusive",
        [ingress_to_api({"ports": [{"port": 8000, "endPort": 8080}]})],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "endPort range upper bound",
        [ingress_to_api({"ports": [{"port": 8000, "endPort": 8080}]})],
        WEB,
        API,
        "TCP",
        8081,
        False,
        "isolated",
    ),
    (
        "SCTP",
        [ingress_to_api({"ports": [{"port": 3868, "protocol": "SCTP"}]})],
        WEB,
        API,
        "SCTP",
        3868,
        True,
        "rule 1",
    ),
    (
        "named port resolved on the ingress pod",
        [ingress_to_api({"ports": [{"port": "http"}]})],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "rule 1",
    ),
    (
        "named port must match the container port's protocol",
        [ingress_to_api({"ports": [{"port": "metrics"}]})],
        WEB,
        API,
        "UDP",
        9090,
        False,
        "isolated",
    ),
    (
        "named port with matching protocol",
        [ingress_to_api({"ports": [{"port": "metrics", "protocol": "UDP"}]})],
        WEB,
        API,
        "UDP",
        9090,
        True,
        "rule 1",
    ),
    (
        "named port unknown on the pod matches nothing",
        [ingress_to_api({"ports": [{"port": "grpc"}]})],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "isolated",
    ),
    (
        "egress named port resolved on the destination pod",
        [
            netpol(
                "w",
                {
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"port": "pg"}]}],
                },
            )
        ],
        WEB,
        DB,
        "TCP",
        5432,
        True,
        "egress of shop/web: allowed by shop/w egress rule 1",
    ),
    (
        "egress named port is the destination's, not the source's",
        [
            netpol(
                "w",
                {
                    "podSelector": {"matchLabels": {"app": "api"}},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"port": "http"}]}],
                },
            )
        ],
        API,
        DB,
        "TCP",
        8080,
        False,
        "egress of shop/api",
    ),
    (
        "egress named port to an IP endpoint matches nothing",
        [
            netpol(
                "w",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"port": "http"}]}],
                },
            )
        ],
        API,
        EXTERNAL,
        "TCP",
        8080,
        False,
        "to 203.0.113.7",
    ),
    (
        "both directions needed: egress denies",
        [
            netpol(
                "w", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}
            ),
            ingress_to_api({}),
        ],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "denied: egress of shop/web",
    ),
    (
        "both directions needed: both allow",
        [
            DENY_ALL,
            ingress_to_api({"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}),
            netpol(
                "w",
                {
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"to": [{"podSelector": API_SEL}]}],
                },
            ),
        ],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "egress of shop/web: allowed by shop/w egress rule 1; "
        "ingress of shop/api: allowed by shop/api-in ingress rule 1",
    ),
    (
        "both directions denied are both named",
        [DENY_ALL],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "denied: egress of shop/web: isolated by shop/default-deny, no rule matches TCP 8080 to "
        "shop/api; ingress of shop/api",
    ),
    (
        "IP source is not subject to policies",
        [DENY_ALL],
        EXTERNAL,
        ext("198.51.100.1"),
        "TCP",
        1,
        True,
        "an IP, not subject to policies",
    ),
    (
        "policies of another namespace don't apply",
        [netpol("d", {"podSelector": {}}, ns="billing")],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "not isolated",
    ),
    ("a pod can always reach itself", [DENY_ALL], API, API, "TCP", 8080, True, "itself"),
    (
        "podSelector of the policy selects which pods are isolated",
        [netpol("d", {"podSelector": {"matchLabels": {"app": "db"}}})],
        WEB,
        API,
        "TCP",
        8080,
        True,
        "not isolated",
    ),
    (
        "absent spec.podSelector selects all pods",
        [netpol("d", {"policyTypes": ["Ingress"]})],
        WEB,
        API,
        "TCP",
        8080,
        False,
        "isolated by shop/d",
    ),
]


@pytest.mark.parametrize(
    ("policies", "src", "dst", "protocol", "port", "allowed", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_semantics(
    policies: list[dict[str, Any]],
    src: Any,
    dst: Any,
    protocol: str,
    port: int,
    allowed: bool,
    reason: str,
) -> None:
    evaluator = PolicyEvaluator(policies)
    verdict = evaluator.check(src, dst, protocol, port)
    assert verdict.allowed is allowed, verdict.reason
    assert reason in verdict.reason
    assert verdict.reason.startswith("allowed: " if allowed else "denied: ")
    # The set view agrees with the single-connection view.
    assert evaluator.connections(src, dst).contains(protocol, port) is allowed


def test_connections_intersect_egress_and_ingress() -> None:
    evaluator = PolicyEvaluator(
        [
            ingress_to_api(
                {"ports": [{"port": 8000, "endPort": 8100}, {"port": "metrics", "protocol": "UDP"}]}
            ),
            netpol(
                "w",
                {
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"ports": [{"port": 8080}, {"port": 8090, "endPort": 9000}]},
                        {"ports": [{"protocol": "UDP"}]},
                    ],
                },
            ),
        ]
    )
    assert str(evaluator.connections(WEB, API)) == "TCP 8080,8090-8100,UDP 9090"
    assert str(evaluator.connections(EXTERNAL, API)) == "TCP 8000-8100,UDP 9090"
    assert str(evaluator.connections(API, EXTERNAL)) == "All Connections"
    assert evaluator.connections(WEB, ext("192.0.2.1")) == ConnectionSet.of(
        [("TCP", ((8080, 8080), (8090, 9000))), ("UDP", ((1, 65535),))]
    )


def test_inventory_records_and_parsed_policies_are_accepted() -> None:
    from discover.inventory.model import NetworkPolicy
    from discover.netpol.policy import parse_policy

    record = NetworkPolicy("shop", "deny", {"podSelector": {}})
    parsed = parse_policy(netpol("deny2", {"podSelector": API_SEL}))
    evaluator = PolicyEvaluator([record, parsed])
    assert [p.ref for p in evaluator.policies] == ["shop/deny", "shop/deny2"]
    verdict = evaluator.check(WEB, API, "TCP", 8080)
    assert "isolated by shop/deny, shop/deny2" in verdict.reason


# -- invariants ------------------------------------------------------------------------

NAMESPACES = ("a", "b")
APPS = ("x", "y", "z")

selectors = st.one_of(
    st.just({}),
    st.sampled_from(APPS).map(lambda app: {"matchLabels": {"app": app}}),
    st.sampled_from(APPS).map(
        lambda app: {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": [app]}]}
    ),
)
peers = st.one_of(
    selectors.map(lambda s: {"podSelector": s}),
    st.sampled_from(NAMESPACES).map(
        lambda ns: {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
    ),
    st.tuples(selectors, st.sampled_from(NAMESPACES)).map(
        lambda t: {
            "podSelector": t[0],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t[1]}},
        }
    ),
    st.sampled_from(["10.0.0.0/30", "203.0.113.0/24", "0.0.0.0/0"]).map(
        lambda cidr: {"ipBlock": {"cidr": cidr}}
    ),
)
rule_ports = st.lists(
    st.one_of(
        st.integers(1, 10).map(lambda p: {"port": p}),
        st.tuples(st.integers(1, 5), st.integers(0, 5)).map(
            lambda t: {"port": t[0], "endPort": t[0] + t[1], "protocol": "UDP"}
        ),
        st.just({"port": "named"}),
    ),
    max_size=2,
)
rules = st.lists(
    st.fixed_dictionaries({}, optional={"peers": st.lists(peers, max_size=2), "ports": rule_ports}),
    max_size=2,
)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(selectors)}
    for direction, key in (("ingress", "from"), ("egress", "to")):
        drawn = draw(st.one_of(st.none(), rules))
        if drawn is not None:
            spec[direction] = [
                {
                    **({key: r["peers"]} if "peers" in r else {}),
                    **({"ports": r["ports"]} if "ports" in r else {}),
                }
                for r in drawn
            ]
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    name = draw(st.text("abcdef", min_size=1, max_size=6))
    return netpol(name, spec, ns=draw(st.sampled_from(NAMESPACES)))


endpoints = st.one_of(
    st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(APPS), st.integers(1, 3)).map(
        lambda t: pod(
            ns=t[0], name=t[1], ip=f"10.0.0.{t[2]}", ports=(ContainerPort(7, "TCP", "named"),)
        )
    ),
    st.sampled_from(["203.0.113.9", "192.0.2.1"]).map(ext),
)
connections = st.tuples(st.sampled_from(["TCP", "UDP", "SCTP"]), st.integers(1, 12))


@settings(max_examples=150, deadline=None)
@given(src=endpoints, dst=endpoints, conn=connections)
def test_no_policy_allows_everything(src: Any, dst: Any, conn: tuple[str, int]) -> None:
    assert PolicyEvaluator([]).check(src, dst, *conn).allowed


@settings(max_examples=200, deadline=None)
@given(st.lists(policies(), max_size=4), endpoints, endpoints, connections)
def test_check_agrees_with_connections(
    policy_list: list[dict[str, Any]], src: Any, dst: Any, conn: tuple[str, int]
) -> None:
    evaluator = PolicyEvaluator(policy_list)
    assert evaluator.check(src, dst, *conn).allowed == evaluator.connections(src, dst).contains(
        *conn
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(policies(), max_size=3), policies(), endpoints, endpoints, connections)
def test_adding_a_policy_never_takes_away_once_isolated(
    base: list[dict[str, Any]], extra: dict[str, Any], src: Any, dst: Any, conn: tuple[str, int]
) -> None:
    # With every pod already isolated both ways, policies can only add allowed traffic.
    deny = [
        netpol("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, ns=ns)
        for ns in NAMESPACES
    ]
    before = PolicyEvaluator(deny + base)
    after = PolicyEvaluator(deny + base + [extra])
    if before.check(src, dst, *conn).allowed:
        assert after.check(src, dst, *conn).allowed
    assert before.connections(src, dst).intersection(after.connections(src, dst)) == (
        before.connections(src, dst)
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(policies(), max_size=3), endpoints, endpoints, connections)
def test_policies_of_other_namespaces_change_nothing(
    policy_list: list[dict[str, Any]], src: Any, dst: Any, conn: tuple[str, int]
) -> None:
    involved = {e.namespace for e in (src, dst) if isinstance(e, PodEndpoint)}
    unrelated = [p for p in policy_list if p["metadata"]["namespace"] not in involved]
    assert PolicyEvaluator(unrelated).check(src, dst, *conn).allowed


@settings(max_examples=100, deadline=None)
@given(st.lists(policies(), max_size=3), connections)
def test_between_ip_endpoints_everything_is_allowed(
    policy_list: list[dict[str, Any]], conn: tuple[str, int]
) -> None:
    evaluator = PolicyEvaluator(policy_list)
    assert evaluator.check(ext("192.0.2.77"), ext("198.51.100.3"), *conn).allowed
