"""The evaluator's view of inventory objects: a Pod record as a `PodEndpoint`."""

from __future__ import annotations

from collections.abc import Mapping

from discover.flows.events import IPAddress
from discover.inventory.model import Inventory, Pod
from discover.netpol.evaluate import PodEndpoint

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def ns_labels(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """A namespace's labels with the `kubernetes.io/metadata.name` label the API server
    sets on every namespace (since 1.22), also when an older dump lacks it."""
    out = dict(labels)
    out.setdefault(NAMESPACE_NAME_LABEL, name)
    return out


def pod_endpoint(
    pod: Pod, labels_of_namespace: Mapping[str, str] | None, *, ip: IPAddress | None = None
) -> PodEndpoint:
    """The evaluator's view of a pod; `ip` defaults to the pod's first address."""
    return PodEndpoint(
        namespace=pod.namespace,
        labels=dict(pod.labels),
        namespace_labels=labels_of_namespace or ns_labels(pod.namespace, {}),
        ip=ip if ip is not None else (pod.ips[0] if pod.ips else None),
        ports=pod.ports,
        name=pod.workload.name,
    )


def namespace_labels(inventory: Inventory) -> dict[str, dict[str, str]]:
    """Every namespace of the inventory with its labels (see `ns_labels`)."""
    return {ns.name: ns_labels(ns.name, ns.labels) for ns in inventory.namespaces}
