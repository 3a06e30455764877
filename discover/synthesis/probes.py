"""Kubelet probes come from the pod's node. Whether a NetworkPolicy can block them depends
on the CNI: Calico and Cilium let a node reach its own pods whatever the policies say, so
probes are unaffected and no rule opens node addresses; a CNI not known to do that gets
ingress from the nodes' addresses on exactly the ports the pods' probes name."""

from __future__ import annotations

from collections.abc import Sequence

from discover.flows.events import Protocol
from discover.inventory.model import IPAddress, WorkloadRef
from discover.synthesis.cni import CniDetection
from discover.synthesis.context import SynthesisContext, ip_peer
from discover.synthesis.options import ProbeRules
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import Severity

# CNIs that always allow traffic from a node to its local pods, with the source.
NODE_TRAFFIC_ALLOWED = {
    "calico": "Calico allows traffic from the host to its local workloads unless host "
              "endpoints say otherwise (docs.tigera.io, reference/host-endpoints)",
    "cilium": "Cilium's --allow-localhost defaults to 'auto' (always allow the local host "
              "to reach its endpoints; 'policy' would filter it: cilium/cilium#754)",
}
NODE_TRAFFIC_ALLOWED["canal"] = NODE_TRAFFIC_ALLOWED["calico"]  # Calico's policy engine


def probe_rules_wanted(context: SynthesisContext, cni: CniDetection) -> tuple[bool, str]:
    """(write probe rules, why) for the detected CNI and the --probe-rules option."""
    choice = context.options.probe_rules
    if choice is ProbeRules.ALWAYS:
        return True, "--probe-rules always"
    if choice is ProbeRules.NEVER:
        return False, "--probe-rules never"
    enforcing = cni.enforcing
    exempt = [NODE_TRAFFIC_ALLOWED[n] for n in enforcing if n in NODE_TRAFFIC_ALLOWED]
    if enforcing and len(exempt) == len(enforcing):
        return False, "; ".join(exempt)
    if not enforcing:
        return False, ("no CNI that enforces NetworkPolicy recognised in the inventory; if "
                       "yours filters traffic from the node, pass --probe-rules always")
    others = ", ".join(n for n in enforcing if n not in NODE_TRAFFIC_ALLOWED)
    return True, f"{others} is not known to exempt traffic from the node"


def plan_probes(context: SynthesisContext, writers: Sequence[WorkloadRef],
                cni: CniDetection) -> None:
    wanted, why = probe_rules_wanted(context, cni)
    probed = [w for w in writers
              if any(p.probes for p in context.pods_by_workload.get(w, []))]
    if not probed:
        return
    if not wanted:
        context.report(
            Severity.INFO, "probes-unaffected", "cluster/probes",
            f"kubelet probes come from the pod's node and are unaffected by these "
            f"policies: {why}; no rule opens node addresses for them",
        )
        return
    nodes = {node.name: node.addresses for node in context.inventory.nodes}
    for workload in probed:
        pods = context.pods_by_workload[workload]
        sources: set[IPAddress] = set()
        for pod in pods:
            sources.update(nodes.get(pod.node_name or "", ()) if pod.node_name in nodes
                           else context.facts.node_addresses)
        ports = {context.named_port(workload, Protocol.TCP, p.port) for pod in pods
                 for p in pod.probes if isinstance(p.port, int)}
        if not sources or not ports:
            continue
        context.draft(workload).rule(
            "ingress", "kubelet-probes",
            [ip_peer(a) for a in sorted(sources, key=lambda a: (a.version, a))],
            use_names=False, reason=f"kubelet probes from the pods' nodes ({why})",
        ).ports.update(PortSpec(p.protocol, p.port) for p in ports)
