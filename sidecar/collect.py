"""Fetch every agent's summary through a port-forward the API server authorizes.

The agent serves its data (`/summary`, `/inventory`) on loopback only, so no pod, node or
Service address reaches it. `collect` opens `pods/NAME/portforward?ports=PORT` with the
user's own credentials: the API server checks RBAC (`create` on `pods/portforward` in the
agent namespace; `get` as well where a cluster before 1.35 authorizes the websocket
upgrade as `get`), then the kubelet dials `localhost:PORT` in the pod's network namespace
(the node's own for the host-network DaemonSet). A plain HTTP GET goes through that tunnel.
The pod proxy (`pods/NAME:PORT/proxy/...`) is not used: it needs the agent to listen on
the pod address, and the API server drops the caller's credentials before forwarding, so
the agent could not tell an authorized caller from any other. Agents that don't answer
(pod not running, node down, refused, timeout) are reported one by one; the rest is
returned.
"""

from __future__ import annotations

import ast
import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any

from discover.errors import ClusterUnreachableError

DEFAULT_SELECTOR = "app.kubernetes.io/name=netpol-discover"
DEFAULT_PORT = 9808
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class AgentPod:
    name: str
    node: str | None
    phase: str | None
    ready: bool

    def label(self) -> str:
        return f"{self.name} (node {self.node})" if self.node else self.name


@dataclass(frozen=True, slots=True)
class Fetched:
    pod: AgentPod
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Missing:
    pod: AgentPod
    reason: str


def core_api(kubeconfig: str | None, context: str | None) -> Any:
    """A `CoreV1Api` on the client every command uses (see `discover.inventory.live`)."""
    from kubernetes import client

    from discover.inventory.live import api_client

    return client.CoreV1Api(api_client=api_client(kubeconfig, context))


def list_agent_pods(core: Any, namespace: str, selector: str) -> list[AgentPod]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        listing = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=30)
    except (ApiException, HTTPError, OSError) as error:
        reason = getattr(error, "reason", None) or str(error)
        where = f"listing pods in {namespace} ({selector})"
        raise ClusterUnreachableError(where, reason) from error
    pods = []
    for item in listing.items:
        status = item.status
        ready = any(
            c.type == "Ready" and c.status == "True" for c in (status.conditions or [])
        ) if status is not None else False  # fmt: skip
        pods.append(
            AgentPod(
                name=item.metadata.name,
                node=item.spec.node_name if item.spec is not None else None,
                phase=status.phase if status is not None else None,
                ready=ready,
            )
        )
    return sorted(pods, key=lambda p: p.name)


class ForwardError(Exception):
    """The port-forward or the HTTP exchange through it failed; the reason is one line."""


def get_forwarded(
    core: Any, namespace: str, pod_name: str, port: int, path: str, timeout: float
) -> tuple[int, str, bytes]:
    """(status, reason, body) of `GET /path` to `port` of the pod, through a port-forward."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import portforward

    try:
        forward = portforward(
            core.connect_get_namespaced_pod_portforward, pod_name, namespace, ports=str(port)
        )
    except ApiException as error:  # the websocket upgrade failed: RBAC, no such pod
        raise ForwardError(_handshake_reason(error)) from error
    try:
        sock = forward.socket(port)
        sock.settimeout(timeout)
        connection = http.client.HTTPConnection("localhost", port, timeout=timeout)
        connection.sock = sock  # already connected: the tunnel's end
        try:
            connection.request("GET", "/" + path, headers={"Connection": "close"})
            response = connection.getresponse()
            return response.status, response.reason, response.read()
        except (OSError, http.client.HTTPException) as error:
            # The kubelet's own words (e.g. "dial tcp4 127.0.0.1:9808: connection
            # refused") come on the port's error channel and close the tunnel.
            said = forward.error(port)
            raise ForwardError(" ".join((said or str(error) or type(error).__name__).split())) \
                from error
    finally:
        _close(forward, timeout)


PROXY_THREAD = "Kubernetes port forward proxy"


def _close(forward: Any, timeout: float) -> None:
    """Close our end, let the client's proxy thread finish, then close the websocket: when
    the server ends the session first, the client's thread returns without closing it."""
    forward.close()
    for thread in threading.enumerate():  # agents are collected one at a time
        if thread.name.startswith(PROXY_THREAD):
            thread.join(timeout)
    forward.websocket.shutdown()


def _handshake_reason(error: Exception) -> str:
    """`Handshake status 403 Forbidden -+-+- {headers} -+-+- {Status JSON}` (websocket-
    client's words) -> the status line and the Status message ("... cannot create
    resource pods/portforward ...")."""
    text = str(getattr(error, "reason", None) or error)
    parts = text.split(" -+-+- ")
    reason = parts[0].replace("Handshake status ", "HTTP ")
    if len(parts) >= 3:
        body = parts[-1].strip()
        if body[:2] in ("b'", 'b"'):  # older websocket-client: the bytes' repr
            try:
                body = ast.literal_eval(body).decode("utf-8", "replace")
            except (ValueError, SyntaxError):
                pass
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("message"):
            reason += f": {status['message']}"
    return " ".join(reason.split())


def fetch_document(
    core: Any, namespace: str, pod: AgentPod, port: int, timeout: float, path: str = "summary"
) -> Fetched | Missing:
    """GET `path` of the agent on `pod` through a port-forward, as a JSON object."""
    if pod.phase != "Running":
        return Missing(pod, f"pod is {pod.phase or 'in an unknown phase'}, not Running")
    not_ready = "" if pod.ready else " (pod not Ready)"
    try:
        status, reason, body = get_forwarded(core, namespace, pod.name, port, path, timeout)
    except ForwardError as error:
        return Missing(pod, f"no answer: {error}{not_ready}")
    if status != 200:
        return Missing(pod, f"HTTP {status} {reason}".strip() + not_ready)
    try:
        document = json.loads(body)
    except ValueError as error:
        return Missing(pod, f"answer is not JSON: {error}")
    if not isinstance(document, dict):
        return Missing(pod, "answer is not a JSON object")
    return Fetched(pod, document)


def fetch_summary(
    core: Any, namespace: str, pod: AgentPod, port: int, timeout: float
) -> Fetched | Missing:
    return fetch_document(core, namespace, pod, port, timeout, "summary")


def fetch_inventory(
    core: Any, namespace: str, pods: list[AgentPod], port: int, timeout: float
) -> tuple[Fetched | None, list[Missing]]:
    """The inventory of the first agent (by pod name) that serves one (agents started with
    --inventory-watch). Every agent watches the whole cluster, so one is enough; taking
    one, not a union, keeps each pod's address history as one watch recorded it."""
    missing: list[Missing] = []
    for pod in pods:
        result = fetch_document(core, namespace, pod, port, timeout, "inventory")
        if isinstance(result, Fetched) and result.document.get("kind") == "List":
            return result, missing
        if isinstance(result, Fetched):
            result = Missing(pod, "/inventory is not a kind: List document")
        missing.append(result)
    return None, missing


def collect(
    core: Any,
    namespace: str,
    selector: str = DEFAULT_SELECTOR,
    port: int = DEFAULT_PORT,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Fetched | Missing]:
    """One result per agent pod, in pod-name order."""
    pods = list_agent_pods(core, namespace, selector)
    return [fetch_summary(core, namespace, pod, port, timeout) for pod in pods]
