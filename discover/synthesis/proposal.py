"""The records synthesis returns: policies with their reviewer comments, FQDN dependencies,
findings, and what was decided for every observed edge."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from discover.enrichment.peers import GraphEdge
from discover.flows.events import Protocol
from discover.inventory.model import WorkloadRef
from discover.synthesis.options import Cloud, FqdnMode

IPAddress = IPv4Address | IPv6Address


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Direction(enum.StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


NO_POLICY_HANDLING = "none"  # how an FQDN dependency of a workload with no policy reads

SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a reviewer must know. `rule` is a stable id such as
    "ingress-2-external-source"; `subject` what it is about (a workload, namespace, FQDN)."""

    severity: Severity
    rule: str
    subject: str
    message: str
    evidence: str = ""

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (SEVERITY_ORDER[self.severity], self.rule, self.subject, self.message,
                self.evidence)


@dataclass(frozen=True, slots=True)
class Window:
    """The learning window the evidence covers (None: unknown)."""

    start: datetime | None
    end: datetime | None

    def __str__(self) -> str:
        return f"{format_time(self.start)}/{format_time(self.end)}"


def format_time(when: datetime | None) -> str:
    """ISO-8601 UTC with a Z, to the second; "unknown" for None and for the year 9999, the
    time at which the workload graph places flows read without times (a flows file with
    only the four required columns, resolved against the inventory as it was taken)."""
    if when is None or when.year == 9999:
        return "unknown"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class PortUse:
    protocol: Protocol
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True, slots=True)
class FqdnHandling:
    """How an FQDN dependency is handled: by a rule of its workload's policy in `mode`, or,
    with `mode` None, by no rule at all (the workload gets no policy, for `reason`)."""

    mode: FqdnMode | None
    reason: str = ""

    def __str__(self) -> str:
        if self.mode is not None:
            return self.mode.value
        return f"{NO_POLICY_HANDLING} (no policy: {self.reason})"


@dataclass(frozen=True, slots=True)
class FqdnDependency:
    """A workload's dependency on an external name: what fqdn-dependencies.yaml lists."""

    workload: WorkloadRef
    fqdn: str
    cname_chain: tuple[str, ...]
    ports: tuple[PortUse, ...]
    addresses: tuple[IPAddress, ...]  # connected to, and answered by DNS
    ttls: tuple[int, ...]  # distinct TTLs the answers carried (empty: no DNS data)
    addresses_changed: bool | None  # None: no DNS data to tell
    connections: int
    first_seen: datetime
    last_seen: datetime
    how: FqdnHandling

    @property
    def handling(self) -> str:
        """As the outputs say it: the mode, or "none (no policy: <reason>)"."""
        return str(self.how)

    @property
    def has_policy(self) -> bool:
        """A rule of its workload's policy handles it; False: listed for the reviewer only
        (the workload gets no policy, so the default deny blocks the name)."""
        return self.how.mode is not None


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """One manifest and the comment lines a reviewer reads above it in the YAML."""

    manifest: Mapping[str, Any]
    comments: tuple[str, ...]

    @property
    def namespace(self) -> str:
        return str(self.manifest["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True, slots=True)
class EdgeDecision:
    """What the proposal does with one observed edge, per direction.

    `allowed` True: a rule in `policy` admits it (the self-check proves that); False: it is
    reported and denied on purpose (see the finding); None: not governed (out of scope,
    or traffic from the pod's own node, which NetworkPolicy never blocks)."""

    edge: GraphEdge
    direction: Direction
    allowed: bool | None
    policy: str | None  # "ns/name" of the policy with the rule
    reason: str


@dataclass(frozen=True, slots=True)
class Proposal:
    documents: tuple[PolicyDocument, ...]
    fqdn_dependencies: tuple[FqdnDependency, ...]
    cilium_documents: tuple[PolicyDocument, ...]
    findings: tuple[Finding, ...]
    namespaces: tuple[str, ...]  # namespaces that got a default deny
    window: Window
    decisions: tuple[EdgeDecision, ...] = ()
    fqdn_mode: FqdnMode | None = None
    egress_proxy: str | None = None
    proxy_allowlist: tuple[str, ...] = ()  # "fqdn:port" entries for the egress proxy
    cloud: Cloud | None = None  # the provider whose load balancer ranges were used
    cni: tuple[str, ...] = ()

    @property
    def policies(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(document.manifest for document in self.documents)

    @property
    def cilium_policies(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(document.manifest for document in self.cilium_documents)
