"""Workloads in classes that a set of NetworkPolicies can't tell apart, and the few class
pairs whose allowed connections are not decided by isolation alone.

The evaluator's answer for a pair (src, dst) depends only on: which policies select src
for egress and dst for ingress, which rule peers match src and dst, how dst's container
ports resolve the rules' named ports, and whether src and dst are the same pod. Workloads
equal in all of these form a class (a workload whose (namespace, IP) another shares is a
class of its own: the pair is 'the same pod', always allowed). Per class pair:

- neither end isolated: every connection (the default when no policy selects either end);
- otherwise only the rules of the isolating policies whose peers match the other end can
  allow anything: the pair is an *exception* when one exists, and denied when none does.

Exceptions are found from the rules' side (each rule's matched classes), so the work
follows rules x matched classes, not classes squared: under a least-privilege proposal
every workload is its own class, yet each has only a few peers. Policies are evaluated
as a prefix `policies[:active]`, so one instance answers for existing policies (before)
and existing plus proposed ones (after).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from discover.inventory.model import WorkloadRef
from discover.netpol.evaluate import PodEndpoint
from discover.netpol.policy import EGRESS, INGRESS, PeerSpec, Policy, Rule
from discover.netpol.ports import ConnectionSet, PortRanges, RulePort
from discover.netpol.selectors import LabelSelector

ClassPair = tuple[int, int]  # (source class, destination class)
_ALL = ConnectionSet.all()  # shared, so that `is` tells the common answers apart cheaply
_NONE = ConnectionSet.none()


@dataclass(frozen=True, slots=True)
class _RuleRef:
    policy: int  # index into the policies: active when below the prefix
    rule: Rule
    matches: tuple[int, ...] | None  # ids of its peer specs; None: every peer
    ports: int  # id of its `ports` (rules with equal ports share it)
    named: bool  # some port is a name, resolved on the destination


@dataclass(frozen=True, slots=True)
class _Signature:
    ingress_policies: tuple[int, ...]  # sorted indices of the policies isolating it
    egress_policies: tuple[int, ...]
    matched_by: frozenset[int]  # ids of the distinct peer specs that match it
    named_ports: tuple[PortRanges, ...]  # each named rule port resolved on its ports
    alone: WorkloadRef | None  # set when another workload shares its namespace and IP


class WorkloadClasses:
    """`endpoints`: one representative pod a workload (see `netpol.matrix`)."""

    def __init__(self, endpoints: Mapping[WorkloadRef, PodEndpoint],
                 policies: Sequence[Policy]) -> None:
        self.policies = tuple(policies)
        refs = sorted(endpoints)
        self._endpoints = [endpoints[ref] for ref in refs]
        self._index = _LabelIndex(self._endpoints)
        self._named = sorted({(p.protocol, p.port) for policy in self.policies
                              for rule in (*policy.ingress, *policy.egress)
                              for p in rule.ports if isinstance(p.port, str)})
        selected: dict[str, dict[int, list[int]]] = {INGRESS: defaultdict(list),
                                                      EGRESS: defaultdict(list)}
        for number, policy in enumerate(self.policies):
            for item in self._index.select([policy.namespace], policy.pod_selector):
                for direction in (INGRESS, EGRESS):
                    if policy.affects(direction):
                        selected[direction][item].append(number)
        spec_ids: dict[tuple[PeerSpec, str], int] = {}
        matched_by: dict[int, list[int]] = defaultdict(list)
        self._rules: dict[tuple[int, str], list[_RuleRef]] = defaultdict(list)
        port_ids: dict[tuple[RulePort, ...], int] = {}
        for number, policy in enumerate(self.policies):
            for direction in (INGRESS, EGRESS):
                for rule in policy.rules(direction):
                    ids = []
                    for spec in rule.peers:
                        # A selector-only peer without namespaceSelector means the policy's
                        # namespace: the same spec elsewhere is another peer.
                        key = (spec, policy.namespace
                               if spec.namespace_selector is None and spec.ip_block is None
                               else "")
                        if key not in spec_ids:
                            spec_ids[key] = len(spec_ids)
                            for item in self._match(spec, policy.namespace):
                                matched_by[item].append(spec_ids[key])
                        ids.append(spec_ids[key])
                    self._rules[(number, direction)].append(_RuleRef(
                        number, rule, tuple(ids) if rule.peers else None,
                        port_ids.setdefault(rule.ports, len(port_ids)),
                        any(isinstance(p.port, str) for p in rule.ports)))
        shared: dict[tuple[str, object], int] = defaultdict(int)
        for endpoint in self._endpoints:
            if endpoint.ip is not None:
                shared[(endpoint.namespace, endpoint.ip)] += 1
        signatures: dict[_Signature, int] = {}
        members: list[list[WorkloadRef]] = []
        self.class_of: dict[WorkloadRef, int] = {}
        for item, (ref, endpoint) in enumerate(zip(refs, self._endpoints, strict=True)):
            signature = _Signature(
                tuple(selected[INGRESS].get(item, ())), tuple(selected[EGRESS].get(item, ())),
                frozenset(matched_by.get(item, ())),
                tuple(RulePort(protocol, name).resolve(endpoint.ports)
                      for protocol, name in self._named),
                ref if shared.get((endpoint.namespace, endpoint.ip), 0) > 1 else None)
            number = signatures.setdefault(signature, len(signatures))
            if number == len(members):
                members.append([])
            members[number].append(ref)
            self.class_of[ref] = number
        self.members: tuple[tuple[WorkloadRef, ...], ...] = tuple(tuple(m) for m in members)
        self._signatures = list(signatures)
        self._representative = [endpoints[m[0]] for m in self.members]
        self._classes_matched: dict[int, list[int]] = defaultdict(list)
        for number, signature in enumerate(self._signatures):
            for spec_id in signature.matched_by:
                self._classes_matched[spec_id].append(number)
        self._connections: dict[tuple[int, tuple[PortRanges, ...]], ConnectionSet] = {}

    # -- per class -------------------------------------------------------------------

    def isolated(self, number: int, direction: str, active: int) -> bool:
        """Does one of the first `active` policies select the class for `direction`?"""
        signature = self._signatures[number]
        policies = (signature.ingress_policies if direction == INGRESS
                    else signature.egress_policies)
        return bool(policies) and policies[0] < active

    def exceptions(self) -> dict[ClassPair, tuple[list[_RuleRef], list[_RuleRef]]]:
        """Class pairs that a rule (of any policy) allows something between, with the
        egress rules of the source and the ingress rules of the destination that match.
        Every other pair is allowed all when neither end is isolated, else nothing."""
        out: dict[ClassPair, tuple[list[_RuleRef], list[_RuleRef]]] = defaultdict(
            lambda: ([], []))
        everyone = range(len(self.members))
        for number, signature in enumerate(self._signatures):
            for side, policies in ((0, signature.egress_policies),
                                   (1, signature.ingress_policies)):
                direction = EGRESS if side == 0 else INGRESS
                for policy in policies:
                    for ref in self._rules.get((policy, direction), ()):
                        others: Iterable[int] = everyone if ref.matches is None else {
                            c for spec in ref.matches for c in self._classes_matched.get(spec, ())}
                        for other in others:
                            pair = (number, other) if side == 0 else (other, number)
                            out[pair][side].append(ref)
        same_pod: dict[tuple[str, object], list[int]] = defaultdict(list)
        for number, signature in enumerate(self._signatures):
            if signature.alone is not None:  # another workload has its namespace and IP
                endpoint = self._representative[number]
                same_pod[(endpoint.namespace, endpoint.ip)].append(number)
        for group in same_pod.values():
            for number in group:
                for other in group:
                    if other != number:
                        out.setdefault((number, other), ([], []))
        return out

    def connections(self, pair: ClassPair, rules: tuple[list[_RuleRef], list[_RuleRef]],
                    active: int) -> ConnectionSet:
        """What the first `active` policies allow from a member of pair[0] to a member of
        pair[1] (another member when they are one class), given the pair's exception
        rules."""
        source, destination = pair
        if source != destination and self._same_pod(source, destination):
            return _ALL
        egress = self._side(source, destination, EGRESS, rules[0], active)
        if egress is _NONE:
            return egress
        ingress = self._side(destination, destination, INGRESS, rules[1], active)
        if egress is _ALL or ingress is _NONE:
            return ingress
        if ingress is _ALL:
            return egress
        return egress.intersection(ingress)

    def default(self, pair: ClassPair, active: int) -> ConnectionSet:
        """A pair that no rule matches: all when neither end is isolated, else none."""
        if self.isolated(pair[0], EGRESS, active) or self.isolated(pair[1], INGRESS, active):
            return _NONE
        return _ALL

    # -- helpers ---------------------------------------------------------------------

    def _side(self, own: int, destination: int, direction: str, rules: list[_RuleRef],
              active: int) -> ConnectionSet:
        if not self.isolated(own, direction, active):
            return _ALL
        # Most pairs are matched by one rule: its cached set, no union to build.
        matching = [self._rule_connections(ref, direction, destination)
                    for ref in rules if ref.policy < active]
        if not matching:
            return _NONE
        allowed = matching[0]
        for more in matching[1:]:
            allowed = allowed.union(more)
        return allowed

    def _rule_connections(self, ref: _RuleRef, direction: str,
                          destination: int) -> ConnectionSet:
        # Many rules share their ports; the destination matters only through how it
        # resolves the named ones.
        key = (ref.ports, self._signatures[destination].named_ports if ref.named else ())
        cached = self._connections.get(key)
        if cached is None:
            ports = self._representative[destination].ports
            cached = (ConnectionSet.of((p.protocol, p.resolve(ports)) for p in ref.rule.ports)
                      if ref.rule.ports else _ALL)
            self._connections[key] = cached
        return cached

    def _same_pod(self, left: int, right: int) -> bool:
        a, b = self._representative[left], self._representative[right]
        return a.ip is not None and a.ip == b.ip and a.namespace == b.namespace

    def _match(self, spec: PeerSpec, namespace: str) -> list[int]:
        if spec.ip_block is not None:
            return self._index.in_block(spec)
        if spec.namespace_selector is None:
            namespaces = [namespace]
        else:
            namespaces = self._index.namespaces(spec.namespace_selector)
        return self._index.select(namespaces, spec.pod_selector)


class _LabelIndex:
    """Endpoints by namespace, by (label, value) and by address, so that a selector looks
    only at the pods that carry one of its matchLabels."""

    def __init__(self, endpoints: Sequence[PodEndpoint]) -> None:
        self._endpoints = endpoints
        self._by_namespace: dict[str, list[int]] = defaultdict(list)
        self._by_label: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self._namespace_labels: dict[str, Mapping[str, str]] = {}
        by_ip: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for item, endpoint in enumerate(endpoints):
            self._by_namespace[endpoint.namespace].append(item)
            self._namespace_labels.setdefault(endpoint.namespace, endpoint.namespace_labels)
            for key, value in endpoint.labels.items():
                self._by_label[(endpoint.namespace, key, value)].append(item)
            if endpoint.ip is not None:
                by_ip[endpoint.ip.version].append((int(endpoint.ip), item))
        self._by_ip = {version: sorted(items) for version, items in by_ip.items()}

    def namespaces(self, selector: LabelSelector) -> list[str]:
        return [name for name, labels in self._namespace_labels.items()
                if selector.matches(labels)]

    def select(self, namespaces: Iterable[str], selector: LabelSelector | None) -> list[int]:
        """Endpoints of those namespaces that the pod selector (None: all) matches."""
        out: list[int] = []
        for namespace in namespaces:
            if selector is None:
                out.extend(self._by_namespace.get(namespace, ()))
                continue
            candidates: Sequence[int] = self._by_namespace.get(namespace, ())
            for key, value in selector.match_labels:
                having = self._by_label.get((namespace, key, value), ())
                if len(having) < len(candidates):
                    candidates = having
            out.extend(i for i in candidates if selector.matches(self._endpoints[i].labels))
        return out

    def in_block(self, spec: PeerSpec) -> list[int]:
        block = spec.ip_block
        assert block is not None
        items = self._by_ip.get(block.cidr.version, [])
        low = bisect_left(items, (int(block.cidr.network_address), -1))
        high = bisect_right(items, (int(block.cidr.broadcast_address), len(self._endpoints)))
        return [item for _, item in items[low:high]
                if block.contains(self._endpoints[item].ip)]  # type: ignore[arg-type]
