"""PodWatcher: watch events -> every pod ever seen, with the times it held its addresses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from discover.inventory.live_watch import PodWatcher

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def raw(name: str, ip: str | None, created: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running"}
    if ip:
        status |= {"podIP": ip, "podIPs": [{"ip": ip}]}
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "creationTimestamp": created}, "spec": {}, "status": status}


def at(minute: int) -> datetime:
    return T0.replace(minute=minute)


def test_ip_change_closes_the_old_address_and_opens_the_new() -> None:
    watcher = PodWatcher([raw("a", "10.0.0.1")], started=T0)
    watcher.apply("MODIFIED", raw("a", "10.0.0.2"), at(5))
    watcher.apply("MODIFIED", raw("a", "10.0.0.2"), at(6))  # a status update, same address
    current, history = watcher.snapshot()
    assert [p["status"]["podIP"] for p in history] == ["10.0.0.1"]
    assert history[0]["metadata"]["deletionTimestamp"] == "2024-05-01T12:05:00Z"
    assert current[0]["metadata"]["creationTimestamp"] == "2024-05-01T12:05:00Z"
    assert watcher.changes == 1


def test_address_assigned_after_creation_is_not_a_change() -> None:
    watcher = PodWatcher([raw("a", None)], started=T0)
    watcher.apply("MODIFIED", raw("a", "10.0.0.1"), at(1))
    current, history = watcher.snapshot()
    assert history == [] and current[0]["metadata"]["creationTimestamp"] == \
        "2024-05-01T10:00:00Z"


def test_deleted_pods_are_kept_with_the_time_the_watch_saw_them_go() -> None:
    watcher = PodWatcher([raw("a", "10.0.0.1")], started=T0)
    watcher.apply("ADDED", raw("b", "10.0.0.2", "2024-05-01T12:01:00Z"), at(1))
    watcher.apply("DELETED", raw("a", "10.0.0.1"), at(2))
    watcher.apply("BOOKMARK", {"metadata": {"resourceVersion": "9"}}, at(3))
    current, history = watcher.snapshot()
    assert [p["metadata"]["name"] for p in current] == ["b"]
    assert history[0]["metadata"]["deletionTimestamp"] == "2024-05-01T12:02:00Z"
    assert all(p["kind"] == "Pod" for p in current + history)
    assert watcher.changes == 2


def test_reconcile_after_a_relist() -> None:
    watcher = PodWatcher([raw("a", "10.0.0.1"), raw("b", "10.0.0.2")], started=T0)
    watcher.reconcile([raw("b", "10.0.0.3")], at(10))
    current, history = watcher.snapshot()
    assert sorted(p["metadata"]["name"] for p in history) == ["a", "b"]
    assert current[0]["status"]["podIP"] == "10.0.0.3"
