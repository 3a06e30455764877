"""`propose`: the workload graph and the inventory in, NetworkPolicies out. Pure: no I/O,
no clock; the same input gives the same proposal."""

from __future__ import annotations

from collections.abc import Sequence

from discover.enrichment.peers import GraphEdge, WorkloadPeer, workload_of
from discover.enrichment.workload_graph import WorkloadGraph
from discover.inventory.model import Inventory
from discover.synthesis.attempts import deny_attempts, split_attempts
from discover.synthesis.audit import audit_existing
from discover.synthesis.cidrs import cluster_cidrs
from discover.synthesis.cilium import cilium_documents
from discover.synthesis.cluster_dns import find_cluster_dns
from discover.synthesis.cni import cni_findings, detect_cni
from discover.synthesis.context import SynthesisContext
from discover.synthesis.control_plane import (
    plan_api_callbacks,
    plan_api_server_egress,
    plan_dns_control_plane,
    report_unseen_api_clients,
)
from discover.synthesis.documents import default_deny_document, workload_document
from discover.synthesis.egress import ensure_dns_rule, plan_egress_edge
from discover.synthesis.external import Exposures, detect_cloud
from discover.synthesis.fqdn import (
    DnsObservation,
    NamedEdge,
    collect_dependencies,
    plan_fqdn_edges,
    reached_by_name,
)
from discover.synthesis.ingress import plan_dns_server, plan_exposure, plan_ingress_edge
from discover.synthesis.ip_conflicts import report_ip_conflicts
from discover.synthesis.options import Cloud, FqdnMode, SynthesisOptions
from discover.synthesis.probes import plan_probes
from discover.synthesis.proposal import Direction, FqdnHandling, Proposal, Severity, Window
from discover.synthesis.selfcheck import check_proposal
from discover.synthesis.system_scope import hold_back_system


def _edge_key(edge: GraphEdge) -> tuple[str, ...]:
    return (edge.source.label(), edge.destination.label(), edge.protocol, f"{edge.port:05d}",
            edge.source.kind, edge.destination.kind, str(edge.source.ip),
            str(edge.destination.ip))


