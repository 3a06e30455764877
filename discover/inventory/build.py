"""Raw API objects from any source (files, the live API) -> one `Inventory`.

Shared by `files.py` and `live.py` so both produce exactly the same records from the same
objects. A bad object is skipped with a note naming where it came from; the rest loads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from discover.errors import InventoryError
from discover.inventory import cluster_objects as c
from discover.inventory import fields as f
from discover.inventory import objects as o
from discover.inventory.fields import FieldError
from discover.inventory.model import (
    ApiCallback,
    DnsForwarding,
    EndpointSlice,
    Ingress,
    Inventory,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    RoleBinding,
    Service,
    WorkloadTemplate,
)
from discover.inventory.owners import OwnerLink, OwnerResolver, controller_of

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")
KNOWN_KINDS = ("Namespace", "Node", "Pod", "Service", "EndpointSlice", "Endpoints", "Ingress",
               "NetworkPolicy", *WORKLOAD_KINDS, *c.WEBHOOK_KINDS, "APIService", *c.RBAC_KINDS,
               "ConfigMap")


class InventoryObjectError(InventoryError):
    """One object is unusable. `where` is e.g. `cluster.json: items[12]`."""

    def __init__(self, where: str, kind: str, name: str, field: str, message: str) -> None:
        self.where = where
        self.kind = kind
        self.name = name
        self.field = field
        self.message = message
        shown = f"{kind} {name}" if name else kind  # a nameless object: its kind alone
        super().__init__(f"{where} ({shown}): {field}: {message}")


@dataclass(frozen=True, slots=True)
class RawObject:
    """An API object as the API (or kubectl) printed it, and where it was read."""

    where: str
    data: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The metadata, or {} when it is missing or not an object (parsing says so)."""
        m = self.data.get("metadata")
        return m if isinstance(m, Mapping) else {}

    @property
    def key(self) -> tuple[str, str]:
        m = self.metadata
        return (str(m.get("namespace") or "default"), str(m.get("name") or ""))

    @property
    def display_name(self) -> str:
        m = self.metadata
        name = str(m.get("name") or "?")
        return f"{m['namespace']}/{name}" if m.get("namespace") else name


def _owner_map(objects: list[RawObject]) -> dict[tuple[str, str], OwnerLink | None]:
    return {obj.key: controller_of(obj.metadata) for obj in objects}


