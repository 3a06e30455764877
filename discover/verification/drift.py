"""Drift: a newer window of traffic against the NetworkPolicies already applied (or a
proposal), for the path from learning to enforcement.

What it finds, all decided by the NetworkPolicy evaluator on the window's workload edges
(the same edges and endpoints the audit of existing policies checks,
`synthesis/audit.py`):

- edges the policies deny that completed (or whose outcome is unknown): a new dependency,
  or policies applied before the window had seen it; each with the side that denies, the
  policies isolating it, and a fix: the rule `analyze` would write for it, to append to
  the policy that governs that side (`drift_rules.py`);
- blocked attempts: refused or unanswered set-ups towards a peer the policies deny; once
  policies are enforced, a dependency they cut shows up exactly like this;
- rules, peers and ports that admitted nothing in the window (candidates to remove);
- workloads no policy of their own selects, in namespaces that have policies: created
  after the policies were written.

Pure: the command (`discover/commands/drift.py`) reads and writes.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from discover.enrichment.peers import GraphEdge, WorkloadPeer, workload_of
from discover.enrichment.workload_graph import WorkloadGraph
from discover.flows.events import Outcome
from discover.inventory.model import Inventory, NetworkPolicy, WorkloadRef
from discover.netpol.evaluate import Endpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.policy import EGRESS, INGRESS, Policy, parse_policy
from discover.netpol.selectors import InvalidPolicyError
from discover.synthesis.audit import checked_edges, unused_rules
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.proposal import Finding, Window
from discover.synthesis.selfcheck import EndpointFactory
from discover.synthesis.synthesize import propose
from discover.verification.drift_rules import (
    SPEC_KEY,
    Fix,
    ProposedRules,
    choose_target,
    governed,
    only_direction,
)

ATTEMPT_OUTCOMES = (Outcome.REFUSED, Outcome.UNANSWERED)


@dataclass(frozen=True, slots=True)
class DeniedEdge:
    """An observed edge the policies deny. `sides` are the directions that deny it
    ("Egress" of the source, "Ingress" of the destination), `isolating` the policies that
    isolate those sides; `fixes` one a side, or `no_fix` says why there is none."""

    edge: GraphEdge
    reason: str
    sides: tuple[str, ...]
    isolating: tuple[str, ...]
    fixes: tuple[Fix, ...]
    no_fix: str = ""

    @property
    def attempt(self) -> bool:
        return self.edge.outcome in ATTEMPT_OUTCOMES


@dataclass(frozen=True, slots=True)
class UnselectedWorkload:
    """A workload no policy of its own selects; `open` when no policy selects it at all
    (everything allowed), else only namespace-wide ones (a default deny) do."""

    workload: WorkloadRef
    open: bool
    edges: int  # edges of the window it took part in


@dataclass(frozen=True, slots=True)
class PolicyPatch:
    """Every change drift suggests for one policy: `manifest` is the policy to apply,
    the applied one with `added` rules appended ((direction, rule) pairs), or, with
    `created`, a new policy (the workload had none of its own)."""

    namespace: str
    name: str
    manifest: Mapping[str, Any]
    added: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    created: bool = False
    # rules each direction held before, to write the JSON patch
    existing: tuple[tuple[str, int], ...] = ()

    def json_patch(self) -> list[dict[str, Any]]:
        """RFC 6902 operations for `kubectl patch networkpolicy --type=json` (empty for a
        created policy: apply it)."""
        counts = dict(self.existing)
        operations: list[dict[str, Any]] = []
        for direction in (INGRESS, EGRESS):
            rules = [rule for side, rule in self.added if side == direction]
            key = SPEC_KEY[direction]
            if not rules:
                continue
            if counts.get(direction, 0) == 0:  # the list may be absent: add it whole
                operations.append({"op": "add", "path": f"/spec/{key}", "value": rules})
            else:
                operations += [{"op": "add", "path": f"/spec/{key}/-", "value": rule}
                               for rule in rules]
        return operations


@dataclass(frozen=True, slots=True)
class Drift:
    denied: tuple[DeniedEdge, ...]  # completed, one-way or unknown outcome
    blocked_attempts: tuple[DeniedEdge, ...]
    intended: tuple[DeniedEdge, ...]  # denied as analyze would deny them (its findings say why)
    unused: tuple[Finding, ...]  # audit-unused-rule/-peer/-port findings
    unselected: tuple[UnselectedWorkload, ...]
    patches: tuple[PolicyPatch, ...]
    policies: int
    edges: int
    window: Window
    notes: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Something observed is denied: the exit status for CI."""
        return bool(self.denied or self.blocked_attempts)


