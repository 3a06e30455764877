"""Verification of observed flows: IP -> pod at the flow's time, ClusterIP backends,
node-local traffic, host-network pods, and the workload matrix."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from discover.flows.events import Protocol
from discover.flows.flowfiles import read_flow_rows
from discover.flows.flowtable import FlowRow
from discover.inventory.files import load_inventory_files
from discover.inventory.model import (
    ContainerPort,
    Inventory,
    Namespace,
    Node,
    Pod,
    Service,
    ServicePort,
    WorkloadRef,
)
from discover.netpol import PolicyEvaluator
from discover.netpol.files import load_policy_file
from discover.verification.verify import verify_flows

DATA = Path(__file__).parent / "data" / "netpol"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)
T2 = datetime(2026, 1, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def shop() -> tuple[PolicyEvaluator, Inventory]:
    policies = load_policy_file(DATA / "policies.yaml").policies
    return PolicyEvaluator(policies), load_inventory_files([DATA / "shop-inventory.json"])


EXPECTED = [
    (
        True,
        "allowed: via Service shop/api port 80: allowed for all 1 backend(s): "
        "[shop/api:8080] egress of shop/web: allowed by shop/web egress rule 1; "
        "ingress of shop/api: allowed by shop/api ingress rule 1",
    ),
    (
        True,
        "allowed: egress of shop/web: allowed by shop/web egress rule 1; "
        "ingress of shop/api: allowed by shop/api ingress rule 1",
    ),
    (
        True,
        "allowed: egress of shop/api: allowed by shop/api egress rule 1; "
        "ingress of shop/db: allowed by shop/db ingress rule 1",
    ),
    (True, "allowed: from node node-1, the node shop/api runs on (always allowed)"),
    (
        False,
        "denied: egress of shop/web: isolated by shop/default-deny, shop/web, no rule "
        "matches TCP 5432 to shop/db; ingress of shop/db: isolated by shop/db, "
        "shop/default-deny, no rule matches TCP 5432 from shop/web",
    ),
    (
        False,
        "denied: via Service shop/api port 80: denied for 1 of 1 backend(s): "
        "[shop/api:8080] ingress of shop/api: isolated by shop/api, shop/default-deny, "
        "no rule matches TCP 8080 from billing/worker-x1",
    ),
    (
        False,
        "denied: egress of shop/web: isolated by shop/default-deny, shop/web, no rule "
        "matches TCP 443 to 203.0.113.5",
    ),
]


def test_every_flow_of_the_sample(shop: tuple[PolicyEvaluator, Inventory]) -> None:
    evaluator, inventory = shop
    verdicts = verify_flows(read_flow_rows(DATA / "flows.csv"), evaluator, inventory)
    assert [(v.allowed, v.reason) for v in verdicts] == EXPECTED
    first = verdicts[0]
    assert (first.source, first.destinations) == ("shop/web", ("shop/api:8080",))
    assert first.to_dict() == {
        "src_ip": "10.244.0.10",
        "dst_ip": "10.96.0.20",
        "protocol": "TCP",
        "dst_port": 80,
        "allowed": True,
        "reason": EXPECTED[0][1],
    }


def test_four_columns_of_plain_strings_are_enough(
    shop: tuple[PolicyEvaluator, Inventory], tmp_path: Path
) -> None:
    evaluator, inventory = shop
    path = tmp_path / "flows.csv"
    path.write_text("src_ip,dst_ip,protocol,dst_port\n10.244.0.11,10.244.0.13,tcp,5432\n")
    (verdict,) = verify_flows(read_flow_rows(path), evaluator, inventory)
    assert verdict.allowed and verdict.protocol == "TCP" and verdict.dst_port == 5432


def pod(name: str, ip: str, labels: dict[str, str], **extra: Any) -> Pod:
    return Pod(
        namespace="shop",
        name=name,
        uid=f"uid-{name}",
        labels=labels,
        ips=(ip_address(ip),),
        workload=WorkloadRef("shop", "Deployment", labels.get("app", name)),
        node_name=extra.pop("node_name", "node-1"),
        **extra,
    )


REUSED = "10.244.0.50"
INVENTORY = Inventory(
    namespaces=(Namespace("shop", {}),),
    nodes=(
        Node("node-1", (ip_address("192.168.1.10"),)),
        Node("node-2", (ip_address("192.168.1.11"),)),
    ),
    pods=(
        pod("old-web", REUSED, {"app": "web"}, created=T0, deleted=T1),
        pod("new-batch", REUSED, {"app": "batch"}, created=T1),
        pod(
            "api-1",
            "10.244.0.60",
            {"app": "api", "tier": "backend"},
            ports=(ContainerPort(8080, "TCP", "http"),),
            created=T0,
        ),
        pod(
            "db-1",
            "10.244.0.61",
            {"app": "db", "tier": "backend"},
            ports=(ContainerPort(8080, "TCP", "http"),),
            created=T0,
            node_name="node-2",
        ),
        pod(
            "agent",
            "192.168.1.11",
            {"app": "agent"},
            host_network=True,
            node_name="node-2",
            created=T0,
        ),
    ),
    services=(
        Service(
            "shop",
            "backend",
            selector={"tier": "backend"},
            cluster_ips=(ip_address("10.96.0.9"),),
            ports=(ServicePort(80, "TCP", "web", "http"),),
        ),
    ),
    collected_at=T2,
)
POLICIES = PolicyEvaluator(
    [
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "shop"},
            "spec": {"podSelector": {}},
        },
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "api"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                        "ports": [{"port": "http"}],
                    }
                ],
            },
        },
    ]
)


def flows(*rows: tuple[str, str, int, datetime | None]) -> tuple[FlowRow, ...]:
    return tuple(
        FlowRow(
            ip_address(src),
            ip_address(dst),
            Protocol.TCP,
            port,
            first_seen=None if when is None else when.timestamp(),
        )
        for src, dst, port, when in rows
    )


def test_a_reused_ip_is_the_pod_that_held_it_at_the_flow_time() -> None:
    early = datetime(2026, 1, 1, 12, tzinfo=UTC)
    verdicts = verify_flows(
        flows((REUSED, "10.244.0.60", 8080, early), (REUSED, "10.244.0.60", 8080, T2)),
        POLICIES,
        INVENTORY,
    )
    assert [v.allowed for v in verdicts] == [True, False]
    assert [v.source for v in verdicts] == ["shop/web", "shop/batch"]
    assert verdicts[0].time == early


def test_missing_time_uses_the_inventory_snapshot_time() -> None:
    (verdict,) = verify_flows(flows((REUSED, "10.244.0.60", 8080, None)), POLICIES, INVENTORY)
    assert verdict.time == T2 and verdict.source == "shop/batch" and not verdict.allowed


def test_a_cluster_ip_flow_must_be_allowed_for_every_backend() -> None:
    (verdict,) = verify_flows(
        flows((REUSED, "10.96.0.9", 80, datetime(2026, 1, 1, 12, tzinfo=UTC))), POLICIES, INVENTORY
    )
    assert not verdict.allowed
    assert verdict.destinations == ("shop/api:8080", "shop/db:8080")
    assert verdict.reason.startswith(
        "denied: via Service shop/backend port 80: denied for 1 of 2 backend(s): [shop/db:8080] "
        "ingress of shop/db: isolated by shop/deny"
    )


def test_node_traffic_to_its_own_pods_only() -> None:
    verdicts = verify_flows(
        flows(("192.168.1.10", "10.244.0.60", 8080, T2), ("192.168.1.11", "10.244.0.60", 8080, T2)),
        POLICIES,
        INVENTORY,
    )
    assert verdicts[0].allowed and "node-1" in verdicts[0].reason
    # node-2 (also the address of a host-network pod) is just an IP for api-1 on node-1
    assert not verdicts[1].allowed
    assert "from 192.168.1.11" in verdicts[1].reason


def test_pods_reaching_their_node_are_allowed() -> None:
    (verdict,) = verify_flows(
        flows(("10.244.0.61", "192.168.1.11", 10250, T2)),
        PolicyEvaluator(
            [
                {
                    "kind": "NetworkPolicy",
                    "metadata": {"name": "d", "namespace": "shop"},
                    "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
                }
            ]
        ),
        INVENTORY,
    )
    assert verdict.allowed and "to node node-2" in verdict.reason


def test_an_unheld_pod_ip_is_an_ip_with_a_note(shop: tuple[PolicyEvaluator, Inventory]) -> None:
    evaluator, inventory = shop
    (verdict,) = verify_flows(flows(("10.244.0.99", "10.244.0.11", 8080, T2)), evaluator, inventory)
    assert not verdict.allowed
    assert verdict.source == "10.244.0.99"
    assert verdict.reason.endswith(
        "from 10.244.0.99 (note: 10.244.0.99: in pod range 10.244.0.0/16, no pod in the "
        "inventory holds it)"
    )


def test_a_dual_stack_backend_is_checked_with_the_address_of_the_flows_family() -> None:
    dual = Pod(
        namespace="shop",
        name="v6-1",
        uid="uid-v6",
        labels={"app": "v6"},
        ips=(ip_address("10.244.0.70"), ip_address("fd00::70")),
        workload=WorkloadRef("shop", "Deployment", "v6"),
        ports=(ContainerPort(8080, "TCP", "http"),),
        created=T0,
    )
    service = Service(
        "shop",
        "v6",
        selector={"app": "v6"},
        cluster_ips=(ip_address("fd00:96::9"),),
        ports=(ServicePort(80, "TCP", "web", 8080),),
    )
    inventory = Inventory(
        namespaces=INVENTORY.namespaces,
        pods=(*INVENTORY.pods, dual),
        services=(service,),
        collected_at=T2,
    )
    evaluator = PolicyEvaluator(
        [
            {
                "kind": "NetworkPolicy",
                "metadata": {"name": "out", "namespace": "shop"},
                "spec": {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/64"}}]}],
                },
            }
        ]
    )
    (verdict,) = verify_flows(flows(("10.244.0.60", "fd00:96::9", 80, T2)), evaluator, inventory)
    assert verdict.allowed, verdict.reason
    assert verdict.destinations == ("shop/v6:8080",)


def test_an_ipv4_mapped_external_source_meets_ipv4_ip_blocks() -> None:
    """A capture can carry an IPv4 client as ::ffff:a.b.c.d; ipBlocks are IPv4."""
    evaluator = PolicyEvaluator(
        [
            {
                "kind": "NetworkPolicy",
                "metadata": {"name": "api", "namespace": "shop"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "api"}},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}],
                },
            }
        ]
    )
    when = datetime(2026, 1, 1, 12, tzinfo=UTC)
    (verdict,) = verify_flows(flows(("::ffff:203.0.113.9", "10.244.0.60", 8080, when)),
                              evaluator, INVENTORY)
    assert verdict.allowed, verdict.reason
