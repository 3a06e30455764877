"""Reading NetworkPolicies from a YAML or JSON file (several documents, `List`s).

ClusterNetworkPolicies (policy.networking.k8s.io/v1alpha2) are read beside them, checked
as the API server checks them with the CRD. Other kinds are skipped with a note, so
`kubectl get -A -o yaml` output or a whole manifest directory dump can be used as is. A
broken document is an error naming the file and the document number (1-based), never a
traceback.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from discover.errors import ReadError
from discover.netpol.cluster_policy import ClusterPolicy, is_cluster_policy, parse_cluster_policy
from discover.netpol.policy import Policy, parse_policy
from discover.netpol.selectors import InvalidPolicyError
from discover.reading.yaml_documents import load_yaml_documents


class PolicyFileError(ReadError):
    """A policy file that can't be read; `document` is the 1-based YAML document number."""

    def __init__(self, path: str, message: str, *, document: int | None = None) -> None:
        self.document = document
        where = f"document {document}: " if document is not None else ""
        super().__init__(path, where + message)


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    policies: tuple[Policy, ...]
    notes: tuple[str, ...] = ()
    cluster_policies: tuple[ClusterPolicy, ...] = ()  # by tier, priority, name


def load_policy_file(path: Path | str) -> PolicyFile:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyFileError(name, f"cannot read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise PolicyFileError(name, "not a text file (UTF-8 expected)") from error
    return parse_policy_text(text, name)


def parse_policy_text(text: str, source: str) -> PolicyFile:
    policies: list[Policy] = []
    cluster: list[ClusterPolicy] = []
    seen: dict[str, int] = {}
    ignored: Counter[str] = Counter()
    for number, document in _documents(text, source):
        for obj in _objects(document, source, number):
            kind = obj.get("kind")
            if is_cluster_policy(obj):
                cluster.append(_cluster_policy(obj, source, number, seen))
                continue
            if kind != "NetworkPolicy":
                ignored[str(kind)] += 1
                continue
            try:
                policy = parse_policy(obj)
            except InvalidPolicyError as error:
                raise PolicyFileError(source, str(error), document=number) from error
            if policy.ref in seen:
                raise PolicyFileError(
                    source,
                    f"NetworkPolicy {policy.ref} appears twice (also document {seen[policy.ref]})",
                    document=number,
                )
            seen[policy.ref] = number
            policies.append(policy)
    notes = []
    if ignored:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(ignored.items()))
        notes.append(f"{source}: ignored objects that are not NetworkPolicies: {kinds}")
    if not policies and not cluster:
        notes.append(f"{source}: no NetworkPolicy found: every connection is allowed")
    ordered = tuple(sorted(policies, key=lambda p: (p.namespace, p.name)))
    tiers = tuple(sorted(cluster, key=lambda p: (p.tier, p.priority, p.name)))
    return PolicyFile(source, ordered, tuple(notes), tiers)


def load_policy_files(paths: Sequence[Path | str]) -> PolicyFile:
    """Several files as one set; a policy in two files is an error naming both."""
    files = [load_policy_file(path) for path in paths]
    where: dict[str, str] = {}
    for loaded in files:
        refs = [p.ref for p in loaded.policies] + [
            f"ClusterNetworkPolicy {p.name}" for p in loaded.cluster_policies]
        for ref in refs:
            if ref in where:
                raise PolicyFileError(loaded.path, f"{ref} is also in {where[ref]}")
            where[ref] = loaded.path
    policies = sorted((p for f in files for p in f.policies), key=lambda p: (p.namespace, p.name))
    cluster = sorted((p for f in files for p in f.cluster_policies),
                     key=lambda p: (p.tier, p.priority, p.name))
    return PolicyFile(", ".join(f.path for f in files), tuple(policies),
                      tuple(note for f in files for note in f.notes), tuple(cluster))


def _cluster_policy(obj: dict[str, Any], source: str, number: int,
                    seen: dict[str, int]) -> ClusterPolicy:
    try:
        policy = parse_cluster_policy(obj)
    except InvalidPolicyError as error:
        raise PolicyFileError(source, str(error), document=number) from error
    key = f"ClusterNetworkPolicy {policy.name}"
    if key in seen:
        raise PolicyFileError(source, f"{key} appears twice (also document {seen[key]})",
                              document=number)
    seen[key] = number
    return policy


def _documents(text: str, source: str) -> Iterator[tuple[int, Any]]:
    number = 0
    loader = load_yaml_documents(text)
    while True:
        try:
            document = next(loader)
        except StopIteration:
            return
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise PolicyFileError(
                source, f"invalid YAML{line}: {problem}", document=number + 1
            ) from error
        number += 1
        if document is not None:
            yield number, document


def _objects(document: Any, source: str, number: int) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        raise PolicyFileError(
            source, f"expected a Kubernetes object, got {type(document).__name__}", document=number
        )
    kind = str(document.get("kind", ""))
    if kind.endswith("List") and isinstance(document.get("items"), list):
        item_kind = kind[: -len("List")] or None
        for item in document["items"]:
            if isinstance(item, dict) and "kind" not in item and item_kind:
                item = {**item, "kind": item_kind}  # items of a typed list carry no kind
            yield from _objects(item, source, number)
        return
    if not kind:
        raise PolicyFileError(source, "object without kind", document=number)
    yield document
