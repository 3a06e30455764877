"""A ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2) read into typed rules, checked
as the API server does with the CRD: its openAPIV3Schema (enums, ranges, sizes, exactly one
field where the schema says so) and its CEL rules (a port range's start below its end,
isCIDR, no named port beside a networks/nodes/domainNames peer).

The meaning is the Go types' comments (network-policy-api, apis/v1alpha2):
- `spec.tier` Admin or Baseline; `spec.priority` 0..1000, lower first within a tier;
- `spec.subject`: exactly one of `namespaces` (a namespace selector: every pod of those
  namespaces) or `pods` (namespaceSelector AND podSelector). Host-network pods are never
  subjects nor pod peers;
- rules in written order, at most 25 a direction; `action` Accept, Deny or Pass; `from`/`to`
  1..25 peers, each exactly one of `namespaces`, `pods`, and for egress `networks` (CIDRs,
  which match pod addresses too), `nodes` and `domainNames` (both experimental);
- `protocols` absent: every port; else any of its entries (tcp/udp/sctp with an optional
  number or range, or a destinationNamedPort).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from discover.flows.events import Protocol
from discover.inventory.model import IPNetwork
from discover.netpol.ports import MAX_PORT, MIN_PORT
from discover.netpol.selectors import InvalidPolicyError, LabelSelector
from discover.netpol.selectors import parse_selector as _parse_selector

KIND = "ClusterNetworkPolicy"
API_VERSION = "policy.networking.k8s.io/v1alpha2"
ADMIN = "Admin"
BASELINE = "Baseline"
TIERS = (ADMIN, BASELINE)
ACCEPT = "Accept"
DENY = "Deny"
PASS = "Pass"
ACTIONS = (ACCEPT, DENY, PASS)
MAX_PRIORITY = 1000
MAX_RULES = 25  # a direction, and peers or protocols a rule, and CIDRs or names a peer
MAX_RULE_NAME = 100
MAX_CIDR_LENGTH = 43
# The CRD's DomainName pattern, verbatim ('A-z' included: it admits [\]^_` as the API does).
DOMAIN_NAME = re.compile(
    r"^(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*"
    r"[a-zA-Z0-9])?\.?$"
)
_PROTOCOL_KEYS = {"tcp": Protocol.TCP, "udp": Protocol.UDP, "sctp": Protocol.SCTP}


class InvalidClusterPolicyError(InvalidPolicyError):
    """A ClusterNetworkPolicy the API server would reject (schema or CEL rule)."""

    def __init__(self, policy: str, field: str, message: str) -> None:
        super().__init__(policy, field, message)
        where = f"{KIND} {policy}" if policy else KIND
        self.args = (f"{where}: {field}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class PodsSelector:
    """`pods`: pods matching `pods` in namespaces matching `namespaces`."""

    namespaces: LabelSelector
    pods: LabelSelector


@dataclass(frozen=True, slots=True)
class ClusterPeer:
    """One `from`/`to` entry: exactly one field is set."""

    namespaces: LabelSelector | None = None
    pods: PodsSelector | None = None
    networks: tuple[IPNetwork, ...] = ()
    nodes: LabelSelector | None = None
    domain_names: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.namespaces is not None:
            return f"namespaces {self.namespaces}"
        if self.pods is not None:
            return f"pods {self.pods.pods} in namespaces {self.pods.namespaces}"
        if self.nodes is not None:
            return f"nodes {self.nodes}"
        if self.networks:
            return "networks " + ",".join(str(n) for n in self.networks)
        return "domainNames " + ",".join(self.domain_names)


@dataclass(frozen=True, slots=True)
class ClusterPort:
    """A `protocols` entry: a protocol with port ranges (empty: every port), or a name."""

    protocol: Protocol | None  # None for a named port (any protocol the container port has)
    ranges: tuple[tuple[int, int], ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterRule:
    number: int  # 1-based, as people count
    name: str
    action: str
    peers: tuple[ClusterPeer, ...]
    protocols: tuple[ClusterPort, ...]  # empty: every port and protocol


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    name: str
    tier: str
    priority: int
    subject_namespaces: LabelSelector | None  # exactly one of these two
    subject_pods: PodsSelector | None
    ingress: tuple[ClusterRule, ...]
    egress: tuple[ClusterRule, ...]

    @property
    def ref(self) -> str:
        return f"{KIND} {self.name}"


def is_cluster_policy(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == KIND


def parse_cluster_policy(obj: Mapping[str, Any]) -> ClusterPolicy:
    """Read one ClusterNetworkPolicy object; InvalidClusterPolicyError names the field."""
    metadata = _mapping(obj.get("metadata"), "", "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidClusterPolicyError("", "metadata.name", "missing")
    if obj.get("kind") != KIND:
        raise InvalidClusterPolicyError(name, "kind", f"expected {KIND}, got {obj.get('kind')!r}")
    version = obj.get("apiVersion")
    if version != API_VERSION:
        raise InvalidClusterPolicyError(name, "apiVersion",
                                        f"expected {API_VERSION}, got {version!r}")
    spec = _mapping(obj.get("spec"), name, "spec")
    for key in ("tier", "priority", "subject"):
        if key not in spec:
            raise InvalidClusterPolicyError(name, f"spec.{key}", "required")
    tier = spec["tier"]
    if tier not in TIERS:
        raise InvalidClusterPolicyError(name, "spec.tier",
                                        f"expected Admin or Baseline, got {tier!r}")
    priority = spec["priority"]
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        raise InvalidClusterPolicyError(name, "spec.priority",
                                        f"expected an integer 0..{MAX_PRIORITY}, got {priority!r}")
    subject = _one_of(spec["subject"], ("namespaces", "pods"), name, "spec.subject")
    namespaces = pods = None
    if "namespaces" in subject:
        namespaces = parse_selector(subject["namespaces"], policy=name,
                                    field="spec.subject.namespaces")
    else:
        pods = _pods(subject["pods"], name, "spec.subject.pods")
    ingress = _rules(spec.get("ingress"), name, "ingress")
    egress = _rules(spec.get("egress"), name, "egress")
    return ClusterPolicy(name, str(tier), priority, namespaces, pods, ingress, egress)


def parse_selector(raw: Any, *, policy: str, field: str) -> LabelSelector:
    """A label selector; its errors name the ClusterNetworkPolicy, not a NetworkPolicy."""
    try:
        return _parse_selector(raw, policy=policy, field=field)
    except InvalidClusterPolicyError:
        raise
    except InvalidPolicyError as error:
        raise InvalidClusterPolicyError(policy, error.field, error.message) from error


def _mapping(raw: Any, ref: str, field: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidClusterPolicyError(ref, field, "expected a mapping")
    return raw


def _one_of(raw: Any, keys: tuple[str, ...], ref: str, field: str) -> Mapping[str, Any]:
    """The schema's minProperties/maxProperties 1 over `keys` (fields the CRD does not know
    are refused too: the API server would drop them, leaving the peer empty)."""
    checked = _mapping(raw, ref, field)
    unknown = sorted(str(k) for k in checked if k not in keys)
    if unknown:
        raise InvalidClusterPolicyError(ref, field, f"unknown field(s) {unknown}; expected "
                                        f"exactly one of {', '.join(keys)}")
    if len(checked) != 1:
        raise InvalidClusterPolicyError(ref, field,
                                        f"expected exactly one of {', '.join(keys)}")
    return checked


def _pods(raw: Any, ref: str, field: str) -> PodsSelector:
    raw = _mapping(raw, ref, field)
    unknown = sorted(str(k) for k in raw if k not in ("namespaceSelector", "podSelector"))
    if unknown:
        raise InvalidClusterPolicyError(ref, field, f"unknown field(s) {unknown}")
    if "podSelector" not in raw:
        raise InvalidClusterPolicyError(ref, f"{field}.podSelector", "required")
    return PodsSelector(
        parse_selector(raw.get("namespaceSelector"), policy=ref,
                       field=f"{field}.namespaceSelector"),
        parse_selector(raw["podSelector"], policy=ref, field=f"{field}.podSelector"),
    )


def _list(raw: Any, ref: str, field: str, *, most: int = MAX_RULES) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidClusterPolicyError(ref, field, "expected a list")
    if not raw:
        raise InvalidClusterPolicyError(ref, field, "must have at least 1 item")
    if len(raw) > most:
        raise InvalidClusterPolicyError(ref, field, f"at most {most} items, got {len(raw)}")
    return raw


def _rules(raw: Any, ref: str, key: str) -> tuple[ClusterRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidClusterPolicyError(ref, f"spec.{key}", "expected a list of rules")
    if len(raw) > MAX_RULES:
        raise InvalidClusterPolicyError(ref, f"spec.{key}",
                                        f"at most {MAX_RULES} rules, got {len(raw)}")
    return tuple(_rule(item, ref, key, index) for index, item in enumerate(raw))


def _rule(raw: Any, ref: str, key: str, index: int) -> ClusterRule:
    field = f"spec.{key}[{index}]"
    raw = _mapping(raw, ref, field)
    peers_key = "from" if key == "ingress" else "to"
    unknown = sorted(str(k) for k in raw if k not in ("name", "action", peers_key, "protocols"))
    if unknown:
        raise InvalidClusterPolicyError(ref, field, f"unknown field(s) {unknown}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise InvalidClusterPolicyError(ref, f"{field}.action",
                                        f"expected Accept, Deny or Pass, got {action!r}")
    name = raw.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_RULE_NAME:
        raise InvalidClusterPolicyError(ref, f"{field}.name",
                                        f"expected a string of at most {MAX_RULE_NAME} characters")
    if peers_key not in raw:
        raise InvalidClusterPolicyError(ref, f"{field}.{peers_key}", "required")
    kinds = ("namespaces", "pods") if key == "ingress" else (
        "namespaces", "pods", "networks", "nodes", "domainNames")
    peers = tuple(
        _peer(item, ref, f"{field}.{peers_key}[{n}]", kinds)
        for n, item in enumerate(_list(raw[peers_key], ref, f"{field}.{peers_key}"))
    )
    protocols: tuple[ClusterPort, ...] = ()
    if "protocols" in raw:
        protocols = tuple(
            _protocol(item, ref, f"{field}.protocols[{n}]")
            for n, item in enumerate(_list(raw["protocols"], ref, f"{field}.protocols"))
        )
    addressed = any(p.networks or p.nodes is not None or p.domain_names for p in peers)
    if addressed and any(p.name is not None for p in protocols):
        # the CRD's CEL rule on egress rules
        raise InvalidClusterPolicyError(
            ref, field, "networks/nodes/domainNames peer cannot be set with namedPorts since "
            "there are no namedPorts for networks/nodes/domainNames")
    if action != ACCEPT and any(p.domain_names for p in peers):
        # not a CEL rule, but the types say so and no implementation gives it a meaning
        raise InvalidClusterPolicyError(ref, field,
                                        "domainNames is only supported for Accept rules")
    return ClusterRule(index + 1, name, str(action), peers, protocols)


def _peer(raw: Any, ref: str, field: str, kinds: tuple[str, ...]) -> ClusterPeer:
    raw = _one_of(raw, kinds, ref, field)
    (key, value), = raw.items()
    where = f"{field}.{key}"
    if key == "namespaces":
        return ClusterPeer(namespaces=parse_selector(value, policy=ref, field=where))
    if key == "pods":
        return ClusterPeer(pods=_pods(value, ref, where))
    if key == "nodes":
        return ClusterPeer(nodes=parse_selector(value, policy=ref, field=where))
    items = _list(value, ref, where)
    if len({str(item) for item in items}) != len(items):
        raise InvalidClusterPolicyError(ref, where, "duplicate entries (a set)")
    if key == "networks":
        return ClusterPeer(networks=tuple(
            _cidr(item, ref, f"{where}[{n}]") for n, item in enumerate(items)))
    for n, item in enumerate(items):
        if not isinstance(item, str) or not DOMAIN_NAME.match(item):
            raise InvalidClusterPolicyError(
                ref, f"{where}[{n}]", f"not a domain name (a '*.' prefix at most): {item!r}")
    return ClusterPeer(domain_names=tuple(items))


def _cidr(raw: Any, ref: str, field: str) -> IPNetwork:
    if not isinstance(raw, str) or len(raw) > MAX_CIDR_LENGTH or "/" not in raw:
        raise InvalidClusterPolicyError(ref, field, f"Invalid CIDR format provided: {raw!r}")
    try:
        # isCIDR accepts host bits (10.0.0.1/8) and means the network
        return ipaddress.ip_network(raw, strict=False)
    except ValueError as error:
        raise InvalidClusterPolicyError(
            ref, field, f"Invalid CIDR format provided: {raw!r}") from error


def _protocol(raw: Any, ref: str, field: str) -> ClusterPort:
    raw = _one_of(raw, ("tcp", "udp", "sctp", "destinationNamedPort"), ref, field)
    (key, value), = raw.items()
    if key == "destinationNamedPort":
        if not isinstance(value, str) or not value:
            raise InvalidClusterPolicyError(ref, f"{field}.{key}", "expected a port name")
        return ClusterPort(None, name=value)
    where = f"{field}.{key}"
    body = _one_of(value, ("destinationPort",), ref, where)
    port = _one_of(body["destinationPort"], ("number", "range"), ref, f"{where}.destinationPort")
    if "number" in port:
        number = _port_number(port["number"], ref, f"{where}.destinationPort.number")
        return ClusterPort(_PROTOCOL_KEYS[key], ((number, number),))
    span = _mapping(port["range"], ref, f"{where}.destinationPort.range")
    for bound in ("start", "end"):
        if bound not in span:
            raise InvalidClusterPolicyError(ref, f"{where}.destinationPort.range.{bound}",
                                            "required")
    start = _port_number(span["start"], ref, f"{where}.destinationPort.range.start")
    end = _port_number(span["end"], ref, f"{where}.destinationPort.range.end")
    if not start < end:
        raise InvalidClusterPolicyError(ref, f"{where}.destinationPort.range",
                                        "Start port must be less than End port")
    return ClusterPort(_PROTOCOL_KEYS[key], ((start, end),))


def _port_number(raw: Any, ref: str, field: str) -> int:
    if type(raw) is not int or not MIN_PORT <= raw <= MAX_PORT:
        raise InvalidClusterPolicyError(ref, field,
                                        f"expected a port {MIN_PORT}..{MAX_PORT}, got {raw!r}")
    return raw
