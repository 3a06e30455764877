"""The inventory from a live cluster: the official `kubernetes` client, list then watch.

Every kind is listed across all namespaces as raw JSON (the same objects `kubectl -o json`
prints), so `build.py` turns them into records exactly as it does for files. Pods are then
watched from the list's resourceVersion for `watch_seconds` (see `live_watch.py`), so IP
changes and deletions during a learning window are kept with their times.

Errors: 401/403 on one resource -> a note naming the resource and the RBAC verb to grant,
the other resources still load; nothing loadable, an unreachable server or a timeout ->
`InventoryError` with the server URL.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from discover.errors import ClusterUnreachableError, InventoryError
from discover.inventory.build import RawObject, build_inventory
from discover.inventory.cluster_objects import DNS_CONFIG_MAPS, DNS_CONFIG_NAMESPACE
from discover.inventory.live_watch import PodWatcher
from discover.inventory.model import Inventory


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    plural: str
    group: str  # "" for the core API
    api: Callable[[client.ApiClient], Any]
    method: str


RESOURCES = (
    Resource("Namespace", "namespaces", "", client.CoreV1Api, "list_namespace"),
    Resource("Node", "nodes", "", client.CoreV1Api, "list_node"),
    Resource("Pod", "pods", "", client.CoreV1Api, "list_pod_for_all_namespaces"),
    Resource("Service", "services", "", client.CoreV1Api, "list_service_for_all_namespaces"),
    # Old Endpoints: only used for Services that have no EndpointSlice (see build.py).
    Resource("Endpoints", "endpoints", "", client.CoreV1Api, "list_endpoints_for_all_namespaces"),
    Resource("EndpointSlice", "endpointslices", "discovery.k8s.io", client.DiscoveryV1Api,
             "list_endpoint_slice_for_all_namespaces"),
    Resource("Ingress", "ingresses", "networking.k8s.io", client.NetworkingV1Api,
             "list_ingress_for_all_namespaces"),
    Resource("NetworkPolicy", "networkpolicies", "networking.k8s.io", client.NetworkingV1Api,
             "list_network_policy_for_all_namespaces"),
    Resource("Deployment", "deployments", "apps", client.AppsV1Api,
             "list_deployment_for_all_namespaces"),
    Resource("ReplicaSet", "replicasets", "apps", client.AppsV1Api,
             "list_replica_set_for_all_namespaces"),
    Resource("StatefulSet", "statefulsets", "apps", client.AppsV1Api,
             "list_stateful_set_for_all_namespaces"),
    Resource("DaemonSet", "daemonsets", "apps", client.AppsV1Api,
             "list_daemon_set_for_all_namespaces"),
    Resource("Job", "jobs", "batch", client.BatchV1Api, "list_job_for_all_namespaces"),
    Resource("CronJob", "cronjobs", "batch", client.BatchV1Api,
             "list_cron_job_for_all_namespaces"),
    # What the API server calls (webhooks, aggregated APIs), who may call it (RBAC), and
    # where the cluster DNS forwards (see `read_dns_config_maps`).
    Resource("ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
             "admissionregistration.k8s.io", client.AdmissionregistrationV1Api,
             "list_validating_webhook_configuration"),
    Resource("MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
             "admissionregistration.k8s.io", client.AdmissionregistrationV1Api,
             "list_mutating_webhook_configuration"),
    Resource("APIService", "apiservices", "apiregistration.k8s.io", client.ApiregistrationV1Api,
             "list_api_service"),
    Resource("RoleBinding", "rolebindings", "rbac.authorization.k8s.io",
             client.RbacAuthorizationV1Api, "list_role_binding_for_all_namespaces"),
    Resource("ClusterRoleBinding", "clusterrolebindings", "rbac.authorization.k8s.io",
             client.RbacAuthorizationV1Api, "list_cluster_role_binding"),
)
RBAC_RESOURCES = ("RoleBinding", "ClusterRoleBinding")
POD_RESOURCE = RESOURCES[2]


def rbac_message(resource: Resource, verb: str, error: ApiException) -> str:
    group = f" in API group '{resource.group}'" if resource.group else ""
    if error.status == 401:
        return (f"unauthorized: the API server rejected the credentials when trying to {verb} "
                f"{resource.plural} (HTTP 401)")
    return (f"forbidden: cannot {verb} {resource.plural} at cluster scope: grant '{verb}' on "
            f"'{resource.plural}'{group}")


class KubeconfigError(InventoryError):
    """No usable cluster configuration: a kubeconfig that can't be read or parsed, an
    unknown context, or neither a kubeconfig nor an in-cluster service account."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: cannot load the cluster configuration: {message}")