def build_inventory(
    raw: Iterable[RawObject],
    *,
    sources: tuple[str, ...],
    collected_at: datetime | None = None,
    notes: Iterable[str] = (),
    extra_pods: Iterable[Pod] = (),
    rbac_listed: bool = False,
) -> Inventory:
    """Parse every object; unknown kinds and bad objects become notes, never errors.

    `extra_pods` are pods a watch saw go (or change IP) before the final listing.
    `rbac_listed`: the bindings were listed (a live cluster with none still knows RBAC)."""
    by_kind: dict[str, list[RawObject]] = {}
    ignored: Counter[str] = Counter()
    for obj in raw:
        if obj.kind == "ConfigMap" and not c.is_dns_config_map(obj.metadata):
            ignored[obj.kind] += 1  # only the cluster DNS's Corefile is read
        elif obj.kind in KNOWN_KINDS:
            by_kind.setdefault(obj.kind, []).append(obj)
        else:
            ignored[obj.kind or "(no kind)"] += 1
    all_notes = list(notes)
    for kind, count in sorted(ignored.items()):
        all_notes.append(f"ignored {count} object(s) of kind {kind} (not used by the inventory)")

    owners = OwnerResolver(_owner_map(by_kind.get("ReplicaSet", [])),
                           _owner_map(by_kind.get("Job", [])))

    def parse(kind: str, fn: Any) -> list[Any]:
        out: list[Any] = []
        for obj in by_kind.get(kind, []):
            try:
                f.object_name(obj.data)
                out.append(fn(obj.data))
            except FieldError as error:
                named = isinstance(obj.metadata.get("name"), str) and obj.metadata["name"]
                name = obj.display_name if named else ""
                bad = InventoryObjectError(obj.where, obj.kind, name, error.path, error.message)
                all_notes.append(f"skipped: {bad}")
        return out

    namespaces: list[Namespace] = parse("Namespace", o.parse_namespace)
    nodes: list[Node] = parse("Node", o.parse_node)
    pods: list[Pod] = parse("Pod", lambda d: o.parse_pod(d, owners))
    pods.extend(extra_pods)
    services: list[Service] = parse("Service", o.parse_service)
    slices: list[EndpointSlice] = [s for s in parse("EndpointSlice", o.parse_endpoint_slice)
                                   if s is not None]
    covered = {(s.namespace, s.service_name) for s in slices}
    for group in parse("Endpoints", o.parse_endpoints):
        # Endpoints mirror the slices of the same Service: only use them when no slice is there.
        slices.extend(s for s in group if (s.namespace, s.service_name) not in covered)
    ingresses: list[Ingress] = parse("Ingress", o.parse_ingress)
    policies: list[NetworkPolicy] = parse("NetworkPolicy", o.parse_network_policy)
    templates: list[WorkloadTemplate] = []
    for kind in WORKLOAD_KINDS:
        found = parse(kind, lambda d, k=kind: o.parse_workload(d, k))
        templates.extend(t for t in found if t is not None)
    all_notes.extend(owners.notes())
    callbacks: list[ApiCallback] = []
    for kind in c.WEBHOOK_KINDS:
        callbacks.extend(parse(kind, lambda d, k=kind: c.parse_webhook_configuration(d, k)))
    callbacks.extend(parse("APIService", c.parse_api_service))
    bindings: list[RoleBinding] = []
    for kind in c.RBAC_KINDS:
        bindings.extend(parse(kind, lambda d, k=kind: c.parse_role_binding(d, k)))
    forwarding: list[DnsForwarding] = parse("ConfigMap", c.parse_dns_config_map)

    return Inventory(
        namespaces=tuple(sorted(_unique(namespaces, lambda n: n.name), key=lambda n: n.name)),
        nodes=tuple(sorted(_unique(nodes, lambda n: n.name), key=lambda n: n.name)),
        pods=tuple(sorted(_unique(pods, _pod_key), key=_pod_key)),
        services=tuple(sorted(_unique(services, lambda s: (s.namespace, s.name)),
                              key=lambda s: (s.namespace, s.name))),
        endpoint_slices=tuple(sorted(_unique(slices, _slice_key), key=_slice_key)),
        ingresses=tuple(sorted(_unique(ingresses, lambda i: (i.namespace, i.name)),
                               key=lambda i: (i.namespace, i.name))),
        network_policies=tuple(sorted(_unique(policies, lambda p: (p.namespace, p.name)),
                                      key=lambda p: (p.namespace, p.name))),
        workloads=tuple(sorted(_unique(templates, lambda t: t.ref), key=lambda t: t.ref)),
        api_callbacks=tuple(sorted(_unique(callbacks, lambda a: (a.kind, a.name)),
                                   key=lambda a: (a.kind, a.name))),
        role_bindings=tuple(sorted(_unique(bindings, lambda b: (b.namespace or "", b.name)),
                                   key=lambda b: (b.namespace or "", b.name))),
        has_rbac=any(kind in by_kind for kind in c.RBAC_KINDS) or rbac_listed,
        dns_forwarding=tuple(sorted(_unique(forwarding, lambda d: d.config_map),
                                    key=lambda d: d.config_map)),
        collected_at=collected_at,
        sources=sources,
        notes=tuple(all_notes),
    )


def _pod_key(pod: Pod) -> tuple[str, str, str, str, tuple[str, ...]]:
    created = pod.created.isoformat() if pod.created else ""
    return (pod.namespace, pod.name, created, pod.uid, tuple(str(ip) for ip in pod.ips))


def _slice_key(s: EndpointSlice) -> tuple[str, str, str]:
    return (s.namespace, s.name, ",".join(str(a) for e in s.endpoints for a in e.addresses))


def _unique(items: list[Any], key: Any) -> list[Any]:
    """Last one wins: a later file (or a later list) holds the newer copy of an object."""
    seen: dict[Any, Any] = {}
    for item in items:
        seen[key(item)] = item
    return list(seen.values())
