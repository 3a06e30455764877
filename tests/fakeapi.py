"""A tiny Kubernetes API server on 127.0.0.1 for tests: list and watch from recorded data.

It answers the cluster-scope list paths the live loader calls (`/api/v1/pods`,
`/apis/apps/v1/deployments`, ...) with the objects of a `kind: List` file, and
`?watch=true` with recorded watch events as chunked JSON lines (only events newer than the
requested resourceVersion), then holds the stream open until `timeoutSeconds` like the
real server. Resources named in `forbidden` get the API's 403 Status. Requests are
recorded so tests can check what the client asked. The real `kubernetes` client talks to
it through a kubeconfig (`write_kubeconfig`): nothing in the client is patched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PATHS = {
    "/api/v1/namespaces": "Namespace", "/api/v1/nodes": "Node", "/api/v1/pods": "Pod",
    "/api/v1/services": "Service", "/api/v1/endpoints": "Endpoints",
    "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "/apis/networking.k8s.io/v1/ingresses": "Ingress",
    "/apis/networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
    "/apis/apps/v1/deployments": "Deployment", "/apis/apps/v1/replicasets": "ReplicaSet",
    "/apis/apps/v1/statefulsets": "StatefulSet", "/apis/apps/v1/daemonsets": "DaemonSet",
    "/apis/batch/v1/jobs": "Job", "/apis/batch/v1/cronjobs": "CronJob",
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations":
        "ValidatingWebhookConfiguration",
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations":
        "MutatingWebhookConfiguration",
    "/apis/apiregistration.k8s.io/v1/apiservices": "APIService",
    "/apis/rbac.authorization.k8s.io/v1/rolebindings": "RoleBinding",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings": "ClusterRoleBinding",
}
CONFIG_MAP_PATH = "/api/v1/namespaces/kube-system/configmaps/"  # + name: read one by name
LIST_VERSION = "1000"
MAX_HOLD = 5.0  # never hold a watch longer than this, whatever the client asked


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]


@dataclass
class FakeApi:
    objects: list[dict[str, Any]]
    watch_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)  # plural names: "pods", "deployments"
    forbidden_watch: set[str] = field(default_factory=set)  # list allowed, watch refused
    refusal: int = 403  # 401 makes `forbidden` answer as for bad credentials
    expire_watches: int = 0  # answer this many first watches with a 410 Gone ERROR event
    later_objects: list[dict[str, Any]] | None = None  # what lists return after the first
    requests: list[Recorded] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    lists_served: dict[str, int] = field(default_factory=dict)

    def items(self, kind: str) -> list[dict[str, Any]]:
        served = self.lists_served.get(kind, 0)
        self.lists_served[kind] = served + 1
        objects = self.objects if served == 0 or self.later_objects is None \
            else self.later_objects
        # The API leaves kind/apiVersion out of list items.
        return [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                for o in objects if o.get("kind") == kind]


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "reason": reason,
                       "code": code}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: FakeApi

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep pytest output clean

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _config_map(self, name: str) -> None:
        if "configmaps" in self.api.forbidden:
            self._send(403, _status(403, "Forbidden", f'configmaps "{name}" is forbidden'))
            return
        found = [o for o in self.api.objects if o.get("kind") == "ConfigMap"
                 and o.get("metadata", {}).get("name") == name]
        if not found:
            self._send(404, _status(404, "NotFound", f'configmaps "{name}" not found'))
            return
        self._send(200, json.dumps(found[0]).encode())

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.api.requests.append(Recorded(url.path, query))
        kind = PATHS.get(url.path)
        plural = url.path.rsplit("/", 1)[-1]
        if url.path.startswith(CONFIG_MAP_PATH):
            self._config_map(plural)
            return
        if kind is None:
            self._send(404, _status(404, "NotFound", f"the server could not find {url.path}"))
            return
        watching = query.get("watch", ["false"])[0] in ("true", "1")
        if plural in self.api.forbidden or (watching and plural in self.api.forbidden_watch):
            verb = "watch" if watching else "list"
            group = url.path.split("/")[2] if url.path.startswith("/apis/") else ""
            if self.api.refusal == 401:
                self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                return
            self._send(403, _status(403, "Forbidden", (
                f'{plural} is forbidden: User "system:serviceaccount:default:netpol" cannot '
                f'{verb} resource "{plural}" in API group "{group}" at the cluster scope')))
            return
        if watching:
            self._watch(plural, query)
            return
        body = {"kind": f"{kind}List", "apiVersion": "v1",
                "metadata": {"resourceVersion": LIST_VERSION}, "items": self.api.items(kind)}
        self._send(200, json.dumps(body).encode())

    def _watch(self, plural: str, query: dict[str, list[str]]) -> None:
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        hold = min(float(query.get("timeoutSeconds", [MAX_HOLD])[0]), MAX_HOLD)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.api.expire_watches > 0:
            self.api.expire_watches -= 1
            gone = {"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410}}
            self._chunk(json.dumps(gone).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
            return
        for event in self.api.watch_events.get(plural, []):
            version = int(event["object"]["metadata"]["resourceVersion"])
            if version > since:
                self._chunk(json.dumps(event).encode() + b"\n")
        self.api.stopping.wait(hold)
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


@contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    """Run the server on a free localhost port; yields its URL."""
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        api.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_kubeconfig(path: Path, server: str, context: str = "fake") -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": context, "context": {"cluster": "fake", "user": "tester"}}],
    }
    path.write_text(json.dumps(config))
    return path


def load_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def objects_of(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    items: Iterable[dict[str, Any]] = doc["items"]
    return list(items)