def default_kubeconfigs() -> list[Path]:
    """The files `kubectl` reads without --kubeconfig: $KUBECONFIG (a path list) or
    ~/.kube/config."""
    paths = os.environ.get("KUBECONFIG", "")
    if paths:
        return [Path(p).expanduser() for p in paths.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """The one way every command and the agent reach the API server.

    Order: an explicit --kubeconfig / --context; else $KUBECONFIG or ~/.kube/config when
    one exists (a developer's machine, even inside a pod); else the in-cluster service
    account when KUBERNETES_SERVICE_HOST is set (the agent); else `KubeconfigError`.
    """
    configuration = client.Configuration()
    defaults = default_kubeconfigs()
    from_file = kubeconfig is not None or context is not None or any(
        p.exists() for p in defaults)
    if from_file:
        # Passed explicitly: the client reads $KUBECONFIG once, when it is imported.
        source = kubeconfig or os.pathsep.join(str(p) for p in defaults)
    elif "KUBERNETES_SERVICE_HOST" in os.environ:
        source = "in-cluster config"
    else:
        raise KubeconfigError(
            os.pathsep.join(str(p) for p in defaults),
            "no kubeconfig found and not running in a cluster (KUBERNETES_SERVICE_HOST is "
            "unset): pass --kubeconfig")
    try:
        if from_file:
            config.load_kube_config(config_file=source, context=context,  # type: ignore[no-untyped-call]
                                    client_configuration=configuration, persist_config=False)
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    # A kubeconfig that isn't YAML, or is YAML of the wrong shape (a list, a string),
    # fails deep inside the client with any of these.
    except (ConfigException, yaml.YAMLError, OSError, TypeError, ValueError, AttributeError,
            KeyError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, (TypeError, AttributeError, KeyError)):
            reason = f"not a well-formed kubeconfig ({reason})"
        raise KubeconfigError(source, reason) from None
    # Fail fast on an unreachable server instead of urllib3's default three retries.
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=2)
    return client.ApiClient(configuration)


def list_resource(api: client.ApiClient, resource: Resource,
                  timeout: float) -> tuple[list[dict[str, Any]], str]:
    """Raw items (with kind/apiVersion filled in) and the list's resourceVersion."""
    method = getattr(resource.api(api), resource.method)
    response = method(_preload_content=False, _request_timeout=timeout)
    body = json.loads(response.data)
    version = f"{resource.group}/v1" if resource.group else "v1"
    items = [{"kind": resource.kind, "apiVersion": version, **item}
             for item in body.get("items") or []]
    return items, str((body.get("metadata") or {}).get("resourceVersion") or "")


