"""Cloud detection, exposure through LoadBalancer Services and Ingresses, controllers."""

from __future__ import annotations

from dataclasses import replace

from discover.inventory.model import Ingress, IngressBackend, Service, ServicePort
from discover.synthesis.external import Exposures, detect_cloud, ingress_controllers
from discover.synthesis.options import Cloud
from tests.factories import make_inventory, ref, shop_pods


def _pods_by_workload(pods: list) -> dict:  # type: ignore[type-arg]
    grouped: dict = {}  # type: ignore[type-arg]
    for pod in pods:
        grouped.setdefault(pod.workload, []).append(pod)
    return grouped


def test_cloud_from_provider_id() -> None:
    for provider, cloud in (("gke", Cloud.GKE), ("eks", Cloud.EKS), ("aks", Cloud.AKS),
                            (None, Cloud.NONE)):
        assert detect_cloud(make_inventory(shop_pods(), provider=provider))[0] is cloud


def test_named_target_port_resolves_to_the_pod_port() -> None:
    service = Service("shop", "web", "LoadBalancer", {"app.kubernetes.io/name": "web"},
                      ports=(ServicePort(80, "TCP", "http", "http"),))
    inventory = replace(make_inventory(shop_pods()), services=(service,))
    exposures = Exposures(inventory, _pods_by_workload(list(inventory.pods)))
    (exposure,) = exposures.load_balancers[ref("shop", "web")]
    assert exposure.target_ports == (("TCP", 8080),)
    assert not exposure.preserves_client_ip
    assert ref("shop", "api") not in exposures.load_balancers


def test_ingress_backend_by_port_name() -> None:
    service = Service("shop", "web", "ClusterIP", {"app.kubernetes.io/name": "web"},
                      ports=(ServicePort(80, "TCP", "http", 8080), ServicePort(81, "TCP", "x", 81)))
    ingress = Ingress("shop", "web", "nginx", (IngressBackend("web", "http"),))
    inventory = replace(make_inventory(shop_pods()), services=(service,), ingresses=(ingress,))
    exposures = Exposures(inventory, _pods_by_workload(list(inventory.pods)))
    (exposure,) = exposures.ingresses[ref("shop", "web")]
    assert exposure.target_ports == (("TCP", 8080),) and exposure.ingress == "shop/web"


def test_ingress_controllers_by_image() -> None:
    controllers = ingress_controllers(_pods_by_workload(shop_pods()))
    assert controllers == (ref("ingress-nginx", "ingress-nginx-controller"),)
