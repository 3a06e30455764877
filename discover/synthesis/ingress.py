"""Ingress rules: from the observed consumers only, on the ports the pods serve; external
sources only through a load balancer or an Ingress controller; DNS from pods only.

Node addresses (kubelet probes, host-network pods): traffic from the pod's own node is
always allowed by NetworkPolicy (the API documents it, and CNIs implement it), so no rule
is written and an info finding says so; opening node IPs broadly would let every
host-network process of every node in. Traffic from ANOTHER node's address (a host-network
client, or kube-proxy SNAT with externalTrafficPolicy Cluster) is allowed from exactly that
address, on the port seen, with a warning."""

from __future__ import annotations

from discover.enrichment.peers import (
    ExternalPeer,
    GraphEdge,
    LoadBalancerPeer,
    NodePeer,
    WorkloadPeer,
)
from discover.inventory.model import IPNetwork, WorkloadRef
from discover.synthesis.cluster_dns import ClusterDns, dns_ingress_peers, is_dns_edge
from discover.synthesis.context import SynthesisContext, ip_peer
from discover.synthesis.external import PROVIDER_RANGES, Exposures
from discover.synthesis.options import Cloud
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import Direction, Severity


def edge_port(edge: GraphEdge) -> PortSpec:
    return PortSpec(edge.protocol, edge.port, edge.port_name)


def lb_ranges(context: SynthesisContext, cloud: Cloud) -> tuple[IPNetwork, ...]:
    ranges = PROVIDER_RANGES.get(cloud, ())
    if cloud is Cloud.EKS:
        ranges = context.options.aws_vpc_cidrs
    return tuple(sorted(ranges, key=lambda n: (n.version, n)))


def plan_exposure(
    context: SynthesisContext, workload: WorkloadRef, exposures: Exposures, cloud: Cloud
) -> None:
    """Rules a workload needs because it is exposed, observed or not: the provider's load
    balancer ranges, and its Ingress controllers' pods."""
    draft = context.draft(workload)
    ranges = lb_ranges(context, cloud)
    for exposure in exposures.load_balancers.get(workload, []):
        service = f"{exposure.service.namespace}/{exposure.service.name}"
        if ranges and exposure.target_ports:
            rule = draft.rule(
                "ingress", f"lb:{service}", [ip_peer(net) for net in ranges],
                reason=f"LoadBalancer Service {service}: {cloud.value} load balancer ranges",
                use_names=False,
            )
            rule.ports.update(PortSpec(proto, port) for proto, port in exposure.target_ports)
        if not exposure.preserves_client_ip:
            context.report(
                Severity.WARNING, "ingress-3-etp-cluster", f"service/{service}",
                "externalTrafficPolicy Cluster: the load balancer's traffic reaches the pods "
                "from node addresses (SNAT), client addresses are hidden; node-sourced "
                "traffic seen on these ports is allowed per node address",
            )
        if cloud is Cloud.EKS and not ranges:
            context.report(
                Severity.WARNING, "ingress-3-eks-vpc-cidrs", f"service/{service}",
                "EKS: the load balancer's VPC subnets are unknown (pass --aws-vpc-cidr); "
                "only the observed source addresses are allowed",
            )
        elif cloud is Cloud.NONE:
            context.report(
                Severity.INFO, "ingress-3-no-cloud", f"service/{service}",
                "no cloud provider known (--cloud): only observed load balancer sources "
                "with preserved client addresses are allowed",
            )
    for via_ingress in exposures.ingresses.get(workload, []):
        if not exposures.controllers:
            context.report(
                Severity.WARNING, "ingress-3-no-ingress-controller", via_ingress.ingress,
                "no Ingress controller pods found in the inventory: only the workloads "
                "seen connecting are allowed",
            )
        for controller in exposures.controllers:
            if not context.selectable(controller):
                context.report(
                    Severity.CRITICAL, "selector-no-exact-label", str(controller),
                    f"add a label that identifies workload {controller}; until then the "
                    f"backends of Ingress {via_ingress.ingress} don't admit it, since its "
                    f"selector would also match other pods ({context.selectors[controller].note})",
                )
                continue
            ports = {context.named_port(workload, proto, port)
                     for proto, port in via_ingress.target_ports}
            reason = f"Ingress {via_ingress.ingress} via its controller {controller}"
            draft.rule(
                "ingress", f"pod:{controller}", [context.pod_peer(controller, workload.namespace)],
                reason=reason,
            ).ports.update(ports)
            if context.writes_policy(controller):
                context.draft(controller).rule(
                    "egress", f"pod:{workload}",
                    [context.pod_peer(workload, controller.namespace)], reason=reason,
                ).ports.update(ports)


def plan_dns_server(context: SynthesisContext, dns: ClusterDns) -> None:
    for workload in dns.workloads:
        if context.writes_policy(workload):
            context.draft(workload).rule(
                "ingress", "dns-clients", dns_ingress_peers(),
                reason="cluster DNS: port 53 from every pod, never from outside",
                use_names=False,
            ).ports.update(dns.port_specs())


