"""Kubernetes label selectors: `matchLabels` and `matchExpressions`, exactly as the API.

A selector ANDs all its terms; an empty selector (`{}`) selects everything. What an
ABSENT selector means depends on where it is (a NetworkPolicy peer without podSelector
selects all pods of the namespaces it names), so callers keep `None` for "absent" and
never pass it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from discover.errors import ConfigurationError
from discover.inventory.facts import selects

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class InvalidPolicyError(ConfigurationError):
    """A NetworkPolicy the API server would reject, or that cannot be read.

    `policy` is "namespace/name" (or "" when unknown), `field` the JSON path inside it.
    """

    def __init__(self, policy: str, field: str, message: str) -> None:
        self.policy = policy
        self.field = field
        self.message = message
        where = f"NetworkPolicy {policy}" if policy else "NetworkPolicy"
        super().__init__(f"{where}: {field}: {message}")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # one of OPERATORS
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        # NotIn: a pod without the key is not "in" the set, so it matches.
        return self.key not in labels or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        word = "in" if self.operator == "In" else "notin"
        return f"{self.key} {word} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return selects(self.match_labels, labels) and all(
            requirement.matches(labels) for requirement in self.expressions)

    def keys(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.match_labels) | frozenset(
            requirement.key for requirement in self.expressions
        )

    def __str__(self) -> str:
        if self.empty:
            return "{}"
        terms = [f"{key}={value}" for key, value in self.match_labels]
        terms += [str(requirement) for requirement in self.expressions]
        return ",".join(terms)


def parse_selector(raw: Any, *, policy: str, field: str) -> LabelSelector:
    """Read a LabelSelector object (`{}` and `null` both give the empty selector)."""
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, Mapping):
        raise InvalidPolicyError(policy, field, f"expected a label selector, got {raw!r}")
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise InvalidPolicyError(policy, field, f"unknown selector field(s) {sorted(unknown)}")
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise InvalidPolicyError(policy, f"{field}.matchLabels", "expected a mapping")
    pairs = tuple(sorted((str(key), _label_value(value)) for key, value in match_labels.items()))
    expressions = raw.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise InvalidPolicyError(policy, f"{field}.matchExpressions", "expected a list")
    requirements = tuple(
        _parse_requirement(item, policy=policy, field=f"{field}.matchExpressions[{index}]")
        for index, item in enumerate(expressions)
    )
    return LabelSelector(pairs, requirements)


def _label_value(value: Any) -> str:
    # YAML turns `tier: 1` or `enabled: true` into numbers/booleans; the API sees strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _parse_requirement(raw: Any, *, policy: str, field: str) -> Requirement:
    if not isinstance(raw, Mapping) or "key" not in raw or "operator" not in raw:
        raise InvalidPolicyError(policy, field, "expected {key, operator, values}")
    operator = raw["operator"]
    if operator not in OPERATORS:
        raise InvalidPolicyError(
            policy, field, f"operator {operator!r} is not one of {', '.join(OPERATORS)}"
        )
    values = raw.get("values") or []
    if not isinstance(values, list):
        raise InvalidPolicyError(policy, f"{field}.values", "expected a list")
    if operator in ("In", "NotIn") and not values:
        raise InvalidPolicyError(policy, field, f"operator {operator} needs values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise InvalidPolicyError(policy, field, f"operator {operator} takes no values")
    return Requirement(str(raw["key"]), operator, frozenset(_label_value(v) for v in values))