def load_inventory_live(
    kubeconfig: str | None,
    context: str | None,
    *,
    watch_seconds: float = 0.0,
    timeout: float = 30.0,
    on_progress: Callable[[str], None] | None = None,
) -> Inventory:
    api = api_client(kubeconfig, context)
    server = str(api.configuration.host)
    notes: list[str] = []
    raw: list[RawObject] = []
    pods: list[dict[str, Any]] = []
    pods_version = ""
    denied = 0
    refusal = ""
    rbac_listed = False
    try:
        for resource in RESOURCES:
            try:
                items, resource_version = list_resource(api, resource, timeout)
            except ApiException as error:
                if error.status in (401, 403):
                    denied += 1
                    refusal = refusal or rbac_message(resource, "list", error)
                    notes.append(rbac_message(resource, "list", error)
                                 + "; the inventory is partial")
                    continue
                if error.status == 404:
                    notes.append(f"{server} does not serve {resource.plural} "
                                 f"({resource.group or 'core'}/v1): skipped")
                    continue
                raise InventoryError(f"{server}: listing {resource.plural} failed: HTTP "
                                     f"{error.status} {error.reason}") from None
            if on_progress is not None:
                on_progress(f"listed {len(items)} {resource.plural}")
            rbac_listed = rbac_listed or resource.kind in RBAC_RESOURCES
            if resource is POD_RESOURCE:
                pods, pods_version = items, resource_version
            else:
                raw.extend(RawObject(f"{server}: {resource.plural}[{i}]", item)
                           for i, item in enumerate(items))
        raw.extend(read_dns_config_maps(api, timeout, server, notes))
        if denied == len(RESOURCES):
            raise InventoryError(f"{server}: every resource was refused: {refusal}")
        watcher = PodWatcher(pods, started=datetime.now(UTC))
        if watch_seconds > 0 and pods_version:
            notes.extend(_watch(api, watcher, pods_version, watch_seconds, timeout, server))
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ClusterUnreachableError(server, f"cannot reach the API server: "
                                              f"{_reason(error)}") from None
    finally:
        api.close()  # type: ignore[no-untyped-call]
    current, history = watcher.snapshot()
    raw.extend(RawObject(f"{server}: pods[{i}]", item) for i, item in enumerate(current))
    raw.extend(RawObject(f"{server}: watched pods[{i}]", item) for i, item in enumerate(history))
    return build_inventory(raw, sources=(server,), collected_at=datetime.now(UTC), notes=notes,
                           rbac_listed=rbac_listed)


def read_dns_config_maps(api: client.ApiClient, timeout: float, server: str,
                         notes: list[str]) -> list[RawObject]:
    """The cluster DNS's ConfigMaps (kube-system/coredns, ...) by name: the Corefile says
    where DNS forwards. Read one by one with `get`, never `list`: other ConfigMaps hold
    applications' settings the tool has no business reading. Missing ones are skipped."""
    core = client.CoreV1Api(api)
    found: list[RawObject] = []
    for name in DNS_CONFIG_MAPS:
        try:
            response = core.read_namespaced_config_map(
                name, DNS_CONFIG_NAMESPACE, _preload_content=False, _request_timeout=timeout)
        except ApiException as error:
            if error.status in (401, 403):
                notes.append(f"forbidden: cannot get configmap {DNS_CONFIG_NAMESPACE}/{name}: "
                             "the DNS upstreams come from observed traffic only")
                return found
            continue  # 404: this cluster has no such ConfigMap
        data: Any = response  # an HTTP response: _preload_content=False
        item = {"kind": "ConfigMap", "apiVersion": "v1", **json.loads(data.data)}
        found.append(RawObject(f"{server}: configmaps/{DNS_CONFIG_NAMESPACE}/{name}", item))
    return found


def _watch(api: client.ApiClient, watcher: PodWatcher, resource_version: str,
           seconds: float, timeout: float, server: str) -> list[str]:
    deadline = time.monotonic() + seconds
    core = client.CoreV1Api(api)
    try:
        watcher.run(core.list_pod_for_all_namespaces, resource_version, deadline,
                    relist=lambda: list_resource(api, POD_RESOURCE, timeout))
    except ApiException as error:
        if error.status in (401, 403):
            return [rbac_message(POD_RESOURCE, "watch", error)
                    + "; pod changes during the window were not recorded"]
        return [f"{server}: watching pods stopped: HTTP {error.status} {error.reason}"]
    return [f"watched pods for {seconds:g} s: {watcher.changes} change(s) recorded"]


def _reason(error: BaseException) -> str:
    """The cause in a few words: urllib3 buries it deep inside a MaxRetryError message."""
    text = str(getattr(error, "reason", None) or error)
    for marker in ("Connection refused", "timed out", "Name or service not known",
                   "No route to host"):
        if marker in text:
            return marker.lower()
    return text
