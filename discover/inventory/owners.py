"""Owner chains: which workload a pod belongs to.

Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob, Pod -> StatefulSet / DaemonSet, a
pod without owner is its own workload. When the intermediate object (ReplicaSet, Job) is
not in the inventory, the controller's naming rules still tell its parent:

- a Deployment names its ReplicaSets `<deployment>-<pod-template-hash>` and copies the hash
  into the pods' `pod-template-hash` label, so the suffix can be stripped exactly;
- a CronJob names its Jobs `<cronjob>-<scheduled time>` (minutes since the epoch today,
  seconds in old releases: 8 to 10 digits), so a Job whose name ends that way is taken
  as a CronJob's. Both inferences are reported in the inventory notes.

Static (mirror) pods are owned by their Node: the pod itself is the workload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from discover.inventory.model import WorkloadRef

_CRONJOB_SUFFIX = re.compile(r"^(?P<parent>.+)-(?P<time>\d{8,10})$")


@dataclass(frozen=True, slots=True)
class OwnerLink:
    kind: str
    name: str


def controller_of(metadata: Mapping[str, Any]) -> OwnerLink | None:
    """The controlling owner reference (or the first one when none says controller)."""
    refs = [r for r in metadata.get("ownerReferences") or [] if isinstance(r, Mapping)]
    if not refs:
        return None
    chosen = next((r for r in refs if r.get("controller")), refs[0])
    kind, name = chosen.get("kind"), chosen.get("name")
    if not isinstance(kind, str) or not isinstance(name, str):
        return None
    return OwnerLink(kind, name)


class OwnerResolver:
    """Resolves pods to workloads given the ReplicaSets and Jobs the inventory holds."""

    def __init__(
        self,
        replicaset_owners: Mapping[tuple[str, str], OwnerLink | None],
        job_owners: Mapping[tuple[str, str], OwnerLink | None],
    ) -> None:
        self._replicasets = replicaset_owners
        self._jobs = job_owners
        self.inferred_deployments: set[WorkloadRef] = set()
        self.inferred_cronjobs: set[WorkloadRef] = set()

    def resolve(self, namespace: str, pod_name: str, metadata: Mapping[str, Any],
                pod_labels: Mapping[str, str]) -> WorkloadRef:
        owner = controller_of(metadata)
        if owner is None or owner.kind == "Node":
            return WorkloadRef(namespace, "Pod", pod_name)
        if owner.kind == "ReplicaSet":
            return self._via_replicaset(namespace, owner.name, pod_labels)
        if owner.kind == "Job":
            return self.job_parent(namespace, owner.name)
        return WorkloadRef(namespace, owner.kind, owner.name)

    def _via_replicaset(self, namespace: str, name: str,
                        pod_labels: Mapping[str, str]) -> WorkloadRef:
        key = (namespace, name)
        if key in self._replicasets:
            parent = self._replicasets[key]
            if parent is not None:
                return WorkloadRef(namespace, parent.kind, parent.name)
            return WorkloadRef(namespace, "ReplicaSet", name)
        template_hash = pod_labels.get("pod-template-hash", "")
        if template_hash and name.endswith("-" + template_hash):
            ref = WorkloadRef(namespace, "Deployment", name[: -len(template_hash) - 1])
            self.inferred_deployments.add(ref)
            return ref
        return WorkloadRef(namespace, "ReplicaSet", name)

    def job_parent(self, namespace: str, name: str) -> WorkloadRef:
        key = (namespace, name)
        if key in self._jobs:
            parent = self._jobs[key]
            if parent is not None:
                return WorkloadRef(namespace, parent.kind, parent.name)
            return WorkloadRef(namespace, "Job", name)
        match = _CRONJOB_SUFFIX.match(name)
        if match:
            ref = WorkloadRef(namespace, "CronJob", match.group("parent"))
            self.inferred_cronjobs.add(ref)
            return ref
        return WorkloadRef(namespace, "Job", name)

    def notes(self) -> list[str]:
        notes: list[str] = []
        if self.inferred_deployments:
            names = ", ".join(str(r) for r in sorted(self.inferred_deployments))
            notes.append(
                "ReplicaSet objects absent: Deployment taken from the ReplicaSet name minus "
                f"the pods' pod-template-hash label for {names}"
            )
        if self.inferred_cronjobs:
            names = ", ".join(str(r) for r in sorted(self.inferred_cronjobs))
            notes.append(
                "Job objects absent: CronJob taken from the Job name minus its scheduled-time "
                f"suffix for {names}"
            )
        return notes
