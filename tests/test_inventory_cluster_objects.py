"""Webhook configurations, APIServices, RBAC bindings, the DNS ConfigMap, and a pod's token
and probes: from kubectl JSON into the inventory, and back out through `dump`."""

from __future__ import annotations

import json
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from discover.inventory.cluster_objects import parse_dns_config_map
from discover.inventory.dump import dump_inventory
from discover.inventory.files import load_inventory_files
from discover.inventory.model import ApiCallback, CalledService, ProbePort, RoleBinding

ip = ip_address


def corefile(text: str, name: str = "coredns") -> dict[str, Any]:
    return {"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"namespace": "kube-system", "name": name},
            "data": {"Corefile": text}}


@pytest.mark.parametrize(("text", "upstreams", "ports", "resolv"), [
    (".:53 {\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n}\n",
     (), (), True),
    (".:53 {\n    forward . 192.0.2.53 198.51.100.53\n}\n",
     (ip("192.0.2.53"), ip("198.51.100.53")), (53,), False),
    (".:53 {\n    forward . tls://203.0.113.1 dns://192.0.2.9:5353\n}\n",
     (ip("203.0.113.1"), ip("192.0.2.9")), (853, 5353), False),
    (".:53 {\n    forward . [2001:db8::53]:53 /etc/resolv.conf\n}\n",
     (ip("2001:db8::53"),), (53,), True),
    ("example.org:53 {\n    forward example.org 192.0.2.7\n}\n"
     ".:53 {\n    forward . __PILLAR__UPSTREAM__SERVERS__\n}\n",
     (ip("192.0.2.7"),), (53,), False),
    ("# forward . 192.0.2.1 (commented out)\n.:53 {\n    cache 30\n}\n", (), (), False),
])
def test_corefile_forward_targets(text: str, upstreams: tuple[object, ...],
                                  ports: tuple[int, ...], resolv: bool) -> None:
    forwarding = parse_dns_config_map(corefile(text))
    assert forwarding.config_map == "kube-system/coredns"
    assert forwarding.upstreams == upstreams
    assert forwarding.ports == ports
    assert forwarding.to_resolv_conf is resolv


CLUSTER: list[dict[str, Any]] = [
    {"kind": "ValidatingWebhookConfiguration",
     "apiVersion": "admissionregistration.k8s.io/v1", "metadata": {"name": "policy-hooks"},
     "webhooks": [
         {"name": "a.example.com", "clientConfig": {"service": {
             "namespace": "gatekeeper", "name": "webhook", "port": 8443}}},
         {"name": "b.example.com", "clientConfig": {"service": {
             "namespace": "gatekeeper", "name": "webhook"}}},
         {"name": "c.example.com", "clientConfig": {"url": "https://hooks.example.com/x"}},
     ]},
    {"kind": "APIService", "apiVersion": "apiregistration.k8s.io/v1",
     "metadata": {"name": "v1beta1.metrics.k8s.io"},
     "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}}},
    {"kind": "APIService", "apiVersion": "apiregistration.k8s.io/v1",
     "metadata": {"name": "v1.apps"}, "spec": {}},
    {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
     "metadata": {"name": "operator"},
     "roleRef": {"kind": "ClusterRole", "name": "operator"},
     "subjects": [{"kind": "ServiceAccount", "namespace": "ops", "name": "operator"},
                  {"kind": "Group", "name": "system:authenticated"}]},
    {"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
     "metadata": {"namespace": "shop", "name": "reader"},
     "roleRef": {"kind": "Role", "name": "config-reader"},
     "subjects": [{"kind": "ServiceAccount", "name": "cart"}]},
    corefile(".:53 {\n    forward . 192.0.2.53\n}\n"),
    {"kind": "ConfigMap", "apiVersion": "v1",
     "metadata": {"namespace": "shop", "name": "settings"}, "data": {"Corefile": "x"}},
    {"kind": "Pod", "apiVersion": "v1",
     "metadata": {"namespace": "shop", "name": "cart-0", "uid": "u1"},
     "spec": {"serviceAccountName": "cart", "automountServiceAccountToken": False,
              "containers": [{
                  "name": "app", "ports": [{"name": "http", "containerPort": 8080}],
                  "livenessProbe": {"httpGet": {"port": "http", "path": "/healthz"}},
                  "readinessProbe": {"tcpSocket": {"port": 8081}},
                  "startupProbe": {"grpc": {"port": 9090}},
              }]},
     "status": {"podIP": "10.244.0.9"}},
]


def test_cluster_kinds_load_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"kind": "List", "items": CLUSTER}))
    inventory = load_inventory_files([path])
    assert inventory.api_callbacks == (
        ApiCallback("APIService", "v1.apps", ()),
        ApiCallback("APIService", "v1beta1.metrics.k8s.io",
                    (CalledService("kube-system", "metrics-server", 443),)),
        ApiCallback("ValidatingWebhookConfiguration", "policy-hooks",
                    (CalledService("gatekeeper", "webhook", 443),
                     CalledService("gatekeeper", "webhook", 8443))),
    )
    assert inventory.role_bindings == (
        RoleBinding(None, "operator", "ClusterRole/operator", (("ops", "operator"),),
                    ("system:authenticated",)),
        RoleBinding("shop", "reader", "Role/config-reader", (("shop", "cart"),)),
    )
    assert inventory.has_rbac
    assert [d.upstreams for d in inventory.dns_forwarding] == [(ip("192.0.2.53"),)]
    assert any("ConfigMap" in note for note in inventory.notes)  # shop/settings ignored
    (pod,) = inventory.pods
    assert (pod.service_account, pod.token_mounted) == ("cart", False)
    assert pod.probes == (ProbePort("liveness", 8080, "app"), ProbePort("readiness", 8081, "app"),
                          ProbePort("startup", 9090, "app"))

    dump_inventory(inventory, tmp_path / "dump.json")
    back = load_inventory_files([tmp_path / "dump.json"])
    assert back.api_callbacks == inventory.api_callbacks
    assert back.role_bindings == inventory.role_bindings
    assert back.has_rbac
    assert back.dns_forwarding == inventory.dns_forwarding
    assert back.pods == inventory.pods


def test_a_bad_webhook_is_skipped_with_a_note(tmp_path: Path) -> None:
    bad = {"kind": "MutatingWebhookConfiguration", "metadata": {"name": "broken"},
           "webhooks": [{"clientConfig": {"service": {"name": "no-namespace"}}}]}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"kind": "List", "items": [bad, CLUSTER[1]]}))
    inventory = load_inventory_files([path])
    assert [c.name for c in inventory.api_callbacks] == ["v1beta1.metrics.k8s.io"]
    assert any("items[0]" in n and "webhooks[0].clientConfig.service" in n
               for n in inventory.notes)


def test_default_token_is_mounted_and_no_rbac_without_bindings(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"namespace": "a", "name": "p"}, "spec": {}}]}))
    inventory = load_inventory_files([path])
    assert (inventory.pods[0].service_account, inventory.pods[0].token_mounted) == (
        "default", True)
    assert not inventory.has_rbac
