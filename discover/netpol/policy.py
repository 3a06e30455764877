"""A NetworkPolicy object read into typed rules, validated like the API server does.

Empty and absent differ, exactly as in the API:
- `spec.podSelector` absent or `{}`: every pod of the policy's namespace;
- `policyTypes` absent: Ingress always, Egress only when `egress` rules are present;
- `ingress`/`egress` absent or `[]` (with that policy type): nothing is allowed;
- a rule's `from`/`to` absent or `[]`: every peer (pods and IPs); `ports` absent or
  `[]`: every port and protocol;
- a peer with only `podSelector`: those pods of the policy's namespace; only
  `namespaceSelector`: all pods of those namespaces; both: those pods of those
  namespaces (AND); `ipBlock` can't be combined with either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from discover.netpol.ipblock import IpBlock, parse_ip_block
from discover.netpol.ports import RulePort, parse_rule_port
from discover.netpol.selectors import InvalidPolicyError, LabelSelector, parse_selector

INGRESS = "Ingress"
EGRESS = "Egress"


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One `from`/`to` entry. A None selector is an absent one."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IpBlock | None = None

    def __str__(self) -> str:
        if self.ip_block is not None:
            return f"ipBlock {self.ip_block}"
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaces {self.namespace_selector}")
        if self.pod_selector is not None:
            parts.append(f"pods {self.pod_selector}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ingress or egress rule; `number` is 1-based as people count rules."""

    number: int
    peers: tuple[PeerSpec, ...]  # empty: every peer
    ports: tuple[RulePort, ...]  # empty: every port


@dataclass(frozen=True, slots=True)
class Policy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    affects_ingress: bool
    affects_egress: bool
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress

    def affects(self, direction: str) -> bool:
        return self.affects_ingress if direction == INGRESS else self.affects_egress

    def ip_blocks(self, direction: str) -> list[IpBlock]:
        return [
            peer.ip_block
            for rule in self.rules(direction)
            for peer in rule.peers
            if peer.ip_block is not None
        ]


def parse_policy(obj: Mapping[str, Any], default_namespace: str = "default") -> Policy:
    """Read one NetworkPolicy object (apiVersion/kind/metadata/spec)."""
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidPolicyError("", "metadata", "expected a mapping")
    name = str(metadata.get("name") or "")
    namespace = str(metadata.get("namespace") or default_namespace)
    ref = f"{namespace}/{name}"
    if not name:
        raise InvalidPolicyError(ref, "metadata.name", "missing")
    kind = obj.get("kind")
    if kind != "NetworkPolicy":
        raise InvalidPolicyError(ref, "kind", f"expected NetworkPolicy, got {kind!r}")
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidPolicyError(ref, "spec", "expected a mapping")
    pod_selector = parse_selector(spec.get("podSelector"), policy=ref, field="spec.podSelector")
    ingress = _rules(spec.get("ingress"), INGRESS, ref)
    egress = _rules(spec.get("egress"), EGRESS, ref)
    types = _policy_types(spec.get("policyTypes"), ref)
    if not types:
        affects_ingress, affects_egress = True, bool(egress)
    else:
        affects_ingress, affects_egress = INGRESS in types, EGRESS in types
    return Policy(namespace, name, pod_selector, affects_ingress, affects_egress, ingress, egress)


def _policy_types(raw: Any, ref: str) -> list[str]:
    """`spec.policyTypes` checked as the API server does: at most two entries, each the
    string Ingress or Egress (YAML can put anything there, even a mapping)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidPolicyError(ref, "spec.policyTypes", "expected a list of Ingress/Egress")
    if len(raw) > 2:
        raise InvalidPolicyError(ref, "spec.policyTypes", "may not specify more than two "
                                 f"policyTypes, got {len(raw)}")
    for index, item in enumerate(raw):
        if not isinstance(item, str) or item not in (INGRESS, EGRESS):
            raise InvalidPolicyError(ref, f"spec.policyTypes[{index}]",
                                     f"expected Ingress/Egress, got {item!r}")
    return raw


def _rules(raw: Any, direction: str, ref: str) -> tuple[Rule, ...]:
    key = "ingress" if direction == INGRESS else "egress"
    peers_key = "from" if direction == INGRESS else "to"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidPolicyError(ref, f"spec.{key}", "expected a list of rules")
    rules = []
    for index, item in enumerate(raw):
        field = f"spec.{key}[{index}]"
        item = item or {}  # `- {}` is a rule that allows everything
        if not isinstance(item, Mapping):
            raise InvalidPolicyError(ref, field, "expected a rule mapping")
        peers = tuple(
            _peer(peer, ref, f"{field}.{peers_key}[{n}]")
            for n, peer in enumerate(_list(item.get(peers_key), ref, f"{field}.{peers_key}"))
        )
        ports = tuple(
            parse_rule_port(port, policy=ref, field=f"{field}.ports[{n}]")
            for n, port in enumerate(_list(item.get("ports"), ref, f"{field}.ports"))
        )
        rules.append(Rule(index + 1, peers, ports))
    return tuple(rules)


def _list(raw: Any, ref: str, field: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidPolicyError(ref, field, "expected a list")
    return raw


def _peer(raw: Any, ref: str, field: str) -> PeerSpec:
    if not isinstance(raw, Mapping):
        raise InvalidPolicyError(ref, field, "expected a peer mapping")
    # `podSelector: null` is an absent selector (Go decodes it to a nil pointer).
    has_pods = raw.get("podSelector") is not None
    has_namespaces = raw.get("namespaceSelector") is not None
    has_block = raw.get("ipBlock") is not None
    if has_block and (has_pods or has_namespaces):
        raise InvalidPolicyError(ref, field, "ipBlock can't be combined with selectors")
    if has_block:
        block = parse_ip_block(raw["ipBlock"], policy=ref, field=f"{field}.ipBlock")
        return PeerSpec(ip_block=block)
    if not has_pods and not has_namespaces:
        raise InvalidPolicyError(
            ref, field, "a peer needs podSelector, namespaceSelector or ipBlock"
        )
    pods = (
        parse_selector(raw["podSelector"], policy=ref, field=f"{field}.podSelector")
        if has_pods
        else None
    )
    namespaces = (
        parse_selector(raw["namespaceSelector"], policy=ref, field=f"{field}.namespaceSelector")
        if has_namespaces
        else None
    )
    return PeerSpec(pod_selector=pods, namespace_selector=namespaces)