def plan_ingress_edge(
    context: SynthesisContext, edge: GraphEdge, workload: WorkloadRef, dns: ClusterDns,
    exposures: Exposures, cloud: Cloud,
) -> None:
    """Decide one edge into `workload`, a policy target (the edge's destination)."""
    draft = context.draft(workload)
    policy = context.policy_id(workload)
    source = edge.source
    port = edge_port(edge)
    subject = str(workload)
    evidence = f"{source.label()} -> {subject} {edge.protocol} {edge.port}"

    if isinstance(source, WorkloadPeer) and context.known(source.workload):
        if workload in dns.workloads and is_dns_edge(edge):
            draft.rule("ingress", "dns-clients", dns_ingress_peers(), use_names=False).observe(
                source.label(), PortSpec(edge.protocol, edge.port), edge)
        elif not context.selectable(source.workload):
            context.deny_unselectable(edge, Direction.INGRESS, source.workload, policy)
            return
        else:
            draft.rule(
                "ingress", f"pod:{source.workload}",
                [context.pod_peer(source.workload, workload.namespace)],
            ).observe(source.label(), port, edge)
        context.decide(edge, Direction.INGRESS, True, policy, "observed consumer")
        return

    if isinstance(source, NodePeer):  # a node address: a node, or a host-network pod
        _plan_host_source(context, edge, source, workload, policy)
        return

    if isinstance(source, ExternalPeer | LoadBalancerPeer):
        if workload in dns.workloads and is_dns_edge(edge):
            context.report(
                Severity.CRITICAL, "ingress-6-dns-external", subject,
                "an external address queried the cluster DNS; DNS accepts pods only, "
                "this is not allowed", evidence,
            )
            context.decide(edge, Direction.INGRESS, False, policy, "external source to cluster DNS")
            return
        _plan_external_source(context, edge, source, workload, policy, exposures, cloud)
        return

    context.report(
        Severity.WARNING, "ingress-unresolved-source", subject,
        f"a source that no inventory object explains ({source.kind}"
        f"{': ' + source.note if source.note else ''}) is not allowed", evidence,
    )
    context.decide(edge, Direction.INGRESS, False, policy,
                   f"unresolved source ({source.kind})")


def _plan_host_source(context: SynthesisContext, edge: GraphEdge, source: NodePeer,
                      workload: WorkloadRef, policy: str) -> None:
    node = context.node_of_peer(source)
    pod = context.pod_of(edge.destination)
    if pod is not None:
        local_nodes = {pod.node_name}
    else:
        local_nodes = {p.node_name for p in context.pods_by_workload.get(workload, [])}
    if node is not None and node in local_nodes:
        context.report(
            Severity.INFO, "ingress-node-local", str(workload),
            "traffic from the pod's own node (kubelet probes, host-network processes) is "
            "always allowed by NetworkPolicy; no rule is written for it",
            f"{source.label()} -> {edge.protocol} {edge.port}",
        )
        note = ("note: traffic from the pod's own node (kubelet probes) was seen; "
                "NetworkPolicy always allows it, so no rule opens node addresses")
        notes = context.draft(workload).notes
        if note not in notes:
            notes.append(note)
        context.decide(edge, Direction.INGRESS, None, None, "from the pod's own node")
        return
    context.draft(workload).rule(
        "ingress", f"ip:{source.ip}", [ip_peer(source.ip)], use_names=False,
        reason="another node's address",
    ).observe(source.label(), PortSpec(edge.protocol, edge.port), edge)
    context.report(
        Severity.WARNING, "ingress-node-source", str(workload),
        "traffic from another node's address (a host-network pod, or kube-proxy SNAT of "
        "NodePort/LoadBalancer traffic) is allowed from that address only",
        f"{source.label()} -> {edge.protocol} {edge.port}",
    )
    context.decide(edge, Direction.INGRESS, True, policy, "node address")


def _plan_external_source(
    context: SynthesisContext, edge: GraphEdge, source: ExternalPeer | LoadBalancerPeer,
    workload: WorkloadRef, policy: str, exposures: Exposures, cloud: Cloud,
) -> None:
    evidence = f"{source.label()} -> {workload} {edge.protocol} {edge.port}"
    lb_ports = exposures.load_balancer_ports(workload)
    exposure = lb_ports.get((edge.protocol, edge.port))
    draft = context.draft(workload)
    if exposure is not None:
        service = f"{exposure.service.namespace}/{exposure.service.name}"
        ranges = lb_ranges(context, cloud)
        if any(source.ip in net for net in ranges if net.version == source.ip.version):
            draft.rule("ingress", f"lb:{service}", [ip_peer(n) for n in ranges],
                       use_names=False).observe(source.label(), PortSpec(edge.protocol,
                                                                         edge.port), edge)
            context.decide(edge, Direction.INGRESS, True, policy,
                           f"load balancer range ({service})")
            return
        if exposure.preserves_client_ip or (cloud is Cloud.EKS and not ranges):
            draft.rule("ingress", f"ip:{source.ip}", [ip_peer(source.ip)], use_names=False,
                       reason=f"client of LoadBalancer {service}").observe(
                source.label(), PortSpec(edge.protocol, edge.port), edge)
            context.report(
                Severity.WARNING, "ingress-3-lb-client-addresses", f"service/{service}",
                "the observed client addresses of the load balancer are allowed one by one; "
                "the real client population is probably larger (widen to the clients' "
                "CIDRs, or 0.0.0.0/0 on this port for a public service)",
            )
            context.decide(edge, Direction.INGRESS, True, policy,
                           f"client of LoadBalancer {service}")
            return
        context.report(
            Severity.WARNING, "ingress-3-source-outside-lb-ranges", str(workload),
            f"an external source outside the load balancer ranges of {service} is not "
            "allowed", evidence,
        )
        context.decide(edge, Direction.INGRESS, False, policy, "outside the load balancer ranges")
        return
    if exposures.ingresses.get(workload):
        context.report(
            Severity.WARNING, "ingress-2-external-source", str(workload),
            "an external source reached a pod behind an Ingress directly; only the Ingress "
            "controller's pods are allowed", evidence,
        )
    else:
        context.report(
            Severity.WARNING, "ingress-2-external-source", str(workload),
            "an external source reached a workload that no LoadBalancer Service or "
            "Ingress exposes; it is not allowed", evidence,
        )
    context.decide(edge, Direction.INGRESS, False, policy, "external source, not exposed")
