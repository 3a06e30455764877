"""The offline pipeline in one call: flow table + inventory -> graph -> proposal, proven.

No I/O here: `commands/analyze.py` reads the inputs and writes the outputs. The proposal is
checked twice: synthesis's own self-check (every edge it meant to allow), then the flow
table itself through `verify_flows`, the same path `netpol-discover verify` takes, so that
what `analyze` writes is what `verify` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from discover.errors import SynthesisError
from discover.inventory.model import Inventory
from discover.netpol import PolicyEvaluator
from discover.synthesis.fqdn import dns_observations
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.proposal import Proposal
from discover.synthesis.synthesize import propose
from discover.verification import FlowVerdict, verify_flows
from discover.workload_graph import WorkloadGraph, build_graph


class ProposalDeniesObservedFlowError(SynthesisError):
    """The proposal would block flows that were observed and meant to be allowed."""

    def __init__(self, verdicts: list[FlowVerdict]) -> None:
        self.verdicts = verdicts
        shown = "; ".join(
            f"{v.src_ip} -> {v.dst_ip} {v.protocol}/{v.dst_port}: {v.reason}" for v in verdicts[:3]
        )
        more = f"; and {len(verdicts) - 3} more" if len(verdicts) > 3 else ""
        super().__init__(
            f"the proposal denies {len(verdicts)} observed flow(s) it should allow "
            f"(a bug, please report it): {shown}{more}"
        )


@dataclass(frozen=True, slots=True)
class Analysis:
    graph: WorkloadGraph
    proposal: Proposal
    verdicts: tuple[FlowVerdict, ...]


def analyze(
    flows: pd.DataFrame, dns: pd.DataFrame, inventory: Inventory, options: SynthesisOptions
) -> Analysis:
    graph = build_graph(flows, dns, inventory)
    proposal = propose(graph, inventory, options, dns_observations(dns))
    verdicts = tuple(verify_flows(flows, PolicyEvaluator(proposal.policies), inventory))
    _check_denials(verdicts, proposal)
    return Analysis(graph=graph, proposal=proposal, verdicts=verdicts)


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
        raise ProposalDeniesObservedFlowError(unexpected)
