"""Loader for the np-guard netpol-analyzer oracle (tests/<case>/ in, connlist text out).

Builds what the oracle builds from a case directory: workloads (pods grouped by their
controller owner, or one per Deployment/DaemonSet/... manifest), namespaces with the
automatic `kubernetes.io/metadata.name` label, and the NetworkPolicies; then lists the
allowed connections in the oracle's text format (`src => dst : conns`) with our
evaluator. External peers are IPv4 ranges split at the ipBlock boundaries of ingress
rules (as sources) and of egress rules (as destinations), as the oracle does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from discover.inventory.model import ContainerPort
from discover.netpol import IpEndpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.ipblock import split_address_space
from discover.netpol.policy import EGRESS, INGRESS

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
TEMPLATE_KINDS = (
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ReplicationController",
    "Job",
)


@dataclass(frozen=True)
class Workload:
    key: str  # ns/name[Kind], the oracle's peer name
    namespace: str
    labels: dict[str, str]
    ports: tuple[ContainerPort, ...]


@dataclass
class OracleCase:
    name: str
    workloads: dict[str, Workload] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    policies: list[dict[str, Any]] = field(default_factory=list)

    def endpoint(self, workload: Workload) -> PodEndpoint:
        labels = self.namespaces.get(workload.namespace) or {
            NAMESPACE_NAME_LABEL: workload.namespace
        }
        return PodEndpoint(
            namespace=workload.namespace,
            labels=workload.labels,
            namespace_labels=labels,
            ports=workload.ports,
            name=workload.key,
        )


def read_documents(path: Path) -> Iterator[dict[str, Any]]:
    """Every object of a YAML/JSON file: multi-document, Lists expanded, non-objects skipped."""
    text = path.read_text()
    if path.suffix == ".json":
        try:
            documents: list[Any] = [json.loads(text)]
        except json.JSONDecodeError:
            documents = list(yaml.safe_load_all(text))
    else:
        documents = list(yaml.safe_load_all(text))
    for document in documents:
        yield from _expand(document)


def _expand(document: Any, item_kind: str | None = None) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        return  # e.g. an expected-output JSON array lying in the case directory
    if "kind" not in document:
        if item_kind is None:
            return
        document = {**document, "kind": item_kind}  # items of a PodList carry no kind
    kind = str(document["kind"])
    if kind.endswith("List") and isinstance(document.get("items"), list):
        inner = kind[: -len("List")] or None  # `List` items name their own kind
        for item in document["items"]:
            yield from _expand(item, inner)
    else:
        yield document


def load_case(directory: Path) -> OracleCase:
    case = OracleCase(directory.name)
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        for obj in read_documents(path):
            _add_object(case, obj)
    for workload in case.workloads.values():
        case.namespaces.setdefault(workload.namespace, {NAMESPACE_NAME_LABEL: workload.namespace})
    return case


def _add_object(case: OracleCase, obj: dict[str, Any]) -> None:
    kind = obj["kind"]
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    if kind == "Namespace":
        labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
        labels.setdefault(NAMESPACE_NAME_LABEL, metadata["name"])
        case.namespaces[metadata["name"]] = labels
    elif kind == "NetworkPolicy":
        case.policies.append(obj)
    elif kind == "Pod":
        name, owner_kind = metadata["name"], "Pod"
        for reference in metadata.get("ownerReferences") or []:
            if reference.get("controller") and reference.get("kind") != "Node":
                name, owner_kind = reference["name"], reference.get("kind") or "Pod"
                break
        _add_workload(case, namespace, name, owner_kind, metadata, obj.get("spec") or {})
    elif kind in TEMPLATE_KINDS or kind == "CronJob":
        spec = obj.get("spec") or {}
        if kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        template = spec.get("template") or {}
        _add_workload(
            case,
            namespace,
            metadata["name"],
            kind,
            template.get("metadata") or {},
            template.get("spec") or {},
        )


def _add_workload(
    case: OracleCase,
    namespace: str,
    name: str,
    kind: str,
    pod_metadata: dict[str, Any],
    pod_spec: dict[str, Any],
) -> None:
    key = f"{namespace}/{name}[{kind}]"
    if key in case.workloads:
        return  # the first pod stands for its owner, like the oracle's representative pod
    ports = tuple(
        ContainerPort(
            port=int(port["containerPort"]),
            protocol=str(port.get("protocol") or "TCP").upper(),
            name=port.get("name"),
            container=str(container.get("name") or ""),
        )
        for container in pod_spec.get("containers") or []
        for port in container.get("ports") or []
        if "containerPort" in port
    )
    labels = {str(k): str(v) for k, v in (pod_metadata.get("labels") or {}).items()}
    case.workloads[key] = Workload(key, namespace, labels, ports)


def connlist(case: OracleCase) -> list[str]:
    """The allowed connections, one `src => dst : conns` line each, sorted."""
    evaluator = PolicyEvaluator(case.policies)
    workloads = sorted(case.workloads.values(), key=lambda w: w.key)
    endpoints = {w.key: case.endpoint(w) for w in workloads}
    lines = []
    for src in workloads:
        for dst in workloads:
            if src.key == dst.key:
                continue  # the oracle leaves out a workload's connections to itself
            conns = evaluator.connections(endpoints[src.key], endpoints[dst.key])
            if not conns.is_empty:
                lines.append(f"{src.key} => {dst.key} : {conns}")
    sources = split_address_space(evaluator.ip_blocks(INGRESS))
    destinations = split_address_space(evaluator.ip_blocks(EGRESS))
    for first, last in sources:
        name = f"{first}-{last}[External]"
        for dst in workloads:
            conns = evaluator.connections(IpEndpoint(first), endpoints[dst.key])
            if not conns.is_empty:
                lines.append(f"{name} => {dst.key} : {conns}")
    for first, last in destinations:
        name = f"{first}-{last}[External]"
        for src in workloads:
            conns = evaluator.connections(endpoints[src.key], IpEndpoint(first))
            if not conns.is_empty:
                lines.append(f"{src.key} => {name} : {conns}")
    return sorted(lines)


def expected_connlist(path: Path) -> list[str]:
    return sorted(line for line in path.read_text().splitlines() if line.strip())
