"""Pod and service ranges: from nodes, or inferred from the addresses the inventory holds."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from discover.inventory.files import load_inventory_files
from discover.inventory.model import Inventory, Pod, Service, WorkloadRef
from discover.inventory.ranges import cluster_ranges

DATA = Path(__file__).parent / "data" / "inventory"
ip = ipaddress.ip_address
net = ipaddress.ip_network


def test_node_pod_cidrs_and_a_default_service_range() -> None:
    ranges = cluster_ranges(load_inventory_files([DATA / "cluster.json"]))
    assert ranges.pod_cidrs == tuple(net(c) for c in (
        "10.244.1.0/24", "10.244.2.0/24", "fd00:10:244:1::/64", "fd00:10:244:2::/64"))
    assert ranges.service_ranges == (net("10.96.0.0/12"), net("fd00:10:96::/108"))
    assert ranges.in_service_range(ip("10.100.0.1")) == net("10.96.0.0/12")
    assert ranges.in_pod_range(ip("10.244.3.1")) is None
    assert any("service range inferred" in n for n in ranges.notes)


def test_inferred_when_nothing_says() -> None:
    pods = tuple(
        Pod("ns", f"p{i}", f"u{i}", {}, (ip(a),), WorkloadRef("ns", "Pod", f"p{i}"))
        for i, a in enumerate(["172.17.0.4", "fd12::5"]))
    services = (Service("ns", "s", cluster_ips=(ip("192.168.200.7"),)),
                Service("ns", "eks", cluster_ips=(ip("172.20.3.4"),)))
    ranges = cluster_ranges(Inventory(pods=pods, services=services))
    assert ranges.pod_cidrs == (net("172.17.0.0/16"), net("fd12::/108"))
    assert ranges.service_ranges == (net("172.20.0.0/16"), net("192.168.0.0/16"))
    assert any("no node podCIDRs" in n for n in ranges.notes)


def test_empty_inventory_has_no_ranges() -> None:
    ranges = cluster_ranges(Inventory())
    assert ranges.pod_cidrs == () and ranges.service_ranges == () and ranges.notes == ()
