"""What the caller may choose about a proposal: cloud, FQDN handling, CIDRs, scope, window."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from discover.errors import ConfigurationError
from discover.inventory.facts import SYSTEM_NAMESPACES
from discover.inventory.model import IPNetwork


class Cloud(enum.StrEnum):
    AUTO = "auto"
    GKE = "gke"
    EKS = "eks"
    AKS = "aks"
    NONE = "none"


class FqdnMode(enum.StrEnum):
    PROXY = "proxy"  # egress only to the egress proxy; the proxy filters by name
    ANY_IP = "any-ip"  # any address except pod/service CIDRs, on the port only
    PIN = "pin"  # the addresses seen, as ipBlocks (brittle)


class ProbeRules(enum.StrEnum):
    """Kubelet probes come from the node: rules for them where the CNI filters node
    traffic (auto: by the detected CNI), always, or never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class InvalidOptionError(ConfigurationError):
    """An option value that can't be used; `option` names it."""

    def __init__(self, option: str, value: object, message: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"{option} {value!r}: {message}")


@dataclass(frozen=True, slots=True, order=True)
class ProxyRef:
    """The egress proxy, named like `ns/name` (a workload name, any kind), optional `:port`."""

    namespace: str
    name: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> ProxyRef:
        ref, _, port_text = text.partition(":")
        namespace, slash, name = ref.partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise InvalidOptionError("--egress-proxy", text, "expected NAMESPACE/WORKLOAD[:PORT]")
        port: int | None = None
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise InvalidOptionError("--egress-proxy", text, "the port must be 1-65535")
            port = int(port_text)
        return cls(namespace, name, port)

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port is not None else base


@dataclass(frozen=True, slots=True)
class SynthesisOptions:
    """Choices for `propose`. `fqdn_mode` None means: proxy when an egress proxy is given,
    else any-ip (egress to any address outside the pod and Service ranges, on the port).
    Empty CIDR tuples mean: take them from the inventory. An empty `namespaces` means every
    namespace."""

    cloud: Cloud = Cloud.AUTO
    fqdn_mode: FqdnMode | None = None
    egress_proxy: ProxyRef | None = None
    pod_cidrs: tuple[IPNetwork, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    namespaces: tuple[str, ...] = ()
    aws_vpc_cidrs: tuple[IPNetwork, ...] = ()
    window_start: datetime | None = None  # overrides the graph's window when given
    window_end: datetime | None = None
    self_check: bool = True  # verify the proposal admits every flow it meant to allow
    # Allow attempts too (refused, unanswered, brief one-way edges), as before outcomes
    # were recorded (--allow-attempts).
    allow_attempts: bool = False
    # System namespaces (kube-system, kube-public, kube-node-lease and `system_namespaces`)
    # get no policy unless asked (--include-system-namespaces, or named with -n): the
    # report shows what would be proposed for them instead.
    include_system: bool = False
    system_namespaces: tuple[str, ...] = ()
    # components known to watch the API server get egress to it (off: --no-api-server-egress)
    api_server_egress: bool = True
    probe_rules: ProbeRules = ProbeRules.AUTO
    # write a proposal that breaks a cluster invariant anyway (--accept-broken-invariants)
    accept_broken_invariants: bool = False

    def __post_init__(self) -> None:
        if self.fqdn_mode is FqdnMode.PROXY and self.egress_proxy is None:
            raise InvalidOptionError(
                "--fqdn-mode", "proxy", "needs --egress-proxy NAMESPACE/WORKLOAD"
            )
        if (
            self.window_start is not None
            and self.window_end is not None
            and self.window_end < self.window_start
        ):
            raise InvalidOptionError(
                "--window", f"{self.window_start}..{self.window_end}", "ends before it starts"
            )

    @property
    def effective_fqdn_mode(self) -> FqdnMode:
        if self.fqdn_mode is not None:
            return self.fqdn_mode
        return FqdnMode.PROXY if self.egress_proxy is not None else FqdnMode.ANY_IP

    def held_back(self, namespace: str) -> bool:
        """A system namespace the user did not opt into: its policies are shown, not
        written."""
        return (not self.include_system and namespace not in self.namespaces
                and (namespace in SYSTEM_NAMESPACES or namespace in self.system_namespaces))

    def in_scope(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces
