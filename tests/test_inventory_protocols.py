"""Port protocols of inventory objects are `Protocol`s: TCP by default, any case accepted,
anything the API server would refuse skips the object with a note naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from discover.flows.events import Protocol
from discover.inventory.build import RawObject, build_inventory
from discover.inventory.model import Inventory


def service(port: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.5", "selector": {"app": "web"}, "ports": [port]}}


def pod(port: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "main", "image": "web", "ports": [port]}]},
            "status": {"podIP": "10.244.0.5", "phase": "Running"}}


def load(*objects: dict[str, Any]) -> Inventory:
    return build_inventory([RawObject(f"inv.json: items[{i}]", o) for i, o in enumerate(objects)],
                           sources=("inv.json",))


@pytest.mark.parametrize(("given", "expected"), [
    ({}, Protocol.TCP), ({"protocol": None}, Protocol.TCP), ({"protocol": "UDP"}, Protocol.UDP),
    ({"protocol": "sctp"}, Protocol.SCTP),
])
def test_port_protocols_are_protocols(given: dict[str, Any], expected: Protocol) -> None:
    inventory = load(service({"port": 80, **given}), pod({"containerPort": 8080, **given}))
    [service_port] = inventory.services[0].ports
    [container_port] = inventory.pods[0].ports
    assert type(service_port.protocol) is Protocol and service_port.protocol is expected
    assert type(container_port.protocol) is Protocol and container_port.protocol is expected


def test_an_unknown_protocol_skips_the_object_with_a_note() -> None:
    inventory = load(service({"port": 80, "protocol": "ICMP"}), pod({"containerPort": 8080}))
    assert inventory.services == () and len(inventory.pods) == 1
    [note] = [n for n in inventory.notes if n.startswith("skipped:")]
    assert "spec.ports[0].protocol" in note and "expected TCP, UDP or SCTP, got 'ICMP'" in note
