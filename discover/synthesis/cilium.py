"""The CiliumNetworkPolicy alternative for names: `toFQDNs` per workload, with the DNS
rule Cilium needs to see (and learn from) the workload's lookups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from discover.inventory.model import WorkloadRef
from discover.synthesis.cluster_dns import GUESSED_DNS_LABEL, ClusterDns
from discover.synthesis.proposal import FqdnDependency, PolicyDocument
from discover.synthesis.selectors import SelectorTable

CILIUM_NAMESPACE_LABEL = "k8s:io.kubernetes.pod.namespace"


def _dns_rule(dns: ClusterDns, selectors: SelectorTable) -> dict[str, Any]:
    endpoints = []
    for workload in dns.workloads or (WorkloadRef("kube-system", "Deployment", "coredns"),):
        if dns.workloads and not selectors[workload].exact:
            continue  # its labels would also match other pods (a critical finding)
        labels = (
            selectors[workload].match_labels() if dns.workloads else dict([GUESSED_DNS_LABEL])
        )
        match = {CILIUM_NAMESPACE_LABEL: workload.namespace}
        match.update({f"k8s:{key}": value for key, value in labels.items()})
        endpoints.append({"matchLabels": dict(sorted(match.items()))})
    return {
        "toEndpoints": endpoints,
        "toPorts": [
            {
                "ports": [{"port": str(port), "protocol": "ANY"} for port in dns.ports],
                "rules": {"dns": [{"matchPattern": "*"}]},
            }
        ],
    }


def cilium_documents(
    dependencies: Sequence[FqdnDependency], dns: ClusterDns, selectors: SelectorTable,
    name_of: Callable[[WorkloadRef], str],
) -> tuple[PolicyDocument, ...]:
    """One CiliumNetworkPolicy per workload with FQDN dependencies, named `name_of(w)`."""
    by_workload: dict[WorkloadRef, list[FqdnDependency]] = defaultdict(list)
    for dependency in dependencies:
        by_workload[dependency.workload].append(dependency)
    documents: list[PolicyDocument] = []
    if dns.workloads and not any(selectors[w].exact for w in dns.workloads):
        return ()  # toFQDNs needs the DNS rule, and no selector names the DNS pods exactly
    for workload, deps in sorted(by_workload.items()):
        # One toFQDNs rule per distinct port set keeps each name on exactly its ports.
        by_ports: dict[tuple[tuple[int, str], ...], list[str]] = defaultdict(list)
        for dep in deps:
            by_ports[tuple(sorted((p.port, p.protocol) for p in dep.ports))].append(dep.fqdn)
        egress = [_dns_rule(dns, selectors)]
        for ports, names in sorted(by_ports.items()):
            egress.append(
                {
                    "toFQDNs": [{"matchName": name} for name in sorted(set(names))],
                    "toPorts": [
                        {"ports": [{"port": str(port), "protocol": str(proto)}
                                   for port, proto in ports]}
                    ],
                }
            )
        selector = selectors[workload].match_labels()
        manifest = {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {
                "name": name_of(workload),
                "namespace": workload.namespace,
                "labels": {"app.kubernetes.io/managed-by": "netpol-discover"},
            },
            "spec": {
                "endpointSelector": {"matchLabels": selector} if selector else {},
                "egress": egress,
            },
        }
        comments = (
            f"{workload}: egress to {len(deps)} name(s) by FQDN (Cilium only)",
            "use instead of the any-ip / pinned rules of policies.yaml on a Cilium cluster",
            *(
                f"  {dep.fqdn} on {', '.join(map(str, dep.ports))}: {dep.connections} "
                f"connection(s)" for dep in deps
            ),
        )
        documents.append(PolicyDocument(manifest, comments))
    return tuple(documents)