def compute_drift(
    graph: WorkloadGraph,
    inventory: Inventory,
    applied: Sequence[NetworkPolicy],
    options: SynthesisOptions,
) -> Drift:
    """`applied` are the policies in force (or proposed); `inventory` the cluster of the
    window (its own network_policies are not looked at). A policy that can't be read is
    left out with a note. The fixes come from `propose` on the
    window with every attempt allowed and system namespaces included, so that any edge
    can be given the rule analyze would write for it."""
    policies, notes = _parse(applied)
    checked = checked_edges(inventory, graph.edges)
    evaluator = PolicyEvaluator(policies)
    sides = {d: PolicyEvaluator([only_direction(p, d) for p in policies if p.affects(d)])
             for d in (INGRESS, EGRESS)}
    proposal = propose(graph, replace(inventory, network_policies=()),
                       replace(options, allow_attempts=True, include_system=True,
                               self_check=False))
    proposed = ProposedRules(proposal)
    denied: list[DeniedEdge] = []
    intended: list[DeniedEdge] = []
    for edge, src, dst in checked:
        verdict = evaluator.check(src, dst, edge.protocol, edge.port)
        if verdict.allowed:
            continue
        denying = tuple(d for d in (EGRESS, INGRESS)
                        if not sides[d].check(src, dst, edge.protocol, edge.port).allowed)
        isolating: list[str] = []
        fixes: list[Fix] = []
        missing: list[str] = []
        for direction in denying:
            pod = governed(src, dst, direction)
            if pod is None:
                continue
            isolators = evaluator.isolating(pod, direction)
            isolating.extend(p.ref for p in isolators)
            fix = _fix(edge, direction, src, dst, isolators, proposed)
            if fix is None:
                missing.append(direction.lower())
            else:
                fixes.append(fix)
        purposes = [why for d in denying if (why := proposed.denied_on_purpose(edge, d))]
        no_fix = ""
        if missing:
            no_fix = (f"analyze would not allow its {' and '.join(missing)} either"
                      + (f": {'; '.join(purposes)}" if purposes else ""))
        item = DeniedEdge(edge, verdict.reason, denying, tuple(sorted(set(isolating))),
                          tuple(fixes), no_fix)
        # denied as analyze itself decides (and reports): known, not drift
        (intended if missing and not fixes and purposes else denied).append(item)
    unused = [finding for policy in policies for finding in unused_rules(policy, checked)
              if finding.rule.startswith("audit-unused") and not _dns_fallback(finding)]
    return Drift(
        denied=tuple(d for d in denied if not d.attempt),
        blocked_attempts=tuple(d for d in denied if d.attempt),
        intended=tuple(intended),
        unused=tuple(sorted(unused, key=Finding.sort_key)),
        unselected=tuple(_unselected(inventory, policies, graph.edges)),
        patches=tuple(_patches(denied, applied)),
        policies=len(policies),
        edges=len(graph.edges),
        window=Window(graph.window_start, graph.window_end),
        notes=tuple(notes),
    )


def _dns_fallback(finding: Finding) -> bool:
    """TCP 53 beside UDP 53 is kept on purpose: DNS falls back to TCP for large answers,
    which a window rarely sees."""
    return finding.rule == "audit-unused-port" and finding.message.endswith(
        ("port TCP 53 was never seen", "port UDP 53 was never seen"))


