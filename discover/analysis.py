"""The offline pipeline in one call: flow table + inventory -> graph -> proposal, proven.

No I/O here: `commands/analyze.py` reads the inputs and writes the outputs. The proposal is
checked twice: synthesis's own self-check (every edge it meant to allow), then the flow
table itself through `verify_flows`, the same path `netpol-discover verify` takes, so that
what `analyze` writes is what `verify` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from discover.enrichment.resolver import Resolver
from discover.enrichment.workload_graph import WorkloadGraph, build_graph
from discover.errors import SynthesisError
from discover.flows.flowtable import DnsRow, FlowRow
from discover.flows.losses import InputLosses
from discover.inventory.model import Inventory
from discover.netpol import PolicyEvaluator
from discover.netpol.cluster_evaluate import TieredEvaluator
from discover.synthesis.cluster_policies import ClusterPolicies, cluster_policies
from discover.synthesis.fqdn import dns_observations
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.proposal import Finding, Proposal, Severity
from discover.synthesis.selfcheck import ProposalBlocksFlowError
from discover.synthesis.synthesize import propose
from discover.verification.changes import Changes, compute_changes
from discover.verification.invariants import check_invariants
from discover.verification.verify import FlowVerdict, verify_flows

# The rule id of the finding that an input missed traffic.
INPUT_INCOMPLETE = "input-incomplete"


class InvariantBrokenError(SynthesisError):
    """The proposal would cut what keeps the cluster running (DNS, the API server, webhooks);
    `findings` name each broken invariant."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        first = findings[0]
        more = f"; and {len(findings) - 1} more" if len(findings) > 1 else ""
        super().__init__(
            f"nothing written: the proposal breaks {len(findings)} cluster invariant(s): "
            f"{first.message}{more} (--accept-broken-invariants writes it anyway, with "
            "critical findings)")


@dataclass(frozen=True, slots=True)
class Analysis:
    graph: WorkloadGraph
    proposal: Proposal
    verdicts: tuple[FlowVerdict, ...]
    changes: Changes  # what the proposal newly denies (both reports show it)
    cluster_policies: ClusterPolicies | None = None  # cluster-policies.yaml


def analyze(
    flows: Sequence[FlowRow],
    dns: Sequence[DnsRow],
    inventory: Inventory,
    options: SynthesisOptions,
    reading_counters: Mapping[str, int] | None = None,
    input_counters: Mapping[str, Mapping[str, int]] | None = None,
    input_findings: Sequence[Finding] = (),
) -> Analysis:
    """`reading_counters` are the packet readers' counters summed over the inputs: traffic
    they saw but could not turn into flows becomes a finding. `input_counters` are each
    input's own (by its name): an input that says it missed traffic makes the proposal
    incomplete, a critical finding. `input_findings` are what the inputs themselves said
    (Hubble's blocked flows, an inventory built from flows) and join the proposal's."""
    graph = build_graph(flows, dns, inventory)
    proposal = propose(graph, inventory, options, dns_observations(dns))
    extra = [*_reading_findings(reading_counters or {}, input_counters or {}), *input_findings]
    if extra:
        findings = sorted((*proposal.findings, *extra), key=Finding.sort_key)
        proposal = replace(proposal, findings=tuple(findings))
    broken = check_invariants(proposal, inventory,
                              api_server_egress=options.api_server_egress)
    if broken and not options.accept_broken_invariants:
        raise InvariantBrokenError(broken)
    if broken:
        findings = sorted((*proposal.findings, *broken), key=Finding.sort_key)
        proposal = replace(proposal, findings=tuple(findings))
    evaluator = PolicyEvaluator(proposal.policies)
    verdicts = tuple(verify_flows(flows, evaluator, inventory))
    _check_denials(verdicts, proposal)
    # the ClusterNetworkPolicies with the proposal, checked the same way (issue 12)
    cluster = cluster_policies(graph, proposal, inventory, options)
    node_labels = {a: node.labels for node in inventory.nodes for a in node.addresses}
    tiered = TieredEvaluator(evaluator.policies, cluster.manifests, node_labels)
    # with the DNS table, so that domainNames rules see the names the clients resolved
    combined = verify_flows(flows, tiered, inventory, resolver=Resolver(inventory, dns))
    _check_denials(tuple(combined), proposal)
    return Analysis(graph=graph, proposal=proposal, verdicts=verdicts,
                    changes=compute_changes(inventory, proposal, evaluator.policies),
                    cluster_policies=cluster)


def _reading_findings(
    counters: Mapping[str, int], input_counters: Mapping[str, Mapping[str, int]]
) -> list[Finding]:
    findings = [
        incomplete_input_finding(name, losses)
        for name, each in input_counters.items()
        if (losses := InputLosses.from_counters(each))
    ]
    # SCTP associations are decoded and get rules like TCP connections; what the proposal
    # can't promise is that the cluster enforces them: CNI support for SCTP varies.
    sctp = counters.get("sctp", 0)
    if not sctp:
        return findings
    return findings + [
        Finding(
            severity=Severity.WARNING,
            rule="input-sctp-cni-support",
            subject="capture/sctp",
            message=(
                "SCTP traffic was captured and SCTP rules are proposed for it: check that the "
                "cluster's CNI enforces SCTP in NetworkPolicy (Cilium: beta, Helm "
                "sctp.enabled=true, no multi-homing; some CNIs ignore SCTP rules). A "
                "multi-homed association's other addresses show up as flows of their own."
            ),
            evidence=f"{sctp} SCTP packets",
        )
    ]


def incomplete_input_finding(name: str, losses: InputLosses) -> Finding:
    """An input that missed traffic (an agent at its edge cap, sampling UDP, dropping in the
    kernel): edges it didn't keep get no rule, and the policies would block them."""
    return Finding(
        severity=Severity.CRITICAL,
        rule=INPUT_INCOMPLETE,
        subject=name,
        message=(
            f"the proposal is incomplete: {losses.describe()} in {name}; connections that "
            f"were not kept get no rule and the policies would block them. Before applying: "
            f"{losses.advice()}; then run the learning window again"
        ),
        evidence=losses.describe(),
    )


def _check_denials(verdicts: tuple[FlowVerdict, ...], proposal: Proposal) -> None:
    """A denied flow is fine only when synthesis decided to deny it and said so (an
    external source without a load balancer, a namespace out of scope...)."""
    denied_on_purpose = {
        (key.src_ip, key.dst_ip, key.protocol, key.dst_port)
        for decision in proposal.decisions
        if decision.allowed is False
        for key in decision.edge.evidence
    }
    unexpected = [
        v
        for v in verdicts
        if not v.allowed
        and (v.src_ip, v.dst_ip, v.protocol, v.dst_port) not in denied_on_purpose
    ]
    if unexpected:
        raise ProposalBlocksFlowError(
            [f"{v.src_ip} -> {v.dst_ip} {v.protocol}/{v.dst_port}: {v.reason}" for v in unexpected]
        )
