"""What a reviewer reads beside the proposed policies: the documents of each workload and
the addresses outside the cluster that its rules still reach. (What the proposal newly
denies is computed by the analysis: `discover/verification/changes.py`.)"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from discover.synthesis.proposal import PolicyDocument, Proposal

WORKLOAD_ANNOTATION = "netpol-discover.io/workload"


def documents_by_workload(proposal: Proposal) -> dict[str, list[PolicyDocument]]:
    """Proposed documents keyed by the workload label they are for ("" for namespace-wide
    ones such as the default deny)."""
    out: dict[str, list[PolicyDocument]] = defaultdict(list)
    for document in proposal.documents:
        annotations = document.manifest.get("metadata", {}).get("annotations", {}) or {}
        out[str(annotations.get(WORKLOAD_ANNOTATION, ""))].append(document)
    return out


def external_peers(manifest: Mapping[str, Any], direction: str) -> list[str]:
    """The ipBlock peers of a policy's rules in one direction ("ingress"/"egress"), with
    their ports: what stays reachable outside the cluster."""
    out = []
    key = "from" if direction == "ingress" else "to"
    for rule in manifest.get("spec", {}).get(direction, []) or []:
        ports = ", ".join(
            f"{p.get('protocol', 'TCP')} {p['port']}" if "port" in p else p.get("protocol", "TCP")
            for p in rule.get("ports", []) or []
        ) or "any port"
        for peer in rule.get(key, []) or []:
            block = peer.get("ipBlock")
            if block:
                excepted = block.get("except") or []
                text = block["cidr"] + (f" except {len(excepted)} range(s)" if excepted else "")
                out.append(f"{text} on {ports}")
    return sorted(set(out))
