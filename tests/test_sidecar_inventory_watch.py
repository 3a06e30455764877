"""The agent's inventory thread through the real kubernetes client against tests/fakeapi.py
(list, then pod watch events), an API server that is down, and a restart."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from discover.inventory.files import load_inventory_files
from sidecar.inventory_watch import INVENTORY_NAME, InventoryWatch
from tests.fakeapi import FakeApi, load_events, objects_of, serve, write_kubeconfig

DATA = Path(__file__).parent / "data" / "inventory"
ip = ipaddress.ip_address


def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _run(state: Path, kubeconfig: Path, changes: int = 0) -> InventoryWatch:
    """Until the first list and `changes` pod changes from the watch; then write."""
    watch = InventoryWatch(state, kubeconfig=str(kubeconfig), relist_interval=30, timeout=5)
    watch.start()
    try:
        assert wait_until(lambda: watch.lists >= 1 and watch.pod_changes >= changes,
                          seconds=20), watch.last_error  # fmt: skip
        watch.write()
        assert watch.errors == 0, watch.last_error  # (shutting the server down may add one)
    finally:
        watch.stop()
    return watch


def test_inventory_file_has_the_list_and_the_pod_changes_seen_by_the_watch(
    tmp_path: Path,
) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"),
                  watch_events={"pods": load_events(DATA / "watch-pods.jsonl")})  # fmt: skip
    with serve(api) as url:
        _run(tmp_path, write_kubeconfig(tmp_path / "kc", url), changes=3)
    inventory = load_inventory_files([tmp_path / INVENTORY_NAME])  # what analyze reads
    db = sorted((p for p in inventory.pods if p.name == "db-0"), key=lambda p: p.ips)
    assert [p.ips for p in db] == [(ip("10.244.2.20"),), (ip("10.244.2.21"),)]
    assert db[0].deleted is not None  # the old address is closed at the change
    debug = [p for p in inventory.pods if p.name == "debug"]
    assert len(debug) == 1 and debug[0].deleted is not None
    assert any(p.name == "web-5f6d7c8b9-n3m4p" for p in inventory.pods)  # ADDED by the watch
    assert {s.name for s in inventory.services} >= {"web"}
    assert inventory.collected_at is not None


def test_refused_resources_leave_a_partial_inventory(tmp_path: Path) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"), forbidden={"replicasets", "jobs"})
    with serve(api) as url:
        watch = _run(tmp_path, write_kubeconfig(tmp_path / "kc", url))
    kinds = {i["kind"] for i in json.loads((tmp_path / INVENTORY_NAME).read_text())["items"]}
    assert "Pod" in kinds and "ReplicaSet" not in kinds and "Job" not in kinds
    assert watch.lists == 1


def test_an_unreachable_api_server_is_retried_never_raised(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    watch = InventoryWatch(tmp_path, kubeconfig=str(write_kubeconfig(tmp_path / "kc",
                           f"http://127.0.0.1:{port}")), timeout=2)  # fmt: skip
    watch.start()
    try:
        assert wait_until(lambda: watch.errors >= 2, seconds=15)
        assert watch.alive()
    finally:
        watch.stop()
        watch.join(10)
    assert watch.lists == 0 and not (tmp_path / INVENTORY_NAME).exists()
    assert watch.last_error is not None and "refused" in watch.last_error.lower()


def test_a_restart_closes_pods_that_went_away_meanwhile(tmp_path: Path) -> None:
    objects = objects_of(DATA / "cluster.json")
    with serve(FakeApi(objects)) as url:
        _run(tmp_path, write_kubeconfig(tmp_path / "kc", url))
    without_api = [o for o in objects if o["metadata"].get("name") != "api-6c8d9e7f5-zt5vn"]
    with serve(FakeApi(without_api)) as url:
        _run(tmp_path, write_kubeconfig(tmp_path / "kc", url))
    inventory = load_inventory_files([tmp_path / INVENTORY_NAME])
    api_pods = [p for p in inventory.pods if p.name == "api-6c8d9e7f5-zt5vn"]
    assert len(api_pods) == 1 and api_pods[0].deleted is not None
