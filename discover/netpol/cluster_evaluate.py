"""Tiers: does a set of ClusterNetworkPolicies and NetworkPolicies allow a connection?

Each direction is decided on its own (an egress Accept still needs the destination's
ingress), tier by tier, as the v1alpha2 types say:
1. Admin tier: policies whose subject selects the pod, lower `priority` first; within a
   policy, the first rule (written order) whose peer and protocols match decides: Accept
   and Deny are final, Pass skips the rest of the tier.
2. NetworkPolicy tier: a pod any NetworkPolicy isolates for the direction is decided there
   (allowed by a rule, else denied), exactly as `PolicyEvaluator` does.
3. Baseline tier: as the Admin tier; Pass goes on to the default.
4. Default: allowed.

Equal priorities: the spec lets an implementation apply any of the policies that match, so
"allowed" must hold whichever it picks. Where same-priority policies decide differently we
take the most restrictive (Deny, then Pass, then Accept) and the reason says so.

Subjects and pod peers are pods, never host-network pods or bare IPs (an `IpEndpoint`
side is not subject to any policy). `networks` match any address, pods' included;
`nodes` match node addresses by the node's labels (`node_labels`); `domainNames` match
the names the client resolved (`IpEndpoint.names`), exactly or by a `*.` prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from discover.flows.events import Protocol
from discover.inventory.model import ContainerPort, IPAddress, NetworkPolicy
from discover.netpol.cluster_policy import (
    ACCEPT,
    ADMIN,
    BASELINE,
    DENY,
    PASS,
    ClusterPeer,
    ClusterPolicy,
    ClusterRule,
    PodsSelector,
    parse_cluster_policy,
)
from discover.netpol.evaluate import Endpoint, IpEndpoint, PodEndpoint, PolicyEvaluator, Verdict
from discover.netpol.policy import EGRESS, INGRESS, Policy
from discover.netpol.ports import ALL_PORTS, PROTOCOLS, ConnectionSet, intersect, normalize

_STRICTNESS = {DENY: 0, PASS: 1, ACCEPT: 2}


@dataclass(frozen=True, slots=True)
class _Decision:
    action: str  # ACCEPT, DENY or PASS
    text: str


class TieredEvaluator(PolicyEvaluator):
    """`PolicyEvaluator` with ClusterNetworkPolicies around the NetworkPolicy tier."""

    def __init__(
        self,
        policies: Sequence[Mapping[str, Any] | Policy | NetworkPolicy],
        cluster_policies: Iterable[Mapping[str, Any] | ClusterPolicy],
        node_labels: Mapping[IPAddress, Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(policies)
        parsed = [p if isinstance(p, ClusterPolicy) else parse_cluster_policy(p)
                  for p in cluster_policies]
        self.cluster_policies = tuple(sorted(parsed, key=lambda p: (p.tier, p.priority, p.name)))
        self.node_labels = dict(node_labels or {})

    # -- one connection ----------------------------------------------------------------

    def check(self, src: Endpoint, dst: Endpoint, protocol: Protocol, port: int) -> Verdict:
        if _same_pod(src, dst):
            return Verdict(True, f"allowed: {src.label()} to itself (a pod can't block itself)")
        sides = [self._decide(src, dst, EGRESS, protocol, port),
                 self._decide(dst, src, INGRESS, protocol, port)]
        if all(allowed for allowed, _ in sides):
            return Verdict(True, "allowed: " + "; ".join(text for _, text in sides))
        return Verdict(False, "denied: " + "; ".join(text for ok, text in sides if not ok))

    def _decide(self, pod: Endpoint, peer: Endpoint, direction: str, protocol: Protocol,
                port: int) -> tuple[bool, str]:
        word = "egress" if direction == EGRESS else "ingress"
        if not isinstance(pod, PodEndpoint):
            return True, f"{word} of {pod.label()}: an IP, not subject to policies"
        destination = peer if direction == EGRESS else pod
        admin = self._tier(ADMIN, pod, peer, destination, direction, protocol, port)
        if admin is not None and admin.action != PASS:
            return admin.action == ACCEPT, f"{word} of {pod.label()}: {admin.text}"
        passed = f" (after {admin.text})" if admin is not None else ""
        if self.isolating(pod, direction):
            side = self._side(pod, peer, direction, protocol, port, f"{protocol} {port}")
            return side.allowed, side.text + passed
        baseline = self._tier(BASELINE, pod, peer, destination, direction, protocol, port)
        if baseline is not None and baseline.action != PASS:
            return (baseline.action == ACCEPT,
                    f"{word} of {pod.label()}: {baseline.text}{passed}")
        return True, f"{word} of {pod.label()}: not isolated{passed}"

    def _tier(self, tier: str, pod: PodEndpoint, peer: Endpoint, destination: Endpoint,
              direction: str, protocol: Protocol, port: int) -> _Decision | None:
        """The first decision of the tier's priority groups that decides, or None."""
        for priority, group in groupby(self._subjects(tier, pod), key=lambda p: p.priority):
            found = []
            for policy in group:
                rule = next((r for r in _rules(policy, direction)
                             if _rule_peer_matches(r, peer, self.node_labels)
                             and _rule_port_matches(r, destination, protocol, port)), None)
                if rule is not None:
                    found.append((policy, rule))
            if not found:
                continue
            policy, rule = min(found, key=lambda item: _STRICTNESS[item[1].action])
            text = (f"{rule.action} by {policy.tier} ClusterNetworkPolicy {policy.name} "
                    f"(priority {priority}) {direction.lower()} rule {rule.number}"
                    + (f" {rule.name}" if rule.name else ""))
            if len({r.action for _, r in found}) > 1:
                others = ", ".join(sorted(p.name for p, _ in found if p is not policy))
                text += (f", ambiguous: {others} has the same priority and decides otherwise "
                         "(an implementation may apply either; the stricter is taken)")
            return _Decision(rule.action, text)
        return None

    def _subjects(self, tier: str, pod: PodEndpoint) -> list[ClusterPolicy]:
        return [p for p in self.cluster_policies if p.tier == tier and _subject_selects(p, pod)]

    # -- every connection between two endpoints ----------------------------------------

    def connections(self, src: Endpoint, dst: Endpoint) -> ConnectionSet:
        if _same_pod(src, dst):
            return ConnectionSet.all()
        return self._allowed(src, dst, EGRESS).intersection(self._allowed(dst, src, INGRESS))

    def _allowed(self, pod: Endpoint, peer: Endpoint, direction: str) -> ConnectionSet:
        if not isinstance(pod, PodEndpoint):
            return ConnectionSet.all()
        destination = peer if direction == EGRESS else pod
        accepted, denied, passed = self._tier_sets(ADMIN, pod, peer, destination, direction)
        rest = _minus(ConnectionSet.all(), accepted.union(denied))  # passed or undecided
        if self.isolating(pod, direction):
            return accepted.union(rest.intersection(self._allowed_set(pod, peer, direction)))
        base_accepted, base_denied, _ = self._tier_sets(BASELINE, pod, peer, destination,
                                                        direction)
        return accepted.union(_minus(rest, base_denied.intersection(rest)))

    def _tier_sets(self, tier: str, pod: PodEndpoint, peer: Endpoint, destination: Endpoint,
                   direction: str) -> tuple[ConnectionSet, ConnectionSet, ConnectionSet]:
        """(accepted, denied, passed) by the tier, each connection decided once."""
        decided = {ACCEPT: ConnectionSet.none(), DENY: ConnectionSet.none(),
                   PASS: ConnectionSet.none()}
        for _, group in groupby(self._subjects(tier, pod), key=lambda p: p.priority):
            done = decided[ACCEPT].union(decided[DENY]).union(decided[PASS])
            found = {ACCEPT: ConnectionSet.none(), DENY: ConnectionSet.none(),
                     PASS: ConnectionSet.none()}
            for policy in group:
                seen = ConnectionSet.none()  # first rule of the policy wins
                for rule in _rules(policy, direction):
                    if not _rule_peer_matches(rule, peer, self.node_labels):
                        continue
                    own = _minus(_rule_set(rule, destination), seen)
                    found[rule.action] = found[rule.action].union(own)
                    seen = seen.union(own)
            # the stricter action wins where same-priority policies disagree
            deny = _minus(found[DENY], done)
            passing = _minus(_minus(found[PASS], done), deny)
            accept = _minus(_minus(_minus(found[ACCEPT], done), deny), passing)
            decided = {ACCEPT: decided[ACCEPT].union(accept), DENY: decided[DENY].union(deny),
                       PASS: decided[PASS].union(passing)}
        return decided[ACCEPT], decided[DENY], decided[PASS]


