"""The cluster's pod and service CIDRs: what an any-IP egress rule must except.

The options win; otherwise the inventory's ranges (`discover.inventory.ranges`), which
say how they were inferred."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from discover.inventory.model import Inventory, IPNetwork
from discover.inventory.ranges import cluster_ranges
from discover.synthesis.options import SynthesisOptions


@dataclass(frozen=True, slots=True)
class ClusterCidrs:
    pod: tuple[IPNetwork, ...]
    service: tuple[IPNetwork, ...]
    notes: tuple[str, ...]  # how they were found when not given

    def excepts(self, version: int) -> list[str]:
        """The `except` list for 0.0.0.0/0 or ::/0: pod and service CIDRs of that family."""
        networks = {net for net in self.pod + self.service if net.version == version}
        return [str(net) for net in collapse(networks)]


def collapse(networks: Iterable[IPNetwork]) -> list[IPNetwork]:
    """Sorted, without networks inside another one of the list."""
    nets = sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen))
    kept: list[IPNetwork] = []
    for net in nets:
        if not any(_within(net, other) for other in kept):
            kept.append(net)
    return kept


def _within(net: IPNetwork, other: IPNetwork) -> bool:
    if isinstance(net, IPv4Network) and isinstance(other, IPv4Network):
        return net.subnet_of(other)
    if isinstance(net, IPv6Network) and isinstance(other, IPv6Network):
        return net.subnet_of(other)
    return False


def cluster_cidrs(inventory: Inventory, options: SynthesisOptions) -> ClusterCidrs:
    ranges = cluster_ranges(inventory)
    notes = list(ranges.notes)
    pod = options.pod_cidrs or ranges.pod_cidrs
    service = options.service_cidrs or ranges.service_ranges
    if not pod or not service:
        notes.append("pod or service CIDR unknown (--pod-cidr, --service-cidr): the any-IP "
                     "rules except only what is known")
    return ClusterCidrs(tuple(collapse(pod)), tuple(collapse(service)), tuple(notes))
