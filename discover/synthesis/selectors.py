"""Choose the label selector of a workload: the smallest stable label set of its pod
template that selects exactly its pods, and no others, in its namespace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

from discover.inventory.facts import selects
from discover.inventory.model import Inventory, WorkloadRef

# Labels a controller stamps per revision, per pod or per run: selecting on them breaks on
# the next rollout, or selects one pod only.
UNSTABLE_KEYS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "job-name",
        "controller-uid",
    }
)
UNSTABLE_PREFIXES = ("batch.kubernetes.io/",)

# Well-known identity keys, most preferred first; other keys rank after them by name.
PREFERRED_KEYS = (
    "app.kubernetes.io/name",
    "app",
    "k8s-app",
    "app.kubernetes.io/instance",
    "name",
    "app.kubernetes.io/component",
    "component",
    "tier",
    "release",
)

# Past this many candidate keys, only subsets of the most preferred ones are tried.
MAX_SEARCH_KEYS = 10


def is_stable_key(key: str) -> bool:
    return key not in UNSTABLE_KEYS and not key.startswith(UNSTABLE_PREFIXES)


def _key_rank(key: str) -> tuple[int, str]:
    try:
        return (PREFERRED_KEYS.index(key), key)
    except ValueError:
        return (len(PREFERRED_KEYS), key)


@dataclass(frozen=True, slots=True)
class SelectorChoice:
    """`labels` for matchLabels; `exact` when they select the workload's pods and no
    other pod of the namespace; `extra_pods` the other pods they also select."""

    workload: WorkloadRef
    labels: Mapping[str, str]
    exact: bool
    extra_pods: tuple[str, ...] = ()
    note: str = ""

    def match_labels(self) -> dict[str, str]:
        return {key: self.labels[key] for key in sorted(self.labels)}


def candidate_labels(workload: WorkloadRef, inventory: Inventory) -> dict[str, str]:
    """The stable labels every pod of the workload carries: the pod template's when the
    inventory has the controller, else the labels common to all its pods."""
    for template in inventory.workloads:
        if template.ref == workload:
            return {k: v for k, v in template.template_labels.items() if is_stable_key(k)}
    pods = [pod for pod in inventory.pods if pod.workload == workload]
    if not pods:
        return {}
    common = dict(pods[0].labels)
    for pod in pods[1:]:
        common = {k: v for k, v in common.items() if pod.labels.get(k) == v}
    return {k: v for k, v in common.items() if is_stable_key(k)}


def _subsets(keys: list[str]) -> Iterable[tuple[str, ...]]:
    """Key subsets, smallest first, then by preference (rank sum), then by name."""
    search = keys[:MAX_SEARCH_KEYS]
    for size in range(1, len(search) + 1):
        yield from sorted(
            combinations(search, size),
            key=lambda combo: (sum(_key_rank(k)[0] for k in combo), combo),
        )


def choose_selector(workload: WorkloadRef, inventory: Inventory) -> SelectorChoice:
    labels = candidate_labels(workload, inventory)
    namespace_pods = [pod for pod in inventory.pods if pod.namespace == workload.namespace]
    own = {pod.name for pod in namespace_pods if pod.workload == workload}
    keys = sorted(labels, key=_key_rank)
    best: tuple[int, dict[str, str], tuple[str, ...]] | None = None
    for combo in _subsets(keys):
        chosen = {key: labels[key] for key in combo}
        selected = {pod.name for pod in namespace_pods if selects(chosen.items(), pod.labels)}
        if not own <= selected:
            continue  # a template label a running pod lost: never select fewer pods
        extra = tuple(sorted(selected - own))
        if not extra:
            return SelectorChoice(workload, chosen, exact=True)
        if best is None or len(extra) < best[0]:
            best = (len(extra), chosen, extra)
    if best is None:
        note = (
            f"no stable pod labels: only the selector {{}} would select it, and with it "
            f"every pod of namespace {workload.namespace}"
            if not labels
            else "no label set selects all of its pods: only the selector {} would"
        )
        # {} is never exact: even alone in its namespace, it selects every pod created
        # there later (as a podSelector it hands them this workload's rules)
        extra = tuple(sorted({pod.name for pod in namespace_pods} - own))
        return SelectorChoice(workload, {}, exact=False, extra_pods=extra, note=note)
    _, chosen, extra = best
    shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    note = f"no stable label set is exact: {len(extra)} other pod(s) also match ({shown})"
    return SelectorChoice(workload, chosen, exact=False, extra_pods=extra, note=note)


class SelectorTable:
    """Selector choices computed once per workload."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._cache: dict[WorkloadRef, SelectorChoice] = {}

    def __getitem__(self, workload: WorkloadRef) -> SelectorChoice:
        choice = self._cache.get(workload)
        if choice is None:
            choice = choose_selector(workload, self._inventory)
            self._cache[workload] = choice
        return choice

    def choices(self) -> tuple[SelectorChoice, ...]:
        return tuple(self._cache[key] for key in sorted(self._cache))
