"""What an any-IP egress rule must except: the cluster's pod and service CIDRs, the node
addresses (kubelet, API server on a node), and link-local ranges (cloud metadata servers
hand out credentials on 80/443, the ports an any-IP rule usually opens).

The options win for pod and service CIDRs; otherwise the inventory's ranges
(`discover.inventory.ranges`), which say how they were inferred."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, collapse_addresses, ip_network

from discover.inventory.model import Inventory, IPAddress, IPNetwork
from discover.inventory.ranges import cluster_ranges
from discover.synthesis.options import SynthesisOptions

# Always excepted (unless a name resolved into them): IPv4 link-local with the metadata
# server 169.254.169.254 of AWS, GCP and Azure; IPv6 link-local, and AWS's IPv6 metadata
# address. NodeLocal DNSCache (169.254.20.10) gets its own DNS rule, untouched by this.
LINK_LOCAL = (
    ip_network("169.254.0.0/16"),
    ip_network("fe80::/10"),
    ip_network("fd00:ec2::254/128"),
)


@dataclass(frozen=True, slots=True)
class AnyIpExcepts:
    """The `except` list of one any-IP ipBlock, and the always-excepted ranges left open
    because a name resolved into them."""

    excepts: tuple[IPNetwork, ...]
    kept_open: tuple[IPNetwork, ...]
    summary: str  # what is excepted, for the reviewer

    def as_list(self) -> list[str]:
        return [str(net) for net in self.excepts]


@dataclass(frozen=True, slots=True)
class ClusterCidrs:
    pod: tuple[IPNetwork, ...]
    service: tuple[IPNetwork, ...]
    notes: tuple[str, ...]  # how they were found when not given
    nodes: tuple[IPNetwork, ...] = ()  # every node address, /32 or /128
    api_server: tuple[IPNetwork, ...] = ()  # default/kubernetes endpoints (managed masters)

    def excepts(self, version: int, reached: Iterable[IPAddress] = ()) -> AnyIpExcepts:
        """The `except` list for 0.0.0.0/0 or ::/0: pod and service CIDRs, node
        addresses and link-local ranges of that family. A node address or link-local
        range that contains an address in `reached` (what a name resolved to) stays open:
        excepting it would block the flow the rule is for."""
        addresses = [a for a in reached if a.version == version]
        guarded = [net for net in (*LINK_LOCAL, *self.nodes, *self.api_server)
                   if net.version == version]
        kept_open = [net for net in guarded if any(a in net for a in addresses)]
        networks = [net for net in self.pod + self.service if net.version == version]
        networks += [net for net in guarded if net not in kept_open]
        # an except must be a strict subset of the cidr: a /0 "pod CIDR" can't be one
        excepts = strict_collapse(net for net in networks if net.prefixlen > 0)
        return AnyIpExcepts(tuple(excepts), tuple(kept_open),
                            self._summary(version, kept_open))

    def _summary(self, version: int, kept_open: list[IPNetwork]) -> str:
        parts = []
        if any(net.version == version for net in self.pod + self.service):
            parts.append("the pod and service CIDRs")
        nodes = [net for net in self.nodes if net.version == version and net not in kept_open]
        if nodes:
            parts.append(f"{len(nodes)} node address{'es' if len(nodes) > 1 else ''}")
        masters = [net for net in self.api_server
                   if net.version == version and net not in kept_open and net not in nodes]
        if masters:
            parts.append("the API server endpoint" + ("s " if len(masters) > 1 else " ")
                         + ", ".join(str(net) for net in masters))
        links = [str(net) for net in LINK_LOCAL if net.version == version
                 and net not in kept_open]
        if links:
            parts.append("link-local and cloud metadata " + ", ".join(links))
        return ", ".join(parts) if parts else "nothing"


def strict_collapse(networks: Iterable[IPNetwork]) -> list[IPNetwork]:
    """Sorted and merged (the same addresses, fewer entries) per family."""
    nets = list(networks)
    v4 = [net for net in nets if isinstance(net, IPv4Network)]
    v6 = [net for net in nets if isinstance(net, IPv6Network)]
    return [*collapse_addresses(v4), *collapse_addresses(v6)]


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
    nodes = {ip_network(address) for node in inventory.nodes for address in node.addresses}
    # the API server's own addresses, which a managed control plane keeps off the nodes
    masters = {
        ip_network(address)
        for slice_ in inventory.endpoint_slices
        if slice_.namespace == "default" and slice_.service_name == "kubernetes"
        for endpoint in slice_.endpoints for address in endpoint.addresses
    }
    return ClusterCidrs(tuple(collapse(pod)), tuple(collapse(service)), tuple(notes),
                        tuple(collapse(nodes)), tuple(collapse(masters)))
