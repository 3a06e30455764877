"""Two live pods with one IP: an inventory Kubernetes can't produce (a stale pod object,
or inventory files taken at different times), said as a finding instead of letting one
workload's traffic silently become the other's."""

from __future__ import annotations

from discover.inventory.fields import format_time
from discover.inventory.index import IpConflict
from discover.synthesis.context import SynthesisContext
from discover.synthesis.proposal import Severity


def report_ip_conflicts(context: SynthesisContext) -> None:
    for conflict in context.facts.pods.conflicts:
        names = [f"{pod.namespace}/{pod.name}" for pod in conflict.pods]
        context.report(
            Severity.WARNING, "inventory-ip-conflict", f"ip/{conflict.ip}",
            f"pods {', '.join(names)} are all live with IP {conflict.ip}, which Kubernetes "
            "gives to one live pod at a time (a stale pod object, or inventory files taken "
            f"at different times): {_decision(conflict)}; check which pod holds "
            f"{conflict.ip} now and that each workload's policy covers its traffic",
        )


def _decision(conflict: IpConflict) -> str:
    if not conflict.by_time:
        return ("no creation time tells them apart, so traffic of that address is "
                "attributed to each of them")
    # each later pod took the address at its creation (an undated one had it first)
    steps = [
        f"{pod.namespace}/{pod.name} from {format_time(pod.created)}" if pod.created
        else f"{pod.namespace}/{pod.name} until the next one was created"
        for pod in conflict.pods
    ]
    return "traffic of that address is attributed by creation time: " + ", then ".join(steps)
