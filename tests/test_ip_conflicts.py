"""Two live pods with one IP (issue 15, item 11): said as a warning naming both pods and
the address; decided by creation time where it tells them apart, else both keep the
traffic. Built from the hostile inventory itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from discover.analysis import analyze
from discover.flows.events import Protocol
from discover.flows.flowtable import FlowRow
from discover.inventory.files import load_inventory_files
from discover.synthesis.options import SynthesisOptions

SHARED = "10.244.1.50"


def _pod(name: str, app: str, created: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}",
                     "creationTimestamp": created, "labels": {"app": app}},
        "spec": {"nodeName": "node-1",
                 "containers": [{"name": "main", "image": f"example/{app}:1"}]},
        "status": {"phase": "Running", "podIP": SHARED, "podIPs": [{"ip": SHARED}]},
    }


def _inventory(tmp_path: Path, web_created: str, api_created: str) -> Path:
    items = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}},
        _pod("web", "web", web_created),
        _pod("api", "api", api_created),
        {**_pod("db", "db", "2024-05-01T00:00:00Z"),
         "status": {"phase": "Running", "podIP": "10.244.1.60",
                    "podIPs": [{"ip": "10.244.1.60"}]}},
    ]
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def _flow(hour: int) -> FlowRow:
    when = datetime(2024, 5, 1, hour, tzinfo=UTC).timestamp()
    return FlowRow(ip_address(SHARED), ip_address("10.244.1.60"), Protocol.TCP, 5432,
                   first_seen=when, last_seen=when)


def _policy_sources(analysis: Any) -> dict[str, list[str]]:
    """Workload policy name -> the podSelector apps its egress rules name."""
    out: dict[str, list[str]] = {}
    for manifest in analysis.proposal.policies:
        name = manifest["metadata"]["name"]
        out[name] = sorted(peer["podSelector"]["matchLabels"]["app"]
                           for rule in manifest["spec"].get("egress", [])
                           for peer in rule.get("to", []) if "podSelector" in peer)
    return out


def test_same_creation_time_both_workloads_keep_their_traffic(tmp_path: Path) -> None:
    inventory = load_inventory_files([_inventory(tmp_path, "2024-05-01T01:00:00Z",
                                                 "2024-05-01T01:00:00Z")])
    analysis = analyze([_flow(12)], [], inventory, SynthesisOptions())
    [finding] = [f for f in analysis.proposal.findings if f.rule == "inventory-ip-conflict"]
    assert finding.severity.value == "warning"
    assert finding.subject == f"ip/{SHARED}"
    assert "shop/api" in finding.message and "shop/web" in finding.message
    assert "attributed to each of them" in finding.message
    sources = _policy_sources(analysis)
    # neither workload's policy becomes "to nothing": both may reach db
    assert sources["web-netpol"] == ["db"] and sources["api-netpol"] == ["db"]


@pytest.mark.parametrize(("hour", "owner", "other"), [(3, "web", "api"), (12, "api", "web")])
def test_distinct_creation_times_decide_by_time(tmp_path: Path, hour: int, owner: str,
                                                other: str) -> None:
    inventory = load_inventory_files([_inventory(tmp_path, "2024-05-01T01:00:00Z",
                                                 "2024-05-01T06:00:00Z")])
    analysis = analyze([_flow(hour)], [], inventory, SynthesisOptions())
    [finding] = [f for f in analysis.proposal.findings if f.rule == "inventory-ip-conflict"]
    assert finding.message.startswith(f"pods shop/web, shop/api are all live with IP {SHARED}")
    assert ("attributed by creation time: shop/web from 2024-05-01T01:00:00Z, then shop/api "
            "from 2024-05-01T06:00:00Z") in finding.message
    sources = _policy_sources(analysis)
    assert sources[f"{owner}-netpol"] == ["db"] and sources[f"{other}-netpol"] == []


def test_no_conflict_no_finding(tmp_path: Path) -> None:
    path = _inventory(tmp_path, "2024-05-01T01:00:00Z", "2024-05-01T01:00:00Z")
    data = json.loads(path.read_text())
    data["items"][2]["status"]["phase"] = "Succeeded"  # a finished pod keeps its IP shown
    path.write_text(json.dumps(data))
    analysis = analyze([_flow(12)], [], load_inventory_files([path]), SynthesisOptions())
    assert not [f for f in analysis.proposal.findings if f.rule == "inventory-ip-conflict"]
