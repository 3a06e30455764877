"""Enrichment: an IP address seen at a time -> what it was (pod and workload, Service
backends on the targetPort, node, load balancer, cluster DNS, or an external address).

Addresses are asked as IPv4 when they come IPv4-mapped (::ffff:10.244.0.5). Order of
questions for an address: a pod's (by time, see `inventory/index.py`), a Service
ClusterIP (destinations expand to the backing workloads on the targetPort), a node's
(kubelet probes, host-network pods), a load balancer's, NodeLocal DNSCache's, inside the
cluster's ranges without an object, else external with the name this client resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from discover.enrichment.dns_names import NameIndex
from discover.enrichment.peers import (
    ClusterUnknownPeer,
    EarlierPodPeer,
    ExternalPeer,
    LoadBalancerPeer,
    NodePeer,
    Peer,
    ServiceRef,
    WorkloadPeer,
)
from discover.flows.events import IPAddress, Protocol
from discover.flows.flowtable import DnsRow
from discover.inventory.facts import NODELOCAL_DNS, facts_for
from discover.inventory.index import released, unmapped
from discover.inventory.model import (
    ContainerPort,
    EndpointSlice,
    Inventory,
    Node,
    Pod,
    Service,
    ServicePort,
)
from discover.inventory.ranges import cluster_ranges

Resolved = tuple[Peer, int, str | None]


def declared_port(pod: Pod, port: int, protocol: Protocol) -> ContainerPort | None:
    return next((c for c in pod.ports if c.port == port and c.protocol == protocol), None)


class Resolver:
    def __init__(self, inventory: Inventory, dns: Sequence[DnsRow] | None = None) -> None:
        self.inventory = inventory
        self.facts = facts_for(inventory)
        self.pods = self.facts.pods
        self.names = NameIndex(dns)
        self.ranges = cluster_ranges(inventory)
        self._services: dict[IPAddress, Service] = {
            ip: s for s in inventory.services for ip in s.cluster_ips}
        self._lb: dict[IPAddress, Service] = {
            ip: s for s in inventory.services for ip in (*s.load_balancer_ips, *s.external_ips)}
        self._nodes = self.facts.nodes_by_ip
        self._host_pods = self.facts.host_pods
        self._slices: dict[tuple[str, str], list[EndpointSlice]] = {}
        for s in inventory.endpoint_slices:
            if s.service_name:
                self._slices.setdefault((s.namespace, s.service_name), []).append(s)
        self._dns_workloads = self.facts.dns_workloads

    @property
    def notes(self) -> tuple[str, ...]:
        return self.ranges.notes

    # ---------------------------------------------------------------- sources

    def resolve_source(self, ip: IPAddress, when: datetime) -> Peer:
        return self.resolve_sources(ip, when)[0]

    def resolve_sources(self, ip: IPAddress, when: datetime) -> list[Peer]:
        """Usually one peer; every live pod that claims the address when the inventory has
        several and no creation time tells which one (see `PodIndex.conflicts`)."""
        ip = unmapped(ip)
        pod_peers = self._pod_peers(ip, when)
        if pod_peers:
            return pod_peers
        return [self._non_pod_source(ip, when)]

    def _non_pod_source(self, ip: IPAddress, when: datetime) -> Peer:
        node = self._nodes.get(ip)
        if node is not None or ip in self._host_pods:
            return self._node_peer(ip, node, None)
        service = self._services.get(ip)
        if service is not None:
            return ClusterUnknownPeer(
                ip, note=f"ClusterIP of Service {service.namespace}/{service.name} as a source")
        lb = self._lb.get(ip)
        if lb is not None:
            return LoadBalancerPeer(
                ip, note=f"load balancer {ip} of Service {lb.namespace}/{lb.name}")
        return self._outside(ip, when, client=None)

    # ----------------------------------------------------------- destinations

    def resolve_destination(self, ip: IPAddress, protocol: Protocol, port: int, when: datetime,
                            client_ip: IPAddress | None = None) -> list[Resolved]:
        ip = unmapped(ip)
        client_ip = unmapped(client_ip) if client_ip is not None else None
        pod_peers = self._pod_peers(ip, when)
        if pod_peers:
            found: list[Resolved] = []
            for pod_peer in pod_peers:
                pod = self.pod_for(pod_peer)
                declared = declared_port(pod, port, protocol) if pod else None
                found.append((pod_peer, port, declared.name if declared else None))
            return found
        service = self._services.get(ip)
        if service is not None:
            return self._via_service(service, ip, protocol, port, when)
        node = self._nodes.get(ip)
        if node is not None or ip in self._host_pods:
            peer = self._node_peer(ip, node, (protocol, port))
            return [(peer, port, self._host_port_name(ip, protocol, port))]
        lb = self._lb.get(ip)
        if lb is not None:
            return self._via_load_balancer(lb, ip, protocol, port, when)
        if ip == NODELOCAL_DNS:
            return [(self._nodelocal_peer(client_ip, when), port, None)]
        return [(self._outside(ip, when, client=client_ip), port, None)]

    def instants(self, ip: IPAddress, first: datetime, last: datetime) -> list[datetime]:
        """When to resolve `ip` so that traffic seen from `first` to `last` meets every pod
        that held it meanwhile: `first`, `last` and each holding's start in between (a pod
        that had the IP only in the middle of a long row is an owner of the row too)."""
        starts = {h.start for h in self.pods.holdings(unmapped(ip))
                  if h.start is not None and first < h.start < last}
        return sorted({first, last} | starts)

    def pod_for(self, peer: Peer) -> Pod | None:
        """The pod behind a workload peer (or the pod serving a node address): the very pod
        when the peer names it, else the newest pod of its workload."""
        if not isinstance(peer, WorkloadPeer | NodePeer) or peer.workload is None:
            return None
        if peer.pod_name:
            found = self.facts.pods_by_name.get((peer.workload.namespace, peer.pod_name))
            if found is not None:
                return found
        candidates = self.facts.pods_by_workload.get(peer.workload, [])
        if not candidates:
            return None
        return max(candidates, key=lambda p: (released(p) is None, p.created or _MIN, p.name))

    # ---------------------------------------------------------------- helpers

    def _workload_peer(self, pod: Pod, ip: IPAddress | None, *,
                       with_pod: bool = True) -> WorkloadPeer:
        return WorkloadPeer(pod.workload, pod_name=pod.name if with_pod else None, ip=ip,
                            node_name=pod.node_name,
                            is_cluster_dns=pod.workload in self._dns_workloads)

    def _pod_peers(self, ip: IPAddress, when: datetime) -> list[Peer]:
        found = self.pods.lookup(ip, when)
        if found is None:
            return []
        if found.pod is not None:
            return [self._workload_peer(pod, ip) for pod in (found.pod, *found.also)]
        return [EarlierPodPeer(ip, note=found.note)]

    def _node_peer(self, ip: IPAddress, node: Node | None,
                   serving: tuple[Protocol, int] | None) -> NodePeer:
        name = node.name if node else None
        host_pods = self._host_pods.get(ip, [])
        if serving is not None:
            protocol, port = serving
            server = sorted((p for p in host_pods if declared_port(p, port, protocol)),
                            key=lambda p: p.name)
            if server:
                pod = server[0]
                return NodePeer(ip, name or pod.node_name, pod.workload, pod.name,
                                is_cluster_dns=pod.workload in self._dns_workloads,
                                note=f"host-network pod {pod.namespace}/{pod.name} serves "
                                     f"{port}/{protocol}")
        if name is None and host_pods:
            name = host_pods[0].node_name
        return NodePeer(ip, name)

    def _host_port_name(self, ip: IPAddress, protocol: Protocol, port: int) -> str | None:
        for pod in sorted(self._host_pods.get(ip, []), key=lambda p: p.name):
            declared = declared_port(pod, port, protocol)
            if declared is not None:
                return declared.name
        return None

    def _nodelocal_peer(self, client_ip: IPAddress | None, when: datetime) -> Peer:
        client_node = None
        if client_ip is not None:
            found = self.pods.lookup(client_ip, when)
            client_node = found.pod.node_name if found and found.pod else None
        cache = sorted(self.facts.nodelocal_pods,
                       key=lambda p: (p.node_name != client_node, p.name))
        if cache:
            pod = cache[0]
            return NodePeer(NODELOCAL_DNS, client_node or pod.node_name, pod.workload,
                            pod.name, is_cluster_dns=True, note="NodeLocal DNSCache")
        return ClusterUnknownPeer(
            NODELOCAL_DNS, is_cluster_dns=True,
            note="NodeLocal DNSCache address (its pods are not in the inventory)")

    def _outside(self, ip: IPAddress, when: datetime, client: IPAddress | None) -> Peer:
        pod_range = self.ranges.in_pod_range(ip)
        if pod_range is not None:
            return ClusterUnknownPeer(
                ip, note=f"in pod range {pod_range}, no pod in the inventory holds it")
        service_range = self.ranges.in_service_range(ip)
        if service_range is not None:
            return ClusterUnknownPeer(
                ip, note=f"in service range {service_range}, no Service has this ClusterIP")
        match = self.names.lookup(client, ip, when)
        if match is None:
            return ExternalPeer(ip)
        return ExternalPeer(ip, match.name, match.cname_chain, note=match.note)

    def _via_load_balancer(self, lb: Service, ip: IPAddress, protocol: Protocol, port: int,
                           when: datetime) -> list[Resolved]:
        """Like a ClusterIP: the load balancer (or kube-proxy for in-cluster clients) DNATs to
        the backends, so a capture sees the same connection to the LB IP and to the pod,
        and the graph must count it once. Without known backends the LB itself is the
        peer."""
        label = f"load balancer {ip} of Service {lb.namespace}/{lb.name}"
        expanded = [r for r in self._via_service(lb, ip, protocol, port, when)
                    if not isinstance(r[0], ClusterUnknownPeer)]
        if expanded:
            return [(replace(peer, note="; ".join(n for n in (label, peer.note) if n)), target,
                     name) for peer, target, name in expanded]
        return [(LoadBalancerPeer(ip, note=label), port, None)]

    def _via_service(self, service: Service, ip: IPAddress, protocol: Protocol, port: int,
                     when: datetime) -> list[Resolved]:
        sport = _service_port(service, protocol, port)
        label = f"Service {service.namespace}/{service.name}"
        is_dns = self.facts.is_dns_service(service)
        if sport is None:
            return [(ClusterUnknownPeer(ip, is_cluster_dns=is_dns,
                                        note=f"{label} has no port {port}/{protocol}"),
                     port, None)]
        backends = self._backends(service, sport, protocol, when)
        if not backends:
            ref = ServiceRef(service.namespace, service.name, port,
                             _numeric(sport.target_port, port))
            return [(ClusterUnknownPeer(ip, is_cluster_dns=is_dns, via_service=ref,
                                        note=f"{label} had no backend known to the inventory"),
                     port, None)]
        out: dict[tuple[Peer, int], str | None] = {}
        for peer, target, name in backends:
            ref = ServiceRef(service.namespace, service.name, port, target, name)
            if isinstance(peer, WorkloadPeer):  # the workload, not one of its pods
                peer = replace(peer, pod_name=None, ip=None, node_name=None)
            peer = replace(peer, is_cluster_dns=peer.is_cluster_dns or is_dns, via_service=ref)
            out.setdefault((peer, target), name)
        return sorted(((p, t, n) for (p, t), n in out.items()),
                      key=lambda r: (r[0].label(), r[1]))

    def _backends(self, service: Service, sport: ServicePort, protocol: Protocol,
                  when: datetime) -> list[Resolved]:
        """(peer, target port, port name) of every backend at `when`.

        With a selector: the pods it matched that were alive then. When none was (the
        inventory was taken after a rollout), the workloads it matches now, with a note:
        the Service, not the pod IP, says where the traffic went. Without a selector (or
        no pod matches at all): the EndpointSlices' addresses, resolved at `when`."""
        if service.selector:
            matched = self.facts.selected_pods(service)
            alive = [p for p in matched if self._held_at(p, when)]
            found: list[Resolved] = []
            for pod in alive or matched:
                target = _target_for(pod, sport, protocol)
                if target is None:
                    continue
                peer = self._workload_peer(pod, None, with_pod=False)
                if not alive:
                    peer = replace(peer, note="no backend pod of the time is in the "
                                              "inventory; workload from the Service's selector")
                found.append((peer, *target))
            if found:
                return found
        resolved: list[Resolved] = []
        for slice_ in self._slices.get((service.namespace, service.name), []):
            eport = next((p for p in slice_.ports if p.protocol == protocol
                          and p.name == sport.name), None)
            if eport is None:
                continue
            for endpoint in slice_.endpoints:
                for address in endpoint.addresses:
                    resolved.extend(self.resolve_destination(address, protocol, eport.port, when))
        return resolved

    def _held_at(self, pod: Pod, when: datetime) -> bool:
        if pod.host_network:
            return _alive(pod, when)
        return any(h.pod is pod and h.contains(when)
                   for ip in pod.ips for h in self.pods.holdings(ip))


_MIN = datetime.min.replace(tzinfo=UTC)


def _alive(pod: Pod, when: datetime) -> bool:
    end = released(pod)  # a finished host-network Job pod serves nothing any more
    return (pod.created is None or pod.created <= when) and (end is None or when < end)


def _numeric(target: int | str | None, port: int) -> int:
    return target if isinstance(target, int) else port


def _service_port(service: Service, protocol: Protocol, port: int) -> ServicePort | None:
    return next((p for p in service.ports if p.port == port and p.protocol == protocol), None)


def _target_for(pod: Pod, sport: ServicePort, protocol: Protocol) -> tuple[int, str | None] | None:
    """The port `pod` listens on for `sport`, and its declared name; None when a named
    targetPort is not declared by this pod (the Service sends it nothing)."""
    target = sport.target_port
    if isinstance(target, str):
        named = next((c for c in pod.ports if c.name == target and c.protocol == protocol), None)
        return (named.port, named.name) if named else None
    number = target if isinstance(target, int) else sport.port
    declared = declared_port(pod, number, protocol)
    return number, declared.name if declared else None

