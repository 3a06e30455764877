"""benchmarks/make_cluster.py and bench_scale.py: the scale benchmark's generator gives a
kubectl-shaped inventory and an agent summary that `analyze` accepts and whose every flow
its policies allow; the harness reports a timeout and growth exponents."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from ipaddress import ip_address, ip_network
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from discover.cli import main
from discover.flows.summary import read_summary

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
WORKLOADS = 20
PER_NAMESPACE = 8  # 3 namespaces of workloads, so that some edges cross namespaces


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


make_cluster = _load("make_cluster")
bench_scale = _load("bench_scale")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("cluster")
    counts = make_cluster.make_cluster(out, WORKLOADS, per_namespace=PER_NAMESPACE)
    return out, counts


def _items(path: Path) -> list[dict[str, Any]]:
    document = json.loads((path / "inventory.json").read_text())
    assert document["kind"] == "List"
    items: list[dict[str, Any]] = document["items"]
    return items


def test_inventory_is_kubectl_shaped(cluster: tuple[Path, dict[str, int]]) -> None:
    path, counts = cluster
    items = _items(path)
    kinds = Counter(item["kind"] for item in items)
    assert kinds == {"Namespace": 4, "Node": 1, "Deployment": WORKLOADS + 1,
                     "ReplicaSet": WORKLOADS + 1, "Pod": 2 * WORKLOADS + 2,
                     "Service": WORKLOADS + 1, "EndpointSlice": WORKLOADS + 1}
    assert counts["objects"] == len(items)
    for item in items:
        if item["kind"] == "Namespace":
            name = item["metadata"]["name"]
            assert item["metadata"]["labels"]["kubernetes.io/metadata.name"] == name
    by_uid = {item["metadata"]["uid"]: item for item in items}
    for pod in (item for item in items if item["kind"] == "Pod"):
        replica_set = by_uid[pod["metadata"]["ownerReferences"][0]["uid"]]
        assert replica_set["kind"] == "ReplicaSet"
        deployment = by_uid[replica_set["metadata"]["ownerReferences"][0]["uid"]]
        assert deployment["kind"] == "Deployment"
        template = deployment["spec"]["template"]["metadata"]["labels"]
        assert template.items() <= pod["metadata"]["labels"].items()
        assert ip_address(pod["status"]["podIP"]) in ip_network("10.64.0.0/10")
    dns = [item for item in items if item["kind"] == "Service"
           and item["metadata"]["name"] == "kube-dns"]
    assert [(s["metadata"]["namespace"], s["spec"]["clusterIP"]) for s in dns] == [
        ("kube-system", "10.96.0.10")]


def test_summary_has_the_traffic_it_counts(cluster: tuple[Path, dict[str, int]]) -> None:
    path, counts = cluster
    table, meta = read_summary(path / "summary.json")
    flows = list(table.flow_rows())
    assert len(flows) == counts["edges"] == counts["workload_edges"] + 2 * WORKLOADS + 2
    assert len(list(table.dns_rows())) == counts["dns_rows"] > 0
    namespace_of = {pod["status"]["podIP"]: pod["metadata"]["namespace"]
                    for pod in _items(path) if pod["kind"] == "Pod"}
    to_pods = [f for f in flows if str(f.dst_ip) in namespace_of]
    to_services = [f for f in flows if f.dst_ip in ip_network("10.96.0.0/12")]
    external = [f for f in flows if f.dst_ip in ip_network("203.0.113.0/24")]
    assert to_pods and to_services and external
    crossing = [f for f in to_pods if namespace_of[str(f.src_ip)] != namespace_of[str(f.dst_ip)]]
    assert 0 < len(crossing) < len(to_pods) / 2


def test_generation_is_deterministic(tmp_path: Path) -> None:
    make_cluster.make_cluster(tmp_path / "a", 12, per_namespace=5, seed=7)
    make_cluster.make_cluster(tmp_path / "b", 12, per_namespace=5, seed=7)
    for name in ("inventory.json", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_analyze_accepts_it_and_allows_every_flow(
        cluster: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    path, counts = cluster
    out = tmp_path / "out"
    assert main(["analyze", str(path / "summary.json"), "--inventory",
                 str(path / "inventory.json"), "--out", str(out), "--quiet"]) == 0
    documents = [d for d in yaml.safe_load_all((out / "policies.yaml").read_text()) if d]
    deny = {d["metadata"]["namespace"] for d in documents
            if d["metadata"]["name"] == "default-deny"}
    # the workloads' namespaces get a default deny; kube-system only when asked
    assert deny == {"team-0000", "team-0001", "team-0002"}
    assert len(documents) == len(deny) + WORKLOADS  # and a policy a workload
    # verify: every observed flow allowed by the proposal
    assert main(["verify", "--policies", str(out / "policies.yaml"), "--flows",
                 str(out / "flows.csv"), "--inventory", str(path / "inventory.json")]) == 0
    assert len((out / "flows.csv").read_text().splitlines()) == counts["edges"] + 1


def test_a_child_past_its_timeout_is_reported_not_waited_for(tmp_path: Path) -> None:
    run = bench_scale.run_child([sys.executable, "-c", "import time; time.sleep(60)"],
                                timeout=0.5, mem_limit_gb=None, log_prefix=tmp_path / "c")
    assert run.status == "timeout"
    assert run.seconds < 10


def test_growth_exponent_between_sizes() -> None:
    small = bench_scale.SizeResult(10, stages=[{"stage": "graph", "seconds": 1.0}])
    large = bench_scale.SizeResult(100, stages=[{"stage": "graph", "seconds": 100.0}])
    rows = bench_scale.growth_table([small, large]).splitlines()
    assert rows[1].split() == ["graph", "2.00"]  # 10x the workloads, 100x the time
