"""What every planner needs while it walks the edges: inventory lookups, selectors, the
options, the findings collected so far and the drafts being filled."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from discover.enrichment.peers import GraphEdge, NodePeer, Peer, WorkloadPeer, workload_of
from discover.flows.events import Protocol
from discover.inventory.facts import facts_for
from discover.inventory.model import ContainerPort, Inventory, Pod, WorkloadRef
from discover.synthesis.drafts import PolicyDraft
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import Direction, EdgeDecision, Finding, Severity
from discover.synthesis.selectors import SelectorTable

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class SynthesisContext:
    def __init__(self, inventory: Inventory, options: SynthesisOptions) -> None:
        self.inventory = inventory
        self.options = options
        self.selectors = SelectorTable(inventory)
        self.findings: dict[tuple[str, str, str], Finding] = {}
        self.finding_repeats: dict[tuple[str, str, str], int] = {}
        self.decisions: list[EdgeDecision] = []
        self.drafts: dict[WorkloadRef, PolicyDraft] = {}
        self.facts = facts_for(inventory)
        self.pods_by_workload: Mapping[WorkloadRef, list[Pod]] = self.facts.pods_by_workload
        self.pods_by_name: Mapping[tuple[str, str], Pod] = self.facts.pods_by_name
        self.kinds_by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        for workload in self.pods_by_workload:
            self.kinds_by_name[(workload.namespace, workload.name)].add(workload.kind)
        self.namespace_labels = {ns.name: ns.labels for ns in inventory.namespaces}
        self.node_names_by_ip = {
            address: node.name for address, node in self.facts.nodes_by_ip.items()
        }

    # -- findings and decisions -------------------------------------------------------

    def report(
        self, severity: Severity, rule: str, subject: str, message: str, evidence: str = ""
    ) -> None:
        """Record a finding once per (rule, subject, message); evidence is kept from the
        first report and counted after that."""
        key = (rule, subject, message)
        if key not in self.findings:
            self.findings[key] = Finding(severity, rule, subject, message, evidence)
            self.finding_repeats[key] = 0
        elif evidence and not self.findings[key].evidence:
            self.findings[key] = Finding(severity, rule, subject, message, evidence)
        elif evidence and evidence != self.findings[key].evidence:
            self.finding_repeats[key] += 1

    def collected_findings(self) -> list[Finding]:
        """The findings, each evidence saying how many more edges had the same finding."""
        result = []
        for key, finding in self.findings.items():
            more = self.finding_repeats.get(key, 0)
            if more:
                finding = replace(finding, evidence=f"{finding.evidence} (and {more} more)")
            result.append(finding)
        return result

    def decide(
        self, edge: GraphEdge, direction: Direction, allowed: bool | None, policy: str | None,
        reason: str,
    ) -> None:
        self.decisions.append(EdgeDecision(edge, direction, allowed, policy, reason))

    # -- workloads -----------------------------------------------------------------------

    def known(self, workload: WorkloadRef) -> bool:
        """The inventory has pods of it (else no selector can be chosen for it)."""
        return bool(self.pods_by_workload.get(workload))

    def is_policy_target(self, workload: WorkloadRef) -> bool:
        """A workload gets its own policy: in scope, and not host-network (NetworkPolicy
        never applies to host-network pods)."""
        pods = self.pods_by_workload.get(workload, [])
        return (
            self.options.in_scope(workload.namespace)
            and bool(pods)
            and not all(pod.host_network for pod in pods)
        )

    def selectable(self, workload: WorkloadRef) -> bool:
        """A label selector selects exactly its pods. One that also selects other pods
        must never be a policy's podSelector (policies add up: the other pods would get
        this workload's allow rules) nor a peer (it would admit the other pods)."""
        return self.selectors[workload].exact

    def writes_policy(self, workload: WorkloadRef) -> bool:
        """A policy target with a selector of its own: it gets a workload policy. A target
        without one gets none, and the namespace default deny blocks its traffic."""
        return self.is_policy_target(workload) and self.selectable(workload)

    def deny_unselectable(self, edge: GraphEdge, direction: Direction, workload: WorkloadRef,
                          policy: str | None) -> None:
        """Deny an edge on purpose because `workload` has no exact selector; the policy
        of the other side (if it gets one) says so in its header."""
        other = workload_of(edge.source if workload_of(edge.destination) == workload
                            else edge.destination)
        if other is not None and other in self.drafts:
            note = (f"note: traffic with {workload} was observed but is denied until it "
                    "has a label of its own (selector-no-exact-label)")
            if note not in self.drafts[other].notes:
                self.drafts[other].notes.append(note)
        self.report_unselectable(
            workload,
            f"{edge.source.label()} -> {edge.destination.label()} {edge.protocol} {edge.port}")
        self.decide(edge, direction, False, policy,
                    f"no label selects exactly the pods of {workload}")

    def report_unselectable(self, workload: WorkloadRef, evidence: str = "") -> None:
        self.report(
            Severity.CRITICAL, "selector-no-exact-label", str(workload),
            f"add a label that identifies workload {workload}; its traffic will be denied "
            f"by the default deny until then ({self.selectors[workload].note}): no policy "
            "selects it and no rule names it as a peer, since its selector would also "
            "match other pods", evidence,
        )

    def draft(self, workload: WorkloadRef) -> PolicyDraft:
        draft = self.drafts.get(workload)
        if draft is None:
            assert self.selectable(workload), f"no exact selector for {workload}"
            draft = PolicyDraft(workload, self.selectors[workload])
            self.drafts[workload] = draft
        return draft

    def policy_name(self, workload: WorkloadRef) -> str:
        """`<workload>-netpol`; the kind joins the name only when two kinds share a name."""
        clash = len(self.kinds_by_name.get((workload.namespace, workload.name), ())) > 1
        base = f"{workload.name}-{workload.kind.lower()}" if clash else workload.name
        return f"{base[:240].rstrip('-.')}-netpol"

    def policy_id(self, workload: WorkloadRef) -> str:
        return f"{workload.namespace}/{self.policy_name(workload)}"

    def declared_ports(self, workload: WorkloadRef) -> tuple[ContainerPort, ...]:
        ports = {port for pod in self.pods_by_workload.get(workload, []) for port in pod.ports}
        return tuple(sorted(ports, key=lambda p: (p.port, p.protocol, p.name or "")))

    def named_port(self, workload: WorkloadRef, protocol: Protocol, port: int) -> PortSpec:
        """A port of the workload's pods, with the name its container gives it (if any)."""
        name = next((p.name for p in self.declared_ports(workload)
                     if p.port == port and p.protocol == protocol and p.name), None)
        return PortSpec(protocol, port, name)

    def pod_of(self, peer: Peer) -> Pod | None:
        if not isinstance(peer, WorkloadPeer | NodePeer) or peer.workload is None \
                or peer.pod_name is None:
            return None
        return self.pods_by_name.get((peer.workload.namespace, peer.pod_name))

    def node_of_peer(self, peer: NodePeer) -> str | None:
        return peer.node_name or self.node_names_by_ip.get(peer.ip)

    # -- peers (NetworkPolicyPeer dicts) -------------------------------------------------

    def pod_peer(self, workload: WorkloadRef, from_namespace: str) -> dict[str, Any]:
        """The workload's pods as seen from a policy in `from_namespace`: podSelector alone
        in the same namespace, with a namespaceSelector on the name label otherwise."""
        peer: dict[str, Any] = {
            "podSelector": _selector(self.selectors[workload].match_labels())
        }
        if workload.namespace != from_namespace:
            peer = {"namespaceSelector": namespace_selector(workload.namespace), **peer}
            self.check_namespace_label(workload.namespace)
        return peer

    def check_namespace_label(self, namespace: str) -> None:
        labels: Mapping[str, str] | None = self.namespace_labels.get(namespace)
        if labels is not None and labels.get(NAMESPACE_NAME_LABEL) != namespace:
            self.report(
                Severity.WARNING,
                "ingress-5-namespace-label",
                f"namespace/{namespace}",
                f"namespace {namespace} lacks the label {NAMESPACE_NAME_LABEL}={namespace} "
                "(set automatically since Kubernetes 1.21): the cross-namespace rules that "
                f"name it match nothing until it is added (kubectl label namespace "
                f"{namespace} {NAMESPACE_NAME_LABEL}={namespace})",
            )


def namespace_selector(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}


def _selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(labels)} if labels else {}


def label_selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return _selector({key: labels[key] for key in sorted(labels)})


def ip_peer(address: Any) -> dict[str, Any]:
    """An ipBlock for one address (/32 or /128) or a network."""
    text = str(address)
    if "/" not in text:
        text += "/32" if ":" not in text else "/128"
    return {"ipBlock": {"cidr": text}}
