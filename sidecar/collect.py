"""Fetch every agent's summary through the API server's pod proxy.

`GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/summary` (and `/inventory`, the agent's
watched inventory) reaches the agent's HTTP port
through the API server, so collection needs neither a Service nor a port-forward, only
`get` on `pods/proxy` in the agent namespace for whoever runs it. Agents that don't answer
(pod not running, node down, timeout) are reported one by one; the rest is returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from discover.errors import ConfigurationError

DEFAULT_SELECTOR = "app.kubernetes.io/name=netpol-discover"
DEFAULT_PORT = 9808
DEFAULT_TIMEOUT = 30.0


class ClusterAccessError(ConfigurationError):
    """The agent pods could not be listed."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


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
        raise ClusterAccessError(f"listing pods in {namespace} ({selector})", reason) from error
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


def fetch_document(
    core: Any, namespace: str, pod: AgentPod, port: int, timeout: float, path: str = "summary"
) -> Fetched | Missing:
    """GET `path` of the agent on `pod` through the pod proxy, as a JSON object."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if pod.phase != "Running":
        return Missing(pod, f"pod is {pod.phase or 'in an unknown phase'}, not Running")
    try:
        response = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.name}:{port}",
            namespace,
            path,
            _preload_content=False,
            _request_timeout=timeout,
        )
        body = response.data
    except ApiException as error:
        reason = f"HTTP {error.status} {error.reason or ''}".strip()
        return Missing(pod, reason if pod.ready else f"{reason} (pod not Ready)")
    except (HTTPError, OSError) as error:
        return Missing(pod, f"no answer: {error}" + ("" if pod.ready else " (pod not Ready)"))
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
