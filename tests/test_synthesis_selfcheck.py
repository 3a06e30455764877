"""The self-check: a proposal that blocks a flow it meant to allow fails loudly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from discover.synthesis import SynthesisOptions, propose
from discover.synthesis.proposal import PolicyDocument
from discover.synthesis.selfcheck import ProposalBlocksFlowError, check_proposal
from tests.factories import (
    make_edge,
    make_graph,
    make_inventory,
    shop_pods,
    workload_peer,
)

EDGE = make_edge(workload_peer("shop", "web"), workload_peer("shop", "api"), 9090)


def test_a_sound_proposal_passes() -> None:
    inventory = make_inventory(shop_pods())
    proposal = propose(make_graph([EDGE]), inventory, SynthesisOptions())
    check_proposal(proposal, inventory)
    assert [d.allowed for d in proposal.decisions] == [True, True]


def test_a_broken_proposal_raises_with_the_flow() -> None:
    inventory = make_inventory(shop_pods())
    proposal = propose(make_graph([EDGE]), inventory, SynthesisOptions())
    broken = []
    for document in proposal.documents:
        manifest = dict(document.manifest)
        if manifest["metadata"]["name"] == "api-netpol":
            manifest["spec"] = {**manifest["spec"], "ingress": []}
        broken.append(PolicyDocument(manifest, document.comments))
    with pytest.raises(ProposalBlocksFlowError, match="shop/deployment/web -> shop/deploy"):
        check_proposal(replace(proposal, documents=tuple(broken)), inventory)
