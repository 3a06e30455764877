"""Who may reach a workload from outside the cluster: LoadBalancer Services with the
provider's ranges, Ingress objects through their controller's pods, the cloud itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_network

from discover.flows.events import Protocol
from discover.inventory.facts import service_selects
from discover.inventory.model import Inventory, IPNetwork, Pod, Service, WorkloadRef
from discover.synthesis.options import Cloud

# Sources of a cloud load balancer as the backend pods see them: a workload behind a
# LoadBalancer Service accepts only these (and preserved client addresses), never any IP.
PROVIDER_RANGES: dict[Cloud, tuple[IPNetwork, ...]] = {
    # Google Front Ends (proxies) and health checks
    Cloud.GKE: (ip_network("35.191.0.0/16"), ip_network("130.211.0.0/22")),
    # Azure's load balancer health probe (the virtual public IP)
    Cloud.AKS: (ip_network("168.63.129.16/32"),),
    # AWS: the VPC subnets of the load balancer, which only the user knows (--aws-vpc-cidr)
    Cloud.EKS: (),
    Cloud.NONE: (),
}

PROVIDER_PREFIXES = {"gce://": Cloud.GKE, "aws://": Cloud.EKS, "azure://": Cloud.AKS}

# Image or name fragments of Ingress controllers (pods that proxy Ingress traffic).
INGRESS_CONTROLLER_MARKERS = (
    "ingress-nginx",
    "nginx-ingress",
    "traefik",
    "haproxy-ingress",
    "kubernetes-ingress",
    "contour",
    "kong",
    "skipper",
    "emissary",
    "ambassador",
    "istio-ingressgateway",
)


def detect_cloud(inventory: Inventory) -> tuple[Cloud, str]:
    """The provider most nodes' providerID names, and how that was decided."""
    counts = Counter(
        cloud
        for node in inventory.nodes
        for prefix, cloud in PROVIDER_PREFIXES.items()
        if node.provider_id and node.provider_id.startswith(prefix)
    )
    if not counts:
        return Cloud.NONE, "no node providerID names GKE, EKS or AKS"
    cloud, count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0]
    how = f"{count} of {len(inventory.nodes)} nodes have a {cloud.value} providerID"
    return cloud, how


@dataclass(frozen=True, slots=True)
class LoadBalancerExposure:
    service: Service
    target_ports: tuple[tuple[Protocol, int], ...]  # (protocol, pod port)

    @property
    def preserves_client_ip(self) -> bool:
        return self.service.external_traffic_policy == "Local"


@dataclass(frozen=True, slots=True)
class IngressExposure:
    ingress: str  # "ns/name"
    service: Service
    target_ports: tuple[tuple[Protocol, int], ...]


def _target_ports(service: Service, pods: list[Pod], port_ref: int | str | None = None
                   ) -> tuple[tuple[Protocol, int], ...]:
    """The pod ports behind the Service's ports (all, or the one `port_ref` names)."""
    found: set[tuple[Protocol, int]] = set()
    for service_port in service.ports:
        if port_ref is not None and port_ref not in (service_port.port, service_port.name):
            continue
        target = service_port.target_port
        if target is None:
            found.add((service_port.protocol, service_port.port))
        elif isinstance(target, int):
            found.add((service_port.protocol, target))
        else:
            for pod in pods:
                for declared in pod.ports:
                    if declared.name == target and declared.protocol == service_port.protocol:
                        found.add((declared.protocol, declared.port))
    return tuple(sorted(found))


class Exposures:
    """LoadBalancer and Ingress exposure of every workload, computed once."""

    def __init__(self, inventory: Inventory, pods_by_workload: Mapping[WorkloadRef, list[Pod]]
                 ) -> None:
        self.load_balancers: dict[WorkloadRef, list[LoadBalancerExposure]] = {}
        self.ingresses: dict[WorkloadRef, list[IngressExposure]] = {}
        services = {(s.namespace, s.name): s for s in inventory.services}
        for workload, pods in sorted(pods_by_workload.items()):
            live = [pod for pod in pods if not pod.host_network]
            for service in inventory.services:
                if not live or not service_selects(service, live[0]):
                    continue
                if service.type == "LoadBalancer":
                    self.load_balancers.setdefault(workload, []).append(
                        LoadBalancerExposure(service, _target_ports(service, live))
                    )
            for ingress in inventory.ingresses:
                for backend in ingress.backends:
                    backing = services.get((ingress.namespace, backend.service_name))
                    if backing is None or not live or not service_selects(backing, live[0]):
                        continue
                    self.ingresses.setdefault(workload, []).append(
                        IngressExposure(
                            f"{ingress.namespace}/{ingress.name}",
                            backing,
                            _target_ports(backing, live, backend.port),
                        )
                    )
        self.controllers = ingress_controllers(pods_by_workload)

    def load_balancer_ports(self, workload: WorkloadRef) -> dict[tuple[Protocol, int],
                                                                 LoadBalancerExposure]:
        return {
            port: exposure
            for exposure in self.load_balancers.get(workload, [])
            for port in exposure.target_ports
        }


def ingress_controllers(pods_by_workload: Mapping[WorkloadRef, list[Pod]]
                        ) -> tuple[WorkloadRef, ...]:
    """Workloads whose pods run an Ingress controller (by image or identity labels)."""
    found = []
    for workload, pods in pods_by_workload.items():
        texts = [workload.name] + [image for pod in pods for image in pod.images]
        texts += [
            pod.labels.get(key, "")
            for pod in pods
            for key in ("app.kubernetes.io/name", "app", "k8s-app")
        ]
        if any(marker in text.lower() for text in texts for marker in INGRESS_CONTROLLER_MARKERS
               if text):
            found.append(workload)
    return tuple(sorted(found))
