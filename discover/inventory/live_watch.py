"""Watching pods over a learning window: every pod ever seen, with the times it held its IPs.

Starts from a list (and its resourceVersion), applies watch events as they arrive and keeps
a history of raw pod objects that are gone or changed address:

- DELETED: the last state, with `deletionTimestamp` set to when the watch saw it go (the
  address is held until then, not until the grace period the API announced began);
- an IP change (a sandbox recreated): the old state closed at that time, the new state's
  `creationTimestamp` set to it, so each address maps to the pod only while it held it.

A 410 Gone (the resourceVersion expired) relists and reconciles: pods missing from the new
list were deleted at the relist time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from discover.inventory.fields import format_time

RawPod = dict[str, Any]


def _key(pod: RawPod) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _ips(pod: RawPod) -> tuple[str, ...]:
    status = pod.get("status") or {}
    ips = [str(e.get("ip")) for e in status.get("podIPs") or [] if isinstance(e, dict)]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return tuple(ips)


def _with_meta(pod: RawPod, **changes: str) -> RawPod:
    return {**pod, "metadata": {**(pod.get("metadata") or {}), **changes}}


class PodWatcher:
    def __init__(self, pods: list[RawPod], started: datetime,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._current: dict[str, RawPod] = {_key(p): p for p in pods}
        self._history: list[RawPod] = []
        self._clock = clock
        self.started = started
        self.changes = 0

    def apply(self, event_type: str, pod: RawPod, when: datetime) -> None:
        pod = {"kind": "Pod", "apiVersion": "v1", **pod}
        key = _key(pod)
        old = self._current.get(key)
        if event_type == "DELETED":
            self._current.pop(key, None)
            self._history.append(_with_meta(pod, deletionTimestamp=format_time(when)))
            self.changes += 1
            return
        if event_type not in ("ADDED", "MODIFIED"):
            return
        if old is None:
            self.changes += 1
        elif _ips(old) and _ips(pod) and _ips(old) != _ips(pod):
            self._history.append(_with_meta(old, deletionTimestamp=format_time(when)))
            pod = _with_meta(pod, creationTimestamp=format_time(when))
            self.changes += 1
        elif old is not None and (old.get("metadata") or {}).get("creationTimestamp") != \
                (pod.get("metadata") or {}).get("creationTimestamp"):
            # Keep the start of the current address (set at an earlier IP change).
            pod = _with_meta(pod, creationTimestamp=str(old["metadata"]["creationTimestamp"]))
        self._current[key] = pod

    def reconcile(self, pods: list[RawPod], when: datetime) -> None:
        """After a relist: pods gone from it were deleted, the others may have changed."""
        seen = {_key(p) for p in pods}
        for key in sorted(set(self._current) - seen):
            self.apply("DELETED", self._current[key], when)
        for pod in pods:
            self.apply("MODIFIED", pod, when)

    def run(self, list_pods: Callable[..., Any], resource_version: str, deadline: float,
            relist: Callable[[], tuple[list[RawPod], str]]) -> None:
        """Watch until `deadline` (time.monotonic()); the server ends each watch call at
        timeoutSeconds, so no busy loop."""
        version = resource_version
        while (remaining := deadline - time.monotonic()) > 0:
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in stream.stream(list_pods, resource_version=version,  # type: ignore[no-untyped-call]
                                           timeout_seconds=max(1, int(remaining)),
                                           _request_timeout=remaining + 30):
                    raw = event.get("raw_object") or {}
                    meta = raw.get("metadata") or {}
                    if event.get("type") != "BOOKMARK":
                        self.apply(str(event.get("type")), raw, self._clock())
                    version = str(meta.get("resourceVersion") or version)
                    if time.monotonic() >= deadline:
                        stream.stop()  # type: ignore[no-untyped-call]
                        break
            except ApiException as error:
                if error.status != 410:
                    raise
                pods, version = relist()
                self.reconcile(pods, self._clock())

    def snapshot(self) -> tuple[list[RawPod], list[RawPod]]:
        """(pods alive now, pods gone or superseded during the window)."""
        return list(self._current.values()), list(self._history)