def _rules(policy: ClusterPolicy, direction: str) -> tuple[ClusterRule, ...]:
    return policy.ingress if direction == INGRESS else policy.egress


def _pods_match(selector: PodsSelector, pod: PodEndpoint) -> bool:
    return selector.namespaces.matches(pod.namespace_labels) and selector.pods.matches(pod.labels)


def _subject_selects(policy: ClusterPolicy, pod: PodEndpoint) -> bool:
    if policy.subject_namespaces is not None:
        return policy.subject_namespaces.matches(pod.namespace_labels)
    return policy.subject_pods is not None and _pods_match(policy.subject_pods, pod)


def _rule_peer_matches(rule: ClusterRule, peer: Endpoint,
                       node_labels: Mapping[IPAddress, Mapping[str, str]]) -> bool:
    return any(_peer_matches(spec, peer, node_labels) for spec in rule.peers)


def _peer_matches(spec: ClusterPeer, peer: Endpoint,
                  node_labels: Mapping[IPAddress, Mapping[str, str]]) -> bool:
    if spec.namespaces is not None:
        return isinstance(peer, PodEndpoint) and spec.namespaces.matches(peer.namespace_labels)
    if spec.pods is not None:
        return isinstance(peer, PodEndpoint) and _pods_match(spec.pods, peer)
    if spec.networks:
        return peer.ip is not None and any(
            peer.ip.version == network.version and peer.ip in network
            for network in spec.networks)
    if spec.nodes is not None:
        labels = node_labels.get(peer.ip) if isinstance(peer, IpEndpoint) else None
        return labels is not None and spec.nodes.matches(labels)
    if isinstance(peer, IpEndpoint):
        return any(domain_matches(pattern, name)
                   for pattern in spec.domain_names for name in peer.names)
    return False


