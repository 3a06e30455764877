"""System namespaces are opt-in: kube-system (and kube-public, kube-node-lease, and the
namespaces the user lists) get no policy unless asked. Their policies are still drafted,
so the report shows what would be proposed and why it is held back; the traffic they
would govern is decided "not governed" instead of allowed or denied by an unwritten rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from discover.synthesis.context import SynthesisContext
from discover.synthesis.proposal import PolicyDocument, Severity

HELD_BACK = "held back: system namespace"


def hold_back_system(context: SynthesisContext, documents: Sequence[PolicyDocument]
                     ) -> list[PolicyDocument]:
    """The documents to write; the held-back ones become one finding a namespace, and the
    decisions that named their policies become 'not governed'."""
    options = context.options
    held = sorted({d.namespace for d in documents if options.held_back(d.namespace)})
    for namespace in held:
        mine = [d for d in documents if d.namespace == namespace]
        context.report(
            Severity.WARNING, "system-namespace-held-back", f"namespace/{namespace}",
            f"{namespace} is a system namespace: its {len(mine)} policies "
            f"({', '.join(d.name for d in mine)}) are not written, so its pods stay open as "
            "they are now (cutting cluster DNS or the control plane would break every "
            "workload); review them below and pass --include-system-namespaces (or -n "
            f"{namespace}) to write them",
            " | ".join(f"{d.name}: " + "; ".join(
                line.strip() for line in d.comments[1:] if not line.strip().startswith("seen:"))
                for d in mine),
        )
    if held:
        context.decisions = [
            replace(d, allowed=None, reason=f"{HELD_BACK} ({d.reason})")
            if d.policy is not None and d.policy.split("/", 1)[0] in held else d
            for d in context.decisions
        ]
    return [d for d in documents if d.namespace not in held]
