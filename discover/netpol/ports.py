"""Sets of allowed connections: protocol -> port ranges, and NetworkPolicy rule ports.

A rule's `ports` entry is resolved against the DESTINATION pod: a named port becomes
that pod's container port with the same name and protocol, or nothing when the pod has
none (and always nothing for an IP destination, which has no named ports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from discover.flows.events import Protocol
from discover.inventory.model import ContainerPort
from discover.netpol.selectors import InvalidPolicyError

# What NetworkPolicy can express, in output order.
PROTOCOLS: tuple[Protocol, ...] = (Protocol.SCTP, Protocol.TCP, Protocol.UDP)
MIN_PORT = 1
MAX_PORT = 65535
PORT_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

PortRanges = tuple[tuple[int, int], ...]  # sorted, disjoint, non-adjacent, inclusive
ALL_PORTS: PortRanges = ((MIN_PORT, MAX_PORT),)


def normalize(ranges: Iterable[tuple[int, int]]) -> PortRanges:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def intersect(left: PortRanges, right: PortRanges) -> PortRanges:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(left) and j < len(right):
        low = max(left[i][0], right[j][0])
        high = min(left[i][1], right[j][1])
        if low <= high:
            out.append((low, high))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def format_ranges(ranges: PortRanges) -> str:
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


@dataclass(frozen=True, slots=True)
class ConnectionSet:
    """Allowed (protocol, port) pairs. `ports` maps a protocol to its ranges; absent = none."""

    ports: Mapping[Protocol, PortRanges]

    @classmethod
    def none(cls) -> ConnectionSet:
        return cls({})

    @classmethod
    def all(cls) -> ConnectionSet:
        return cls({protocol: ALL_PORTS for protocol in PROTOCOLS})

    @classmethod
    def of(cls, pairs: Iterable[tuple[Protocol, PortRanges]]) -> ConnectionSet:
        collected: dict[Protocol, list[tuple[int, int]]] = {}
        for protocol, ranges in pairs:
            collected.setdefault(protocol, []).extend(ranges)
        return cls({p: normalize(r) for p, r in collected.items() if r})

    def union(self, other: ConnectionSet) -> ConnectionSet:
        return ConnectionSet.of([*self.ports.items(), *other.ports.items()])

    def intersection(self, other: ConnectionSet) -> ConnectionSet:
        out = {}
        for protocol, ranges in self.ports.items():
            both = intersect(ranges, other.ports.get(protocol, ()))
            if both:
                out[protocol] = both
        return ConnectionSet(out)

    def contains(self, protocol: Protocol, port: int) -> bool:
        return any(low <= port <= high for low, high in self.ports.get(protocol, ()))

    @property
    def is_all(self) -> bool:
        return all(self.ports.get(protocol) == ALL_PORTS for protocol in PROTOCOLS)

    @property
    def is_empty(self) -> bool:
        return not any(self.ports.values())

    def __str__(self) -> str:
        """The np-guard connlist form: "All Connections", "TCP 80,8080-8081,UDP 53"."""
        if self.is_all:
            return "All Connections"
        if self.is_empty:
            return "No Connections"
        return ",".join(
            f"{protocol} {format_ranges(self.ports[protocol])}"
            for protocol in sorted(self.ports)
            if self.ports[protocol]
        )


@dataclass(frozen=True, slots=True)
class RulePort:
    """One `ports` entry of a rule: protocol (default TCP), a number, a name or nothing."""

    protocol: Protocol
    port: int | str | None = None
    end_port: int | None = None

    def resolve(self, destination_ports: Sequence[ContainerPort] | None) -> PortRanges:
        """The ports this entry allows towards a destination.

        `destination_ports` are the destination pod's container ports, or None when the
        destination is an IP (no named ports there).
        """
        if self.port is None:
            return ALL_PORTS
        if isinstance(self.port, int):
            return ((self.port, self.end_port if self.end_port is not None else self.port),)
        for container_port in destination_ports or ():
            # Container port names are unique in a pod; the protocol must agree too.
            if container_port.name == self.port:
                if container_port.protocol == self.protocol:
                    return ((container_port.port, container_port.port),)
                return ()
        return ()

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol} (all ports)"
        if self.end_port is not None:
            return f"{self.protocol} {self.port}-{self.end_port}"
        return f"{self.protocol} {self.port}"


def parse_rule_port(raw: Any, *, policy: str, field: str) -> RulePort:
    """One `ports` entry, accepted only where the API server would accept it.

    `protocol` is case-sensitive (absent or null: TCP). `port` is an IntOrString: a
    number is a port 1-65535, a string is always a port NAME (even "80") and must be an
    IANA service name. `endPort` needs a numeric port and can't be below it.
    """
    if not isinstance(raw, Mapping):
        raise InvalidPolicyError(policy, field, f"expected a port entry, got {raw!r}")
    protocol = raw.get("protocol")
    if protocol is None:
        protocol = "TCP"
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise InvalidPolicyError(policy, f"{field}.protocol", f"unsupported protocol "
                                 f"{protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    port = raw.get("port")
    if isinstance(port, str):
        problem = port_name_problem(port)
        if problem:
            raise InvalidPolicyError(policy, f"{field}.port",
                                     f"invalid port name {port!r}: {problem}")
    elif port is not None:
        port = _port_number(port, policy, f"{field}.port", MIN_PORT)
    end_port = raw.get("endPort")
    if end_port is not None:
        if not isinstance(port, int):
            raise InvalidPolicyError(policy, f"{field}.endPort", "endPort needs a numeric port")
        end_port = _port_number(end_port, policy, f"{field}.endPort", port)
    return RulePort(Protocol(protocol), port, end_port)


def _port_number(raw: Any, policy: str, field: str, low: int) -> int:
    # bool is an int subclass: YAML `port: yes` is not port 1.
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise InvalidPolicyError(policy, field, f"expected a number or name: {raw!r}")
    if not low <= raw <= MAX_PORT:
        name = field.rsplit(".", 1)[-1]
        raise InvalidPolicyError(policy, field, f"{name} {raw} out of range {low}-{MAX_PORT}"
                                 if name == "port" else
                                 f"{name} {raw} must be in {low}-{MAX_PORT}")
    return raw


def port_name_problem(name: str) -> str:
    """Why `name` is not an IANA_SVC_NAME (RFC 6335, as Kubernetes checks port names),
    or "" when it is one."""
    if not 1 <= len(name) <= 15:
        return "must be 1-15 characters"
    if not all(c in PORT_NAME_CHARACTERS for c in name):
        return "must contain only lowercase letters, digits and '-'"
    if not any(c.isalpha() for c in name):
        return "must contain at least one letter (a quoted number is a name, not a port)"
    if "--" in name:
        return "must not contain '--'"
    if name.startswith("-") or name.endswith("-"):
        return "must not begin or end with '-'"
    return ""
