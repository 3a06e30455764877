"""Traffic that keeps the cluster running and that a learning window rarely shows: the
watches of known API-server clients, the API server calling webhooks and aggregated APIs,
host-network clients of cluster DNS and CoreDNS's upstream resolvers.

These rules are written whether or not the window saw the traffic: a watch opened before
the window, a webhook nobody triggered, a name CoreDNS had cached are all still needed
the day the policy is applied. Each rule's `why` line says where it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence

from discover.enrichment.peers import GraphEdge, workload_of
from discover.flows.events import Protocol
from discover.inventory.facts import ApiServer
from discover.inventory.model import CalledService, Service, WorkloadRef
from discover.synthesis.cluster_dns import ClusterDns
from discover.synthesis.context import SynthesisContext, ip_peer
from discover.synthesis.ports import PortSpec
from discover.synthesis.proposal import Severity

API_RULE = "api-server"


def api_server_peers(api: ApiServer) -> list[dict[str, object]]:
    return [ip_peer(address) for address in api.addresses]


def _unknown_api_server(context: SynthesisContext, workload: WorkloadRef, why: str) -> None:
    # a held-back system namespace's policy is only shown: nothing is cut yet
    held = context.options.held_back(workload.namespace)
    context.report(
        Severity.INFO if held else Severity.CRITICAL, "control-plane-unknown", str(workload),
        f"{why}, but the inventory has no default/kubernetes Service with an EndpointSlice, so "
        "no rule can name the API server: the policy cuts it off. Add the Service and its "
        "EndpointSlice to the inventory (kubectl get -n default service/kubernetes "
        "endpointslices -l kubernetes.io/service-name=kubernetes -o json) and run again",
    )


def plan_api_server_egress(context: SynthesisContext, workload: WorkloadRef) -> None:
    """Egress to the API server's endpoints for a component known to watch it."""
    reason = context.facts.api_watchers.get(workload)
    if reason is None or not context.writes_policy(workload):
        return
    if not context.options.api_server_egress:
        context.report(
            Severity.WARNING, "control-plane-egress-off", str(workload),
            f"{reason} watches the API server; --no-api-server-egress: no rule is written "
            "for it, so the policy cuts it off unless another policy allows it",
        )
        return
    api = context.facts.api_server
    if not api.known:
        _unknown_api_server(context, workload, f"{reason} watches the API server")
        return
    rule = context.draft(workload).rule(
        "egress", API_RULE, api_server_peers(api), use_names=False,
        reason=f"API server (default/kubernetes endpoints): {reason} watches it",
    )
    rule.ports.update(PortSpec(Protocol.TCP, port) for port in api.ports)


def report_unseen_api_clients(context: SynthesisContext, writers: Sequence[WorkloadRef],
                              edges: Sequence[GraphEdge]) -> None:
    """A workload whose pods hold a ServiceAccount token that RBAC grants a role, and whose
    connection to the API server the window did not see: its policy has no rule for it."""
    api = context.facts.api_server
    seen = {workload_of(e.source) for e in edges if api.serves(e.destination.ip)}
    candidates = [w for w in writers if w not in context.facts.api_watchers and w not in seen
                  and any(p.token_mounted for p in context.pods_by_workload.get(w, []))]
    if not context.inventory.has_rbac:
        if candidates:
            context.report(
                Severity.INFO, "control-plane-rbac-unknown", "cluster/rbac",
                f"{len(candidates)} workload(s) mount a ServiceAccount token but the inventory "
                "has no RoleBindings/ClusterRoleBindings, so API-server clients whose "
                "connection the window missed can't be told; add rolebindings,"
                "clusterrolebindings to the inventory",
            )
        return
    bound: dict[tuple[str, str], list[str]] = {}
    for binding in context.inventory.role_bindings:
        for account in binding.service_accounts:
            bound.setdefault(account, []).append(
                f"{binding.namespace + '/' if binding.namespace else ''}{binding.name} "
                f"({binding.role})")
    for workload in candidates:
        accounts = sorted({p.service_account for p in context.pods_by_workload[workload]
                           if p.token_mounted})
        grants = [g for a in accounts for g in bound.get((workload.namespace, a), [])]
        if not grants:
            continue
        context.report(
            Severity.WARNING, "control-plane-unseen-client", str(workload),
            f"its pods mount the token of ServiceAccount {', '.join(accounts)}, which RBAC "
            f"grants roles ({'; '.join(sorted(grants))}), but no connection to the API server "
            "was seen: if it calls the API server (a watch opened before the window), its "
            "policy blocks that; add egress to the API server's endpoints if so",
        )


