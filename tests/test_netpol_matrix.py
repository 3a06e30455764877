"""The workload truth table and the Pod -> PodEndpoint view."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from discover.inventory.files import load_inventory_files
from discover.inventory.model import ContainerPort, Inventory, Pod, WorkloadRef
from discover.netpol import PolicyEvaluator
from discover.netpol.endpoints import ns_labels, pod_endpoint
from discover.netpol.files import load_policy_file
from discover.netpol.matrix import render_matrix, workload_matrix

DATA = Path(__file__).parent / "data" / "netpol"


@pytest.fixture(scope="module")
def shop() -> tuple[PolicyEvaluator, Inventory]:
    policies = load_policy_file(DATA / "policies.yaml").policies
    return PolicyEvaluator(policies), load_inventory_files([DATA / "shop-inventory.json"])


def test_matrix(shop: tuple[PolicyEvaluator, Inventory]) -> None:
    evaluator, inventory = shop
    cells = {
        (str(c.source), str(c.destination)): str(c.allowed)
        for c in workload_matrix(evaluator, inventory)
    }
    assert cells[("shop/deployment/web", "shop/deployment/api")] == "TCP 8080"
    assert cells[("shop/deployment/api", "shop/statefulset/db")] == "TCP 5432"
    assert cells[("billing/pod/worker-x1", "shop/deployment/api")] == "No Connections"
    assert len(cells) == 4 * 3
    table = render_matrix(workload_matrix(evaluator, inventory)).splitlines()
    assert table[0].split() == ["source", "\\", "destination", "1", "2", "3", "4"]
    assert table[3].split() == [
        "3.",
        "shop/deployment/web",
        "TCP:53,UDP:53",
        "TCP:8080",
        "self",
        "-",
    ]
    assert render_matrix([]) == "no workloads in the inventory"


def test_pod_endpoint() -> None:
    pod = Pod(
        namespace="ns",
        name="api-1",
        uid="u",
        labels={"app": "api"},
        ips=(ip_address("10.0.0.1"), ip_address("fd00::1")),
        workload=WorkloadRef("ns", "Deployment", "api"),
        ports=(ContainerPort(80, "TCP", "http"),),
    )
    endpoint = pod_endpoint(pod, None)
    assert endpoint.ip == ip_address("10.0.0.1")
    assert endpoint.namespace_labels == {"kubernetes.io/metadata.name": "ns"}
    assert endpoint.label() == "ns/api" and endpoint.ports == pod.ports
    assert pod_endpoint(pod, {"a": "b"}, ip=ip_address("fd00::1")).ip == ip_address("fd00::1")
    assert ns_labels("x", {"kubernetes.io/metadata.name": "y"}) == {
        "kubernetes.io/metadata.name": "y"
    }
