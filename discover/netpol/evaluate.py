"""Does a set of NetworkPolicies allow a connection? Kubernetes semantics, exactly.

- Policies are additive: a connection is allowed in a direction when ANY rule of ANY
  policy that selects the pod for that direction allows it; there is no deny rule.
- A pod is isolated for ingress (egress) once any policy of its namespace selects it
  with that policy type; a pod no policy selects for a direction is open in it.
- A pod-to-pod connection needs both the egress of the source and the ingress of the
  destination. IP endpoints (external addresses, nodes) are not subject to policies, so
  only the pod side counts.
- Named ports are resolved against the destination pod's container ports, for ingress and
  egress alike; towards an IP endpoint a named port matches nothing.
- `ipBlock` matches by IP address. For pod IPs this is CNI-dependent (the API says
  ipBlock is meant for cluster-external addresses; Calico matches pod IPs too, the
  np-guard analyzer never does). We take the common reading: a pod whose IP is known is
  matched by an ipBlock containing it; a pod without a known IP never is.
- A pod can always reach itself (same namespace and IP).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from discover.flows.events import Protocol
from discover.inventory.model import ContainerPort, IPAddress, NetworkPolicy
from discover.netpol.ipblock import IpBlock
from discover.netpol.policy import EGRESS, INGRESS, PeerSpec, Policy, Rule, parse_policy
from discover.netpol.ports import ConnectionSet


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    namespace: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str]
    ip: IPAddress | None = None
    ports: tuple[ContainerPort, ...] = ()  # for named ports of a destination pod
    name: str | None = None  # pod or workload name, only for reasons people read

    def label(self) -> str:
        if self.name:
            return f"{self.namespace}/{self.name}"
        if self.ip is not None:
            return f"{self.namespace}/pod {self.ip}"
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.namespace}/pod{{{labels}}}"


@dataclass(frozen=True, slots=True)
class IpEndpoint:
    ip: IPAddress  # outside any pod (external, node)
    # the DNS names the client resolved to this address (ClusterNetworkPolicy domainNames
    # match them; NetworkPolicy never looks)
    names: tuple[str, ...] = ()

    def label(self) -> str:
        return str(self.ip)


Endpoint = PodEndpoint | IpEndpoint


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Side:
    """The outcome for one direction at one pod."""

    allowed: bool
    text: str


class PolicyEvaluator:
    """Evaluates connections against NetworkPolicies: API objects (dicts with
    apiVersion/kind/metadata/spec), inventory records, or already parsed `Policy`s."""

    def __init__(self, policies: Sequence[Mapping[str, Any] | Policy | NetworkPolicy]) -> None:
        self.policies: tuple[Policy, ...] = tuple(_policy(p) for p in policies)
        self._by_namespace: dict[str, list[Policy]] = defaultdict(list)
        for policy in sorted(self.policies, key=lambda p: (p.namespace, p.name)):
            self._by_namespace[policy.namespace].append(policy)

    # -- queries ---------------------------------------------------------------------

    def isolating(self, pod: PodEndpoint, direction: str) -> list[Policy]:
        """The policies that select `pod` for `direction` (INGRESS or EGRESS), by name."""
        return [
            policy
            for policy in self._by_namespace.get(pod.namespace, ())
            if policy.affects(direction) and policy.pod_selector.matches(pod.labels)
        ]

    def ip_blocks(self, direction: str) -> list[IpBlock]:
        """Every ipBlock of every rule of that direction (to split external ranges)."""
        return [block for policy in self.policies for block in policy.ip_blocks(direction)]

    def check(self, src: Endpoint, dst: Endpoint, protocol: Protocol, port: int) -> Verdict:
        if _same_pod(src, dst):
            return Verdict(True, f"allowed: {src.label()} to itself (a pod can't block itself)")
        what = f"{protocol} {port}"
        egress = self._side(src, dst, EGRESS, protocol, port, what)
        ingress = self._side(dst, src, INGRESS, protocol, port, what)
        if egress.allowed and ingress.allowed:
            return Verdict(True, f"allowed: {egress.text}; {ingress.text}")
        denied = [side.text for side in (egress, ingress) if not side.allowed]
        return Verdict(False, "denied: " + "; ".join(denied))

    def connections(self, src: Endpoint, dst: Endpoint) -> ConnectionSet:
        """Every (protocol, port) allowed from src to dst."""
        if _same_pod(src, dst):
            return ConnectionSet.all()
        return self._allowed_set(src, dst, EGRESS).intersection(
            self._allowed_set(dst, src, INGRESS)
        )

    # -- one direction ---------------------------------------------------------------

    def _side(
        self,
        pod: Endpoint,
        peer: Endpoint,
        direction: str,
        protocol: Protocol,
        port: int,
        what: str,
    ) -> _Side:
        word = "egress" if direction == EGRESS else "ingress"
        if not isinstance(pod, PodEndpoint):
            return _Side(True, f"{word} of {pod.label()}: an IP, not subject to policies")
        policies = self.isolating(pod, direction)
        if not policies:
            return _Side(True, f"{word} of {pod.label()}: not isolated")
        destination = peer if direction == EGRESS else pod
        for policy in policies:
            for rule in policy.rules(direction):
                if self._rule_allows(policy, rule, peer, destination, protocol, port):
                    return _Side(
                        True,
                        f"{word} of {pod.label()}: allowed by {policy.ref} {word} rule "
                        f"{rule.number}",
                    )
        preposition = "to" if direction == EGRESS else "from"
        isolators = ", ".join(policy.ref for policy in policies)
        return _Side(
            False,
            f"{word} of {pod.label()}: isolated by {isolators}, no rule matches {what} "
            f"{preposition} {peer.label()}",
        )

    def _allowed_set(self, pod: Endpoint, peer: Endpoint, direction: str) -> ConnectionSet:
        if not isinstance(pod, PodEndpoint):
            return ConnectionSet.all()
        policies = self.isolating(pod, direction)
        if not policies:
            return ConnectionSet.all()
        destination = peer if direction == EGRESS else pod
        allowed = ConnectionSet.none()
        for policy in policies:
            for rule in policy.rules(direction):
                if _rule_selects(policy, rule, peer):
                    allowed = allowed.union(_rule_connections(rule, destination))
                    if allowed.is_all:
                        return allowed
        return allowed

    def _rule_allows(
        self,
        policy: Policy,
        rule: Rule,
        peer: Endpoint,
        destination: Endpoint,
        protocol: Protocol,
        port: int,
    ) -> bool:
        if not _rule_selects(policy, rule, peer):
            return False
        if not rule.ports:
            return True
        ports = _destination_ports(destination)
        return any(
            rule_port.protocol == protocol
            and any(low <= port <= high for low, high in rule_port.resolve(ports))
            for rule_port in rule.ports
        )


def _policy(item: Mapping[str, Any] | Policy | NetworkPolicy) -> Policy:
    if isinstance(item, Policy):
        return item
    if isinstance(item, NetworkPolicy):
        metadata = {"name": item.name, "namespace": item.namespace}
        return parse_policy({"kind": "NetworkPolicy", "metadata": metadata, "spec": item.spec})
    return parse_policy(item)


def _destination_ports(destination: Endpoint) -> tuple[ContainerPort, ...] | None:
    return destination.ports if isinstance(destination, PodEndpoint) else None


def _rule_connections(rule: Rule, destination: Endpoint) -> ConnectionSet:
    if not rule.ports:
        return ConnectionSet.all()
    ports = _destination_ports(destination)
    return ConnectionSet.of((p.protocol, p.resolve(ports)) for p in rule.ports)


def _rule_selects(policy: Policy, rule: Rule, peer: Endpoint) -> bool:
    return not rule.peers or any(_peer_matches(policy, spec, peer) for spec in rule.peers)


def _peer_matches(policy: Policy, spec: PeerSpec, peer: Endpoint) -> bool:
    if spec.ip_block is not None:
        return peer.ip is not None and spec.ip_block.contains(peer.ip)
    if not isinstance(peer, PodEndpoint):
        return False  # selectors pick pods, never bare IPs
    if spec.namespace_selector is None:
        if peer.namespace != policy.namespace:
            return False
    elif not spec.namespace_selector.matches(peer.namespace_labels):
        return False
    return spec.pod_selector is None or spec.pod_selector.matches(peer.labels)


def _same_pod(src: Endpoint, dst: Endpoint) -> bool:
    return (
        isinstance(src, PodEndpoint)
        and isinstance(dst, PodEndpoint)
        and src.ip is not None
        and src.ip == dst.ip
        and src.namespace == dst.namespace
    )