def _target_ports(context: SynthesisContext, service: Service, port: int,
                  workload: WorkloadRef) -> set[PortSpec]:
    ports: set[PortSpec] = set()
    for entry in service.ports:
        if entry.port != port:
            continue
        target = entry.target_port if entry.target_port is not None else entry.port
        if isinstance(target, str):
            declared = next((p for p in context.declared_ports(workload) if p.name == target
                             and p.protocol == entry.protocol), None)
            if declared is None:
                continue
            target = declared.port
        ports.add(context.named_port(workload, entry.protocol, target))
    return ports


def plan_api_callbacks(context: SynthesisContext) -> None:
    """Webhook and aggregated-API backends accept the API server's addresses on the port
    the Service sends to, called or not during the window."""
    services = {(s.namespace, s.name): s for s in context.inventory.services}
    api = context.facts.api_server
    for callback in context.inventory.api_callbacks:
        for ref in callback.services:
            service = services.get((ref.namespace, ref.name))
            if service is None:
                context.report(
                    Severity.WARNING, "control-plane-callback-unknown",
                    f"service/{ref.namespace}/{ref.name}",
                    f"{callback.kind} {callback.name} calls Service {ref.namespace}/{ref.name}, "
                    "which the inventory lacks: its pods can't be given the API server's "
                    "ingress",
                )
                continue
            for workload in sorted({p.workload for p in context.facts.selected_pods(service)}):
                _allow_callback(context, callback.kind, callback.name, ref, service,
                                workload, api)


def _allow_callback(context: SynthesisContext, kind: str, name: str, ref: CalledService,
                    service: Service, workload: WorkloadRef, api: ApiServer) -> None:
    if not context.writes_policy(workload):
        return
    why = f"{kind} {name} makes the API server call Service {ref.namespace}/{ref.name}"
    if not api.known:
        _unknown_api_server(context, workload, why)
        return
    ports = _target_ports(context, service, ref.port, workload)
    if not ports:
        context.report(
            Severity.WARNING, "control-plane-callback-port", str(workload),
            f"{why} on port {ref.port}, which the Service doesn't map to a port of its pods",
        )
        return
    context.draft(workload).rule(
        "ingress", "control-plane", api_server_peers(api), use_names=False,
        reason=f"the API server calls it: {why}",
    ).ports.update(ports)


def plan_dns_control_plane(context: SynthesisContext, dns: ClusterDns,
                           edges: Sequence[GraphEdge]) -> None:
    """Cluster DNS: port 53 from the nodes' addresses too (host-network clients, dnsPolicy
    ClusterFirstWithHostNet), and egress to its upstream resolvers."""
    facts = context.facts
    forwarding = context.inventory.dns_forwarding
    upstreams = sorted({a for f in forwarding for a in f.upstreams},
                       key=lambda a: (a.version, a))
    ports = sorted({p for f in forwarding for p in f.ports}) or [53]
    for workload in dns.workloads:
        if not context.writes_policy(workload):
            continue
        draft = context.draft(workload)
        if facts.node_addresses:
            draft.rule(
                "ingress", "dns-nodes", [ip_peer(a) for a in facts.node_addresses],
                use_names=False,
                reason="cluster DNS: port 53 from the nodes' addresses (host-network pods, "
                "dnsPolicy ClusterFirstWithHostNet)",
            ).ports.update(dns.port_specs())
        if upstreams:
            draft.rule(
                "egress", "dns-upstreams", [ip_peer(a) for a in upstreams], use_names=False,
                reason="its upstream resolvers ("
                + ", ".join(f.config_map for f in forwarding) + " forward)",
            ).ports.update(PortSpec(proto, port) for port in ports
                           for proto in (Protocol.UDP, Protocol.TCP))
            continue
        observed = any(workload_of(e.source) == workload and e.port in (53, 853)
                       and workload_of(e.destination) not in dns.workloads for e in edges)
        if not observed:
            resolv = any(f.to_resolv_conf for f in forwarding)
            held = context.options.held_back(workload.namespace)
            context.report(
                Severity.INFO if held else Severity.WARNING, "dns-upstream-unknown",
                str(workload),
                ("its Corefile forwards to the node's /etc/resolv.conf, whose resolvers "
                 "the inventory doesn't hold" if resolv else
                 "the inventory has no kube-system/coredns ConfigMap")
                + " and no lookup it forwarded was seen: names outside the cluster stop "
                "resolving under this policy; add egress to the upstream resolvers on 53",
            )