def _parse(applied: Sequence[NetworkPolicy]) -> tuple[list[Policy], list[str]]:
    policies: list[Policy] = []
    notes: list[str] = []
    for item in sorted(applied, key=lambda p: (p.namespace, p.name)):
        try:
            policies.append(parse_policy(manifest_of(item)))
        except InvalidPolicyError as error:
            notes.append(f"networkpolicy/{item.namespace}/{item.name} can't be read, "
                         f"left out: {error}")
    return policies, notes


def manifest_of(item: NetworkPolicy) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": item.name, "namespace": item.namespace},
            "spec": dict(item.spec)}


def _fix(edge: GraphEdge, direction: str, src: Endpoint, dst: Endpoint, isolators: list[Policy],
         proposed: ProposedRules) -> Fix | None:
    ref = proposed.decided_policy(edge, direction)
    if ref is None:
        return None
    namespace, name = ref.split("/", 1)
    target = choose_target(isolators, name)
    if target is None:  # only a default deny selects it: the proposed policy, whole
        document = proposed.document(ref)
        if document is None:
            return None
        return Fix(direction, namespace, name, create=document.manifest)
    rule = proposed.narrowed_rule(ref, direction, src, dst, edge)
    if rule is None:
        return None
    return Fix(direction, target.namespace, target.name, rule=rule)


def _patches(denied: Sequence[DeniedEdge],
             applied: Sequence[NetworkPolicy]) -> list[PolicyPatch]:
    records = {(p.namespace, p.name): p for p in applied}
    added: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    created: dict[tuple[str, str], Mapping[str, Any]] = {}
    for item in denied:
        for fix in item.fixes:
            key = (fix.namespace, fix.policy)
            if fix.create is not None:
                created[key] = fix.create
            elif fix.rule is not None and (fix.direction, fix.rule) not in added[key]:
                added[key].append((fix.direction, fix.rule))
    patches = [PolicyPatch(ns, name, manifest, created=True)
               for (ns, name), manifest in created.items()]
    for (ns, name), rules in added.items():
        if not rules:
            continue
        manifest = manifest_of(records[(ns, name)])
        spec = manifest["spec"] = copy.deepcopy(manifest["spec"])
        existing = []
        for direction in (INGRESS, EGRESS):
            field = SPEC_KEY[direction]
            existing.append((direction, len(spec.get(field) or [])))
            new = [rule for side, rule in rules if side == direction]
            if new:
                spec[field] = [*(spec.get(field) or []), *new]
        patches.append(PolicyPatch(ns, name, manifest, tuple(rules), existing=tuple(existing)))
    return sorted(patches, key=lambda p: (p.namespace, p.name))


def _unselected(inventory: Inventory, policies: Sequence[Policy],
                edges: Sequence[GraphEdge]) -> list[UnselectedWorkload]:
    governed_namespaces = {p.namespace for p in policies}
    evaluator = PolicyEvaluator(policies)
    factory = EndpointFactory(inventory)
    seen: dict[WorkloadRef, int] = defaultdict(int)
    for edge in edges:
        for peer in (edge.source, edge.destination):
            workload = workload_of(peer)
            if workload is not None:
                seen[workload] += 1
    found = []
    workloads = sorted({p.workload for p in inventory.pods
                        if not p.host_network and p.namespace in governed_namespaces})
    for workload in workloads:
        endpoint = factory.endpoint(WorkloadPeer(workload=workload))
        if not isinstance(endpoint, PodEndpoint):
            continue
        selecting = [p for d in (INGRESS, EGRESS) for p in evaluator.isolating(endpoint, d)]
        if any(not p.pod_selector.empty for p in selecting):
            continue
        found.append(UnselectedWorkload(workload, not selecting, seen.get(workload, 0)))
    return found
