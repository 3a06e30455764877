"""What a proposal must never break, checked with the evaluator before anything is written:
every pod that resolves names reaches cluster DNS (host-network clients too, from the
nodes' addresses); DNS reaches its upstream resolvers and the API server; every component
known to watch the API server reaches it; webhook and aggregated-API backends accept the
API server. Pure: the proposal and the inventory in, the broken invariants out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from discover.enrichment.peers import workload_of
from discover.flows.events import Protocol
from discover.inventory.facts import ClusterFacts, facts_for
from discover.inventory.model import Inventory, IPAddress, Pod, WorkloadRef
from discover.netpol.evaluate import Endpoint, IpEndpoint, PodEndpoint, PolicyEvaluator
from discover.synthesis.context import NAMESPACE_NAME_LABEL
from discover.synthesis.proposal import Finding, Proposal, Severity

INVARIANT_RULE = "invariant-broken"


@dataclass(frozen=True, slots=True)
class Check:
    invariant: str  # dns-reachable, dns-upstream, api-server-watchers, webhook-backends
    source: Endpoint
    destination: Endpoint
    protocol: Protocol
    port: int


def _pod_endpoint(inventory: Inventory, pod: Pod) -> PodEndpoint:
    labels = next((dict(n.labels) for n in inventory.namespaces if n.name == pod.namespace), {})
    labels[NAMESPACE_NAME_LABEL] = pod.namespace
    return PodEndpoint(pod.namespace, pod.labels, labels, pod.ips[0] if pod.ips else None,
                       pod.ports, pod.name)


def _pod(facts: ClusterFacts, workload: WorkloadRef) -> Pod | None:
    return next((p for p in facts.pods_by_workload.get(workload, [])
                 if p.ips and not p.host_network), None)


def _checks(proposal: Proposal, inventory: Inventory, api_egress: bool) -> Iterator[Check]:
    facts = facts_for(inventory)
    dns_pods = [p for w in sorted(facts.dns_workloads) if (p := _pod(facts, w)) is not None]
    resolvers = {w for d in proposal.decisions
                 if d.reason == "cluster DNS" and (w := workload_of(d.edge.source)) is not None}
    resolvers.update(d.workload for d in proposal.fqdn_dependencies if d.has_policy)
    for dns in dns_pods[:1]:
        target = _pod_endpoint(inventory, dns)
        for workload in sorted(resolvers):
            client = _pod(facts, workload)
            if client is not None:
                yield Check("dns-reachable", _pod_endpoint(inventory, client), target,
                            Protocol.UDP, 53)
        for address in facts.node_addresses:  # host-network clients
            yield Check("dns-reachable", IpEndpoint(address), target, Protocol.UDP, 53)
        for forwarding in inventory.dns_forwarding:
            for upstream in forwarding.upstreams:
                for port in forwarding.ports:
                    yield Check("dns-upstream", target, IpEndpoint(upstream), Protocol.UDP, port)
    api = facts.api_server
    if not api.known:
        return  # the control-plane-unknown findings say it
    first: IPAddress = api.addresses[0]
    for workload, _reason in sorted(facts.api_watchers.items()):
        is_dns = workload in facts.dns_workloads
        if not api_egress and not is_dns:
            continue  # the user said so (--no-api-server-egress)
        pod = _pod(facts, workload)
        if pod is not None:
            yield Check("dns-upstream" if is_dns else "api-server-watchers",
                        _pod_endpoint(inventory, pod), IpEndpoint(first), Protocol.TCP,
                        api.ports[0])
    services = {(s.namespace, s.name): s for s in inventory.services}
    for callback in inventory.api_callbacks:
        for ref in callback.services:
            service = services.get((ref.namespace, ref.name))
            if service is None:
                continue
            for entry in service.ports:
                if entry.port != ref.port:
                    continue
                for pod in facts.selected_pods(service):
                    if pod.host_network:
                        continue
                    wanted = entry.target_port if entry.target_port is not None else entry.port
                    number = wanted if isinstance(wanted, int) else next(
                        (p.port for p in pod.ports if p.name == wanted), 0)
                    if number:
                        yield Check("webhook-backends", IpEndpoint(first),
                                    _pod_endpoint(inventory, pod), entry.protocol, number)


def check_invariants(proposal: Proposal, inventory: Inventory, *,
                     api_server_egress: bool = True) -> list[Finding]:
    """One critical finding per broken connection, its rule naming the invariant."""
    evaluator = PolicyEvaluator(proposal.policies)
    broken: dict[tuple[str, str], Finding] = {}
    for check in _checks(proposal, inventory, api_server_egress):
        verdict = evaluator.check(check.source, check.destination, check.protocol, check.port)
        if verdict.allowed:
            continue
        subject = f"{check.source.label()} -> {check.destination.label()}"
        broken.setdefault((check.invariant, subject), Finding(
            Severity.CRITICAL, f"{INVARIANT_RULE}:{check.invariant}", subject,
            f"the proposal breaks the invariant '{check.invariant}': {subject} "
            f"{check.protocol} {check.port} is denied ({verdict.reason})",
        ))
    return sorted(broken.values(), key=Finding.sort_key)
