"""Audit of the NetworkPolicies the cluster already has, against what was observed:
namespaces without a default deny, rules (peers, ports) nothing observed used, and observed
flows they would block. The NetworkPolicy evaluator (`discover/netpol/`) decides every
question."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from discover.enrichment.peers import GraphEdge, NodePeer, workload_of
from discover.inventory.model import Inventory, WorkloadRef
from discover.netpol.evaluate import Endpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.policy import EGRESS, INGRESS, Policy, Rule, parse_policy
from discover.netpol.selectors import InvalidPolicyError
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.proposal import Finding, Severity
from discover.synthesis.selfcheck import EndpointFactory

Checked = tuple[GraphEdge, Endpoint, Endpoint]


def _parse(inventory: Inventory, findings: list[Finding]) -> list[Policy]:
    policies = []
    for item in sorted(inventory.network_policies, key=lambda p: (p.namespace, p.name)):
        manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": item.name, "namespace": item.namespace},
                    "spec": dict(item.spec)}
        try:
            policies.append(parse_policy(manifest))
        except InvalidPolicyError as error:
            findings.append(Finding(Severity.WARNING, "audit-invalid-policy",
                                    f"networkpolicy/{item.namespace}/{item.name}",
                                    f"existing policy can't be read: {error}"))
    return policies


def _is_default_deny(policy: Policy, direction: str) -> bool:
    return (policy.pod_selector.empty and policy.affects(direction)
            and not policy.rules(direction))


def _is_local_host_edge(edge: GraphEdge, nodes_of: dict[WorkloadRef, set[str | None]]) -> bool:
    """Traffic from the destination pod's own node: NetworkPolicy never blocks it."""
    source, destination = edge.source, edge.destination
    if not isinstance(source, NodePeer):  # a node, or a host-network pod
        return False
    workload = workload_of(destination)
    if workload is None or source.node_name is None:
        return False
    return source.node_name in nodes_of.get(workload, set())


def audit_existing(
    inventory: Inventory, edges: Sequence[GraphEdge], namespaces: Sequence[str],
    options: SynthesisOptions,
) -> list[Finding]:
    findings: list[Finding] = []
    if not inventory.network_policies:
        if namespaces:
            findings.append(Finding(
                Severity.WARNING, "audit-no-policies", "cluster/networkpolicies",
                "no NetworkPolicy exists in the inventory: every pod accepts and sends "
                "anything (Kubernetes' default is allow-all)"))
        return findings
    policies = [p for p in _parse(inventory, findings) if options.in_scope(p.namespace)]
    for namespace in namespaces:
        own = [p for p in policies if p.namespace == namespace]
        for direction in (INGRESS, EGRESS):
            if not any(_is_default_deny(p, direction) for p in own):
                findings.append(Finding(
                    Severity.WARNING, "audit-no-default-deny", f"namespace/{namespace}",
                    f"no existing default deny for {direction.lower()} (a policy with "
                    "podSelector {} and no rules)"))
    checked = checked_edges(inventory, edges)
    findings.extend(_blocked_flows(policies, checked))
    for policy in policies:
        findings.extend(unused_rules(policy, checked))
    return findings


def checked_edges(inventory: Inventory, edges: Sequence[GraphEdge]) -> list[Checked]:
    """The observed edges a policy could block, with their evaluator endpoints (also what
    `drift` checks): traffic from a pod's own node never is."""
    factory = EndpointFactory(inventory)
    checked: list[Checked] = []
    nodes_of: dict[WorkloadRef, set[str | None]] = defaultdict(set)
    for pod in inventory.pods:
        nodes_of[pod.workload].add(pod.node_name)
    for edge in edges:
        if _is_local_host_edge(edge, nodes_of):
            continue
        src, dst = factory.endpoint(edge.source), factory.endpoint(edge.destination)
        if src is not None and dst is not None:
            checked.append((edge, src, dst))
    return checked


def _blocked_flows(policies: list[Policy], checked: list[Checked]) -> list[Finding]:
    evaluator = PolicyEvaluator(policies)
    findings = []
    for edge, src, dst in checked:
        verdict = evaluator.check(src, dst, edge.protocol, edge.port)
        if not verdict.allowed:
            findings.append(Finding(
                Severity.CRITICAL, "audit-blocked-flow",
                f"{edge.source.label()} -> {edge.destination.label()}",
                f"the existing policies block an observed flow ({edge.protocol} {edge.port}, "
                f"{edge.connections} connections)", verdict.reason))
    return findings


def _used(policy: Policy, direction: str, rule: Rule, checked: list[Checked]) -> int:
    """How many observed edges this rule alone admits, for the pods it governs."""
    single = replace(
        policy,
        affects_ingress=direction == INGRESS, affects_egress=direction == EGRESS,
        ingress=(rule,) if direction == INGRESS else (),
        egress=(rule,) if direction == EGRESS else (),
    )
    evaluator = PolicyEvaluator([single])
    count = 0
    for edge, src, dst in checked:
        governed = dst if direction == INGRESS else src
        if not isinstance(governed, PodEndpoint) or not evaluator.isolating(governed, direction):
            continue
        if evaluator.check(src, dst, edge.protocol, edge.port).allowed:
            count += 1
    return count


def unused_rules(policy: Policy, checked: list[Checked]) -> list[Finding]:
    """Rules, peers and ports of `policy` that admit none of `checked` (candidates to
    remove; `drift` lists them too)."""
    findings = []
    subject = f"networkpolicy/{policy.ref}"
    for direction in (INGRESS, EGRESS):
        if not policy.affects(direction):
            continue
        word = direction.lower()
        for rule in policy.rules(direction):
            where = f"{word} rule {rule.number}"
            if not rule.peers:
                findings.append(Finding(Severity.WARNING, "audit-allow-all-peers", subject,
                                        f"{where} allows every peer, pods and IPs"))
            if not rule.ports:
                findings.append(Finding(Severity.WARNING, "audit-allow-all-ports", subject,
                                        f"{where} allows every port and protocol"))
            if _used(policy, direction, rule, checked) == 0:
                findings.append(Finding(Severity.WARNING, "audit-unused-rule", subject,
                                        f"{where} admits nothing observed in the window"))
                continue
            for peer in rule.peers if len(rule.peers) > 1 else ():
                if _used(policy, direction, replace(rule, peers=(peer,)), checked) == 0:
                    findings.append(Finding(Severity.INFO, "audit-unused-peer", subject,
                                            f"{where}: peer {peer} was never seen"))
            for port in rule.ports if len(rule.ports) > 1 else ():
                if _used(policy, direction, replace(rule, ports=(port,)), checked) == 0:
                    findings.append(Finding(Severity.INFO, "audit-unused-port", subject,
                                            f"{where}: port {port} was never seen"))
    return findings