def propose(
    graph: WorkloadGraph,
    inventory: Inventory,
    options: SynthesisOptions,
    dns: Sequence[DnsObservation] = (),
) -> Proposal:
    """Least-privilege policies for what `graph` observed. `dns` (the DNS table's rows)
    adds TTLs and address changes to the FQDN dependencies."""
    context = SynthesisContext(inventory, options)
    report_ip_conflicts(context)
    window = Window(options.window_start or graph.window_start,
                    options.window_end or graph.window_end)
    cloud = options.cloud
    if cloud is Cloud.AUTO:
        cloud, how = detect_cloud(inventory)
        context.report(Severity.INFO, "cloud-detected", "cluster/cloud",
                       f"cloud provider: {cloud.value} ({how})")
    observed = sorted(graph.edges, key=_edge_key)
    # attempts (refused, unanswered, a brief one-way burst) are findings, never rules
    edges, attempts = split_attempts(context, observed, window)
    cluster_dns = find_cluster_dns(edges, inventory)
    exposures = Exposures(inventory, context.pods_by_workload)

    # every target's namespace gets the default deny; only a target with a selector of
    # its own gets a workload policy (an inexact one would hand its rules to other pods)
    targets = sorted(w for w in context.pods_by_workload if context.is_policy_target(w))
    writers = [w for w in targets if context.selectable(w)]
    for workload in writers:
        context.draft(workload)
        plan_exposure(context, workload, exposures, cloud)
    for workload in targets:
        if workload not in writers:
            context.report_unselectable(workload)
    for workload in sorted(context.pods_by_workload):
        if options.in_scope(workload.namespace) and workload not in targets:
            context.report(
                Severity.INFO, "host-network-workload", str(workload),
                "host-network pods: NetworkPolicy does not apply to them; no policy written")
    plan_dns_server(context, cluster_dns)
    # what keeps the cluster running, seen in the window or not
    plan_dns_control_plane(context, cluster_dns, edges)
    plan_api_callbacks(context)
    for workload in writers:
        plan_api_server_egress(context, workload)
    detection = detect_cni(inventory)
    plan_probes(context, writers, detection)
    deny_attempts(context, attempts)

    by_name: list[NamedEdge] = []
    # reached by name from a workload that gets no policy: listed, never allowed
    unlisted_by_name: list[NamedEdge] = []
    for edge in edges:
        destination = edge.destination
        if isinstance(destination, WorkloadPeer) and context.is_policy_target(
                destination.workload):
            if context.selectable(destination.workload):
                plan_ingress_edge(context, edge, destination.workload, cluster_dns, exposures,
                                  cloud)
            else:
                context.deny_unselectable(edge, Direction.INGRESS, destination.workload, None)
        source = edge.source
        if isinstance(source, WorkloadPeer) and context.is_policy_target(source.workload):
            if not context.selectable(source.workload):
                context.deny_unselectable(edge, Direction.EGRESS, source.workload, None)
                named = reached_by_name(edge)
                if named is not None:
                    unlisted_by_name.append(named)
            elif (named := plan_egress_edge(context, edge, source.workload,
                                            cluster_dns)) is not None:
                by_name.append(named)
                # it resolved the name, even when its lookup wasn't captured
                ensure_dns_rule(context, source.workload, cluster_dns)
    _report_undeclared_ports(context, graph, edges)
    report_unseen_api_clients(context, writers, edges)

    cidrs = cluster_cidrs(inventory, options)
    mode_of = plan_fqdn_edges(context, by_name, cidrs, edges, dns)
    if any(mode is FqdnMode.ANY_IP for mode in mode_of.values()):
        for note in cidrs.notes:
            context.report(Severity.INFO, "egress-fqdn-cidrs", "cluster/cidrs", note)
    handling = {workload: FqdnHandling(mode) for workload, mode in mode_of.items()}
    for named in unlisted_by_name:
        handling[named.workload] = FqdnHandling(
            None, "no label selects exactly its pods, see selector-no-exact-label; denied "
            "by the default deny")
    dependencies = collect_dependencies([*by_name, *unlisted_by_name], dns, handling)
    # the Cilium alternative and the proxy allowlist serve the workloads with a policy
    handled = tuple(d for d in dependencies if d.has_policy)

    documents = []
    namespaces = sorted({w.namespace for w in targets})
    for namespace in namespaces:
        count = sum(1 for w in writers if w.namespace == namespace)
        unselectable = [w for w in targets if w.namespace == namespace and w not in writers]
        documents.append(default_deny_document(namespace, count, window, unselectable))
    for workload in writers:
        documents.append(
            workload_document(context.drafts[workload], context.policy_name(workload), window)
        )
    documents.sort(key=lambda d: (d.namespace, d.name != "default-deny", d.name))
    documents = hold_back_system(context, documents)
    namespaces = [n for n in namespaces if not options.held_back(n)]

    findings = context.collected_findings()
    findings.extend(cni_findings(detection))
    findings.extend(audit_existing(inventory, observed, namespaces, options))
    proxy = options.egress_proxy
    proposal = Proposal(
        documents=tuple(documents),
        fqdn_dependencies=dependencies,
        cilium_documents=cilium_documents(
            handled, cluster_dns, context.selectors,
            lambda w: context.policy_name(w).removesuffix("-netpol") + "-fqdn"),
        findings=tuple(sorted(findings, key=lambda f: f.sort_key())),
        namespaces=tuple(namespaces),
        window=window,
        decisions=tuple(context.decisions),
        fqdn_mode=options.effective_fqdn_mode,
        egress_proxy=str(proxy) if proxy is not None else None,
        proxy_allowlist=tuple(sorted({f"{d.fqdn}:{p.port}" for d in handled
                                      for p in d.ports})),
        cloud=cloud,
        cni=detection.names,
    )
    if options.self_check:
        check_proposal(proposal, inventory)
    return proposal


def _report_undeclared_ports(
    context: SynthesisContext, graph: WorkloadGraph, allowed: Sequence[GraphEdge]
) -> None:
    reached = {(workload_of(e.destination), e.protocol, e.port) for e in allowed}
    for item in graph.undeclared_ports:
        if not context.writes_policy(item.workload):
            continue
        if (item.workload, item.protocol, item.port) not in reached:
            continue  # only attempted: reported as such, not allowed
        if item.pod_declares_ports:
            context.report(
                Severity.WARNING, "ingress-4-undeclared-port", str(item.workload),
                f"traffic to {item.protocol} {item.port}, a port its containers don't "
                "declare (an admin or debug port?): allowed because it was observed; "
                "check it is meant to be reachable",
            )
        else:
            context.report(
                Severity.INFO, "ingress-4-no-declared-ports", str(item.workload),
                "its containers declare no ports: the observed port numbers are used",
            )
