"""The cluster's address ranges: pod CIDRs and the service range, known or inferred.

Nodes carry their pod CIDRs (`spec.podCIDRs`). The service range is not in any object the
API gives a reader, so it is inferred from the ClusterIPs the inventory holds: when all of
them fall in a distribution's default range (10.96.0.0/12 kubeadm/kind/minikube,
10.0.0.0/16 AKS, 172.20.0.0/16 and 10.100.0.0/16 EKS, 34.118.224.0/20 GKE) that range,
else the /16 (IPv6: the /108) around each. Pod IPs of nodes without podCIDRs give /16s
(IPv6: /108s) the same way. Every inference is written down in `notes`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from discover.inventory.model import Inventory, IPAddress, IPNetwork

DEFAULT_SERVICE_RANGES: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(c)
    for c in ("10.96.0.0/12", "10.0.0.0/16", "172.20.0.0/16", "10.100.0.0/16",
              "34.118.224.0/20", "fd00:10:96::/108")
)


@dataclass(frozen=True, slots=True)
class ClusterRanges:
    pod_cidrs: tuple[IPNetwork, ...]
    service_ranges: tuple[IPNetwork, ...]
    notes: tuple[str, ...]

    def in_pod_range(self, ip: IPAddress) -> IPNetwork | None:
        return next((n for n in self.pod_cidrs if ip in n), None)

    def in_service_range(self, ip: IPAddress) -> IPNetwork | None:
        return next((n for n in self.service_ranges if ip in n), None)


def _around(ip: IPAddress, v6_prefix: int) -> IPNetwork:
    prefix = 16 if ip.version == 4 else v6_prefix
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)


def _cover(ips: Iterable[IPAddress], defaults: tuple[IPNetwork, ...],
           v6_prefix: int) -> list[IPNetwork]:
    nets: list[IPNetwork] = []
    for ip in ips:
        if any(ip in n for n in nets):
            continue
        nets.append(next((d for d in defaults if ip in d), None) or _around(ip, v6_prefix))
    return sorted(nets, key=lambda n: (n.version, n))


def cluster_ranges(inventory: Inventory) -> ClusterRanges:
    notes: list[str] = []
    pod_cidrs = sorted({c for node in inventory.nodes for c in node.pod_cidrs},
                       key=lambda n: (n.version, n))
    if not pod_cidrs:
        pod_ips = [ip for pod in inventory.pods if not pod.host_network for ip in pod.ips]
        node_ips = {ip for node in inventory.nodes for ip in node.addresses}
        # The note's wording is in other parts' golden files: change both together.
        inferred = _cover((ip for ip in pod_ips if ip not in node_ips), (), 108)
        if inferred:
            notes.append("no node podCIDRs in the inventory: pod range taken as the /16 "
                         "(IPv6 /108) around the pod IPs: "
                         + ", ".join(str(n) for n in inferred))
        pod_cidrs = inferred
    cluster_ips = sorted({ip for s in inventory.services for ip in s.cluster_ips},
                         key=lambda a: (a.version, a))
    service_ranges = _cover(cluster_ips, DEFAULT_SERVICE_RANGES, 108)
    if service_ranges:
        notes.append("service range inferred from the ClusterIPs (a distribution default "
                     "range when all fall in one, else the /16 around them): "
                     + ", ".join(str(n) for n in service_ranges))
    return ClusterRanges(tuple(pod_cidrs), tuple(service_ranges), tuple(notes))
