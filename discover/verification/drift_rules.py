"""The rule that would let a denied edge through, in the shape `analyze` writes it.

`drift` doesn't invent rules: it asks synthesis (`propose`) for the policies the newer
window calls for, finds the rule of the workload's proposed policy that admits the edge,
and keeps only the peers and ports of that rule the edge needs. The rule then goes into
the applied policy that governs that side (the workload's own policy, by the name analyze
gives it when that one exists), or, when the workload has no policy of its own, the whole
proposed policy is the patch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from discover.enrichment.peers import GraphEdge
from discover.netpol.evaluate import Endpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.policy import EGRESS, INGRESS, Policy, Rule, parse_policy
from discover.synthesis.proposal import Direction, PolicyDocument, Proposal

# the key of a rule's peers in the API, per direction
PEERS_KEY = {INGRESS: "from", EGRESS: "to"}
SPEC_KEY = {INGRESS: "ingress", EGRESS: "egress"}


@dataclass(frozen=True, slots=True)
class Fix:
    """What lets one denied side of an edge through: `rule` appended to the applied policy
    `namespace/policy` (`direction` "Ingress"/"Egress"), or, with `create`, a whole new
    policy (the workload has none of its own)."""

    direction: str
    namespace: str
    policy: str
    rule: Mapping[str, Any] | None = None
    create: Mapping[str, Any] | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.policy}"


def only_direction(policy: Policy, direction: str) -> Policy:
    """`policy` as if it had only `direction` (to tell which side of a connection denies)."""
    if direction == INGRESS:
        return replace(policy, affects_egress=False, egress=())
    return replace(policy, affects_ingress=False, ingress=())


class ProposedRules:
    """The proposal for the newer window, searched for the rule that admits an edge."""

    def __init__(self, proposal: Proposal) -> None:
        self._documents = {f"{d.namespace}/{d.name}": d for d in proposal.documents}
        self._parsed: dict[str, Policy] = {}
        self._decided: dict[int, list[tuple[str, str]]] = {}
        self._refused: dict[tuple[int, str], str] = {}
        for decision in proposal.decisions:
            direction = INGRESS if decision.direction is Direction.INGRESS else EGRESS
            if decision.allowed and decision.policy is not None:
                self._decided.setdefault(id(decision.edge), []).append(
                    (direction, decision.policy))
            elif decision.allowed is False:
                self._refused[(id(decision.edge), direction)] = decision.reason

    def denied_on_purpose(self, edge: GraphEdge, direction: str) -> str | None:
        """Why analyze denies that side of `edge` itself, when it does."""
        return self._refused.get((id(edge), direction))

    def decided_policy(self, edge: GraphEdge, direction: str) -> str | None:
        """The proposed policy ("ns/name") that allows `edge` on that side, if any."""
        for side, ref in self._decided.get(id(edge), ()):
            if side == direction:
                return ref
        return None

    def document(self, ref: str) -> PolicyDocument | None:
        return self._documents.get(ref)

    def narrowed_rule(self, ref: str, direction: str, src: Endpoint, dst: Endpoint,
                      edge: GraphEdge) -> Mapping[str, Any] | None:
        """The proposed rule that admits `edge`, cut down to the peers and ports it needs."""
        document = self._documents.get(ref)
        if document is None:
            return None
        policy = self._parsed.get(ref)
        if policy is None:
            policy = self._parsed[ref] = parse_policy(document.manifest)
        raw_rules = document.manifest["spec"].get(SPEC_KEY[direction]) or []
        for rule in policy.rules(direction):
            if not _admits(policy, direction, rule, src, dst, edge):
                continue
            raw = dict(raw_rules[rule.number - 1])
            key = PEERS_KEY[direction]
            if rule.peers and key in raw:
                raw[key] = [entry for entry, peer in zip(raw[key], rule.peers, strict=True)
                            if _admits(policy, direction, replace(rule, peers=(peer,)),
                                       src, dst, edge)]
            if rule.ports and "ports" in raw:
                raw["ports"] = [entry for entry, port in zip(raw["ports"], rule.ports,
                                                             strict=True)
                                if _admits(policy, direction, replace(rule, ports=(port,)),
                                           src, dst, edge)]
            return raw
        return None


def _admits(policy: Policy, direction: str, rule: Rule, src: Endpoint, dst: Endpoint,
            edge: GraphEdge) -> bool:
    single = replace(only_direction(policy, direction),
                     ingress=(rule,) if direction == INGRESS else (),
                     egress=(rule,) if direction == EGRESS else ())
    return PolicyEvaluator([single]).check(src, dst, edge.protocol, edge.port).allowed


def choose_target(isolating: Sequence[Policy], proposed_name: str | None) -> Policy | None:
    """The applied policy to add a rule to: the one analyze named for this workload, else
    the first (by name) that selects pods by label; None when only namespace-wide
    policies (a default deny) isolate the pod, so a rule there would open every pod."""
    for policy in isolating:
        if proposed_name is not None and policy.name == proposed_name:
            return policy
    own = sorted((p for p in isolating if not p.pod_selector.empty), key=lambda p: p.ref)
    return own[0] if own else None


def governed(src: Endpoint, dst: Endpoint, direction: str) -> PodEndpoint | None:
    pod = dst if direction == INGRESS else src
    return pod if isinstance(pod, PodEndpoint) else None