def domain_matches(pattern: str, name: str) -> bool:
    """A domainNames entry against a resolved name: exact, or `*.x` for names with one or
    more labels before `.x`; case-insensitive, a trailing dot ignored."""
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def _named(ports: Sequence[ContainerPort] | None, name: str) -> list[tuple[Protocol, int]]:
    return [(p.protocol, p.port) for p in ports or () if p.name == name]


def _rule_port_matches(rule: ClusterRule, destination: Endpoint, protocol: Protocol,
                       port: int) -> bool:
    if not rule.protocols:
        return True
    ports = destination.ports if isinstance(destination, PodEndpoint) else None
    for entry in rule.protocols:
        if entry.name is not None:
            if (protocol, port) in _named(ports, entry.name):
                return True
        elif entry.protocol == protocol and (
                not entry.ranges or any(low <= port <= high for low, high in entry.ranges)):
            return True
    return False


def _rule_set(rule: ClusterRule, destination: Endpoint) -> ConnectionSet:
    if not rule.protocols:
        return ConnectionSet.all()
    ports = destination.ports if isinstance(destination, PodEndpoint) else None
    pairs: list[tuple[Protocol, tuple[tuple[int, int], ...]]] = []
    for entry in rule.protocols:
        if entry.name is not None:
            pairs += [(proto, ((number, number),)) for proto, number in _named(ports, entry.name)]
        elif entry.protocol is not None:
            pairs.append((entry.protocol, entry.ranges or ALL_PORTS))
    return ConnectionSet.of(pairs)


def _minus(left: ConnectionSet, right: ConnectionSet) -> ConnectionSet:
    """left without right."""
    out = []
    for protocol in PROTOCOLS:
        taken = right.ports.get(protocol, ())
        holes: list[tuple[int, int]] = []
        start = ALL_PORTS[0][0]
        for low, high in taken:
            if low > start:
                holes.append((start, low - 1))
            start = high + 1
        if start <= ALL_PORTS[0][1]:
            holes.append((start, ALL_PORTS[0][1]))
        out.append((protocol, intersect(left.ports.get(protocol, ()), normalize(holes))))
    return ConnectionSet.of(out)


def _same_pod(src: Endpoint, dst: Endpoint) -> bool:
    return (isinstance(src, PodEndpoint) and isinstance(dst, PodEndpoint)
            and src.ip is not None and src.ip == dst.ip and src.namespace == dst.namespace)
