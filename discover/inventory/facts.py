"""Facts about the cluster that every stage asks the same way, and the indexes behind them.

Enrichment (what an IP was), synthesis (who gets which rule) and verification (which
pods a flow meets) all need to know which pods are the cluster DNS, where NodeLocal
DNSCache answers, which pods a label selector matches, and which pod held an address at
a time. Each fact is decided here, once; when two stages decided it on their own, they
disagreed (a kube-system pod labelled `app.kubernetes.io/name=coredns` was DNS for one
stage and not for the other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address

from discover.flows.events import Protocol
from discover.inventory.index import PodIndex
from discover.inventory.model import Inventory, IPAddress, Node, Pod, Service, WorkloadRef

# NodeLocal DNSCache's usual link-local address: pods that use it send their lookups
# here instead of the kube-dns ClusterIP, and its pods (often host-network) answer.
NODELOCAL_DNS = ip_address("169.254.20.10")
NODELOCAL_DNS_LABEL = ("k8s-app", "node-local-dns")

DNS_NAMESPACE = "kube-system"
# A kube-system pod with one of these labels, or running one of these images, or selected
# by a DNS Service, is cluster DNS: kube-dns, CoreDNS (as kubeadm, Helm and RKE2 label
# it) and NodeLocal DNSCache.
DNS_POD_LABELS = (
    ("k8s-app", "kube-dns"),
    ("k8s-app", "coredns"),
    NODELOCAL_DNS_LABEL,
    ("app.kubernetes.io/name", "coredns"),
)
DNS_IMAGE_MARKERS = ("coredns", "kube-dns")
DNS_SERVICE_NAMES = ("kube-dns", "coredns", "rke2-coredns-rke2-coredns")
DNS_SERVICE_APPS = ("kube-dns", "coredns", "node-local-dns")  # values of k8s-app


# The API server: the default/kubernetes Service, whose EndpointSlice holds its real
# addresses (what a NetworkPolicy sees after kube-proxy's DNAT), on or off the nodes.
API_SERVER_SERVICE = ("default", "kubernetes")
# Components that watch the API server all the time, by label or image: cutting them off
# breaks routing (ingress controllers), scraping (Prometheus's service discovery), every
# operator, and cluster DNS (CoreDNS's kubernetes plugin).
API_WATCHER_LABELS = (
    (("app.kubernetes.io/name", "ingress-nginx"), "the ingress-nginx controller"),
    (("app.kubernetes.io/name", "traefik"), "the Traefik ingress controller"),
    (("app.kubernetes.io/name", "prometheus"), "Prometheus (service discovery)"),
    (("app", "prometheus"), "Prometheus (service discovery)"),
    (("app.kubernetes.io/component", "operator"), "an operator"),
    (("control-plane", "controller-manager"), "an operator (controller-manager)"),
)
API_WATCHER_IMAGES = (
    ("ingress-nginx/controller", "the ingress-nginx controller"),
    ("traefik", "the Traefik ingress controller"),
    ("prometheus/prometheus", "Prometheus (service discovery)"),
    ("operator", "an operator"),
    ("cert-manager-controller", "cert-manager"),
    ("external-dns", "external-dns"),
)
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True, slots=True)
class ApiServer:
    """Where the API server answers: `addresses` and `ports` are its endpoints (after
    DNAT), `service_ips` the default/kubernetes ClusterIPs clients dial."""

    addresses: tuple[IPAddress, ...] = ()
    ports: tuple[int, ...] = ()
    service_ips: tuple[IPAddress, ...] = ()
    on_nodes: bool = False  # every endpoint address is a node's (kubeadm, kind, k3s)

    @property
    def known(self) -> bool:
        return bool(self.addresses and self.ports)

    def serves(self, address: IPAddress | None) -> bool:
        return address is not None and (address in self.addresses
                                        or address in self.service_ips)


def find_api_server(inventory: Inventory) -> ApiServer:
    namespace, name = API_SERVER_SERVICE
    service = next((s for s in inventory.services
                    if (s.namespace, s.name) == API_SERVER_SERVICE), None)
    addresses: list[IPAddress] = []
    ports: set[int] = set()
    for piece in inventory.endpoint_slices:
        if piece.namespace != namespace or piece.service_name != name:
            continue
        ports.update(p.port for p in piece.ports if p.protocol == Protocol.TCP)
        for endpoint in piece.endpoints:
            addresses.extend(a for a in endpoint.addresses if a not in addresses)
    if service is not None and not ports:
        # no slice: the Service's targetPort is the endpoint port when it is a number
        ports.update(p.target_port if isinstance(p.target_port, int) else p.port
                     for p in service.ports)
    node_addresses = {a for node in inventory.nodes for a in node.addresses}
    return ApiServer(
        addresses=tuple(sorted(addresses, key=lambda a: (a.version, a))),
        ports=tuple(sorted(ports)),
        service_ips=service.cluster_ips if service is not None else (),
        on_nodes=bool(addresses) and all(a in node_addresses for a in addresses),
    )


def api_watcher_reason(pod: Pod, dns_services: Iterable[Service] = ()) -> str | None:
    """Why this pod keeps a watch on the API server (None: not known to)."""
    if is_dns_pod(pod, dns_services) and not selects((NODELOCAL_DNS_LABEL,), pod.labels):
        return "cluster DNS (CoreDNS's kubernetes plugin)"
    for pair, reason in API_WATCHER_LABELS:
        if selects((pair,), pod.labels):
            return reason
    for marker, reason in API_WATCHER_IMAGES:
        if any(marker in image.rsplit("@", 1)[0] for image in pod.images):
            return reason
    return None


def selects(match_labels: Iterable[tuple[str, str]], labels: Mapping[str, str]) -> bool:
    """`matchLabels` semantics, the only label matcher of the project: every pair is on
    the object with that value; no pair at all selects everything."""
    return all(labels.get(key) == value for key, value in match_labels)


def service_selects(service: Service, pod: Pod) -> bool:
    """The Service sends traffic to `pod`: same namespace and a non-empty selector that
    matches (a Service without selector has hand-made EndpointSlices instead)."""
    return (bool(service.selector) and service.namespace == pod.namespace
            and selects((service.selector or {}).items(), pod.labels))


def is_dns_service(service: Service) -> bool:
    return service.namespace == DNS_NAMESPACE and (
        service.name in DNS_SERVICE_NAMES or service.labels.get("k8s-app") in DNS_SERVICE_APPS)


def is_dns_pod(pod: Pod, dns_services: Iterable[Service] = ()) -> bool:
    """The one rule for "this pod is the cluster DNS" (kube-dns, CoreDNS or NodeLocal
    DNSCache): in kube-system, and labelled, imaged or selected as such."""
    if pod.namespace != DNS_NAMESPACE:
        return False
    return (
        any(selects((pair,), pod.labels) for pair in DNS_POD_LABELS)
        or any(marker in image for image in pod.images for marker in DNS_IMAGE_MARKERS)
        or any(service_selects(service, pod) for service in dns_services)
    )


class ClusterFacts:
    """The inventory's indexes, built once per inventory (see `facts_for`) and asked by
    enrichment, synthesis and verification alike."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.pods = PodIndex(inventory.pods)
        self.pods_by_workload: dict[WorkloadRef, list[Pod]] = {}
        self.pods_by_name: dict[tuple[str, str], Pod] = {}
        self.host_pods: dict[IPAddress, list[Pod]] = {}
        for pod in inventory.pods:
            self.pods_by_workload.setdefault(pod.workload, []).append(pod)
            self.pods_by_name[(pod.namespace, pod.name)] = pod
            if pod.host_network:
                for ip in pod.ips:
                    self.host_pods.setdefault(ip, []).append(pod)
        self.nodes_by_ip: dict[IPAddress, Node] = {
            ip: node for node in inventory.nodes for ip in node.addresses}
        self.dns_services = tuple(s for s in inventory.services if is_dns_service(s))
        self.dns_workloads = frozenset(
            p.workload for p in inventory.pods if is_dns_pod(p, self.dns_services))
        self.api_server = find_api_server(inventory)
        self.api_watchers: dict[WorkloadRef, str] = {}
        for pod in inventory.pods:
            reason = api_watcher_reason(pod, self.dns_services)
            if reason is not None:
                self.api_watchers.setdefault(pod.workload, reason)
        self.node_addresses = tuple(sorted(self.nodes_by_ip, key=lambda a: (a.version, a)))
        self.nodelocal_pods = tuple(
            p for p in inventory.pods if selects((NODELOCAL_DNS_LABEL,), p.labels))
        self._selected: dict[tuple[str, str], list[Pod]] = {}

    def is_dns_service(self, service: Service) -> bool:
        return service in self.dns_services

    def selected_pods(self, service: Service) -> list[Pod]:
        """Pods with an address that the Service's selector matches (cached: every flow to
        a ClusterIP asks)."""
        key = (service.namespace, service.name)
        found = self._selected.get(key)
        if found is None:
            found = [p for p in self.inventory.pods if p.namespace == service.namespace
                     and p.ips and selects((service.selector or {}).items(), p.labels)]
            self._selected[key] = found
        return found

    def host_network_only(self, workload: WorkloadRef) -> bool:
        """Every known pod of the workload runs on its node's network (no podSelector
        reaches it: its traffic carries the node's address)."""
        pods = self.pods_by_workload.get(workload, [])
        return bool(pods) and all(pod.host_network for pod in pods)


# One inventory is analysed by several stages in a row (graph, synthesis, verification):
# the last inventory's facts are kept so each stage asks the same indexes, built once.
# An Inventory is frozen, so the same object always has the same facts.
_last: tuple[Inventory, ClusterFacts] | None = None


def facts_for(inventory: Inventory) -> ClusterFacts:
    global _last
    if _last is None or _last[0] is not inventory:
        _last = (inventory, ClusterFacts(inventory))
    return _last[1]
