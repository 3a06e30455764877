"""The agent's live inventory: list every kind, then watch pods, beside capture.

Runs in its own thread so that an API outage never stops capture: every failure (network,
timeouts, HTTP 5xx) is logged, counted and retried with exponential backoff up to 5
minutes; a kind the RBAC refuses (401/403) is left out and the inventory is partial.
After each list, at every checkpoint of the agent and at each relist, the inventory is
written to `DIR/inventory.json` as a kubectl-style List (what `analyze --inventory`
reads), the pods that went away or changed IP during the window kept with their times
(INVENTORY's `PodWatcher`), so IP -> pod is known at the time of each flow.

Across relists the same watcher is kept: a relist is reconciled into it (pods missing from
the new list are closed at that time), so history survives outages. A restarted agent
loads its previous file back: its history is kept and its pods that are gone by the first
list are closed at that time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discover.inventory.fields import format_time
from discover.inventory.files import COLLECTED_AT_KEY
from sidecar.checkpoint import write_atomic

log = logging.getLogger(__name__)

INVENTORY_NAME = "inventory.json"
MAX_BACKOFF = 300.0


class InventoryWatch:
    def __init__(
        self,
        state_dir: Path,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        relist_interval: float = 600.0,
        timeout: float = 30.0,
    ) -> None:
        self.path = state_dir / INVENTORY_NAME
        self.kubeconfig = kubeconfig
        self.context = context
        self.relist_interval = relist_interval
        self.timeout = timeout
        self.lists = 0
        self.writes = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_written: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._others: list[dict[str, Any]] = []
        self._watcher: Any = None  # PodWatcher once the first list succeeded
        self._previous_current, self._kept_history = _pods_of(self.path)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="inventory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pod_changes(self) -> int:
        return 0 if self._watcher is None else int(self._watcher.changes)

    def age(self, now: Callable[[], float] = time.time) -> float | None:
        return None if self.last_written is None else max(0.0, now() - self.last_written)

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._round()
                backoff = 1.0
            except Exception as error:  # noqa: BLE001 - any failure: retry, never stop capture
                self.errors += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("inventory watch: %s; retrying in %.0f s", self.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    def _round(self) -> None:
        """List every kind, then watch pods until the next relist (informers resync too)."""
        from kubernetes import client

        from discover.inventory import live
        from discover.inventory.live_watch import PodWatcher

        api = live.api_client(self.kubeconfig, self.context)
        try:
            others: list[dict[str, Any]] = []
            pods: list[dict[str, Any]] = []
            version = ""
            for resource in live.RESOURCES:
                try:
                    items, resource_version = live.list_resource(api, resource, self.timeout)
                except client.exceptions.ApiException as error:
                    if error.status in (401, 403, 404):
                        continue  # not granted / not served: the inventory is partial
                    raise
                if resource is live.POD_RESOURCE:
                    pods, version = items, resource_version
                else:
                    others.extend(items)
            now = datetime.now(UTC)
            if self._watcher is None:
                # The pods an earlier run last saw: those gone now are closed at `now`.
                self._watcher = PodWatcher(self._previous_current or pods, started=now)
            self._watcher.reconcile(pods, now)
            self._others = others
            self.lists += 1
            self.write()
            if not version:
                self._stop.wait(self.relist_interval)
                return
            core = client.CoreV1Api(api)
            self._watcher.run(
                core.list_pod_for_all_namespaces,
                version,
                time.monotonic() + self.relist_interval,
                relist=lambda: live.list_resource(api, live.POD_RESOURCE, self.timeout),
            )
            self.write()
        finally:
            api.close()  # type: ignore[no-untyped-call]

    def write(self) -> None:
        """Write DIR/inventory.json now (any thread; the agent calls it at checkpoints)."""
        watcher = self._watcher
        if watcher is None:
            return  # nothing listed yet
        with self._write_lock:
            current, history = watcher.snapshot()
            items = [*self._others, *current, *self._kept_history, *history]
            document = {
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {COLLECTED_AT_KEY: format_time(datetime.now(UTC))},
                "items": items,
            }
            write_atomic(self.path, json.dumps(document, sort_keys=True).encode())
            self.writes += 1
            self.last_written = time.time()

    def document_bytes(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None


def _pods_of(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An earlier run's pods: (alive when it last wrote, already gone = history)."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return [], []
    items = document.get("items") if isinstance(document, dict) else None
    pods = [i for i in items or [] if isinstance(i, dict) and i.get("kind") == "Pod"]
    gone = [p for p in pods if (p.get("metadata") or {}).get("deletionTimestamp")]
    alive = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    return alive, gone
